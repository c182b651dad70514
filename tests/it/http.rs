//! HTTP endpoints over a real socket: formats, status codes, landing page.

use crate::support::scrape::get;
use crate::support::{Mosquitto, Sentinel, wait_until};
use std::time::Duration;

#[test]
fn metrics_formats_and_endpoints() {
    let broker = Mosquitto::start();
    let s = Sentinel::watching(&broker, "    capacity: {max_connections: 500}\n");
    s.wait_scrape(Duration::from_secs(30), "info", |sc| {
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

/// 500 idle sockets and a client that sends its headers one byte at a time do not keep others
/// from `/metrics`; the slow client is cut off by the header timeout; past `max_connections`
/// new sockets are closed at once instead of waiting.
#[test]
fn idle_and_slow_clients_do_not_block_metrics() {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    let s = Sentinel::start("web: { max_connections: 600 }\nbrokers: []\nrules: { files: [] }\n");
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(s.addr).expect("connect"))
        .collect();
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripper = {
        let mut w = slow.try_clone().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            // one header byte every 200 ms, never finishing the request: a pacing, which is
            // not a synchronisation
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if w.write_all(b"X").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    for _ in 0..5 {
        let r = s.get("/metrics");
        assert_eq!(r.status, 200);
    }
    // the slow client is closed by the 10 s header timeout (our read deadline is only there so
    // a server that never closes fails the test instead of hanging it)
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = match slow.read(&mut buf) {
        Ok(n) => n,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the slow client was not cut off: {e}")
        }
        Err(_) => 0, // reset
    };
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || answer.starts_with("HTTP/1.1 408"),
        "slow client got {answer:?}"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    dripper.join().unwrap();
    drop(idle);

    // the cap: 16 held sockets, the 17th is closed at once
    let s = Sentinel::start("web: { max_connections: 16 }\nbrokers: []\nrules: { files: [] }\n");
    let held: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(s.addr).expect("connect"))
        .collect();
    wait_until(Duration::from_secs(30), "a 17th socket is refused", || {
        let mut c = TcpStream::connect(s.addr).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut b = [0u8; 64];
        // closed (EOF or reset), not merely slow to answer
        match c.read(&mut b) {
            Ok(0) => Some(()),
            Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Some(()),
            _ => None,
        }
    });
    drop(held);
    wait_until(
        Duration::from_secs(30),
        "served again once the sockets are gone",
        || {
            crate::support::scrape::get(s.addr, "/healthz", &[])
                .ok()
                .filter(|r| r.status == 200)
        },
    );
}
