//! Network faults between the sidecar and its broker, through a TCP fault proxy on loopback:
//! a stalled (half-open) link is noticed by keep-alive with no probe traffic at all, and after
//! a reset, a black hole and a TLS handshake cut in the middle the session comes back by itself
//! once the link does. No stopwatch: how soon is a figure of `scripts/bench-detect.sh`.

use crate::support::certs;
use crate::support::mosquitto::ListenerTls;
use crate::support::proxy::{Mode, Proxy};
use crate::support::{Mosquitto, Sentinel};
use std::time::{Duration, Instant};

fn up(s: &Sentinel) -> Option<f64> {
    s.scrape().value("mqtt_up", &[("broker", "m")])
}

fn count(s: &Sentinel, name: &str, label: (&str, &str)) -> f64 {
    s.scrape()
        .value(name, &[("broker", "m"), label])
        .unwrap_or(0.0)
}

/// Wait (generously: a deadline, not a timing) until `mqtt_up` is `want`; how long it took.
fn wait_up(s: &Sentinel, want: f64, within: Duration, what: &str) -> Duration {
    let t = Instant::now();
    s.wait_scrape(within, what, |sc| {
        sc.value("mqtt_up", &[("broker", "m")]) == Some(want)
    });
    t.elapsed()
}

#[test]
fn stall_reset_and_black_hole() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr());
    // no probes: only keep-alive can notice a silent link ($SYS is off, so nothing arrives)
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: m\n    url: {}\n    keep_alive: 2s\n    connect_timeout: 3s\n    reconnect: {{ initial_backoff: 100ms, max_backoff: 1s }}\n    sys: {{ enabled: false }}\n    probes: []\n",
        proxy.url("mqtt", "127.0.0.1")
    ));
    wait_up(
        &s,
        1.0,
        Duration::from_secs(30),
        "connected through the proxy",
    );

    // half-open: both directions stall, no FIN, no RST. Nothing else can notice it: no probes,
    // no $SYS, and the kernel still acknowledges every segment, so TCP never times out. The
    // session ending at all (as a lost connection, not an unresponsive broker) is keep-alive.
    let lost = count(&s, "mqtt_disconnects_total", ("reason", "connection_lost"));
    proxy.set(Mode::Stall);
    let keep_alive = Duration::from_secs(2);
    let noticed = wait_up(
        &s,
        0.0,
        Duration::from_secs(30),
        "the stalled session declared dead",
    );
    assert!(count(&s, "mqtt_disconnects_total", ("reason", "connection_lost")) > lost);
    assert_eq!(
        count(&s, "mqtt_disconnects_total", ("reason", "unresponsive")),
        0.0
    );
    eprintln!("stalled link noticed after {noticed:?} (keep-alive {keep_alive:?})");
    proxy.set(Mode::Pass);
    proxy.reset_all();
    wait_up(&s, 1.0, Duration::from_secs(30), "back after the stall");

    // reset: the session may be back before a scrape sees it down, so wait for the counter
    let lost = count(&s, "mqtt_disconnects_total", ("reason", "connection_lost"));
    proxy.reset_all();
    s.wait_scrape(Duration::from_secs(30), "reset noticed", |sc| {
        sc.value(
            "mqtt_disconnects_total",
            &[("broker", "m"), ("reason", "connection_lost")],
        ) > Some(lost)
    });
    wait_up(&s, 1.0, Duration::from_secs(30), "back after the reset");

    // black hole: new connections are accepted and never answered
    proxy.set(Mode::BlackHole);
    proxy.reset_all();
    s.wait_scrape(Duration::from_secs(30), "connects time out", |sc| {
        sc.value(
            "mqtt_connects_total",
            &[("broker", "m"), ("result", "timeout")],
        ) >= Some(1.0)
    });
    assert_eq!(up(&s), Some(0.0));
    proxy.set(Mode::Pass);
    wait_up(
        &s,
        1.0,
        Duration::from_secs(30),
        "back after the black hole",
    );
}

#[test]
fn tls_handshake_cut_in_the_middle() {
    let pki = certs::generate();
    let broker = Mosquitto::builder()
        .tls(ListenerTls::from_pki(&pki, false))
        .start();
    let proxy = Proxy::start(broker.addr());
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: m\n    url: {}\n    tls: {{ ca_file: {:?} }}\n    connect_timeout: 2s\n    reconnect: {{ initial_backoff: 100ms, max_backoff: 1s }}\n    probes: []\n",
        proxy.url("mqtts", "localhost"),
        pki.ca().display().to_string()
    ));
    wait_up(
        &s,
        1.0,
        Duration::from_secs(30),
        "TLS session through the proxy",
    );
    // the server's first 100 bytes (part of its hello) and then the connection closes
    proxy.set(Mode::CloseAfter(100));
    proxy.reset_all();
    s.wait_scrape(Duration::from_secs(30), "cut handshakes counted", |sc| {
        let failed: f64 = ["tls_handshake", "connection_closed", "timeout"]
            .iter()
            .filter_map(|r| sc.value("mqtt_connects_total", &[("broker", "m"), ("result", r)]))
            .sum();
        failed >= 2.0
    });
    assert_eq!(up(&s), Some(0.0));
    proxy.set(Mode::Pass);
    wait_up(
        &s,
        1.0,
        Duration::from_secs(30),
        "back after the cut handshakes",
    );
    // the outage is logged
    s.wait_log("cannot connect");
}
