use super::*;
use crate::sys::SysConfig;
use crate::sys::{Ingest, IngestCounters, Outcome, SysStore};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[test]
fn builtin_profiles_compile_and_name_metrics_well() {
    let set = ProfileSet::builtin();
    let names: Vec<&str> = set.names().collect();
    assert_eq!(
        names,
        [
            "mosquitto",
            "amqtt",
            "emqx",
            "vernemq",
            "nanomq",
            "rmqtt",
            "aedes",
            "generic"
        ]
    );
    for p in &set.profiles {
        for e in p.entries() {
            if let Action::Value { family, .. } = &e.action {
                assert!(
                    KNOWN.iter().any(|(n, _)| *n == &*family.name),
                    "{}: {} is not in KNOWN",
                    p.name,
                    family.name
                );
                match family.kind {
                    Kind::Counter => assert!(family.name.ends_with("_total")),
                    Kind::Gauge => assert!(!family.name.ends_with("_total")),
                }
            }
        }
    }
    for (name, help) in KNOWN {
        assert!(name.starts_with("mqtt_broker_"), "{name}");
        assert!(!help.is_empty() && !help.contains('"'), "{name}");
    }
}

#[test]
fn patterns() {
    let p = Pattern::parse("brokers/{node}/stats/+/#").unwrap();
    let labels = |t| p.matches(t).map(|c| c.labels);
    assert_eq!(labels("brokers/n1/stats/x"), Some(vec!["n1"]));
    assert_eq!(labels("brokers/n1/stats/x/y/z"), Some(vec!["n1"]));
    assert_eq!(p.matches("brokers/n1/stats"), None);
    assert_eq!(
        p.matches("brokers//stats/x"),
        None,
        "an empty capture is no label"
    );
    let q = Pattern::parse("broker/connection/{bridge}/state").unwrap();
    assert_eq!(
        q.matches("broker/connection/edge/state").map(|c| c.labels),
        Some(vec!["edge"])
    );
    assert_eq!(q.matches("broker/connection/a/b/state"), None);
    assert_eq!(q.matches("broker/connection/edge/state/x"), None);
    for bad in [
        "",
        "a/#/b",
        "a/b+",
        "a/{x",
        "a/{1x}",
        "a/{__x}",
        "a/{broker}",
        "{n}/{n}",
    ] {
        assert!(Pattern::parse(bad).is_err(), "{bad:?}");
    }
}

/// One fixture file: `# profile:`/`# now:` headers, then topic, payload, expectation.
struct Fixture {
    profile: String,
    now: SystemTime,
    lines: Vec<(String, String, String)>,
}

fn fixture(text: &str) -> Fixture {
    let mut profile = String::new();
    let mut now = UNIX_EPOCH;
    let mut lines = Vec::new();
    for l in text.lines() {
        if let Some(h) = l.strip_prefix("# ") {
            if let Some(p) = h.strip_prefix("profile: ") {
                profile = p.to_owned();
            } else if let Some(n) = h.strip_prefix("now: ") {
                now = UNIX_EPOCH + Duration::from_secs(n.parse().unwrap());
            }
            continue;
        }
        let mut cols = l.splitn(3, '\t');
        let (t, p, e) = (
            cols.next().unwrap(),
            cols.next().unwrap(),
            cols.next().unwrap(),
        );
        lines.push((t.to_owned(), p.to_owned(), e.to_owned()));
    }
    assert!(!profile.is_empty() && !lines.is_empty());
    Fixture {
        profile,
        now,
        lines,
    }
}

/// `name{k="v",...} value` (value absent for info).
fn expectation(e: &str) -> (String, Vec<(String, String)>, Option<f64>) {
    let (series, value) = match e.rsplit_once("} ") {
        Some((s, v)) => (format!("{s}}}"), Some(v)),
        None => match e.split_once(' ') {
            Some((s, v)) => (s.to_owned(), Some(v)),
            None => (e.to_owned(), None),
        },
    };
    let (name, mut rest) = match series.split_once('{') {
        Some((n, r)) => (n.to_owned(), r.strip_suffix('}').unwrap().to_owned()),
        None => (series.clone(), String::new()),
    };
    let mut labels = Vec::new();
    while !rest.is_empty() {
        let (k, r) = rest.split_once("=\"").unwrap();
        let end = r.find("\",").unwrap_or(r.len() - 1);
        labels.push((k.to_owned(), r[..end].to_owned()));
        rest = r[end + 1..].trim_start_matches(',').to_owned();
    }
    (name, labels, value.map(|v| v.parse().unwrap()))
}

/// The built-in profiles under `$SYS/`, up to 500 broker-labelled series.
pub(crate) fn sys_cfg(profile: &str) -> SysConfig {
    SysConfig {
        enabled: true,
        topic: "$SYS/#".into(),
        profile: profile.into(),
        max_series: 500,
        profiles: Arc::new(ProfileSet::builtin()),
    }
}

fn check_fixture(name: &str, text: &str) {
    let f = fixture(text);
    // auto recognises the broker from these lines alone
    let mut auto = Ingest::new(
        &sys_cfg("auto"),
        SysStore::new("b"),
        IngestCounters::default(),
    );
    for (t, p, _) in &f.lines {
        auto.handle(t, p.as_bytes(), f.now);
    }
    assert_eq!(
        auto.profile(),
        Some(f.profile.as_str()),
        "{name}: auto picked another profile"
    );
    assert_eq!(
        auto.store().snapshot().info.map(|i| i.profile.to_string()),
        Some(f.profile.clone()),
        "{name}"
    );
    // and every line sets exactly the series it says, at the moment it arrives
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&sys_cfg(&f.profile), store.clone(), counters.clone());
    for (t, p, e) in &f.lines {
        let outcome = ing.handle(t, p.as_bytes(), f.now);
        if e == "ignored" {
            assert_eq!(outcome, Outcome::Ignored, "{name}: {t}");
            continue;
        }
        assert_eq!(outcome, Outcome::Stored, "{name}: {t} {p:?}");
        let (metric, labels, value) = expectation(e);
        let snap = store.snapshot();
        if metric == INFO {
            let info = snap.info.unwrap();
            let got = [
                ("implementation".to_owned(), info.implementation),
                ("version".to_owned(), info.version),
                ("profile".to_owned(), info.profile.to_string()),
            ];
            assert_eq!(labels, got, "{name}: {t}");
            continue;
        }
        let l: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let got = snap.get(&metric, &l).unwrap_or_else(|| {
            panic!("{name}: {t} set no {metric}{l:?}: {:?}", snap.series.keys())
        });
        let want = value.unwrap();
        assert!(
            (got - want).abs() <= want.abs() * 1e-12,
            "{name}: {t}: {metric} = {got}, want {want}"
        );
    }
    assert_eq!(counters.parse_errors.get(), 0, "{name}");
}

#[test]
fn every_fixture_line_maps_to_its_metric() {
    for (name, text) in [
        (
            "amqtt-0.12.1",
            include_str!("../../../tests/fixtures/sys/amqtt-0.12.1.tsv"),
        ),
        (
            "emqx-5",
            include_str!("../../../tests/fixtures/sys/emqx-5.tsv"),
        ),
        (
            "emqx-4.4",
            include_str!("../../../tests/fixtures/sys/emqx-4.4.tsv"),
        ),
        (
            "vernemq-1",
            include_str!("../../../tests/fixtures/sys/vernemq-1.tsv"),
        ),
        (
            "nanomq-0.21",
            include_str!("../../../tests/fixtures/sys/nanomq-0.21.tsv"),
        ),
    ] {
        check_fixture(name, text);
    }
}

#[test]
fn every_captured_mosquitto_topic_is_mapped() {
    let set = ProfileSet::builtin();
    let p = set.get("mosquitto").unwrap();
    let capture = include_str!("../../../tests/fixtures/mosquitto-2.0.11-sys.tsv");
    for line in capture.lines() {
        let topic = line.split_once('\t').unwrap().0;
        let rel = topic.strip_prefix("$SYS/").unwrap();
        assert!(p.lookup(rel).is_some(), "{topic} is not mapped");
    }
    assert!(p.detects("broker/version", b"mosquitto version 2.0.11"));
    assert!(!p.detects("broker/version", b"aMQTT version 0.12.1"));
}

#[test]
fn bridges_and_misses() {
    let set = ProfileSet::builtin();
    let p = set.get("mosquitto").unwrap();
    let m = p.lookup("broker/connection/cloud-bridge/state").unwrap();
    assert_eq!(m.captured.labels, ["cloud-bridge"]);
    assert_eq!(&*m.entries[0].captures()[0], "bridge");
    assert!(p.lookup("broker/connection//state").is_none());
    assert!(p.lookup("broker/connection/a/b/state").is_none());
    assert!(p.lookup("broker/something/new").is_none());
    assert!(set.generic().lookup("broker/uptime").is_none());
}

fn user(yaml: &str) -> Result<ProfileSet, (String, ProfileError)> {
    let defs: BTreeMap<String, ProfileDef> = serde_yaml::from_str(yaml).unwrap();
    ProfileSet::with_user(&defs)
}

#[test]
fn a_user_profile_is_data_like_the_builtin_ones() {
    let set = user(
        r#"
hivemq-ce-ext:
  implementation: hivemq
  detect: [{topic: "hive/+/version"}]
  metrics:
    - {topic: "hive/{node}/version", metric: mqtt_broker_info}
    - {topic: "hive/{node}/clients", metric: mqtt_broker_clients_connected}
    - {topic: "hive/{node}/queue/{queue}", metric: mqtt_broker_queue_depth, help: "Messages queued.", labels: {kind: durable}}
    - {topic: "hive/{node}/started", metric: mqtt_broker_uptime_seconds, parser: since}
"#,
    )
    .unwrap();
    assert_eq!(
        set.names().next(),
        Some("hivemq-ce-ext"),
        "user profiles are tried first"
    );
    let mut cfg = sys_cfg("auto");
    cfg.profiles = Arc::new(set);
    let store = SysStore::new("h");
    let mut ing = Ingest::new(&cfg, store.clone(), IngestCounters::default());
    let now = UNIX_EPOCH + Duration::from_secs(1_796_044_443);
    assert_eq!(
        ing.handle("$SYS/hive/n1/clients", b"7", now),
        Outcome::Buffered
    );
    assert_eq!(
        ing.handle("$SYS/hive/n1/version", b"2024.9", now),
        Outcome::Stored
    );
    assert_eq!(ing.profile(), Some("hivemq-ce-ext"));
    ing.handle("$SYS/hive/n1/queue/q7", b"12", now);
    ing.handle("$SYS/hive/n1/started", b"2026-11-30T13:13:03Z", now);
    let snap = store.snapshot();
    assert_eq!(
        snap.get("mqtt_broker_clients_connected", &[("node", "n1")]),
        Some(7.0)
    );
    assert_eq!(
        snap.get(
            "mqtt_broker_queue_depth",
            &[("node", "n1"), ("queue", "q7"), ("kind", "durable")]
        ),
        Some(12.0)
    );
    assert_eq!(
        snap.get("mqtt_broker_uptime_seconds", &[("node", "n1")]),
        Some(60.0)
    );
    let info = snap.info.unwrap();
    assert_eq!(
        (
            info.implementation.as_str(),
            info.version.as_str(),
            &*info.profile
        ),
        ("hivemq", "2024.9", "hivemq-ce-ext")
    );
}

#[test]
fn user_profile_mistakes_are_named() {
    let cases = [
        ("mosquitto: {}", "", "built-in profile name"),
        (
            "x: {metrics: [{topic: a, metric: clients}]}",
            "metrics[0].metric",
            "named mqtt_broker_*",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_sys_value}]}",
            "metrics[0].metric",
            "reserved",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x_total, parser: number}]}",
            "metrics[0].parser",
            "_total",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, parser: event}]}",
            "metrics[0].parser",
            "_total",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, parser: json}]}",
            "metrics[0].parser",
            "unknown parser",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, scale: 0}]}",
            "metrics[0].scale",
            "positive",
        ),
        (
            "x: {metrics: [{topic: 'a/#/b', metric: mqtt_broker_x}]}",
            "metrics[0].topic",
            "last level",
        ),
        (
            "x: {metrics: [{topic: 'a/{n}', metric: mqtt_broker_x, labels: {n: y}}]}",
            "metrics[0].labels.n",
            "also captured",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, labels: {broker: y}}]}",
            "metrics[0].labels.broker",
            "broker",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_uptime_seconds, help: mine}]}",
            "metrics[0].help",
            "fixed",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_info, parser: number}]}",
            "metrics[0].parser",
            "version parser",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x}, {topic: a, metric: mqtt_broker_y}]}",
            "metrics[1].topic",
            "mapped twice",
        ),
        (
            "x: {detect: [{topic: a, payload: '('}]}",
            "detect[0].payload",
            "regular expression",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, parser: duration, field: f}]}",
            "metrics[0].field",
            "JSON field holds a number",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, field: ''}]}",
            "metrics[0].field",
            "empty field",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x_total, parser: event, when: {field: '', equals: on}}]}",
            "metrics[0].when.field",
            "empty field",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, field: f}, {topic: a, metric: mqtt_broker_y, field: f}]}",
            "metrics[1].topic",
            "same field and condition twice",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, field: f}, {topic: a, metric: mqtt_broker_y}]}",
            "metrics[1].topic",
            "mapped twice",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, field: f}], ignore: [a]}",
            "ignore[0]",
            "mapped twice",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, min: 5, max: 1}]}",
            "metrics[0].max",
            "below min",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, unavailable: .nan}]}",
            "metrics[0].unavailable",
            "finite",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_info, field: version}]}",
            "metrics[0].field",
            "takes no field",
        ),
        (
            "x: {metrics: [{topic: a, metric: mqtt_broker_x, labels: {instance: y}}]}",
            "metrics[0].labels.instance",
            "scrape target",
        ),
        (
            "x: {metrics: [{topic: '{instance}/{instance}', metric: mqtt_broker_x}]}",
            "metrics[0].topic",
            "twice",
        ),
    ];
    for (yaml, path, msg) in cases {
        let (_, e) = user(yaml)
            .err()
            .unwrap_or_else(|| panic!("{yaml} was accepted"));
        assert_eq!(e.path, path, "{yaml}: {}", e.message);
        assert!(e.message.contains(msg), "{yaml}: {}", e.message);
    }
}

#[test]
fn auto_falls_back_to_generic_and_still_recognises_later() {
    let store = SysStore::new("b");
    let mut ing = Ingest::new(&sys_cfg("auto"), store.clone(), IngestCounters::default());
    let t0 = UNIX_EPOCH + Duration::from_secs(1_796_044_443);
    assert_eq!(ing.handle("$SYS/odd/thing", b"3", t0), Outcome::Buffered);
    assert_eq!(ing.profile(), None);
    // ten seconds without a recognisable topic: generic takes over, buffered lines included
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(ing.handle("$SYS/odd/other", b"4", t1), Outcome::Stored);
    assert_eq!(ing.profile(), Some("generic"));
    let snap = store.snapshot();
    assert_eq!(
        snap.get(SYS_VALUE, &[("topic", "$SYS/odd/thing")]),
        Some(3.0)
    );
    assert_eq!(snap.info.unwrap().profile.as_ref(), "generic");
    // a NanoMQ event later still switches to the nanomq profile, dropping generic's values
    assert_eq!(
        ing.handle("$SYS/brokers/connected", b"{}", t1),
        Outcome::Stored
    );
    assert_eq!(ing.profile(), Some("nanomq"));
    let snap = store.snapshot();
    assert_eq!(snap.get(SYS_VALUE, &[("topic", "$SYS/odd/thing")]), None);
    assert_eq!(
        snap.get("mqtt_broker_client_connects_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        snap.get("mqtt_broker_client_disconnects_total", &[]),
        Some(0.0)
    );
    // a new session detects again
    ing.session_ended();
    assert_eq!(ing.profile(), None);
}
