//! Running many (README "Running many"): an HA pair of replicas behind one real Alertmanager
//! produces one notification per alert group, and a real Prometheus probes a fleet through
//! `/probe` with the scrape config of `examples/prometheus/fleet-probe.yml`.

use crate::support::daemon::Daemon;
use crate::support::scrape::get;
use crate::support::sink::Sink;
use crate::support::{Mosquitto, Sentinel, wait_until};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Alertmanager with its debug log (each aggregation group logs `msg=flushing` at every
/// `group_interval`), one route grouping by `alertname` into a webhook to `hook`.
fn alertmanager(hook: &str) -> Daemon {
    Daemon::start(
        "prometheus-alertmanager",
        "prometheus-alertmanager",
        "/-/ready",
        |dir, addr| {
            let conf = dir.join("alertmanager.yml");
            std::fs::write(
                &conf,
                format!(
                    "route: {{receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}}\nreceivers: [{{name: hook, webhook_configs: [{{url: {hook:?}, send_resolved: true}}]}}]\n"
                ),
            )
            .unwrap();
            vec![
                format!("--config.file={}", conf.display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address={addr}"),
                "--cluster.listen-address=".into(),
                "--log.level=debug".into(),
            ]
        },
    )
}

/// Flushes of the aggregation group of `alertname` so far, from Alertmanager's debug log.
fn flushes(am: &Daemon, alertname: &str) -> usize {
    let group = format!("{{}}:{{alertname=\\\"{alertname}\\\"}}");
    am.log()
        .lines()
        .filter(|l| l.contains("msg=flushing") && l.contains(&group))
        .count()
}

/// Waits until every listed group has been flushed again after this call: whatever
/// Alertmanager had received by now has been through its notification pipeline.
fn wait_for_flushes(am: &Daemon, alertnames: &[&str]) {
    let before: Vec<usize> = alertnames.iter().map(|a| flushes(am, a)).collect();
    wait_until(
        Duration::from_secs(30),
        "Alertmanager flushes every group again",
        || {
            alertnames
                .iter()
                .zip(&before)
                .all(|(a, b)| flushes(am, a) > *b)
                .then_some(())
        },
    );
}

/// The sum of Alertmanager's `name{label="value"}` samples (its `/metrics` comes chunked,
/// so only the sample lines of `name` are read).
fn am_metric(am: &Daemon, name: &str, label: &str) -> f64 {
    let r = get(am.addr, "/metrics", &[]).unwrap();
    r.body
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Notifications the webhook behind Alertmanager got: (groupKey's alertname, status).
fn received(sink: &Sink) -> Vec<(String, String)> {
    sink.requests()
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["groupLabels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pushed(s: &Sentinel) -> f64 {
    s.scrape()
        .value(
            "mqtt_sentinel_notifications_total",
            &[("receiver", "am"), ("result", "success")],
        )
        .unwrap_or(0.0)
}

const ALERTS: [&str; 2] = ["BrokerUp", "ProbeOk"];

/// Two replicas with the same configuration and rules, watching one broker, both sending
/// to one real Alertmanager (and re-sending every second): the webhook behind Alertmanager
/// gets exactly one firing notification per group and one resolution, because both
/// replicas send the same label sets. Nothing of a replica (its address, port, host name,
/// client id) is in any label they expose or send.
#[test]
fn an_ha_pair_behind_alertmanager_notifies_once_per_group() {
    let mut broker = Mosquitto::start();
    let sink = Sink::start(&[], false);
    let am = alertmanager(&sink.url("/am"));
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: BrokerUp\n        expr: mqtt_up == 1\n        labels: { severity: info }\n        annotations: { summary: '{{ $labels.broker }} answers' }\n      - alert: ProbeOk\n        expr: mqtt_probe_success == 1\n        labels: { severity: info }\n",
    )
    .unwrap();
    let config = format!(
        "brokers:\n  - name: m\n    url: {}\n    probes: [ {{ qos: 1, interval: 1s }} ]\nrules:\n  files: [ {:?} ]\n  evaluation_interval: 250ms\n  external_labels: {{ cluster: test }}\nnotify:\n  resend_delay: 1s\n  receivers:\n    - {{ name: am, type: alertmanager, url: 'http://{}' }}\n",
        broker.url(),
        rules.display().to_string(),
        am.addr
    );
    let replicas = [Sentinel::start(&config), Sentinel::start(&config)];
    for r in &replicas {
        r.wait_collecting();
    }

    // Firing: both replicas have pushed (and re-pushed) both alerts, then every group has
    // been flushed again: what both sent has been through the dedup stage.
    wait_until(Duration::from_secs(30), "both groups notified", || {
        let got = received(&sink);
        ALERTS
            .iter()
            .all(|a| got.iter().any(|(n, st)| n == a && st == "firing"))
            .then_some(())
    });
    let p0: Vec<f64> = replicas.iter().map(pushed).collect();
    wait_until(Duration::from_secs(30), "each replica pushes again", || {
        replicas
            .iter()
            .zip(&p0)
            .all(|(r, p)| pushed(r) >= p + 2.0)
            .then_some(())
    });
    wait_for_flushes(&am, &ALERTS);
    let got = received(&sink);
    for a in ALERTS {
        assert_eq!(
            got.iter().filter(|(n, _)| n == a).count(),
            1,
            "one notification for {a}: {got:?}"
        );
    }
    assert_eq!(
        am_metric(
            &am,
            "alertmanager_notifications_total",
            r#"integration="webhook""#
        ),
        got.len() as f64,
        "Alertmanager counts what the webhook got"
    );

    // One alert per label set in Alertmanager, with only the rule's, the series' and the
    // external labels; the replicas hold the very same label sets.
    let r = get(am.addr, "/api/v2/alerts", &[]).unwrap();
    let in_am: Vec<Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(in_am.len(), 2, "{in_am:?}");
    let label_names = |v: &Value| -> BTreeSet<String> {
        v["labels"].as_object().unwrap().keys().cloned().collect()
    };
    for a in &in_am {
        let want: &[&str] = match a["labels"]["alertname"].as_str() {
            Some("BrokerUp") => &["alertname", "broker", "cluster", "severity"],
            Some("ProbeOk") => &["alertname", "broker", "cluster", "probe", "severity"],
            other => panic!("unexpected alert {other:?}"),
        };
        let want: BTreeSet<String> = want.iter().map(|x| x.to_string()).collect();
        assert_eq!(label_names(a), want, "{a}");
    }
    let in_replica = |s: &Sentinel| -> BTreeSet<String> {
        let v: Value = serde_json::from_str(&s.get("/api/v1/alerts").body).unwrap();
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["labels"].to_string())
            .collect()
    };
    assert_eq!(in_replica(&replicas[0]), in_replica(&replicas[1]));
    assert_eq!(in_replica(&replicas[0]).len(), 2);

    // The class: every label any replica exposes (alert labels come from these series, the
    // rule and `external_labels`) is free of what makes a replica itself.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    for s in &replicas {
        let own = [
            s.addr.to_string(),
            s.addr.port().to_string(),
            host.trim().to_owned(),
        ];
        for sample in s.scrape().samples {
            for (k, v) in &sample.labels {
                assert!(
                    !own.iter().any(|o| !o.is_empty() && v == o) && !v.contains(&own[0]),
                    "{}{{{k}={v:?}}} names the replica",
                    sample.name
                );
                assert!(
                    !v.starts_with("mqtt-sentinel-"),
                    "{}{{{k}={v:?}}}: a client id",
                    sample.name
                );
            }
        }
    }

    // Resolution: both replicas see the broker gone, resolve, and keep re-sending the
    // resolved alerts; after a flush that followed those, one resolution per group.
    broker.kill();
    wait_until(Duration::from_secs(30), "both groups resolved", || {
        let got = received(&sink);
        ALERTS
            .iter()
            .all(|a| got.iter().any(|(n, st)| n == a && st == "resolved"))
            .then_some(())
    });
    wait_until(
        Duration::from_secs(30),
        "no active alert in either replica",
        || {
            replicas
                .iter()
                .all(|s| {
                    let v: Value = serde_json::from_str(&s.get("/api/v1/alerts").body).unwrap();
                    v["data"]["alerts"].as_array().is_some_and(|a| a.is_empty())
                })
                .then_some(())
        },
    );
    let p1: Vec<f64> = replicas.iter().map(pushed).collect();
    wait_until(
        Duration::from_secs(30),
        "each replica pushes the resolved alerts",
        || {
            replicas
                .iter()
                .zip(&p1)
                .all(|(r, p)| pushed(r) >= p + 2.0)
                .then_some(())
        },
    );
    wait_for_flushes(&am, &ALERTS);
    let got = received(&sink);
    for a in ALERTS {
        let firing = got.iter().filter(|(n, s)| n == a && s == "firing").count();
        let resolved = got
            .iter()
            .filter(|(n, s)| n == a && s == "resolved")
            .count();
        assert_eq!((firing, resolved), (1, 1), "{a}: {got:?}");
    }
}

/// The README's fleet scrape config, run by a real Prometheus: targets from file_sd,
/// relabelled into `/probe?target=…` on one mqtt-sentinel, `probe_success 1` for both and
/// each target its own `instance`.
#[test]
fn prometheus_probes_a_fleet_through_probe_with_the_example_scrape_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/prometheus/fleet-probe.yml"))
        .expect("examples/prometheus/fleet-probe.yml");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let jobs = example
        .find("scrape_configs:")
        .map(|i| &example[i..])
        .expect("scrape_configs in the example");
    assert!(
        readme.contains(jobs),
        "README \"Running many\" shows examples/prometheus/fleet-probe.yml from `scrape_configs:` on"
    );
    let (a, b) = (Mosquitto::start(), Mosquitto::start());
    let s = Sentinel::start("brokers: []\n");
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("mqtt-brokers");
    std::fs::create_dir(&sd).unwrap();
    std::fs::write(
        sd.join("fleet.yml"),
        format!("- targets: [ {:?}, {:?} ]\n", a.url(), b.url()),
    )
    .unwrap();
    let config = example
        .replace(
            "/etc/prometheus/mqtt-brokers/*.yml",
            &format!("{}/*.yml", sd.display()),
        )
        .replace("mqtt-sentinel.monitoring.svc:10883", &s.addr.to_string());
    assert_ne!(config, example, "the example names the paths replaced here");
    let prom = Daemon::start("prometheus", "prometheus", "/-/ready", |dir, addr| {
        let conf = dir.join("prometheus.yml");
        std::fs::write(
            &conf,
            format!("global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n{config}"),
        )
        .unwrap();
        vec![
            format!("--config.file={}", conf.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={addr}"),
        ]
    });
    let result = wait_until(
        Duration::from_secs(60),
        "probe_success 1 for both targets",
        || {
            let r = get(prom.addr, "/api/v1/query?query=probe_success%3D%3D1", &[]).ok()?;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            let res = v["data"]["result"].as_array()?.clone();
            (res.len() == 2).then_some(res)
        },
    );
    let instances: BTreeSet<String> = result
        .iter()
        .map(|r| {
            r["metric"]["instance"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(instances, BTreeSet::from([a.url(), b.url()]));
    assert!(result.iter().all(|r| r["metric"]["job"] == "mqtt-probe"));
}
