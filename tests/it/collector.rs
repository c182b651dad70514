//! `$SYS` collection against a real mosquitto 2.0.

use crate::support::scrape::Scrape;
use crate::support::sentinel::rss_kib;
use crate::support::{Mosquitto, Sentinel, wait_until};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Mosquitto 2.0 `$SYS` topics → (metric, label, scale), written independently of the
/// profile code so the test checks it rather than restating it.
/// metric name, extra label, scale from the payload to the sample value
type Expected = (&'static str, Option<(&'static str, &'static str)>, f64);

fn expected(topic: &str) -> Option<Expected> {
    let rel = topic.strip_prefix("$SYS/broker/")?;
    if let Some(load) = rel.strip_prefix("load/") {
        let (what, win) = load.rsplit_once('/')?;
        let window = match win {
            "1min" => "1m",
            "5min" => "5m",
            "15min" => "15m",
            _ => return None,
        };
        let metric = match what {
            "connections" => "mqtt_broker_load_connections_per_second",
            "sockets" => "mqtt_broker_load_sockets_per_second",
            "bytes/received" => "mqtt_broker_load_bytes_received_per_second",
            "bytes/sent" => "mqtt_broker_load_bytes_sent_per_second",
            "messages/received" => "mqtt_broker_load_messages_received_per_second",
            "messages/sent" => "mqtt_broker_load_messages_sent_per_second",
            "publish/received" => "mqtt_broker_load_publish_received_per_second",
            "publish/sent" => "mqtt_broker_load_publish_sent_per_second",
            "publish/dropped" => "mqtt_broker_load_publish_dropped_per_second",
            _ => return None,
        };
        return Some((metric, Some(("window", window)), 1.0 / 60.0));
    }
    let metric = match rel {
        "bytes/received" => "mqtt_broker_bytes_received_total",
        "bytes/sent" => "mqtt_broker_bytes_sent_total",
        "clients/active" | "clients/connected" => "mqtt_broker_clients_connected",
        "clients/inactive" | "clients/disconnected" => "mqtt_broker_clients_disconnected",
        "clients/expired" => "mqtt_broker_clients_expired_total",
        "clients/maximum" => "mqtt_broker_clients_maximum",
        "clients/total" => "mqtt_broker_clients_registered",
        "heap/current" => "mqtt_broker_heap_bytes",
        "heap/maximum" => "mqtt_broker_heap_maximum_bytes",
        "messages/received" => "mqtt_broker_messages_received_total",
        "messages/sent" => "mqtt_broker_messages_sent_total",
        "messages/stored" | "store/messages/count" => "mqtt_broker_stored_messages",
        "store/messages/bytes" => "mqtt_broker_stored_messages_bytes",
        "publish/bytes/received" => "mqtt_broker_publish_bytes_received_total",
        "publish/bytes/sent" => "mqtt_broker_publish_bytes_sent_total",
        "publish/messages/dropped" => "mqtt_broker_publish_messages_dropped_total",
        "publish/messages/received" => "mqtt_broker_publish_messages_received_total",
        "publish/messages/sent" => "mqtt_broker_publish_messages_sent_total",
        "retained messages/count" => "mqtt_broker_retained_messages",
        "shared_subscriptions/count" => "mqtt_broker_shared_subscriptions",
        "subscriptions/count" => "mqtt_broker_subscriptions",
        "uptime" => "mqtt_broker_uptime_seconds",
        _ => return None,
    };
    Some((metric, None, 1.0))
}

fn type_of(scrape: &Scrape, sample: &str) -> String {
    scrape
        .types
        .get(sample)
        .cloned()
        .unwrap_or_else(|| panic!("no # TYPE for {sample}"))
}

/// Lines `topic\tpayload` printed by a `mosquitto_sub` reference client.
struct RefSub {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl RefSub {
    fn start(port: u16) -> RefSub {
        let mut child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "$SYS/#",
                "-F",
                "%t\t%p",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        RefSub { child, lines }
    }

    fn last_values(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for l in self.lines.lock().unwrap().iter() {
            if let Some((t, p)) = l.split_once('\t') {
                m.insert(t.to_owned(), p.to_owned());
            }
        }
        m
    }
}

impl Drop for RefSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Compare the reference client's last values with one scrape; returns the mismatches.
fn compare(reference: &BTreeMap<String, String>, scrape: &Scrape) -> Vec<String> {
    let mut bad = Vec::new();
    for (topic, payload) in reference {
        if topic == "$SYS/broker/version" {
            let v = payload.rsplit(' ').next().unwrap_or_default();
            if scrape.value("mqtt_broker_info", &[("broker", "m"), ("version", v)]) != Some(1.0) {
                bad.push(format!("{topic}: no mqtt_broker_info{{version={v:?}}}"));
            }
            continue;
        }
        let Some((metric, label, scale)) = expected(topic) else {
            bad.push(format!(
                "{topic} ({payload}) is not a known mosquitto 2.0 topic"
            ));
            continue;
        };
        let number: f64 = payload
            .trim_end_matches(" seconds")
            .parse()
            .unwrap_or(f64::NAN);
        let mut labels = vec![("broker", "m")];
        labels.extend(label);
        match scrape.value(metric, &labels) {
            Some(v) if (v - number * scale).abs() <= 1e-9 * v.abs().max(1.0) => {}
            other => bad.push(format!(
                "{topic}={payload:?}: {metric}{labels:?} is {other:?}"
            )),
        }
    }
    bad
}

#[test]
fn every_mosquitto_sys_topic_becomes_the_right_metric() {
    let broker = Mosquitto::start();
    let s = Sentinel::watching(&broker, "");
    let reference = RefSub::start(broker.port());
    // Both clients see the same publish stream. Freeze the broker so it stops publishing,
    // wait until both hold the same last values, and compare them exactly. A SIGSTOP can
    // land between the broker's writes to the two sockets: a mismatch that outlasts 3 s of
    // silence from both (the drained state, however slow the machine) is retried with a
    // fresh freeze.
    let mut mismatches = Vec::new();
    for _attempt in 0..3 {
        s.wait_scrape(
            Duration::from_secs(30),
            "uptime >= 2 with both clients in",
            |sc| {
                sc.value("mqtt_broker_uptime_seconds", &[("broker", "m")])
                    .unwrap_or(0.0)
                    >= 2.0
                    && sc.value("mqtt_broker_clients_connected", &[("broker", "m")]) == Some(2.0)
            },
        );
        broker.freeze();
        let mut last = (0usize, 0.0f64);
        let mut quiet_since = Instant::now();
        let (values, scrape) = wait_until(Duration::from_secs(60), "both clients drained", || {
            let sc = s.scrape();
            let now = (
                reference.lines.lock().unwrap().len(),
                sc.value("mqtt_sentinel_sys_messages_total", &[("broker", "m")])
                    .unwrap_or(0.0),
            );
            if now != last {
                last = now;
                quiet_since = Instant::now();
                return None;
            }
            let values = reference.last_values();
            (compare(&values, &sc).is_empty() || quiet_since.elapsed() >= Duration::from_secs(3))
                .then_some((values, sc))
        });
        mismatches = compare(&values, &scrape);
        broker.thaw();
        if mismatches.is_empty() {
            // Every $SYS series we export is backed by a topic the reference client saw
            // (no invented values), and the types are right.
            assert!(
                values.len() >= 52,
                "reference saw only {} topics",
                values.len()
            );
            for name in scrape.names_with_prefix("mqtt_broker_") {
                let t = match name {
                    "mqtt_broker_info" => "gauge".to_owned(),
                    _ => type_of(&scrape, name),
                };
                if name.ends_with("_total") {
                    assert_eq!(t, "counter", "{name}");
                } else {
                    assert_eq!(t, "gauge", "{name}");
                }
            }
            let exported = scrape
                .samples
                .iter()
                .filter(|x| x.name.starts_with("mqtt_broker_"))
                .count();
            // 53 topics, 3 deprecated aliases folded, + last-update timestamp
            assert_eq!(
                exported,
                values.len() - 3 + 1,
                "{:#?}",
                scrape.names_with_prefix("mqtt_broker_")
            );
            assert_eq!(
                scrape.value("mqtt_sentinel_sys_parse_errors_total", &[("broker", "m")]),
                Some(0.0)
            );
            return;
        }
    }
    panic!(
        "values differ from mosquitto_sub after 3 freezes:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn promtool_finds_no_problems() {
    let broker = Mosquitto::start();
    let s = Sentinel::watching(&broker, "");
    s.wait_scrape(Duration::from_secs(30), "a full $SYS round", |sc| {
        sc.value("mqtt_broker_uptime_seconds", &[("broker", "m")])
            .is_some()
            && sc
                .value(
                    "mqtt_broker_load_bytes_sent_per_second",
                    &[("broker", "m"), ("window", "15m")],
                )
                .is_some()
    });
    let body = s.get("/metrics").body;
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    use std::io::Write;
    p.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}\n---\n{body}"
    );
}

#[test]
fn dead_broker_exports_no_frozen_values_and_recovers() {
    let mut broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        "    keep_alive: 2s\n    reconnect: {initial_backoff: 100ms, max_backoff: 1s}\n",
    );
    s.wait_collecting();
    broker.kill();
    // the closed socket ends the session (its reason says so); figures: scripts/bench-detect.sh
    let down = s.wait_scrape(
        Duration::from_secs(20),
        "mqtt_up 0 after the broker died",
        |sc| {
            sc.value("mqtt_up", &[("broker", "m")]) == Some(0.0)
                && sc.value(
                    "mqtt_disconnects_total",
                    &[("broker", "m"), ("reason", "connection_lost")],
                ) >= Some(1.0)
        },
    );
    let left: Vec<&str> = down.names_with_prefix("mqtt_broker_");
    assert_eq!(
        left,
        ["mqtt_broker_sys_last_update_timestamp_seconds"],
        "frozen values exported"
    );
    let restarted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let restarting = Instant::now();
    broker.restart();
    let back = s.wait_scrape(
        Duration::from_secs(30),
        "reconnected with fresh $SYS values",
        |sc| {
            sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
                && sc
                    .value("mqtt_broker_uptime_seconds", &[("broker", "m")])
                    .is_some()
        },
    );
    assert!(
        back.value(
            "mqtt_connects_total",
            &[("broker", "m"), ("result", "success")]
        ) >= Some(2.0)
    );
    // fresh values from the restarted broker: received after the restart, and its uptime
    // (whole seconds) started again: no longer than we have waited since (no stopwatch:
    // a slow machine only makes the right-hand sides larger)
    assert!(
        back.value(
            "mqtt_broker_sys_last_update_timestamp_seconds",
            &[("broker", "m")]
        ) >= Some(restarted.floor()),
        "$SYS values from before the restart"
    );
    let since = restarting.elapsed().as_secs_f64();
    let uptime = back.value("mqtt_broker_uptime_seconds", &[("broker", "m")]);
    assert!(
        uptime <= Some(since.ceil() + 1.0),
        "uptime {uptime:?} s, restarted {since:.1} s ago"
    );
}

/// Publish `(topic, payload)` pairs at QoS 1 with a real MQTT client (Paho, sync API).
fn publish_all(port: u16, msgs: impl IntoIterator<Item = (String, Vec<u8>)>) -> usize {
    use paho_mqtt as paho;
    let cli = paho::Client::new(
        paho::CreateOptionsBuilder::new_v3()
            .server_uri(format!("tcp://127.0.0.1:{port}"))
            .client_id("odd-payload-publisher")
            .persistence(None)
            .finalize(),
    )
    .unwrap();
    cli.connect(
        paho::ConnectOptionsBuilder::new_v3()
            .clean_session(true)
            .finalize(),
    )
    .unwrap();
    let mut n = 0;
    for (t, p) in msgs {
        cli.publish(paho::Message::new(t, p, 1)).unwrap();
        n += 1;
    }
    cli.disconnect(None).unwrap();
    n
}

#[test]
fn odd_payloads_are_counted_capped_and_harmless() {
    let broker = Mosquitto::start();
    let s = Sentinel::watching(
        &broker,
        "    sys: {topic: \"test/sys/#\", max_series: 100, profile: mosquitto}\n",
    );
    s.wait_scrape(Duration::from_secs(30), "connected", |sc| {
        sc.value("mqtt_up", &[("broker", "m")]) == Some(1.0)
    });
    let odd: Vec<Vec<u8>> = vec![
        b"many".to_vec(),
        Vec::new(),
        b"NaN".to_vec(),
        b"1e309".to_vec(),
        vec![b'7'; 64 * 1024],
        b"\xff\xfe\xfd".to_vec(),
    ];
    let mut msgs = Vec::new();
    for p in &odd {
        msgs.push(("test/sys/broker/clients/connected".to_owned(), p.clone()));
        msgs.push(("test/sys/custom/value".to_owned(), p.clone()));
    }
    let first = publish_all(broker.port(), msgs);
    let sc = s.wait_scrape(Duration::from_secs(30), "odd payloads processed", |sc| {
        sc.value("mqtt_sentinel_sys_messages_total", &[("broker", "m")]) == Some(first as f64)
    });
    // on the mapped topic each is a parse error; on the unknown one, text
    assert_eq!(
        sc.value("mqtt_sentinel_sys_parse_errors_total", &[("broker", "m")]),
        Some(6.0)
    );
    assert_eq!(
        sc.value("mqtt_sentinel_sys_unmapped_text_total", &[("broker", "m")]),
        Some(6.0)
    );
    assert_eq!(
        sc.value("mqtt_broker_clients_connected", &[("broker", "m")]),
        None,
        "never a silent 0"
    );
    assert!(sc.find("mqtt_broker_sys_value", &[]).is_empty());

    // 10 000 topics, no level with more than 10 values (`flood/3/1/4/1`): no fan-out over a
    // key for the guard to catch, so the max_series cap is what stops them
    let flood = publish_all(
        broker.port(),
        (0..10_000).map(|i| {
            let d = |k: u32| (i / 10u32.pow(k)) % 10;
            (
                format!("test/sys/flood/{}/{}/{}/{}", d(3), d(2), d(1), d(0)),
                b"1".to_vec(),
            )
        }),
    );
    let total = (first + flood) as f64;
    let sc = s.wait_scrape(
        Duration::from_secs(60),
        "flood processed or dropped",
        |sc| {
            let got = sc
                .value("mqtt_sentinel_sys_messages_total", &[("broker", "m")])
                .unwrap_or(0.0);
            let dropped = sc
                .value("mqtt_sentinel_messages_dropped_total", &[("broker", "m")])
                .unwrap_or(0.0);
            got + dropped == total
        },
    );
    let processed = sc
        .value("mqtt_sentinel_sys_messages_total", &[("broker", "m")])
        .unwrap()
        - first as f64;
    let series = sc.find("mqtt_broker_sys_value", &[("broker", "m")]).len();
    assert_eq!(series, 100, "capped at max_series");
    assert_eq!(
        sc.value("mqtt_sentinel_sys_series_dropped_total", &[("broker", "m")]),
        Some(processed - 100.0),
        "every processed flood message beyond the cap is counted as dropped"
    );
    assert_eq!(s.get("/healthz").status, 200);
    let rss = rss_kib(s.pid());
    eprintln!(
        "RSS after 10 000 topics and a 64 KiB payload: {rss} KiB; processed {processed}, queue drops {}",
        total - first as f64 - processed
    );
    assert!(rss < 64 * 1024, "RSS {rss} KiB");
}
