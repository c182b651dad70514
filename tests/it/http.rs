//! HTTP endpoints over a real socket: formats, status codes, landing page.

use crate::support::scrape::get;
use crate::support::{Mosquitto, Sentinel};
use std::time::Duration;

#[test]
fn metrics_formats_and_endpoints() {
    let broker = Mosquitto::start();
    let s = Sentinel::watching(&broker, "    capacity: {max_connections: 500}\n");
    s.wait_scrape(Duration::from_secs(10), "info", |sc| {
        sc.value("mqtt_broker_info", &[("broker", "m")]).is_some()
    });

    let classic = s.get("/metrics");
    assert_eq!(
        classic.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        classic
            .body
            .contains("# TYPE mqtt_connects_total counter\n")
    );
    assert!(classic.body.contains("# TYPE mqtt_broker_info gauge\n"));
    assert!(!classic.body.contains("# EOF"));

    let om = get(
        s.addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    )
    .unwrap();
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.body.contains("# TYPE mqtt_connects counter\n"));
    assert!(om.body.contains("# TYPE mqtt_broker info\n"));
    assert!(om.body.ends_with("# EOF\n"));

    let sc = s.scrape();
    assert_eq!(
        sc.value("mqtt_sentinel_capacity_max_connections", &[("broker", "m")]),
        Some(500.0)
    );
    let build = sc.find("mqtt_sentinel_build_info", &[]);
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].labels["version"], env!("CARGO_PKG_VERSION"));

    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);
    assert_eq!(s.get("/nope").status, 404);
    let landing = s.get("/");
    assert_eq!(landing.status, 200);
    assert!(landing.body.contains("<td>m</td>"), "{}", landing.body);
    assert!(landing.body.contains("<td>up</td>"), "{}", landing.body);
    assert!(landing.body.contains("href=\"/metrics\""));

    // POST is refused without touching anything
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
}
