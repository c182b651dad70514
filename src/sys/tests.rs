use super::*;
use crate::config::SysConfig;
use crate::sys::profile::ProfileSet;
use prometheus_client::registry::Registry;
use std::time::Duration;

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
