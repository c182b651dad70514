//! dashboards/: Grafana dashboard-linter rules re-implemented over every JSON file, and every
//! panel query run through a real Prometheus scraping a real mqtt-sentinel and mosquitto.

use crate::support::daemon::Daemon;
use crate::support::scrape::get;
use crate::support::sink::Sink;
use crate::support::{Mosquitto, Sentinel, wait_until};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn dashboards() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut v: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let json = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (name, json)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn targets(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                p["title"].as_str().unwrap().to_owned(),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

#[test]
fn dashboards_pass_the_linter_rules() {
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "mqtt-overview.json",
            "mqtt-probes.json",
            "mqtt-sentinel.json"
        ]
    );
    for (name, d) in &all {
        assert!(
            d.get("__inputs").is_none(),
            "{name}: portable form has no __inputs"
        );
        assert_eq!(d["editable"], false, "{name}");
        assert!(
            d["schemaVersion"].as_u64() >= Some(39),
            "{name}: schemaVersion"
        );
        for k in ["uid", "title", "description"] {
            assert!(d[k].as_str().is_some_and(|s| !s.is_empty()), "{name}: {k}");
        }
        let vars: Vec<&Value> = d["templating"]["list"].as_array().unwrap().iter().collect();
        let var = |n: &str| vars.iter().find(|v| v["name"] == n).copied();
        // template-datasource-rule, template-job-rule, template-instance-rule
        let ds = var("datasource").unwrap_or_else(|| panic!("{name}: datasource variable"));
        assert_eq!(ds["type"], "datasource");
        assert_eq!(ds["query"], "prometheus");
        for v in ["job", "instance"] {
            let v = var(v).unwrap_or_else(|| panic!("{name}: {v} variable"));
            assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
            assert_eq!(v["multi"], true);
            assert_eq!(v["includeAll"], true);
        }
        let mut ids = std::collections::BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{name}: duplicate panel id"
            );
            // panel-title-description-rule, panel-units-rule, panel-datasource-rule
            assert!(!title.is_empty(), "{name}: panel title");
            assert!(
                p["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}/{title}: description"
            );
            assert!(
                p["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}/{title}: unit"
            );
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}/{title}");
            let g = &p["gridPos"];
            assert!(
                g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
                "{name}/{title}: gridPos"
            );
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}/{title}");
                let expr = t["expr"].as_str().unwrap();
                // target-job-rule, target-instance-rule
                assert!(expr.contains("job=~\"$job\""), "{name}/{title}: {expr}");
                assert!(
                    expr.contains("instance=~\"$instance\""),
                    "{name}/{title}: {expr}"
                );
                // target-rate-interval-rule: rate windows are $__rate_interval
                for f in ["rate(", "irate("] {
                    for (i, _) in expr.match_indices(f) {
                        if i > 0 && expr.as_bytes()[i - 1].is_ascii_alphabetic() {
                            continue; // irate( matched as rate(
                        }
                        let rest = &expr[i..];
                        let close = rest.find(')').unwrap();
                        assert!(
                            rest[..close].contains("[$__rate_interval]"),
                            "{name}/{title}: {expr}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn dashboards_are_what_the_generator_writes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let st = Command::new("python3")
        .arg(root.join("scripts/gen-dashboards.py"))
        .arg(out.path())
        .status()
        .unwrap();
    assert!(st.success());
    for (name, committed) in dashboards() {
        let fresh: Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join(&name)).unwrap())
                .unwrap();
        assert_eq!(
            committed, fresh,
            "{name}: run python3 scripts/gen-dashboards.py"
        );
    }
}

/// Panels that show nothing in this test, and why.
const EMPTY_HERE: &[(&str, &str)] = &[
    (
        "Outbound backlog",
        "the test broker is Debian's mosquitto 2.0, which has no packet/out topics",
    ),
    ("Probe failures by reason", "nothing fails"),
];

fn start_prometheus(target: SocketAddr) -> Daemon {
    Daemon::start("prometheus", "prometheus", "/-/ready", |dir, addr| {
        let conf = dir.join("prometheus.yml");
        std::fs::write(
            &conf,
            format!("global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: mqtt\n    static_configs: [{{targets: ['{target}']}}]\n"),
        )
        .unwrap();
        vec![
            format!("--config.file={}", conf.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={addr}"),
        ]
    })
}

fn query(p: &Daemon, expr: &str) -> Value {
    let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    let r = get(p.addr, &format!("/api/v1/query?query={q}"), &[]).unwrap();
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{expr}: {e}: {}", r.body))
}

#[test]
fn every_panel_query_runs_on_real_data() {
    let broker = Mosquitto::start();
    // An edge broker bridged to it, mapping edge/probe to site1/probe only: a bridge probe on
    // that topic delivers, one on another topic fails (not_delivered), so every target of the
    // bridge panels has data.
    let edge = Mosquitto::bridge_edge(broker.addr(), 5, &["topic probe out 1 edge/ site1/"]);
    // The shipped rules plus one that always fires, notified to a real HTTP sink: the
    // alerting panels then have data too.
    let sink = Sink::start(&[], false);
    let tmp = tempfile::tempdir().unwrap();
    let always = tmp.path().join("always.yml");
    std::fs::write(
        &always,
        "groups:\n  - name: t\n    rules:\n      - alert: DashboardTest\n        expr: vector(1)\n        labels: {severity: info}\n",
    )
    .unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/mqtt-sentinel.rules.yml");
    let s = Sentinel::watching(
        &broker,
        &format!(
            "    capacity: {{max_connections: 100}}\n    probes:\n      - {{qos: 1, interval: 250ms}}\n      - {{qos: 2, interval: 250ms}}\n      - {{kind: connect, interval: 500ms}}\n      - {{kind: will, interval: 500ms}}\n      - {{kind: session, interval: 500ms}}\n  - name: edge\n    url: {}\n    probes:\n      - {{kind: bridge, name: up, to: m, topic: edge/probe, remote_topic: site1/probe, interval: 500ms, timeout: 1s}}\n      - {{kind: bridge, name: unmapped, to: m, topic: edge/other, interval: 500ms, timeout: 1s}}\nrules:\n  files: [{:?}, {:?}]\n  evaluation_interval: 1s\nnotify:\n  receivers:\n    - {{name: sink, type: webhook, url: {:?}}}\n",
            edge.url(),
            rules.display().to_string(),
            always.display().to_string(),
            sink.url("/hook")
        ),
    );
    let prom = start_prometheus(s.addr);
    wait_until(
        Duration::from_secs(30),
        "prometheus has rates of probes, bridge probes and $SYS",
        || {
            let r = query(
                &prom,
                "increase(mqtt_connect_duration_seconds_count[15s]) > 0 and on() increase(mqtt_will_delivery_seconds_count[15s]) > 0 and on() increase(mqtt_probe_rtt_seconds_count[15s]) > 0 and on() mqtt_broker_uptime_seconds > 0 and on() mqtt_sentinel_notifications_total > 0 and on() increase(mqtt_bridge_delivery_seconds_count[15s]) > 0 and on() increase(mqtt_bridge_probe_errors_total[15s]) > 0 and on() mqtt_broker_bridge_up > 0",
            );
            r["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                .then_some(())
        },
    );
    let mut problems = Vec::new();
    let mut ran = 0;
    for (name, d) in dashboards() {
        for (title, expr) in targets(&d) {
            ran += 1;
            let q = expr
                .replace("$job", "mqtt")
                .replace("$instance", ".+")
                .replace("$broker", ".+")
                .replace("$__rate_interval", "15s");
            let r = query(&prom, &q);
            if r["status"] != "success" {
                problems.push(format!("{name}/{title}: {q}: {}", r["error"]));
                continue;
            }
            let empty = r["data"]["result"].as_array().is_none_or(|a| a.is_empty());
            let excused = EMPTY_HERE.iter().any(|(t, _)| *t == title);
            if empty && !excused {
                problems.push(format!("{name}/{title}: no data for {q}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(ran >= 40, "only {ran} queries");
}
