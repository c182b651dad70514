//! The README's metric reference is checked against what the code registers and encodes, and
//! the module graph in ARCHITECTURE.md against the code (one-way, as printed there).

use mqtt_sentinel::config::Qos;
use mqtt_sentinel::exposition::{Format, encode};
use mqtt_sentinel::metrics::{Metrics, MqttVersion, Reason};
use mqtt_sentinel::sys::profile::{Kind, ProfileSet};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// name → (type, extra labels) from the README table.
fn readme_table() -> BTreeMap<String, (String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- metrics:begin -->").expect("begin marker");
    let end = readme.find("<!-- metrics:end -->").expect("end marker");
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_owned();
            let labels = cells[3].replace(['`', ' '], "");
            (name, (cells[2].to_owned(), labels))
        })
        .collect()
}

#[test]
fn readme_metric_table_matches_the_code() {
    let mut code: BTreeMap<String, (String, String)> = BTreeMap::new();
    // `node` (EMQX, VerneMQ) is documented once above the table, not on every row.
    for (name, (kind, labels)) in ProfileSet::builtin().families() {
        let t = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let labels: Vec<String> = labels.into_iter().filter(|l| l != "node").collect();
        code.insert(name, (t.to_owned(), labels.join(",")));
    }
    code.insert(
        "mqtt_broker_info".into(),
        ("gauge".into(), "implementation,version,profile".into()),
    );
    code.insert(
        "mqtt_broker_sys_last_update_timestamp_seconds".into(),
        ("gauge".into(), String::new()),
    );
    // Everything registered on the registry, as the classic text format names it.
    let mut reg = Registry::default();
    let m = Metrics::register(&mut reg);
    let b = m.broker(
        "x",
        &mqtt_sentinel::config::Capacity {
            max_connections: Some(1),
            max_heap_bytes: Some(1),
        },
    );
    b.record_connect(Reason::Success);
    b.set_protocol(MqttVersion::V311);
    b.record_disconnect(Reason::ConnectionLost);
    let rt = m.roundtrip("x", "p", Qos::AtLeastOnce);
    rt.base.record_failure(Reason::Timeout);
    rt.base.record_ignored(Reason::Late);
    m.connect_duration("x").observe(0.1);
    m.will_delivery("x", "will").observe(0.1);
    let br = m.bridge("x", "y", "up");
    br.base.record_failure(Reason::NotDelivered);
    br.base.record_ignored(Reason::Late);
    let rm = mqtt_sentinel::metrics::RulesMetrics::register(&mut reg);
    let g = mqtt_sentinel::metrics::RuleGroupLabels {
        rule_group: "f;g".into(),
    };
    rm.evaluations.get_or_create(&g).inc();
    rm.evaluation_failures.get_or_create(&g).inc();
    rm.evaluation_duration.get_or_create(&g).set(0.1);
    rm.notified("ops", mqtt_sentinel::metrics::NotificationResult::Success);
    rm.queue_length
        .get_or_create(&mqtt_sentinel::metrics::ReceiverLabels {
            receiver: "ops".into(),
        })
        .set(0);
    code.insert(
        "mqtt_sentinel_alerts".into(),
        ("gauge".into(), "alertname,alertstate,…".into()),
    );
    // Files the configuration names (registered by `app` as a collector).
    reg.register_collector(Box::new(mqtt_sentinel::config::watched::FilesCollector));
    let _status =
        mqtt_sentinel::config::watched::Status::register("x_file", std::path::Path::new("/x"));
    let text = encode(&reg, Format::Text).unwrap();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, t) = line.split_once(' ').unwrap();
        let labels = match name {
            "mqtt_connects_total" => "result",
            "mqtt_connection_info" => "protocol",
            "mqtt_disconnects_total" => "reason",
            "mqtt_sentinel_build_info" => "version,revision",
            "mqtt_probe_rtt_seconds" | "mqtt_probe_ack_seconds" => "qos",
            "mqtt_probe_ignored_total" | "mqtt_probe_errors_total" => "probe,reason",
            "mqtt_probe_health" => "state",
            "mqtt_will_delivery_seconds" => "probe",
            n if n.starts_with("mqtt_sentinel_rule_evaluation") => "rule_group",
            "mqtt_sentinel_notifications_total" => "receiver,result",
            "mqtt_sentinel_notification_queue_length" => "receiver",
            "mqtt_bridge_probe_ignored_total" | "mqtt_bridge_probe_errors_total" => {
                "remote,probe,reason"
            }
            n if n.starts_with("mqtt_bridge_") => "remote,probe",
            n if n.starts_with("mqtt_probe_") => "probe",
            n if n.starts_with("mqtt_sentinel_file_") => "field",
            _ => "",
        };
        code.insert(name.to_owned(), (t.to_owned(), labels.to_owned()));
    }
    let readme = readme_table();
    let missing: Vec<&String> = code.keys().filter(|k| !readme.contains_key(*k)).collect();
    let stale: Vec<&String> = readme.keys().filter(|k| !code.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "metrics missing from README: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "README lists metrics the code does not have: {stale:?}"
    );
    for (name, want) in &code {
        assert_eq!(&readme[name], want, "README row for {name}");
    }
}

/// `scripts/module-graph.py` finds no cycle between the top-level modules, and every edge it
/// prints is the one ARCHITECTURE.md shows, so the documented graph is the code's.
#[test]
fn module_graph_is_one_way_and_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/module-graph.py"))
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the module graph has a cycle:\n{text}"
    );
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let edges: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" -> ") && !l.starts_with('#'))
        .collect();
    assert!(edges.len() >= 10, "{text}");
    for line in edges {
        assert!(
            doc.lines().any(|d| d == line),
            "ARCHITECTURE.md's module graph lacks {line:?}; paste the output of scripts/module-graph.py"
        );
    }
}
