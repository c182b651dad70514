use super::*;
use crate::sys::SysConfig;
use crate::sys::profile::ProfileSet;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn cfg(prefix: &str, max_series: usize) -> SysConfig {
    SysConfig {
        enabled: true,
        topic: format!("{prefix}#"),
        profile: "mosquitto".into(),
        max_series,
        profiles: Arc::new(ProfileSet::builtin()),
    }
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn encode(stores: Vec<Arc<SysStore>>) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(SysCollector::new(stores)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
    out
}

fn feed_capture(ing: &mut Ingest) {
    let capture = include_str!("../../tests/fixtures/mosquitto-2.0.11-sys.tsv");
    for line in capture.lines() {
        let (topic, payload) = line.split_once('\t').unwrap();
        assert_eq!(
            ing.handle(topic, payload.as_bytes(), t0()),
            Outcome::Stored,
            "{line}"
        );
    }
}

#[test]
fn real_capture_becomes_typed_metrics() {
    let store = SysStore::new("local");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&cfg("$SYS/", 500), store.clone(), counters.clone());
    feed_capture(&mut ing);
    assert_eq!(counters.messages.get(), 53);
    assert_eq!(counters.parse_errors.get(), 0);
    let out = encode(vec![store]);
    for want in [
        "# TYPE mqtt_broker_bytes_received counter\nmqtt_broker_bytes_received_total{broker=\"local\"} 51.0",
        "# TYPE mqtt_broker_clients_connected gauge\nmqtt_broker_clients_connected{broker=\"local\"} 1.0",
        "mqtt_broker_clients_registered{broker=\"local\"} 1.0",
        "mqtt_broker_retained_messages{broker=\"local\"} 53.0",
        "mqtt_broker_stored_messages{broker=\"local\"} 53.0",
        "mqtt_broker_stored_messages_bytes{broker=\"local\"} 181.0",
        "# TYPE mqtt_broker_heap_bytes gauge\n# UNIT mqtt_broker_heap_bytes bytes\nmqtt_broker_heap_bytes{broker=\"local\"} 45032.0",
        "mqtt_broker_heap_maximum_bytes{broker=\"local\"} 45432.0",
        "# TYPE mqtt_broker_uptime_seconds gauge\n# UNIT mqtt_broker_uptime_seconds seconds\nmqtt_broker_uptime_seconds{broker=\"local\"} 2.0",
        "mqtt_broker_publish_messages_dropped_total{broker=\"local\"} 0.0",
        "mqtt_broker_subscriptions{broker=\"local\"} 1.0",
        "mqtt_broker_shared_subscriptions{broker=\"local\"} 0.0",
        "mqtt_broker_load_connections_per_second{broker=\"local\",window=\"1m\"} 0.0328",
        "# TYPE mqtt_broker info\nmqtt_broker_info{implementation=\"mosquitto\",version=\"2.0.11\",profile=\"mosquitto\",broker=\"local\"} 1",
        "mqtt_broker_sys_last_update_timestamp_seconds{broker=\"local\"} 1700000000.0",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    // every topic is known: nothing falls through to the catch-all
    assert!(!out.contains("mqtt_broker_sys_value"), "{out}");
    let samples = out.lines().filter(|l| l.starts_with("mqtt_broker")).count();
    // 51 plain numbers, minus 3 folded aliases (active, inactive, messages/stored),
    // plus uptime, info and last-update
    assert_eq!(samples, 51 - 3 + 1 + 2, "{out}");
}

#[test]
fn clear_removes_values_but_keeps_last_update() {
    let store = SysStore::new("local");
    let mut ing = Ingest::new(&cfg("$SYS/", 500), store.clone(), IngestCounters::default());
    feed_capture(&mut ing);
    ing.session_ended();
    let out = encode(vec![store]);
    let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        samples,
        ["mqtt_broker_sys_last_update_timestamp_seconds{broker=\"local\"} 1700000000.0"],
        "{out}"
    );
}

#[test]
fn odd_payloads_are_counted_and_never_exported_as_values() {
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&cfg("test/sys/", 500), store.clone(), counters.clone());
    let big = vec![b'7'; 64 * 1024];
    let bad: [&[u8]; 6] = [b"", b"NaN", b"1e309", b"many", b"\xff\xfe", &big];
    for p in bad {
        assert!(matches!(
            ing.handle("test/sys/broker/clients/connected", p, t0()),
            Outcome::Invalid(_)
        ));
        // an unknown topic: text, not a parse error
        assert_eq!(
            ing.handle("test/sys/custom/thing", p, t0()),
            Outcome::UnmappedText
        );
    }
    assert_eq!(counters.parse_errors.get(), 6);
    assert_eq!(counters.unmapped_text.get(), 6);
    // a bad payload after a good one removes the value rather than freezing it
    ing.handle("test/sys/broker/clients/connected", b"5", t0());
    ing.handle("test/sys/broker/clients/connected", b"five", t0());
    ing.handle("test/sys/broker/uptime", b"12 fortnights", t0());
    let out = encode(vec![store]);
    assert!(!out.contains("clients_connected"), "{out}");
    assert!(!out.contains("uptime"), "{out}");
    assert!(!out.contains("sys_value"), "{out}");
}

#[test]
fn unknown_topics_are_capped() {
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&cfg("test/sys/", 10), store.clone(), counters.clone());
    for i in 0..10_000 {
        ing.handle(&format!("test/sys/x/{i}"), b"1", t0());
    }
    assert_eq!(counters.series_dropped.get(), 9_990);
    // existing series keep updating at the cap
    assert_eq!(ing.handle("test/sys/x/3", b"42", t0()), Outcome::Stored);
    let out = encode(vec![store]);
    assert_eq!(out.matches("mqtt_broker_sys_value{").count(), 10, "{out}");
    assert!(
        out.contains("mqtt_broker_sys_value{broker=\"b\",topic=\"test/sys/x/3\"} 42.0"),
        "{out}"
    );
}

#[test]
fn bridges_and_odd_topic_names() {
    let store = SysStore::new("b");
    let mut ing = Ingest::new(&cfg("$SYS/", 500), store.clone(), IngestCounters::default());
    ing.handle("$SYS/broker/connection/edge-1/state", b"1", t0());
    ing.handle("$SYS/broker/connection/edge-2/state", b"0", t0());
    ing.handle("$SYS/weird \"quoted\"\\topic\n", b"3", t0());
    let out = encode(vec![store]);
    assert!(
        out.contains("mqtt_broker_bridge_up{broker=\"b\",bridge=\"edge-1\"} 1.0"),
        "{out}"
    );
    assert!(
        out.contains("mqtt_broker_bridge_up{broker=\"b\",bridge=\"edge-2\"} 0.0"),
        "{out}"
    );
    assert!(
        out.contains(r#"topic="$SYS/weird \"quoted\"\\topic\n"} 3.0"#),
        "{out}"
    );
}

#[test]
fn two_brokers_share_one_family_block() {
    let a = SysStore::new("a");
    let b = SysStore::new("b");
    let mut ia = Ingest::new(&cfg("$SYS/", 500), a.clone(), IngestCounters::default());
    let mut ib = Ingest::new(&cfg("$SYS/", 500), b.clone(), IngestCounters::default());
    ia.handle("$SYS/broker/clients/connected", b"1", t0());
    ib.handle("$SYS/broker/clients/connected", b"2", t0());
    let out = encode(vec![a, b]);
    assert_eq!(
        out.matches("# TYPE mqtt_broker_clients_connected gauge")
            .count(),
        1,
        "{out}"
    );
    assert!(out.contains("mqtt_broker_clients_connected{broker=\"a\"} 1.0\nmqtt_broker_clients_connected{broker=\"b\"} 2.0"), "{out}");
}

fn auto_cfg(prefix: &str, max_series: usize) -> SysConfig {
    SysConfig {
        profile: "auto".into(),
        ..cfg(prefix, max_series)
    }
}

#[test]
fn impossible_values_are_refused_counted_and_the_last_good_one_kept() {
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&cfg("$SYS/", 500), store.clone(), counters.clone());
    let get = |s: &Arc<SysStore>| s.snapshot().get("mqtt_broker_clients_disconnected", &[]);
    assert_eq!(
        ing.handle("$SYS/broker/clients/disconnected", b"3", t0()),
        Outcome::Stored
    );
    // mosquitto 2.0 prints total - connected signed, 2.1 unsigned, while a socket has not
    // sent CONNECT yet at the $SYS tick
    for p in [&b"-1"[..], b"4294967295"] {
        assert_eq!(
            ing.handle("$SYS/broker/clients/disconnected", p, t0()),
            Outcome::Refused
        );
        assert_eq!(
            ing.handle("$SYS/broker/clients/inactive", p, t0()),
            Outcome::Refused
        );
        assert_eq!(get(&store), Some(3.0));
    }
    assert_eq!(counters.values_refused.get(), 4);
    assert_eq!(counters.parse_errors.get(), 0);
    // every built-in family is non-negative, whatever the profile says
    assert_eq!(
        ing.handle("$SYS/broker/subscriptions/count", b"-2", t0()),
        Outcome::Refused
    );
    assert_eq!(store.snapshot().get("mqtt_broker_subscriptions", &[]), None);
    assert_eq!(
        ing.handle("$SYS/broker/clients/disconnected", b"0", t0()),
        Outcome::Stored
    );
    assert_eq!(get(&store), Some(0.0));
}

#[test]
fn json_fields_conditions_and_their_failures() {
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&auto_cfg("$SYS/", 500), store.clone(), counters.clone());
    let stats = br#"{"connections.count":4,"connections.max":9,"sessions.count":5,"subscriptions.count":2,"subscriptions_shared.count":0,"topics.count":2,"retaineds.count":1,"message_storages.count":-1}"#;
    assert_eq!(
        ing.handle("$SYS/brokers/n1/stats", stats, t0()),
        Outcome::Stored
    );
    assert_eq!(ing.profile(), Some("rmqtt"));
    let snap = store.snapshot();
    assert_eq!(
        snap.get("mqtt_broker_clients_connected", &[("node", "n1")]),
        Some(4.0)
    );
    // -1 means storage is off: no series, nothing counted
    assert_eq!(
        snap.get("mqtt_broker_stored_messages", &[("node", "n1")]),
        None
    );
    assert_eq!(counters.values_refused.get(), 0);
    // a field the profile maps is missing: a parse error, and that series goes
    let short = br#"{"connections.max":9,"sessions.count":5,"subscriptions.count":2,"subscriptions_shared.count":0,"topics.count":2,"retaineds.count":1,"message_storages.count":7}"#;
    assert_eq!(
        ing.handle("$SYS/brokers/n1/stats", short, t0()),
        Outcome::Invalid(parse::ParseError::MissingField)
    );
    let snap = store.snapshot();
    assert_eq!(
        snap.get("mqtt_broker_clients_connected", &[("node", "n1")]),
        None
    );
    assert_eq!(
        snap.get("mqtt_broker_stored_messages", &[("node", "n1")]),
        Some(7.0)
    );
    assert_eq!(
        snap.get("mqtt_broker_clients_registered", &[("node", "n1")]),
        Some(5.0)
    );
    // not JSON at all: every series of the topic goes
    assert_eq!(
        ing.handle("$SYS/brokers/n1/stats", b"4", t0()),
        Outcome::Invalid(parse::ParseError::NotJson)
    );
    assert_eq!(
        store
            .snapshot()
            .get("mqtt_broker_clients_registered", &[("node", "n1")]),
        None
    );
    assert_eq!(counters.parse_errors.get(), 2);
    // per-client topics are ignored by design
    assert_eq!(
        ing.handle("$SYS/brokers/n1/clients/c1/connected", b"{}", t0()),
        Outcome::Ignored
    );

    // NanoMQ >= 0.24.2: the kind is a field; MQTT 5 clients' events start with a NUL byte
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&auto_cfg("$SYS/", 500), store.clone(), counters.clone());
    let on = br#"{"status":"online","client_id":"c1","proto_ver":4}"#;
    let off5 = b"\x00{\"status\":\"offline\",\"client_id\":\"c2\"}";
    assert_eq!(
        ing.handle("$SYS/brokers/client_status/c1", on, t0()),
        Outcome::Stored
    );
    assert_eq!(ing.profile(), Some("nanomq"));
    assert_eq!(
        ing.handle("$SYS/brokers/client_status/c2", off5, t0()),
        Outcome::Stored
    );
    assert_eq!(
        ing.handle("$SYS/brokers/client_status/c2", off5, t0()),
        Outcome::Stored
    );
    let snap = store.snapshot();
    assert_eq!(
        snap.get("mqtt_broker_client_connects_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        snap.get("mqtt_broker_client_disconnects_total", &[]),
        Some(2.0)
    );
    // a kind no entry takes is a surprise on a mapped topic
    assert!(matches!(
        ing.handle(
            "$SYS/brokers/client_status/c3",
            br#"{"status":"sleeping"}"#,
            t0()
        ),
        Outcome::Invalid(_)
    ));
    assert_eq!(counters.parse_errors.get(), 1);
    // the client id never became a label
    let out = encode(vec![store]);
    assert!(!out.contains("c1") && !out.contains("c2"), "{out}");
}

#[test]
fn an_instance_id_is_followed_not_labelled() {
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&auto_cfg("$SYS/", 500), store.clone(), counters.clone());
    let (a, b) = (
        "5eff26d9-f9ed-46d9-a02f-d14b76f9ee10",
        "0c4f3a9e-1b2d-4e5f-8a9b-0c1d2e3f4a5b",
    );
    let t = |s: u64| t0() + Duration::from_secs(s);
    let topic = |id: &str, rest: &str| format!("$SYS/{id}/{rest}");
    assert_eq!(
        ing.handle(&topic(a, "memory/heap/current"), b"7183616", t(0)),
        Outcome::Stored
    );
    assert_eq!(ing.profile(), Some("aedes"));
    ing.handle(&topic(a, "clients/total"), b"3", t(0));
    ing.handle(&topic(a, "new/clients"), b"c1", t(0));
    // another instance while the followed one publishes (a cluster peer): not mixed in
    assert_eq!(
        ing.handle(&topic(b, "clients/total"), b"40", t(1)),
        Outcome::Ignored
    );
    assert_eq!(
        store.snapshot().get("mqtt_broker_clients_connected", &[]),
        Some(3.0)
    );
    ing.handle(&topic(a, "clients/total"), b"4", t(20));
    assert_eq!(
        ing.handle(&topic(b, "clients/total"), b"41", t(45)),
        Outcome::Ignored
    );
    // the followed one falls silent: the other takes over and the old values go with it
    assert_eq!(
        ing.handle(&topic(b, "clients/total"), b"42", t(20) + INSTANCE_SILENCE),
        Outcome::Stored
    );
    let snap = store.snapshot();
    assert_eq!(snap.get("mqtt_broker_clients_connected", &[]), Some(42.0));
    assert_eq!(snap.get("mqtt_broker_heap_bytes", &[]), None);
    assert_eq!(
        snap.get("mqtt_broker_client_connects_total", &[]),
        Some(0.0)
    );
    assert_eq!(snap.info.map(|i| i.implementation), Some("aedes".into()));
    let out = encode(vec![store]);
    assert!(!out.contains(a) && !out.contains(b), "{out}");
    assert_eq!(counters.parse_errors.get(), 0);
}

#[test]
fn unknown_topics_that_fan_out_over_a_key_are_dropped() {
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&cfg("test/sys/", 500), store.clone(), counters.clone());
    ing.handle("test/sys/custom/load", b"1", t0());
    let dev = |i: usize| format!("test/sys/custom/clients/device-{i:04}/inflight");
    for i in 0..FANOUT_LIMIT - 1 {
        assert_eq!(ing.handle(&dev(i), b"2", t0()), Outcome::Stored);
    }
    let sys_values = |s: &Arc<SysStore>| {
        encode(vec![s.clone()])
            .matches("mqtt_broker_sys_value{")
            .count()
    };
    assert_eq!(sys_values(&store), FANOUT_LIMIT);
    // the 16th id: the level is a key, its series go and no more are made
    assert_eq!(ing.handle(&dev(FANOUT_LIMIT), b"2", t0()), Outcome::Dropped);
    assert_eq!(ing.handle(&dev(0), b"3", t0()), Outcome::Dropped);
    assert_eq!(ing.handle(&dev(9999), b"3", t0()), Outcome::Dropped);
    let out = encode(vec![store.clone()]);
    assert!(!out.contains("device-"), "{out}");
    assert!(out.contains("topic=\"test/sys/custom/load\"} 1.0"), "{out}");
    assert_eq!(counters.series_dropped.get(), 3);
    // and the slots are free for other topics
    assert_eq!(
        ing.handle("test/sys/custom/other", b"5", t0()),
        Outcome::Stored
    );
    assert_eq!(sys_values(&store), 2);
    // a new session forgets what it learned of the layout
    ing.session_ended();
    assert_eq!(ing.handle(&dev(1), b"2", t0()), Outcome::Stored);
}

#[test]
fn many_metric_names_under_one_parent_are_no_key() {
    // EMQX 5's stats tree through generic: 26 names under stats/, none of them an id
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&cfg("test/sys/", 500), store.clone(), counters.clone());
    let names = [
        "connections",
        "live_connections",
        "sessions",
        "topics",
        "subscriptions",
        "subscriptions.shared",
        "suboptions",
        "retained",
        "delayed",
        "channels",
        "durable_subscriptions",
        "cluster_sessions",
        "subscribers",
    ];
    for n in names {
        for kind in ["count", "max"] {
            let t = format!("test/sys/brokers/emqx@127.0.0.1/stats/{n}.{kind}");
            assert_eq!(ing.handle(&t, b"3", t0()), Outcome::Stored, "{t}");
        }
    }
    // and 20 packet types, 15 min load windows: no ids either
    for i in 0..20 {
        let t = format!("test/sys/broker/packets/type{i}");
        assert_eq!(ing.handle(&t, b"1", t0()), Outcome::Stored, "{t}");
    }
    assert_eq!(counters.series_dropped.get(), 0);
    assert_eq!(
        encode(vec![store])
            .matches("mqtt_broker_sys_value{")
            .count(),
        46
    );
}

#[test]
fn unknown_topics_of_departed_keys_age_out_and_constant_values_stay() {
    let store = SysStore::new("b");
    let mut ing = Ingest::new(
        &cfg("test/sys/", 500),
        store.clone(),
        IngestCounters::default(),
    );
    let t = |s: u64| t0() + Duration::from_secs(s);
    let gone = "test/sys/custom/clients/sensor-0001/inflight";
    let live = "test/sys/custom/clients/sensor-0002/inflight";
    ing.handle("test/sys/custom/static", b"7", t(0)); // once: a retained fact
    ing.handle("test/sys/custom/constant", b"1", t(0));
    ing.handle("test/sys/custom/constant", b"2", t(1)); // then on change only: never
    ing.handle(gone, b"1", t(0));
    ing.handle(gone, b"2", t(1)); // a client that left
    ing.handle(live, b"1", t(1));
    let quiet = t(1) + UNKNOWN_STALE_AFTER;
    ing.handle(live, b"2", quiet);
    assert!(encode(vec![store.clone()]).contains("sensor-0001"));
    ing.handle(live, b"3", quiet + Duration::from_secs(11));
    let out = encode(vec![store]);
    assert!(!out.contains("sensor-0001"), "{out}");
    assert!(out.contains("sensor-0002/inflight\"} 3.0"), "{out}");
    assert!(
        out.contains("topic=\"test/sys/custom/static\"} 7.0"),
        "{out}"
    );
    assert!(
        out.contains("topic=\"test/sys/custom/constant\"} 2.0"),
        "{out}"
    );
}

fn user_cfg(yaml: &str) -> SysConfig {
    let defs: BTreeMap<String, profile::ProfileDef> = serde_yaml::from_str(yaml).unwrap();
    SysConfig {
        profile: "u".into(),
        profiles: Arc::new(ProfileSet::with_user(&defs).unwrap()),
        ..cfg("$SYS/", 2)
    }
}

#[test]
fn user_profiles_get_the_same_range_rules() {
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let c = user_cfg(
        r#"
u:
  metrics:
    - {topic: things, metric: mqtt_broker_my_things_total}
    - {topic: level, metric: mqtt_broker_my_level}
    - {topic: lag_ms, metric: mqtt_broker_my_lag_seconds, scale: 0.001, unavailable: -1}
"#,
    );
    let mut ing = Ingest::new(&c, store.clone(), counters.clone());
    // a counter never goes below zero; a gauge of our own may
    assert_eq!(ing.handle("$SYS/things", b"-5", t0()), Outcome::Refused);
    assert_eq!(ing.handle("$SYS/level", b"-5", t0()), Outcome::Stored);
    // "unavailable" is the number as published, before scale
    assert_eq!(ing.handle("$SYS/lag_ms", b"1500", t0()), Outcome::Stored);
    assert_eq!(
        store.snapshot().get("mqtt_broker_my_lag_seconds", &[]),
        Some(1.5)
    );
    assert_eq!(ing.handle("$SYS/lag_ms", b"-1", t0()), Outcome::Ignored);
    assert_eq!(
        store.snapshot().get("mqtt_broker_my_lag_seconds", &[]),
        None
    );
    assert_eq!(counters.values_refused.get(), 1);
}

#[test]
fn a_series_reachable_two_ways_frees_its_slot_once() {
    // the same series from a captured label and from a constant one
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let c = user_cfg(
        r#"
u:
  metrics:
    - {topic: "a/{node}", metric: mqtt_broker_topics}
    - {topic: b, metric: mqtt_broker_topics, labels: {node: x}}
"#,
    );
    let mut ing = Ingest::new(&c, store.clone(), counters.clone());
    assert_eq!(ing.handle("$SYS/b", b"1", t0()), Outcome::Stored);
    assert!(matches!(
        ing.handle("$SYS/a/x", b"bad", t0()),
        Outcome::Invalid(_)
    ));
    assert!(matches!(
        ing.handle("$SYS/a/x", b"bad", t0()),
        Outcome::Invalid(_)
    ));
    // the cap (2) still holds exactly two broker-labelled series
    for n in ["p", "q", "r"] {
        ing.handle(&format!("$SYS/a/{n}"), b"1", t0());
    }
    assert_eq!(counters.series_dropped.get(), 1);
    assert_eq!(
        encode(vec![store]).matches("mqtt_broker_topics{").count(),
        2
    );
}

#[test]
fn every_dropped_value_is_counted() {
    // rmqtt's stats carry 7 mapped fields; with room for 3 series, 4 are dropped
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(
        &SysConfig {
            profile: "rmqtt".into(),
            ..cfg("$SYS/", 3)
        },
        store,
        counters.clone(),
    );
    let stats = br#"{"connections.count":4,"connections.max":9,"sessions.count":5,"subscriptions.count":2,"topics.count":2,"retaineds.count":1,"message_storages.count":-1}"#;
    assert_eq!(
        ing.handle("$SYS/brokers/n1/stats", stats, t0()),
        Outcome::Stored
    );
    assert_eq!(counters.series_dropped.get(), 3);
}

#[test]
fn a_retained_tree_of_a_dead_instance_gives_way_to_the_live_one() {
    let store = SysStore::new("b");
    let mut ing = Ingest::new(
        &auto_cfg("$SYS/", 500),
        store.clone(),
        IngestCounters::default(),
    );
    let (dead, live) = (
        "1b0dead0-0000-4000-8000-000000000001",
        "2c1a11e0-0000-4000-8000-000000000002",
    );
    let topic = |id: &str, rest: &str| format!("$SYS/{id}/{rest}");
    // retained first (a persistent store kept the dead instance's tree)
    assert_eq!(
        ing.handle_message(&topic(dead, "memory/heap/current"), b"1000000", true, t0()),
        Outcome::Stored
    );
    ing.handle_message(&topic(dead, "clients/total"), b"40", true, t0());
    // the live instance's first message takes over at once
    assert_eq!(
        ing.handle_message(&topic(live, "clients/total"), b"2", false, t0()),
        Outcome::Stored
    );
    let snap = store.snapshot();
    assert_eq!(snap.get("mqtt_broker_clients_connected", &[]), Some(2.0));
    assert_eq!(snap.get("mqtt_broker_heap_bytes", &[]), None);
    // and retained messages of another instance never take its place
    assert_eq!(
        ing.handle_message(
            &topic(dead, "clients/total"),
            b"40",
            true,
            t0() + INSTANCE_SILENCE * 2
        ),
        Outcome::Ignored
    );
}

#[test]
fn known_text_topics_are_ignored_and_odd_client_ids_counted() {
    let store = SysStore::new("b");
    let counters = IngestCounters::default();
    let mut ing = Ingest::new(&cfg("$SYS/", 500), store, counters.clone());
    assert_eq!(
        ing.handle("$SYS/broker/log/N", b"New client connected", t0()),
        Outcome::Ignored
    );
    let store = SysStore::new("b");
    let mut ing = Ingest::new(&auto_cfg("$SYS/", 500), store.clone(), counters.clone());
    let on = br#"{"status":"online","client_id":"site/a/dev1"}"#;
    assert_eq!(
        ing.handle("$SYS/brokers/client_status/site/a/dev1", on, t0()),
        Outcome::Stored
    );
    assert_eq!(ing.profile(), Some("nanomq"));
    assert_eq!(
        store
            .snapshot()
            .get("mqtt_broker_client_connects_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        counters.unmapped_text.get() + counters.parse_errors.get(),
        0
    );
}

#[test]
fn the_info_implementation_is_never_empty() {
    let store = SysStore::new("b");
    let mut ing = Ingest::new(
        &SysConfig {
            profile: "generic".into(),
            ..cfg("$SYS/", 500)
        },
        store.clone(),
        IngestCounters::default(),
    );
    ing.handle("$SYS/broker/version", b"5.0.3", t0());
    let info = store.snapshot().info.unwrap();
    assert_eq!(
        (info.implementation.as_str(), info.version.as_str()),
        ("unknown", "5.0.3")
    );
}
