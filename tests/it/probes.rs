//! Probes against real mosquitto brokers: round trips at every QoS, frozen and killed
//! brokers, ACLs, credentials, foreign messages, `/probe` and `mqtt-sentinel probe`.

use crate::support::scrape::{Scrape, get};
use crate::support::sentinel::BIN;
use crate::support::{Mosquitto, Sentinel, wait_until};
use std::process::Command;
use std::time::{Duration, Instant};

fn v(sc: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    sc.value(name, labels).unwrap_or(0.0)
}

#[test]
fn every_qos_round_trips_with_sane_latency() {
    let broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        "    probes:\n      - {qos: 0, interval: 100ms}\n      - {qos: 1, interval: 100ms}\n      - {qos: 2, interval: 100ms}\n",
    );
    let sc = s.wait_scrape(Duration::from_secs(30), "20 round trips per QoS", |sc| {
        ["rtt-qos0", "rtt-qos1", "rtt-qos2"]
            .iter()
            .all(|p| v(sc, "mqtt_probe_received_total", &[("probe", p)]) >= 20.0)
    });
    for (probe, qos) in [("rtt-qos0", "0"), ("rtt-qos1", "1"), ("rtt-qos2", "2")] {
        assert_eq!(
            v(&sc, "mqtt_probe_success", &[("probe", probe)]),
            1.0,
            "{probe}"
        );
        assert_eq!(
            v(&sc, "mqtt_probe_lost_total", &[("probe", probe)]),
            0.0,
            "{probe}"
        );
        assert_eq!(
            v(&sc, "mqtt_probe_duplicates_total", &[("probe", probe)]),
            0.0
        );
        let count = v(&sc, "mqtt_probe_rtt_seconds_count", &[("qos", qos)]);
        assert!(count >= 20.0, "qos {qos}: {count} round trips");
        // No stopwatch: a loaded machine slows round trips down, so only a pathology is
        // checked, on the fastest of many. A Nagle stall (a small write held until the peer's
        // delayed ACK, 40 ms on Linux) delays every round trip; one under 25 ms rules it out.
        // Figures: scripts/bench-probe.sh.
        let fast = v(
            &sc,
            "mqtt_probe_rtt_seconds_bucket",
            &[("qos", qos), ("le", "0.025")],
        );
        assert!(
            fast >= 1.0,
            "qos {qos}: none of {count} round trips under 25 ms (a Nagle stall?)"
        );
        let acks = v(&sc, "mqtt_probe_ack_seconds_count", &[("qos", qos)]);
        if qos == "0" {
            assert!(
                sc.find("mqtt_probe_ack_seconds_count", &[("qos", "0")])
                    .is_empty()
            );
        } else {
            assert!(acks >= 3.0, "qos {qos} acks {acks}");
        }
    }
    assert_eq!(v(&sc, "mqtt_probe_health", &[("state", "healthy")]), 1.0);
    assert_eq!(v(&sc, "mqtt_probe_health", &[("state", "down")]), 0.0);
}

#[test]
fn frozen_broker_turns_into_timeouts_and_recovers() {
    let broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        "    connect_timeout: 2s\n    reconnect: {initial_backoff: 100ms, max_backoff: 500ms}\n    probes:\n      - {qos: 1, interval: 500ms, timeout: 2s}\n",
    );
    s.wait_scrape(Duration::from_secs(10), "probe succeeding", |sc| {
        v(sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]) == 1.0
    });
    broker.freeze();
    let frozen = Instant::now();
    // the probe's own timeout is the mechanism (its reason label below); figures:
    // scripts/bench-detect.sh
    s.wait_scrape(
        Duration::from_secs(20),
        "probe failing on the frozen broker",
        |sc| v(sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]) == 0.0,
    );
    eprintln!("frozen broker detected after {:?}", frozen.elapsed());
    // /metrics answers while the broker is frozen (scrape() asserts the 200)
    let sc = s.scrape();
    assert!(
        v(
            &sc,
            "mqtt_probe_errors_total",
            &[("probe", "rtt-qos1"), ("reason", "timeout")]
        ) >= 1.0
    );
    assert!(v(&sc, "mqtt_probe_lost_total", &[("probe", "rtt-qos1")]) >= 1.0);
    assert_eq!(v(&sc, "mqtt_probe_health", &[("state", "down")]), 1.0);
    // Paho's keep-alive would take up to 2 x 30 s; our own deadline ends the session, and
    // says so in the disconnect reason.
    s.wait_scrape(Duration::from_secs(20), "session declared dead", |sc| {
        v(sc, "mqtt_up", &[("broker", "m")]) == 0.0
            && v(
                sc,
                "mqtt_disconnects_total",
                &[("broker", "m"), ("reason", "unresponsive")],
            ) >= 1.0
    });
    broker.thaw();
    s.wait_scrape(Duration::from_secs(30), "recovered after SIGCONT", |sc| {
        v(sc, "mqtt_up", &[("broker", "m")]) == 1.0
            && v(sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]) == 1.0
            && v(sc, "mqtt_probe_health", &[("state", "healthy")]) == 1.0
    });
    s.wait_log("broker stopped answering");
}

#[test]
fn killed_broker_counts_lost_then_probes_resume() {
    let mut broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        "    reconnect: {initial_backoff: 100ms, max_backoff: 500ms}\n    probes:\n      - {qos: 1, interval: 300ms, timeout: 30s}\n",
    );
    let before = s.wait_scrape(Duration::from_secs(10), "probe succeeding", |sc| {
        v(sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]) == 1.0
    });
    let sent = v(&before, "mqtt_probe_sent_total", &[("probe", "rtt-qos1")]);
    // Freeze first so the next probe is surely in flight when the broker dies.
    broker.freeze();
    s.wait_scrape(Duration::from_secs(15), "a probe in flight", |sc| {
        v(sc, "mqtt_probe_sent_total", &[("probe", "rtt-qos1")]) > sent
    });
    broker.kill();
    let down = s.wait_scrape(Duration::from_secs(20), "session lost", |sc| {
        v(sc, "mqtt_up", &[("broker", "m")]) == 0.0
    });
    assert!(v(&down, "mqtt_probe_lost_total", &[("probe", "rtt-qos1")]) >= 1.0);
    assert_eq!(
        v(&down, "mqtt_probe_success", &[("probe", "rtt-qos1")]),
        0.0
    );
    let received = v(&down, "mqtt_probe_received_total", &[("probe", "rtt-qos1")]);
    broker.restart();
    s.wait_scrape(Duration::from_secs(30), "probes resume", |sc| {
        v(sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]) == 1.0
            && v(sc, "mqtt_probe_received_total", &[("probe", "rtt-qos1")]) > received
    });
}

#[test]
fn acl_denying_the_probe_topic_is_not_authorized() {
    // Anonymous clients may read $SYS and nothing else.
    let broker = Mosquitto::builder().acl("topic read $SYS/#\n").start();
    let s = Sentinel::watching(&broker, "    probes:\n      - {qos: 1, interval: 200ms}\n");
    let sc = s.wait_scrape(Duration::from_secs(10), "probe refused", |sc| {
        v(
            sc,
            "mqtt_probe_errors_total",
            &[("probe", "rtt-qos1"), ("reason", "not_authorized")],
        ) >= 1.0
    });
    assert_eq!(
        v(&sc, "mqtt_up", &[("broker", "m")]),
        1.0,
        "the session itself is fine"
    );
    assert_eq!(v(&sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]), 0.0);
    // mosquitto 2.0.11 grants the SUBSCRIBE and refuses the PUBLISH (v5 PUBACK 0x87)
    assert_eq!(
        v(&sc, "mqtt_probe_received_total", &[("probe", "rtt-qos1")]),
        0.0
    );
    assert_eq!(v(&sc, "mqtt_probe_health", &[("state", "down")]), 1.0);
    s.wait_scrape(Duration::from_secs(15), "$SYS still readable", |sc| {
        sc.value("mqtt_broker_uptime_seconds", &[("broker", "m")])
            .is_some()
    });
}

#[test]
fn connect_and_retained_probes_with_credentials() {
    let broker = Mosquitto::builder().user("monitor", "pw-correct").start();
    let no_retain = Mosquitto::builder().conf("retain_available false").start();
    let fast = "[{kind: connect, interval: 200ms, timeout: 10s}, {kind: retained, interval: 300ms, timeout: 10s}]";
    let s = Sentinel::start(&format!(
        "brokers:\n\
         \x20 - {{name: ok, url: {u}, username: monitor, password: pw-correct, probes: {fast}}}\n\
         \x20 - {{name: badpw, url: {u}, username: monitor, password: pw-wrong, reconnect: {{initial_backoff: 100ms, max_backoff: 500ms}}, probes: {fast}}}\n\
         \x20 - {{name: noretain, url: {n}, probes: {fast}}}\n",
        u = broker.url(),
        n = no_retain.url()
    ));
    let sc = s.wait_scrape(
        Duration::from_secs(10),
        "connect/retained probes ran",
        |sc| {
            v(
                sc,
                "mqtt_probe_success",
                &[("broker", "ok"), ("probe", "connect")],
            ) == 1.0
                && v(
                    sc,
                    "mqtt_probe_success",
                    &[("broker", "ok"), ("probe", "retained")],
                ) == 1.0
                && v(
                    sc,
                    "mqtt_probe_errors_total",
                    &[
                        ("broker", "badpw"),
                        ("probe", "connect"),
                        ("reason", "not_authorized"),
                    ],
                ) >= 1.0
                && v(
                    sc,
                    "mqtt_probe_errors_total",
                    &[("broker", "noretain"), ("probe", "retained")],
                ) >= 1.0
        },
    );
    assert!(
        v(
            &sc,
            "mqtt_connect_duration_seconds_count",
            &[("broker", "ok")]
        ) >= 1.0
    );
    assert_eq!(
        v(
            &sc,
            "mqtt_probe_success",
            &[("broker", "badpw"), ("probe", "retained")]
        ),
        0.0
    );
    assert_eq!(
        v(
            &sc,
            "mqtt_probe_success",
            &[("broker", "noretain"), ("probe", "connect")]
        ),
        1.0
    );
    assert_eq!(
        v(
            &sc,
            "mqtt_probe_success",
            &[("broker", "noretain"), ("probe", "retained")]
        ),
        0.0
    );
    let reasons: Vec<String> = sc
        .find(
            "mqtt_probe_errors_total",
            &[("broker", "noretain"), ("probe", "retained")],
        )
        .iter()
        .map(|x| x.labels["reason"].clone())
        .collect();
    eprintln!("retain_available false makes the retained probe fail with {reasons:?}");
    // the retained probe cleans up after itself: nothing retained is left on the broker
    let left = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port().to_string(),
            "-u",
            "monitor",
            "-P",
            "pw-correct",
        ])
        .args(["-t", "mqtt-sentinel/#", "--retained-only", "-W", "1", "-v"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout),
        "",
        "retained probe values left behind"
    );
    assert!(!s.logs().contains("pw-correct") && !s.logs().contains("pw-wrong"));
}

#[test]
fn foreign_messages_on_the_probe_topic_never_count() {
    use paho_mqtt as paho;
    let broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        "    client_id: sentinel-under-test\n    probes:\n      - {qos: 1, interval: 300ms}\n",
    );
    s.wait_scrape(Duration::from_secs(10), "probe succeeding", |sc| {
        v(sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]) == 1.0
    });
    let cli = paho::Client::new(
        paho::CreateOptionsBuilder::new_v3()
            .server_uri(format!("tcp://127.0.0.1:{}", broker.port()))
            .client_id("stranger")
            .persistence(None)
            .finalize(),
    )
    .unwrap();
    cli.connect(None).unwrap();
    let topic = "mqtt-sentinel/sentinel-under-test/rtt-qos1";
    // junk, and a well-formed probe payload from another "process" (other nonce)
    let forged = format!("mqs1 {:016x} {:020}{}", 0x1234u64, 1u64, "-".repeat(22));
    for i in 0..20 {
        let p: Vec<u8> = if i % 2 == 0 {
            b"hello".to_vec()
        } else {
            forged.clone().into_bytes()
        };
        cli.publish(paho::Message::new(topic, p, 1)).unwrap();
    }
    cli.disconnect(None).unwrap();
    let sc = s.wait_scrape(Duration::from_secs(20), "junk counted as foreign", |sc| {
        v(
            sc,
            "mqtt_probe_ignored_total",
            &[("probe", "rtt-qos1"), ("reason", "foreign")],
        ) == 20.0
    });
    let sent = v(&sc, "mqtt_probe_sent_total", &[("probe", "rtt-qos1")]);
    let received = v(&sc, "mqtt_probe_received_total", &[("probe", "rtt-qos1")]);
    assert!(received <= sent, "received {received} > sent {sent}");
    assert_eq!(
        v(&sc, "mqtt_probe_duplicates_total", &[("probe", "rtt-qos1")]),
        0.0
    );
}

#[test]
fn probe_endpoint() {
    let broker = Mosquitto::start();
    let s = Sentinel::start(
        "brokers: []\nprobe_modules:\n  default: {timeout: 60s}\n  qos2: {qos: 2, timeout: 10s}\nprobe_allowed_targets: 'mqtt://127\\.0\\.0\\.1:\\d+'\n",
    );
    let url = broker.url();
    let probe = |q: &str, headers: &[(&str, &str)]| {
        get(s.addr, &format!("/probe?{q}"), headers)
            .unwrap_or_else(|e| panic!("GET /probe?{q}: {e}"))
    };

    for module in ["default", "qos2"] {
        let r = probe(&format!("target={url}&module={module}"), &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        let sc = Scrape::parse(&r.body);
        assert_eq!(sc.value("probe_success", &[]), Some(1.0), "{}", r.body);
        let whole = sc.value("probe_duration_seconds", &[]).unwrap_or(0.0);
        assert!(whole > 0.0, "probe_duration_seconds = {whole}");
        for m in [
            "probe_mqtt_connect_seconds",
            "probe_mqtt_subscribe_seconds",
            "probe_mqtt_rtt_seconds",
            "probe_mqtt_ack_seconds",
        ] {
            let x = sc
                .value(m, &[])
                .unwrap_or_else(|| panic!("{m} missing:\n{}", r.body));
            // each step is part of the whole probe (no bound on durations: figures live in
            // scripts/bench-probe.sh)
            assert!(
                x > 0.0 && x <= whole,
                "{m} = {x}, probe_duration_seconds = {whole}"
            );
        }
        assert_eq!(
            sc.value("probe_mqtt_reason_info", &[("reason", "success")]),
            Some(1.0)
        );
        // fresh registry: nothing of the exporter's own metrics
        assert!(!r.body.contains("mqtt_up"));
    }

    // a dead port: the probe fails, the HTTP request does not
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = probe(&format!("target=mqtt://127.0.0.1:{dead}"), &[]);
    assert_eq!(r.status, 200);
    let sc = Scrape::parse(&r.body);
    assert_eq!(sc.value("probe_success", &[]), Some(0.0));
    assert_eq!(
        sc.value("probe_mqtt_reason_info", &[("reason", "refused")]),
        Some(1.0),
        "{}",
        r.body
    );

    // the scrape-timeout header bounds the probe: a frozen broker, 1 s budget - 0.5 s, where
    // the module alone would wait 60 s (and the request would outlive the client's 35 s)
    broker.freeze();
    let r = probe(
        &format!("target={url}"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1")],
    );
    broker.thaw();
    assert_eq!(r.status, 200);
    let sc = Scrape::parse(&r.body);
    assert_eq!(sc.value("probe_success", &[]), Some(0.0));
    assert_eq!(
        sc.value("probe_mqtt_reason_info", &[("reason", "timeout")]),
        Some(1.0),
        "{}",
        r.body
    );
    let took = sc.value("probe_duration_seconds", &[]).unwrap_or(f64::NAN);
    assert!(
        took < 30.0,
        "ended by the module's 60 s, not the header: {took} s"
    );
    for header in ["0", "10"] {
        let r = probe(
            &format!("target={url}"),
            &[("X-Prometheus-Scrape-Timeout-Seconds", header)],
        );
        assert_eq!(
            Scrape::parse(&r.body).value("probe_success", &[]),
            Some(1.0),
            "header {header}"
        );
    }

    for (q, h, status, msg) in [
        (
            "module=default".to_owned(),
            None,
            400,
            "missing parameter target",
        ),
        (
            "target=http://x".to_owned(),
            None,
            400,
            "unsupported scheme",
        ),
        (
            "target=mqtt://u:p@127.0.0.1:1".to_owned(),
            None,
            400,
            "credentials in the url",
        ),
        (
            format!("target={url}&module=nope"),
            None,
            400,
            "unknown module \"nope\"; configured modules: default, qos2",
        ),
        (
            "target=mqtt://localhost:1883".to_owned(),
            None,
            403,
            "not allowed by probe_allowed_targets",
        ),
    ] {
        let headers: Vec<(&str, &str)> = h
            .map(|h| ("X-Prometheus-Scrape-Timeout-Seconds", h))
            .into_iter()
            .collect();
        let r = probe(&q, &headers);
        assert_eq!(r.status, status, "{q}: {}", r.body);
        assert!(r.body.contains(msg), "{q}: {}", r.body);
    }
}

/// Issue 20, part 4: the scrape-timeout header is read as blackbox_exporter reads it
/// (`getTimeout`, see `probe_deadline` in src/http.rs for the whole table). The minimal case: a
/// 300 ms module and Prometheus' 0.4 s header probe a healthy broker for 300 ms, not a 400.
#[test]
fn probe_timeout_header_follows_blackbox() {
    let broker = Mosquitto::start();
    let s = Sentinel::start("brokers: []\nprobe_modules:\n  fast: {timeout: 300ms}\n");
    let target = format!("target={}&module=fast", broker.url());
    let probe = |header: Option<&str>| {
        let headers: Vec<(&str, &str)> = header
            .map(|h| ("X-Prometheus-Scrape-Timeout-Seconds", h))
            .into_iter()
            .collect();
        get(s.addr, &format!("/probe?{target}"), &headers)
            .unwrap_or_else(|e| panic!("GET /probe with header {header:?}: {e}"))
    };

    // absent, empty, 0, below the offset, at it, above the module timeout, negative: all probe
    for header in [
        Some("0.4"),
        None,
        Some(""),
        Some("0"),
        Some("0.2"),
        Some("0.5"),
        Some("10"),
        Some("-1"),
    ] {
        let r = probe(header);
        assert_eq!(r.status, 200, "header {header:?}: {}", r.body);
        let sc = Scrape::parse(&r.body);
        assert_eq!(
            sc.value("probe_success", &[]),
            Some(1.0),
            "header {header:?}: {}",
            r.body
        );
    }

    // below the offset the module's 300 ms still bound the probe: a frozen broker fails it
    // with `timeout` (not 120 s later, not instantly with an HTTP error)
    broker.freeze();
    let r = probe(Some("0.4"));
    broker.thaw();
    assert_eq!(r.status, 200, "{}", r.body);
    let sc = Scrape::parse(&r.body);
    assert_eq!(sc.value("probe_success", &[]), Some(0.0), "{}", r.body);
    assert_eq!(
        sc.value("probe_mqtt_reason_info", &[("reason", "timeout")]),
        Some(1.0),
        "{}",
        r.body
    );

    // unparsable: HTTP 500 naming the header and the value, as blackbox_exporter
    for header in ["abc", "10s", "NaN"] {
        let r = probe(Some(header));
        assert_eq!(r.status, 500, "header {header:?}: {}", r.body);
        assert!(
            r.body.contains(&format!(
                "invalid X-Prometheus-Scrape-Timeout-Seconds {header:?}"
            )),
            "{}",
            r.body
        );
    }
}

/// Timeouts are only bounded below, and a probe deadline is `now + timeout`: one too large for
/// an `Instant` must mean "no deadline", not a panic. Below the offset `/probe` uses the
/// module's timeout as is; `mqtt-sentinel probe` multiplies it by the count; scheduled
/// round-trip, connect and retained probes add it to their send time.
#[test]
fn huge_timeouts_do_not_overflow() {
    const HUGE: &str = "100000000000years";
    let broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        &format!(
            "    probes:\n      - {{qos: 1, interval: 200ms, timeout: {HUGE}}}\n      - {{kind: connect, interval: 200ms, timeout: {HUGE}}}\n      - {{kind: retained, interval: 200ms, timeout: {HUGE}}}\nprobe_modules:\n  huge: {{timeout: {HUGE}}}\n"
        ),
    );
    let r = get(
        s.addr,
        &format!("/probe?target={}&module=huge", broker.url()),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "0.4")],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        Scrape::parse(&r.body).value("probe_success", &[]),
        Some(1.0),
        "{}",
        r.body
    );
    s.wait_scrape(Duration::from_secs(10), "every probe kind succeeds", |sc| {
        ["rtt-qos1", "connect", "retained"]
            .iter()
            .all(|p| v(sc, "mqtt_probe_success", &[("probe", p)]) == 1.0)
            && v(sc, "mqtt_probe_received_total", &[("probe", "rtt-qos1")]) >= 2.0
    });

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(&f, format!("probe_modules:\n  huge: {{timeout: {HUGE}}}\n")).unwrap();
    let out = Command::new(BIN)
        .args(["probe", "--module", "huge", "--count", "3", &broker.url()])
        .arg("--config")
        .arg(&f)
        .env_remove("MQTT_SENTINEL_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" healthy: 3/3 round trips"), "{text}");
}

#[test]
fn probe_command_exit_codes() {
    let broker = Mosquitto::start();
    let run = |args: &[&str], config: Option<&str>| {
        let mut c = Command::new(BIN);
        c.arg("probe").args(args).env_remove("MQTT_SENTINEL_CONFIG");
        let dir = tempfile::tempdir().unwrap();
        if let Some(yaml) = config {
            let f = dir.path().join("c.yaml");
            std::fs::write(&f, yaml).unwrap();
            c.arg("--config").arg(f);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&[&broker.url(), "--count", "3"], None);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(" healthy: 3/3 round trips at QoS 1, rtt p50 "),
        "{out}"
    );

    let (code, out) = run(&[&broker.url(), "--qos", "2", "--json"], None);
    assert_eq!(code, Some(0), "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["state"], "healthy");
    assert_eq!(j["qos"], 2);
    assert_eq!(j["received"], 5);
    assert!(j["rtt_p50_seconds"].as_f64().unwrap() > 0.0);

    // degraded: every round trip is slower than a 1 ns threshold
    let (code, out) = run(
        &[&broker.url(), "--module", "strict"],
        Some("probe_modules:\n  strict: {degraded_rtt: 1ns}\n"),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(" degraded: "), "{out}");

    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, out) = run(&[&format!("mqtt://127.0.0.1:{dead}")], None);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(" down: 0/0 round trips") && out.contains("reason refused"),
        "{out}"
    );
}

/// A publisher flooding a topic we subscribe to (the `$SYS` prefix) at full speed while
/// probes run: callbacks never block, what does not fit is counted as dropped, memory stays
/// bounded, and the probes keep being measured (their replies have their own queue).
#[test]
fn a_flood_on_our_subscription_does_not_starve_the_probes() {
    use crate::support::sentinel::rss_kib;
    let broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        "    sys: {topic: \"test/sys/#\", profile: mosquitto, max_series: 50}\n    probes: [{kind: roundtrip, qos: 1, interval: 200ms, timeout: 10s}]\n",
    );
    let sc = s.wait_scrape(Duration::from_secs(10), "probing", |sc| {
        v(sc, "mqtt_probe_rtt_seconds_count", &[("qos", "1")]) >= 3.0
    });
    let rtt_before = v(&sc, "mqtt_probe_rtt_seconds_count", &[("qos", "1")]);
    let rss_before = rss_kib(s.pid());
    // one million QoS 0 messages as fast as mosquitto_pub can send them
    let mut flood = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "yes 12345 | head -n 1000000 | mosquitto_pub -p {} -l -q 0 -t test/sys/flood",
            broker.port()
        ))
        .spawn()
        .unwrap();
    let flooding = std::time::Instant::now();
    let status = wait_until(Duration::from_secs(60), "the flood ends", || {
        flood.try_wait().ok().flatten()
    });
    assert!(status.success());
    let flood_secs = flooding.elapsed().as_secs_f64();
    let sc = s.wait_scrape(
        Duration::from_secs(30),
        "probes measured after the flood",
        // A run during the flood may fail (mosquitto's queue for us is full and drops the
        // probe: `not_delivered`); once the flood has drained, the probe succeeds again.
        |sc| {
            v(sc, "mqtt_probe_rtt_seconds_count", &[("qos", "1")]) >= rtt_before + 5.0
                && v(sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]) == 1.0
        },
    );
    let got = v(&sc, "mqtt_sentinel_sys_messages_total", &[]);
    let dropped = v(&sc, "mqtt_sentinel_messages_dropped_total", &[]);
    assert!(got + dropped >= 100_000.0, "got {got}, dropped {dropped}");
    assert_eq!(v(&sc, "mqtt_up", &[]), 1.0, "the session survived");
    assert_eq!(
        v(&sc, "mqtt_disconnects_total", &[("reason", "unresponsive")]),
        0.0,
        "a flooded broker is busy, not dead"
    );
    let rss_after = rss_kib(s.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    eprintln!(
        "flood: {flood_secs:.1} s, processed {got}, dropped {dropped}, probes lost {}, RSS {rss_before} -> {rss_after} KiB",
        v(&sc, "mqtt_probe_lost_total", &[("probe", "rtt-qos1")])
    );
}
