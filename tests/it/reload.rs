//! Configuration reload (SIGHUP and `POST /-/reload`): a broken file keeps the running
//! configuration and says so; a good one adds and removes brokers without touching the
//! unchanged ones, and keeps the state of unchanged alerting rules (no second notification).

use crate::support::sink::Sink;
use crate::support::{Mosquitto, Sentinel, wait_until};
use std::time::Duration;

fn config(broker: &Mosquitto, rules: &std::path::Path, sink: &Sink, extra_broker: bool) -> String {
    let mut c = format!(
        "brokers:\n  - name: a\n    url: {url}\n    probes: [{{kind: roundtrip, qos: 1, interval: 1s}}]\n",
        url = broker.url()
    );
    if extra_broker {
        c.push_str(&format!("  - name: b\n    url: {}\n", broker.url()));
    }
    c.push_str(&format!(
        "rules:\n  files: [{:?}]\n  evaluation_interval: 1s\nnotify:\n  receivers:\n    - {{ name: ops, type: webhook, url: {:?} }}\n",
        rules.display().to_string(),
        sink.url("/hook")
    ));
    c
}

const RULES: &str =
    "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n";

/// `activeAt` of the alert `alert` in `state`, from `/api/v1/alerts`.
fn active(s: &Sentinel, alert: &str, state: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&s.get("/api/v1/alerts").body).unwrap();
    v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == alert && a["state"] == state)
        .map(|a| a["activeAt"].as_str().unwrap_or_default().to_owned())
}

fn active_at(s: &Sentinel, alert: &str) -> Option<String> {
    active(s, alert, "firing")
}

#[test]
fn reload_swaps_brokers_and_rules_keeps_alert_state_and_survives_a_broken_file() {
    let broker = Mosquitto::start();
    let sink = Sink::start(&[], false);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let s = Sentinel::start(&config(&broker, &rules, &sink, false));
    let write = |yaml: &str| {
        std::fs::write(&s.config_path, format!("listen: \"127.0.0.1:0\"\n{yaml}")).unwrap()
    };

    s.wait_scrape(Duration::from_secs(30), "broker a up", |sc| {
        sc.value("mqtt_up", &[("broker", "a")]) == Some(1.0)
    });
    let since = wait_until(Duration::from_secs(30), "Always firing", || {
        active_at(&s, "Always")
    });
    wait_until(Duration::from_secs(30), "the firing notification", || {
        sink.requests()
            .iter()
            .any(|r| r.json()["status"] == "firing")
            .then_some(())
    });

    // SIGHUP with one more broker and one more rule
    write(&config(&broker, &rules, &sink, true));
    std::fs::write(
        &rules,
        format!("{RULES}      - alert: BrokerB\n        expr: mqtt_up{{broker=\"b\"}} == 1\n"),
    )
    .unwrap();
    s.signal("-HUP");
    let sc = s.wait_scrape(Duration::from_secs(30), "broker b added", |sc| {
        sc.value("mqtt_up", &[("broker", "b")]) == Some(1.0)
    });
    assert_eq!(
        sc.value("mqtt_sentinel_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        sc.value(
            "mqtt_connects_total",
            &[("broker", "a"), ("result", "success")]
        ),
        Some(1.0),
        "the unchanged broker kept its session"
    );
    wait_until(Duration::from_secs(30), "the new rule fires", || {
        active_at(&s, "BrokerB")
    });
    assert_eq!(
        active_at(&s, "Always"),
        Some(since.clone()),
        "the unchanged rule kept its alert"
    );

    // a broken file: 500 with the position, the old configuration keeps running
    write("brokers:\n  - name: a\n    url: [not, a, url]\n");
    let r = s.post("/-/reload");
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body.contains("sentinel.yaml:4:10: brokers[0].url"),
        "{}",
        r.body
    );
    let sc = s.scrape();
    assert_eq!(
        sc.value("mqtt_sentinel_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(sc.value("mqtt_up", &[("broker", "b")]), Some(1.0));
    s.wait_log("configuration reload failed");

    // back to one broker: b and its series go, a and the alert stay
    write(&config(&broker, &rules, &sink, false));
    let r = s.post("/-/reload");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("removed broker b"), "{}", r.body);
    let sc = s.scrape();
    assert_eq!(
        sc.value("mqtt_sentinel_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert!(
        sc.find("mqtt_up", &[("broker", "b")]).is_empty(),
        "no stale series for b"
    );
    assert_eq!(sc.value("mqtt_up", &[("broker", "a")]), Some(1.0));
    assert_eq!(active_at(&s, "Always"), Some(since));
    assert_eq!(s.get("/-/reload").status, 405);

    // the alert that fired through three reloads was announced once
    let firing: Vec<_> = sink
        .requests()
        .into_iter()
        .filter(|r| {
            let v = r.json();
            v["status"] == "firing" && v["alerts"][0]["labels"]["alertname"] == "Always"
        })
        .collect();
    assert_eq!(firing.len(), 1, "{firing:?}");
}

/// With `rules.state_file`, a restart keeps the alerts: a firing one keeps its `activeAt`
/// and a pending one its progress through `for`.
#[test]
fn alert_state_survives_a_restart_with_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n      - alert: Slow\n        expr: vector(2)\n        for: 1h\n",
    )
    .unwrap();
    let yaml = format!(
        "brokers: []\nrules:\n  files: [{:?}]\n  evaluation_interval: 1s\n  state_file: {:?}\n",
        rules.display().to_string(),
        dir.path().join("alerts.json").display().to_string()
    );
    let mut first = Sentinel::start(&yaml);
    let firing = wait_until(Duration::from_secs(30), "Always firing", || {
        active(&first, "Always", "firing")
    });
    let pending = wait_until(Duration::from_secs(30), "Slow pending", || {
        active(&first, "Slow", "pending")
    });
    let stopped = first.terminate(Duration::from_secs(30));
    assert!(stopped.success(), "{stopped:?}");

    // restored before the server listens: the first answer already has them
    let second = Sentinel::start(&yaml);
    assert!(
        second.logs().contains("restored pending and firing alerts"),
        "{}",
        second.logs()
    );
    assert_eq!(active(&second, "Always", "firing"), Some(firing));
    assert_eq!(
        active(&second, "Slow", "pending"),
        Some(pending),
        "the 1h `for` did not start over"
    );
}

/// A restart with a state file neither pages again for an alert already notified nor forgets
/// to send its resolution: what the receivers were sent is kept beside the alerts.
#[test]
fn a_restart_does_not_notify_again_and_still_sends_the_resolution() {
    let mut broker = Mosquitto::start();
    let sink = Sink::start(&[], false);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: BrokerDown\n        expr: mqtt_up{broker=\"m\"} == 0\n",
    )
    .unwrap();
    let state = dir.path().join("alerts.json");
    let yaml = format!(
        "brokers:\n  - name: m\n    url: {}\nrules:\n  files: [{:?}]\n  evaluation_interval: 500ms\n  state_file: {:?}\nnotify:\n  receivers:\n    - {{ name: ops, type: webhook, url: {:?} }}\n",
        broker.url(),
        rules.display().to_string(),
        state.display().to_string(),
        sink.url("/hook")
    );
    let statuses = || -> Vec<String> {
        sink.requests()
            .iter()
            .map(|r| r.json()["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let mut first = Sentinel::start(&yaml);
    first.wait_collecting();
    broker.kill();
    wait_until(Duration::from_secs(20), "the firing notification", || {
        (statuses() == ["firing"]).then_some(())
    });
    let stopped = first.terminate(Duration::from_secs(30));
    assert!(stopped.success(), "{stopped:?}");

    // The broker is still down: the alert comes back firing and was already notified.
    let second = Sentinel::start(&yaml);
    assert!(
        second
            .logs()
            .contains("restored what the receivers were already sent"),
        "{}",
        second.logs()
    );
    second.wait_scrape(Duration::from_secs(30), "four evaluations", |sc| {
        sc.value("mqtt_sentinel_rule_evaluations_total", &[])
            .is_some_and(|n| n >= 4.0)
    });
    assert!(active(&second, "BrokerDown", "firing").is_some());
    assert_eq!(statuses(), ["firing"], "notified again after the restart");

    // Resolved: sent, because the new process knows the group was notified as firing.
    broker.restart();
    wait_until(Duration::from_secs(30), "the resolved notification", || {
        (statuses() == ["firing", "resolved"]).then_some(())
    });
}

/// A broker removed by a reload leaves no series behind, in any family: the whole `/metrics`
/// text is scanned for its label, so a per-broker metric added later cannot be missed. The
/// built-in rules' alerts about it are the rule engine's: they go with its next evaluation,
/// when the broker's series are stale (as in Prometheus).
#[test]
fn a_removed_broker_leaves_no_series_in_any_family() {
    let a = Mosquitto::start();
    // b refuses the probes' subscriptions, so its failure reasons are exported too.
    let b = Mosquitto::builder().acl("topic read $SYS/#\n").start();
    let broker_a = format!(
        "rules:\n  evaluation_interval: 1s\nbrokers:\n  - name: a\n    url: {}\n",
        a.url()
    );
    let both = format!(
        "{broker_a}  - name: b\n    url: {}\n    capacity: {{max_connections: 100, max_heap_bytes: 1000000}}\n    probes:\n      - {{qos: 1, interval: 200ms}}\n      - {{qos: 0, interval: 200ms}}\n      - {{kind: connect, interval: 200ms}}\n      - {{kind: retained, interval: 200ms}}\n",
        b.url()
    );
    let s = Sentinel::start(&both);
    // Sample lines of the removed broker, and the families they belong to.
    let of_b = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains("broker=\"b\""))
            .map(str::to_owned)
            .collect()
    };
    let family = |line: &str| line.split(['{', ' ']).next().unwrap_or_default().to_owned();
    const ALERTS: &str = "mqtt_sentinel_alerts";
    wait_until(Duration::from_secs(30), "broker b's series", || {
        let sc = s.scrape();
        let ready = sc.value("mqtt_up", &[("broker", "b")]) == Some(1.0)
            && sc
                .value("mqtt_broker_uptime_seconds", &[("broker", "b")])
                .is_some()
            && !sc
                .find("mqtt_probe_errors_total", &[("broker", "b")])
                .is_empty()
            && sc
                .value("mqtt_connect_duration_seconds_count", &[("broker", "b")])
                .is_some_and(|n| n > 0.0)
            && !sc.find(ALERTS, &[("broker", "b")]).is_empty();
        ready.then_some(())
    });
    let before: std::collections::BTreeSet<String> = of_b(&s.get("/metrics").body)
        .iter()
        .map(|l| family(l))
        .collect();
    assert!(
        before.len() >= 20,
        "b has series in few families: {before:?}"
    );

    std::fs::write(
        &s.config_path,
        format!("listen: \"127.0.0.1:0\"\n{broker_a}"),
    )
    .unwrap();
    let r = s.post("/-/reload");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("removed broker b"), "{}", r.body);
    let left: Vec<String> = of_b(&s.get("/metrics").body)
        .into_iter()
        .filter(|l| family(l) != ALERTS)
        .collect();
    assert!(left.is_empty(), "series of the removed broker b: {left:#?}");
    wait_until(Duration::from_secs(30), "b's alerts resolved", || {
        of_b(&s.get("/metrics").body).is_empty().then_some(())
    });
    // and nothing comes back. An observation window, not a synchronisation: a probe run of b
    // still finishing must not make a series again (`metrics::tests` covers the race exactly).
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        let text = s.get("/metrics").body;
        let left = of_b(&text);
        assert!(left.is_empty(), "series of the removed broker b: {left:#?}");
        assert!(text.contains("mqtt_up{broker=\"a\"} 1"), "{text}");
    }
}
