//! A healthy broker is never reported down (issue 20, parts 1 and 2): a probe message the
//! broker drops silently (an ACL on MQTT 3.1.1 or at QoS 0, `message_size_limit` on 3.1.1)
//! is a failed probe with reason `not_delivered`, never a dead session; a frozen broker is
//! still declared unresponsive; `protocol: auto` falls back to 3.1.1 only when MQTT 5 is
//! refused, and never for good.

use crate::support::proxy::{Mode, Proxy};
use crate::support::scrape::Scrape;
use crate::support::{Mosquitto, Sentinel, wait_until};
use std::cell::Cell;
use std::time::Duration;

fn v(sc: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    sc.value(name, labels).unwrap_or(0.0)
}

fn total(sc: &Scrape, name: &str) -> f64 {
    sc.find(name, &[]).iter().map(|s| s.value).sum()
}

/// Anonymous clients may read `$SYS` and the probe topics, and write nothing: the broker
/// grants the probe's SUBSCRIBE and drops its PUBLISH, which MQTT 3.1.1 (and QoS 0 in any
/// version) cannot report.
const READ_ONLY: &str = "topic read $SYS/#\ntopic read mqtt-sentinel/#\n";

/// Probe timeouts here are 3 s: the liveness question is asked 1 s before the deadline, and
/// a loaded CI machine must not turn a live broker's late UNSUBACK into a `timeout`.
///
/// Run `extra` (YAML for broker `m`) against `broker` until the probe has failed `runs` times
/// with `not_delivered`, checking on every scrape that the session stayed up; then check that
/// it never reconnected.
fn dropped_probe_keeps_the_session(broker: &Mosquitto, extra: &str, runs: f64) {
    // No `$SYS` subscription: its messages would prove the broker alive on their own, and
    // the broker publishes them only every 10 s. Here only acknowledgements and the
    // liveness question can.
    let s = Sentinel::watching(broker, &format!("    sys: {{enabled: false}}\n{extra}"));
    s.wait_scrape(Duration::from_secs(20), "connected", |sc| {
        v(sc, "mqtt_up", &[("broker", "m")]) == 1.0
    });
    let down_seen = Cell::new(0u32);
    let sc = s.wait_scrape(
        Duration::from_secs(60),
        "probe failing with not_delivered",
        |sc| {
            if v(sc, "mqtt_up", &[("broker", "m")]) != 1.0 {
                down_seen.set(down_seen.get() + 1);
            }
            v(
                sc,
                "mqtt_probe_errors_total",
                &[("probe", "p"), ("reason", "not_delivered")],
            ) >= runs
        },
    );
    let logs = s.logs();
    assert_eq!(down_seen.get(), 0, "mqtt_up left 1:\n{logs}");
    assert_eq!(v(&sc, "mqtt_up", &[("broker", "m")]), 1.0, "{logs}");
    assert_eq!(total(&sc, "mqtt_disconnects_total"), 0.0, "{logs}");
    assert_eq!(
        v(&sc, "mqtt_connects_total", &[("result", "success")]),
        1.0,
        "one session, never re-established:\n{logs}"
    );
    assert_eq!(
        v(
            &sc,
            "mqtt_probe_errors_total",
            &[("probe", "p"), ("reason", "timeout")]
        ),
        0.0,
        "the broker answered all along, so no run is a bare timeout:\n{logs}"
    );
    assert_eq!(v(&sc, "mqtt_probe_success", &[("probe", "p")]), 0.0);
    assert_eq!(v(&sc, "mqtt_probe_received_total", &[("probe", "p")]), 0.0);
    assert!(v(&sc, "mqtt_probe_lost_total", &[("probe", "p")]) >= runs);
    assert!(!logs.contains("stopped answering"), "{logs}");
}

#[test]
fn acl_drop_on_3_1_1_at_qos_1_is_a_failed_probe() {
    let broker = Mosquitto::builder().acl(READ_ONLY).start();
    dropped_probe_keeps_the_session(
        &broker,
        "    protocol: v3.1.1\n    probes:\n      - {name: p, qos: 1, interval: 300ms, timeout: 3s}\n",
        3.0,
    );
}

#[test]
fn acl_drop_at_qos_0_over_mqtt_5_is_a_failed_probe() {
    // Nothing at all comes back for a QoS 0 PUBLISH: only the liveness question's UNSUBACK
    // tells a live broker from a dead one.
    let broker = Mosquitto::builder().acl(READ_ONLY).start();
    dropped_probe_keeps_the_session(
        &broker,
        "    protocol: v5\n    probes:\n      - {name: p, qos: 0, interval: 300ms, timeout: 3s}\n",
        3.0,
    );
}

#[test]
fn acl_drop_on_3_1_1_at_qos_0_is_a_failed_probe() {
    let broker = Mosquitto::builder().acl(READ_ONLY).start();
    dropped_probe_keeps_the_session(
        &broker,
        "    protocol: v3.1.1\n    probes:\n      - {name: p, qos: 0, interval: 300ms, timeout: 3s}\n",
        3.0,
    );
}

#[test]
fn message_size_limit_on_3_1_1_is_a_failed_probe() {
    // mosquitto acknowledges an oversized QoS 1 PUBLISH from a 3.1.1 client and drops it
    // (MQTT 5 would answer PUBACK 0x95 packet_too_large).
    let broker = Mosquitto::builder().conf("message_size_limit 64").start();
    dropped_probe_keeps_the_session(
        &broker,
        "    protocol: v3.1.1\n    probes:\n      - {name: p, qos: 1, interval: 300ms, timeout: 3s, payload_bytes: 1024}\n",
        3.0,
    );
}

#[test]
fn frozen_broker_is_still_declared_unresponsive() {
    // QoS 0 over 3.1.1: nothing comes back for the PUBLISH itself, so the unanswered liveness
    // question is what ends the session.
    let broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        "    protocol: v3.1.1\n    sys: {enabled: false}\n    reconnect: {initial_backoff: 100ms, max_backoff: 500ms}\n    probes:\n      - {name: p, qos: 0, interval: 300ms, timeout: 1s}\n",
    );
    s.wait_scrape(Duration::from_secs(20), "probe succeeding", |sc| {
        v(sc, "mqtt_probe_success", &[("probe", "p")]) == 1.0
    });
    broker.freeze();
    let sc = s.wait_scrape(
        Duration::from_secs(30),
        "session declared unresponsive",
        |sc| v(sc, "mqtt_disconnects_total", &[("reason", "unresponsive")]) >= 1.0,
    );
    assert_eq!(
        v(
            &sc,
            "mqtt_probe_errors_total",
            &[("probe", "p"), ("reason", "not_delivered")]
        ),
        0.0,
        "a frozen broker answers nothing: its failures are timeouts\n{}",
        s.logs()
    );
    assert!(
        v(
            &sc,
            "mqtt_probe_errors_total",
            &[("probe", "p"), ("reason", "timeout")]
        ) >= 1.0
    );
    s.wait_log("not even the UNSUBACK to a liveness question");
    broker.thaw();
    s.wait_scrape(Duration::from_secs(30), "recovered after SIGCONT", |sc| {
        v(sc, "mqtt_up", &[("broker", "m")]) == 1.0
            && v(sc, "mqtt_probe_success", &[("probe", "p")]) == 1.0
    });
}

#[test]
fn one_connection_closed_before_connack_does_not_pin_3_1_1() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr());
    proxy.set(Mode::CloseOnce);
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: m\n    url: {}\n    reconnect: {{initial_backoff: 100ms, max_backoff: 500ms}}\n",
        proxy.url("mqtt", "127.0.0.1")
    ));
    let sc = s.wait_scrape(Duration::from_secs(20), "connected", |sc| {
        v(sc, "mqtt_up", &[("broker", "m")]) == 1.0
    });
    let logs = s.logs();
    assert!(
        total(&sc, "mqtt_connects_total") >= 2.0,
        "the first attempt was closed: {logs}"
    );
    assert_eq!(
        v(&sc, "mqtt_connection_info", &[("protocol", "5")]),
        1.0,
        "{logs}"
    );
    assert!(
        sc.find("mqtt_connection_info", &[("protocol", "3.1.1")])
            .is_empty()
    );
    assert!(!logs.contains("MQTT 5 refused"), "{logs}");

    // A session that ends starts over with MQTT 5: every later session is MQTT 5 too.
    for round in 0..3 {
        let before = v(&s.scrape(), "mqtt_connects_total", &[("result", "success")]);
        proxy.set(Mode::CloseOnce);
        proxy.reset_all();
        let sc = s.wait_scrape(Duration::from_secs(20), "reconnected", |sc| {
            v(sc, "mqtt_connects_total", &[("result", "success")]) > before
                && v(sc, "mqtt_up", &[("broker", "m")]) == 1.0
        });
        assert_eq!(
            v(&sc, "mqtt_connection_info", &[("protocol", "5")]),
            1.0,
            "round {round}: {}",
            s.logs()
        );
    }
}

#[test]
fn a_fallback_to_3_1_1_is_asked_again_on_the_next_session() {
    // amqtt answers a v5 CONNECT with a 3.1.1 refusal: each new session asks for MQTT 5 first,
    // is refused, and runs on 3.1.1 (logged with the evidence).
    let broker = crate::support::brokers::Broker::amqtt();
    let proxy = Proxy::start(
        broker
            .url()
            .trim_start_matches("mqtt://")
            .parse()
            .expect("amqtt url is host:port"),
    );
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: b\n    url: {}\n    reconnect: {{initial_backoff: 100ms, max_backoff: 500ms}}\n",
        proxy.url("mqtt", "127.0.0.1")
    ));
    s.wait_scrape(Duration::from_secs(30), "connected on 3.1.1", |sc| {
        v(sc, "mqtt_up", &[("broker", "b")]) == 1.0
            && v(sc, "mqtt_connection_info", &[("protocol", "3.1.1")]) == 1.0
    });
    proxy.reset_all();
    wait_until(Duration::from_secs(30), "second session on 3.1.1", || {
        let sc = s.scrape();
        // each session: MQTT 5 closed, a 3.1.1 test connect, MQTT 5 closed, 3.1.1
        (v(&sc, "mqtt_connects_total", &[("result", "success")]) >= 4.0
            && v(&sc, "mqtt_up", &[("broker", "b")]) == 1.0)
            .then_some(())
    });
    // each session asked for MQTT 5 first (the log can trail the scrape: wait for both lines)
    let refused = || {
        s.logs()
            .matches("MQTT 5 refused: this session uses MQTT 3.1.1")
            .count()
    };
    wait_until(Duration::from_secs(30), "both fallbacks logged", || {
        (refused() >= 2).then_some(())
    });
    assert_eq!(refused(), 2, "{}", s.logs());
}

#[test]
fn one_shot_probe_of_an_acl_dropped_message_says_not_delivered() {
    let broker = Mosquitto::builder().acl(READ_ONLY).start();
    let s = Sentinel::start(
        "brokers: []\nprobe_modules:\n  v311: {qos: 1, protocol: v3.1.1, timeout: 3s}\n",
    );
    let r = crate::support::scrape::get(
        s.addr,
        &format!("/probe?target={}&module=v311", broker.url()),
        &[],
    )
    .expect("GET /probe");
    assert_eq!(r.status, 200, "{}", r.body);
    let sc = Scrape::parse(&r.body);
    assert_eq!(sc.value("probe_success", &[]), Some(0.0), "{}", r.body);
    assert_eq!(
        sc.value("probe_mqtt_reason_info", &[("reason", "not_delivered")]),
        Some(1.0),
        "acknowledged by the broker and never delivered:\n{}",
        r.body
    );
}

#[test]
fn a_restart_behind_a_proxy_that_closes_connections_never_pins_3_1_1() {
    // A load balancer with no backend accepts and closes every connection while the broker
    // is down (here: the fault proxy, whose upstream connect fails). Attempts of both versions
    // are closed until the broker is back; none of that is evidence against MQTT 5.
    let mut broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr());
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: m\n    url: {}\n    reconnect: {{initial_backoff: 50ms, max_backoff: 200ms}}\n",
        proxy.url("mqtt", "127.0.0.1")
    ));
    s.wait_scrape(Duration::from_secs(20), "connected", |sc| {
        v(sc, "mqtt_up", &[("broker", "m")]) == 1.0
    });
    for round in 0..3 {
        broker.kill();
        let closed = v(
            &s.scrape(),
            "mqtt_connects_total",
            &[("result", "connection_closed")],
        );
        s.wait_scrape(
            Duration::from_secs(20),
            "attempts closed by the proxy",
            |sc| {
                v(
                    sc,
                    "mqtt_connects_total",
                    &[("result", "connection_closed")],
                ) >= closed + 3.0
            },
        );
        broker.restart();
        let sc = s.wait_scrape(Duration::from_secs(30), "back after the restart", |sc| {
            v(sc, "mqtt_up", &[("broker", "m")]) == 1.0
        });
        assert_eq!(
            v(&sc, "mqtt_connection_info", &[("protocol", "5")]),
            1.0,
            "round {round}:\n{}",
            s.logs()
        );
    }
    assert!(!s.logs().contains("MQTT 5 refused"), "{}", s.logs());
}

#[test]
fn a_slow_broker_that_still_answers_keeps_its_session() {
    // Every packet takes 700 ms each way: a probe with a 1 s timeout fails (its PUBACK and
    // message come back after 1.4 s), but the broker answers within timeout + 0.9 s, so the
    // session stays. Keep-alive (60 s) would never end it either.
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr());
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: m\n    url: {}\n    keep_alive: 60s\n    connect_timeout: 20s\n    sys: {{enabled: false}}\n    probes:\n      - {{name: p, qos: 1, interval: 3s, timeout: 1s}}\n",
        proxy.url("mqtt", "127.0.0.1")
    ));
    s.wait_scrape(Duration::from_secs(20), "connected", |sc| {
        v(sc, "mqtt_up", &[("broker", "m")]) == 1.0
    });
    proxy.set(Mode::Delay(Duration::from_millis(700)));
    // The session starts again through the slow path (a slow broker from its first packet).
    proxy.reset_all();
    let sc = s.wait_scrape(Duration::from_secs(90), "late replies", |sc| {
        v(
            sc,
            "mqtt_probe_ignored_total",
            &[("probe", "p"), ("reason", "late")],
        ) >= 3.0
    });
    let logs = s.logs();
    assert_eq!(
        v(&sc, "mqtt_disconnects_total", &[("reason", "unresponsive")]),
        0.0,
        "{logs}"
    );
    assert_eq!(v(&sc, "mqtt_up", &[("broker", "m")]), 1.0, "{logs}");
    assert_eq!(
        v(&sc, "mqtt_connects_total", &[("result", "success")]),
        2.0,
        "the first session and the one through the slow path:\n{logs}"
    );
    assert!(
        v(
            &sc,
            "mqtt_probe_errors_total",
            &[("probe", "p"), ("reason", "timeout")]
        ) >= 3.0,
        "a run slower than its timeout is a timeout:\n{logs}"
    );
}
