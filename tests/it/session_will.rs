//! The session and will probes against real mosquitto brokers: a will published when its
//! client drops without DISCONNECT and not after a clean DISCONNECT (MQTT 5 with and without
//! a will delay, 3.1.1); a persistent session that keeps a QoS 1 message while its client is
//! offline, and the failure when the broker drops it; both as one-shot probes
//! (`mqtt-sentinel probe --kind`, `/probe` modules). A failing session probe leaves the
//! broker's health alone.

use crate::support::scrape::{Scrape, get};
use crate::support::sentinel::BIN;
use crate::support::{Mosquitto, Sentinel};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn v(sc: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    sc.value(name, labels).unwrap_or(0.0)
}

/// Sum of `mqtt_probe_errors_total` of one broker's probe, every reason.
fn errors(sc: &Scrape, broker: &str, probe: &str) -> f64 {
    sc.find(
        "mqtt_probe_errors_total",
        &[("broker", broker), ("probe", probe)],
    )
    .iter()
    .map(|s| s.value)
    .sum()
}

/// A client connected straight to `broker`, subscribed to `filter` at QoS 0, and what
/// arrives for it.
fn observer(
    broker: &Mosquitto,
    filter: &str,
) -> (
    paho_mqtt::Client,
    paho_mqtt::SyncReceiver<Option<paho_mqtt::Message>>,
) {
    let observer = paho_mqtt::Client::new(
        paho_mqtt::CreateOptionsBuilder::new()
            .server_uri(format!("tcp://127.0.0.1:{}", broker.port()))
            .client_id("observer")
            .persistence(None)
            .finalize(),
    )
    .unwrap();
    let arrivals = observer.start_consuming();
    observer.connect(None).unwrap();
    observer.subscribe(filter, 0).unwrap();
    (observer, arrivals)
}

#[test]
fn will_probe_publishes_the_will_and_none_on_clean_disconnect() {
    let broker = Mosquitto::start();
    let s = Sentinel::start(&format!(
        "brokers:\n\
         \x20 - name: v5\n    url: {u}\n    protocol: v5\n    probes:\n\
         \x20     - {{kind: will, interval: 200ms, timeout: 10s}}\n\
         \x20     - {{kind: will, name: delayed, will_delay: 1s, interval: 200ms, timeout: 10s}}\n\
         \x20 - name: v311\n    url: {u}\n    protocol: v3.1.1\n    probes: [{{kind: will, interval: 200ms, timeout: 10s}}]\n",
        u = broker.url()
    ));
    let runs = [("v5", "will"), ("v5", "delayed"), ("v311", "will")];
    let sc = s.wait_scrape(Duration::from_secs(60), "will probes succeeded", |sc| {
        runs.iter()
            .all(|(b, p)| v(sc, "mqtt_probe_success", &[("broker", b), ("probe", p)]) == 1.0)
    });
    for (b, p) in runs {
        assert_eq!(
            errors(&sc, b, p),
            0.0,
            "{b}/{p}: {:?}",
            sc.find("mqtt_probe_errors_total", &[("broker", b)])
        );
    }
}

/// One run per broker (a long interval: the first tick runs at once), MQTT 5 and 3.1.1, on
/// a broker with persistence on; then the session the run used must be gone.
#[test]
fn session_probe_keeps_a_persistent_session_and_deletes_it() {
    use paho_mqtt as paho;
    let store = tempfile::tempdir().unwrap();
    let broker = Mosquitto::builder()
        .conf("persistence true")
        .conf(&format!("persistence_location {}/", store.path().display()))
        .start();
    let s = Sentinel::start(&format!(
        "brokers:\n\
         \x20 - {{name: v5, url: {u}, protocol: v5, client_id: s5, probes: [{{kind: session, interval: 1h, timeout: 10s}}]}}\n\
         \x20 - {{name: v311, url: {u}, protocol: v3.1.1, client_id: s3, probes: [{{kind: session, interval: 1h, timeout: 10s}}]}}\n",
        u = broker.url()
    ));
    let sc = s.wait_scrape(Duration::from_secs(60), "session probes succeeded", |sc| {
        ["v5", "v311"].iter().all(|b| {
            v(
                sc,
                "mqtt_probe_success",
                &[("broker", b), ("probe", "session")],
            ) == 1.0
        })
    });
    for b in ["v5", "v311"] {
        assert_eq!(errors(&sc, b, "session"), 0.0, "{b}");
    }
    // The run's session (client id `<client_id>-<probe>-session`) was deleted at its end:
    // resuming it finds none.
    for (id, v5) in [("s5-session-session", true), ("s3-session-session", false)] {
        let create = if v5 {
            paho::CreateOptionsBuilder::new()
        } else {
            paho::CreateOptionsBuilder::new_v3()
        };
        let cli = paho::Client::new(
            create
                .server_uri(format!("tcp://127.0.0.1:{}", broker.port()))
                .client_id(id)
                .persistence(None)
                .finalize(),
        )
        .unwrap();
        let opts = if v5 {
            paho::ConnectOptionsBuilder::new_v5()
                .clean_start(false)
                .finalize()
        } else {
            paho::ConnectOptionsBuilder::new_v3()
                .clean_session(false)
                .finalize()
        };
        let rsp = cli.connect(opts).unwrap();
        let present = rsp.connect_response().unwrap().session_present;
        // (The 3.1.1 session this leaves goes away with the test's broker.)
        cli.disconnect(None).unwrap();
        assert!(!present, "{id}: the probe left its session on the broker");
    }
}

/// A broker that queues one message per offline client while another publisher keeps the
/// probe's topic busy: the message published for the session is dropped (mosquitto 2.0
/// `max_queued_messages`: 0 means no limit, so 1 here). The probe fails with
/// `not_delivered`; the round-trip probe keeps the broker healthy.
#[test]
fn session_probe_fails_when_the_broker_drops_the_queued_message() {
    let broker = Mosquitto::builder().conf("max_queued_messages 1").start();
    let s = Sentinel::watching(
        &broker,
        "    client_id: sentinel-q\n    probes:\n      - {kind: roundtrip, interval: 200ms}\n      - {kind: session, interval: 200ms, timeout: 2s}\n",
    );
    s.wait_scrape(Duration::from_secs(30), "round trips", |sc| {
        v(sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]) == 1.0
    });
    // QoS 1 messages on the session probe's topic, as fast as mosquitto_pub sends them.
    let mut flood = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
        .args(["-t", "mqtt-sentinel/sentinel-q/session", "-q", "1", "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = flood.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || while stdin.write_all(b"flood\n").is_ok() {});
    let sc = s.wait_scrape(Duration::from_secs(60), "the session probe failed", |sc| {
        v(
            sc,
            "mqtt_probe_errors_total",
            &[("probe", "session"), ("reason", "not_delivered")],
        ) >= 1.0
    });
    let _ = flood.kill();
    let _ = flood.wait();
    feeder.join().unwrap();
    assert_eq!(v(&sc, "mqtt_probe_success", &[("probe", "rtt-qos1")]), 1.0);
    assert_eq!(
        v(&sc, "mqtt_probe_health", &[("state", "healthy")]),
        1.0,
        "a failing session probe does not make the broker down"
    );
}

#[test]
fn one_shot_session_and_will_probes() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "probe_modules:\n  will: {kind: will, will_delay: 1s, timeout: 10s}\n  session: {kind: session, timeout: 10s}\n",
    )
    .unwrap();
    for args in [
        vec!["--kind", "will"],
        vec!["--module", "will"],
        vec!["--kind", "session"],
        vec!["--module", "session", "--json"],
    ] {
        let out = Command::new(BIN)
            .arg("probe")
            .arg(broker.url())
            .args(&args)
            .arg("--config")
            .arg(&cfg)
            .env_remove("MQTT_SENTINEL_CONFIG")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
        if args.contains(&"--json") {
            let j: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(j["kind"], "session");
            assert_eq!(j["reason"], "success");
        } else {
            assert!(
                text.contains(" healthy: ") && text.contains("reason success"),
                "{text}"
            );
        }
    }

    let s = Sentinel::start(
        "brokers: []\nprobe_modules:\n  will: {kind: will, timeout: 10s}\n  session: {kind: session, timeout: 10s}\n  delayed: {kind: will, will_delay: 2s, timeout: 10s}\n",
    );
    // A scrape timeout too short for the will delay is the scrape config's fault, said as
    // such: not a failed probe of a healthy broker.
    let r = get(
        s.addr,
        &format!("/probe?target={}&module=delayed", broker.url()),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "2")],
    )
    .unwrap();
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body.contains("needs at least 4s") && r.body.contains("scrape_timeout"),
        "{}",
        r.body
    );
    for module in ["will", "session"] {
        let r = get(
            s.addr,
            &format!("/probe?target={}&module={module}", broker.url()),
            &[],
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let sc = Scrape::parse(&r.body);
        assert_eq!(
            sc.value("probe_success", &[]),
            Some(1.0),
            "{module}: {}",
            r.body
        );
        assert_eq!(
            sc.value("probe_mqtt_reason_info", &[("reason", "success")]),
            Some(1.0),
            "{}",
            r.body
        );
    }

    // A broker that is not there: the one-shot will probe is down with the connect reason.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args([
            "probe",
            &format!("mqtt://127.0.0.1:{dead}"),
            "--kind",
            "will",
        ])
        .env_remove("MQTT_SENTINEL_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(" down: will probe") && text.contains("reason refused"),
        "{text}"
    );
}

/// The will clients speak TLS themselves (rustls with the module's `tls` settings): a will
/// over `mqtts://` arrives. A certificate that does not verify is `tls_certificate`, as for
/// any connect (the watcher, which connects first, is the one that says so).
#[test]
fn will_probe_over_tls() {
    use crate::support::certs;
    use crate::support::mosquitto::ListenerTls;
    let pki = certs::generate();
    let broker = Mosquitto::builder()
        .tls(ListenerTls::from_pki(&pki, false))
        .start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "probe_modules:\n  will: {{kind: will, timeout: 10s, tls: {{ca_file: {:?}}}}}\n  untrusted: {{kind: will, timeout: 10s}}\n",
            pki.ca().display().to_string()
        ),
    )
    .unwrap();
    let run = |module: &str| {
        let out = Command::new(BIN)
            .args(["probe", &broker.url(), "--module", module, "--json"])
            .arg("--config")
            .arg(&cfg)
            .env_remove("MQTT_SENTINEL_CONFIG")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let j: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (out.status.code(), j)
    };
    let (code, j) = run("will");
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(j["reason"], "success", "{j}");
    let (code, j) = run("untrusted");
    assert_eq!(code, Some(2), "{j}");
    assert_eq!(j["reason"], "tls_certificate", "{j}");
}

/// A broker restarted without persistence while the session probe's client is offline: the
/// session is gone when the client comes back (`session_not_present`). The sentinel reaches
/// the broker through a proxy that delays every chunk by 1 s, and an observer connected
/// directly sees the probe's message arrive at the broker: the test restarts the broker then,
/// a second before the probe's client can reconnect.
#[test]
fn session_probe_reports_a_broker_that_lost_the_session() {
    use crate::support::proxy::{Mode, Proxy};
    let mut broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr());
    let (_observer, arrivals) = observer(&broker, "mqtt-sentinel/sl/session");
    proxy.set(Mode::Delay(Duration::from_secs(1)));
    let s = Sentinel::start(&format!(
        "brokers:\n  - {{name: m, url: {}, client_id: sl, connect_timeout: 20s, sys: {{enabled: false}}, probes: [{{kind: session, interval: 1h, timeout: 30s}}]}}\n",
        proxy.url("mqtt", "127.0.0.1")
    ));
    let m = arrivals
        .recv_timeout(Duration::from_secs(60))
        .expect("the probe published its message")
        .expect("the observer stayed connected");
    assert!(m.payload_str().starts_with("mqs-session "), "{m:?}");
    broker.restart();
    let sc = s.wait_scrape(Duration::from_secs(60), "the probe ran", |sc| {
        !sc.find("mqtt_probe_errors_total", &[("probe", "session")])
            .is_empty()
            || v(sc, "mqtt_probe_success", &[("probe", "session")]) == 1.0
    });
    assert_eq!(
        v(
            &sc,
            "mqtt_probe_errors_total",
            &[("probe", "session"), ("reason", "session_not_present")]
        ),
        1.0,
        "{:?}\n{}",
        sc.find("mqtt_probe_errors_total", &[]),
        s.logs()
    );
}

/// A one-shot session probe whose HTTP client hangs up mid-run (which drops the run) still
/// deletes the run's session: a 3.1.1 session never expires and one-shot client ids are
/// random, so nothing else would. The broker's ACL drops the probe's message, so the run
/// waits with its client connected until the test hangs up; `$SYS` counts the sessions.
#[test]
fn an_abandoned_one_shot_session_probe_leaves_no_session() {
    use crate::support::wait::wait_until;
    use std::collections::HashMap;
    let broker = Mosquitto::builder().acl("topic read $SYS/#\n").start();
    let s = Sentinel::start(
        "brokers: []\nprobe_modules:\n  s3: {kind: session, protocol: v3.1.1, timeout: 300s}\n",
    );
    let (_observer, arrivals) = observer(&broker, "$SYS/broker/clients/+");
    let mut clients: HashMap<String, String> = HashMap::new();
    let mut wait_clients = |what: &str, want: &dyn Fn(&HashMap<String, String>) -> bool| {
        wait_until(Duration::from_secs(60), what, || {
            while let Ok(Some(m)) = arrivals.try_recv() {
                clients.insert(m.topic().to_owned(), m.payload_str().into_owned());
            }
            want(&clients).then_some(())
        })
    };
    let count = |c: &HashMap<String, String>, what: &str| {
        c.get(&format!("$SYS/broker/clients/{what}")).cloned()
    };
    let mut http = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        http,
        "GET /probe?target={}&module=s3 HTTP/1.1\r\nHost: x\r\n\r\n",
        broker.url()
    )
    .unwrap();
    wait_clients("the probe's client is connected", &|c| {
        count(c, "connected").as_deref() == Some("2")
    });
    drop(http);
    wait_clients("only the observer is left on the broker", &|c| {
        count(c, "total").as_deref() == Some("1") && count(c, "connected").as_deref() == Some("1")
    });
}

/// SIGTERM during a will run that waits out a long will delay ends the run at once: every
/// task stops within the stop grace (10 s) instead of the process waiting for it and exiting
/// with "some tasks did not stop". The same token stops a broker's probes on a reload that
/// removes or changes the broker.
#[test]
fn sigterm_cancels_a_will_run_in_flight() {
    use crate::support::wait::wait_until;
    let broker = Mosquitto::start();
    let mut s = Sentinel::start(&format!(
        "brokers:\n  - {{name: m, url: {}, protocol: v5, client_id: wl, sys: {{enabled: false}}, probes: [{{kind: will, will_delay: 60s, interval: 1h, timeout: 90s}}]}}\n",
        broker.url()
    ));
    // The dropped client connects, then the run waits a minute for its will.
    wait_until(Duration::from_secs(30), "the will client connected", || {
        broker.log().contains(" as wl-will-will ").then_some(())
    });
    let status = s.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    s.wait_log("all tasks stopped");
    assert!(!s.logs().contains("did not stop"), "{}", s.logs());
}

/// A will whose topic the broker's ACL denies is never published (mosquitto accepts the
/// CONNECT and drops the will when it would publish it): the watcher's SUBSCRIBE was
/// answered, so the run fails `not_delivered`, as a round trip the broker drops does, never
/// `timeout` (which says the broker went silent).
#[test]
fn an_acl_denied_will_is_not_delivered() {
    let broker = Mosquitto::builder().acl("topic read #\n").start();
    let s = Sentinel::start(&format!(
        "brokers:\n  - {{name: m, url: {}, protocol: v5, client_id: wa, sys: {{enabled: false}}, probes: [{{kind: will, interval: 200ms, timeout: 3s}}]}}\n",
        broker.url()
    ));
    let sc = s.wait_scrape(Duration::from_secs(60), "a failed will run", |sc| {
        errors(sc, "m", "will") >= 1.0
    });
    let reasons = sc.find(
        "mqtt_probe_errors_total",
        &[("broker", "m"), ("probe", "will")],
    );
    assert!(
        reasons
            .iter()
            .all(|r| r.labels.get("reason").map(String::as_str) == Some("not_delivered")),
        "{reasons:?}"
    );
    assert_eq!(
        v(
            &sc,
            "mqtt_probe_success",
            &[("broker", "m"), ("probe", "will")]
        ),
        0.0
    );
}
