//! Brokers other than a lone mosquitto: amqtt and aedes (full collect + probe), nats-server
//! (probes through the MQTT 3.1.1 fallback, no `$SYS`), rabbitmq-server, and a mosquitto
//! bridge going down and up.

use crate::support::brokers::Broker;
use crate::support::scrape::Scrape;
use crate::support::{Mosquitto, Sentinel};
use std::time::Duration;

/// Round trips every second at each QoS. The 10 s timeout is no latency bound: a probe lost
/// to a busy machine would fail the `lost == 0` checks below, which are about the broker.
fn probes_yaml(qos: &[u8]) -> String {
    let mut y = String::from("    probes:\n");
    for q in qos {
        y.push_str(&format!(
            "      - {{kind: roundtrip, qos: {q}, interval: 1s, timeout: 10s}}\n"
        ));
    }
    y
}

/// A sample of broker `b`.
fn val(sc: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut all = vec![("broker", "b")];
    all.extend_from_slice(labels);
    sc.value(name, &all)
}

fn probes_succeed(sc: &Scrape, qos: &[u8]) -> bool {
    qos.iter().all(|q| {
        let name = format!("rtt-qos{q}");
        val(sc, "mqtt_probe_success", &[("probe", &name)]) == Some(1.0)
            && val(
                sc,
                "mqtt_probe_rtt_seconds_count",
                &[("qos", &q.to_string())],
            )
            .unwrap_or(0.0)
                >= 2.0
    })
}

#[test]
fn amqtt_is_recognised_collected_and_probed_over_3_1_1() {
    let broker = Broker::amqtt();
    let qos = [0, 1, 2];
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: b\n    url: {}\n{}",
        broker.url(),
        probes_yaml(&qos)
    ));
    let sc = s.wait_scrape(
        Duration::from_secs(60),
        "amqtt collected and probed",
        |sc| {
            val(sc, "mqtt_up", &[]) == Some(1.0)
                && val(sc, "mqtt_broker_uptime_seconds", &[]).is_some()
                && val(sc, "mqtt_broker_publish_messages_sent_total", &[]).is_some()
                && probes_succeed(sc, &qos)
        },
    );
    let info = sc.find("mqtt_broker_info", &[("broker", "b")]);
    assert_eq!(info.len(), 1, "{}", s.logs());
    assert_eq!(info[0].labels["profile"], "amqtt");
    assert_eq!(info[0].labels["implementation"], "amqtt");
    assert_eq!(info[0].labels["version"], "0.12.1");
    // amqtt speaks 3.1.1 only and closes a v5 CONNECT without a CONNACK. The fallback rule:
    // MQTT 5 closed, a 3.1.1 test connect succeeds, MQTT 5 closed again, then 3.1.1 for this
    // session; both successful attempts are counted.
    assert_eq!(
        val(&sc, "mqtt_connection_info", &[("protocol", "3.1.1")]),
        Some(1.0)
    );
    assert_eq!(
        val(&sc, "mqtt_connects_total", &[("result", "success")]),
        Some(2.0),
        "{}",
        s.logs()
    );
    assert!(
        val(
            &sc,
            "mqtt_connects_total",
            &[("result", "connection_closed")]
        ) <= Some(2.0),
        "{}",
        s.logs()
    );
    assert_eq!(
        val(&sc, "mqtt_connects_total", &[("result", "error")]),
        None
    );
    s.wait_log("MQTT 5 refused");
    // the client we and our probes hold counts; amqtt's `load/bytes/*` are cumulative bytes
    assert!(val(&sc, "mqtt_broker_clients_connected", &[]) >= Some(1.0));
    assert!(val(&sc, "mqtt_broker_bytes_received_total", &[]) > Some(0.0));
    assert!(val(&sc, "mqtt_broker_heap_bytes", &[]) > Some(1e6));
    assert!(val(&sc, "mqtt_broker_uptime_seconds", &[]) < Some(120.0));
    assert_eq!(
        val(&sc, "mqtt_sentinel_sys_parse_errors_total", &[]),
        Some(0.0)
    );
    assert!(
        sc.find("mqtt_broker_sys_value", &[]).is_empty(),
        "every amqtt topic is mapped or ignored"
    );
}

/// Sentinel watching `broker` as `b` with round trips at QoS 0, 1 and 2, once aedes' `$SYS`
/// tree is collected and every probe has succeeded.
fn aedes_collected_and_probed(broker: &Broker) -> (Sentinel, Scrape) {
    let qos = [0, 1, 2];
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: b\n    url: {}\n{}",
        broker.url(),
        probes_yaml(&qos)
    ));
    // first what needs no profile, then what only the aedes profile maps. aedes-stats
    // publishes (retained) once a second: the first values we get may predate our session and
    // our probes' publishes, so wait for a later tick rather than assert on the first one.
    s.wait_scrape(Duration::from_secs(60), "aedes up and probed", |sc| {
        val(sc, "mqtt_up", &[]) == Some(1.0) && probes_succeed(sc, &qos)
    });
    let sc = s.wait_scrape(
        Duration::from_secs(60),
        "the aedes profile: mqtt_broker_uptime_seconds, mqtt_broker_clients_connected >= 1 and mqtt_broker_publish_messages_received_total > 0",
        |sc| {
            val(sc, "mqtt_broker_uptime_seconds", &[]).is_some()
                && val(sc, "mqtt_broker_clients_connected", &[]) >= Some(1.0)
                && val(sc, "mqtt_broker_publish_messages_received_total", &[]) > Some(0.0)
        },
    );
    (s, sc)
}

#[test]
fn aedes_is_recognised_collected_and_probed() {
    let Some(broker) = Broker::aedes() else {
        return;
    };
    let (s, sc) = aedes_collected_and_probed(&broker);
    let info = sc.find("mqtt_broker_info", &[("broker", "b")]);
    assert_eq!(info.len(), 1, "{}\n{}", s.logs(), broker.log());
    assert_eq!(info[0].labels["profile"], "aedes");
    assert_eq!(info[0].labels["implementation"], "aedes");
    // aedes speaks MQTT 3.1.1 only: the session falls back
    assert_eq!(
        val(&sc, "mqtt_connection_info", &[("protocol", "3.1.1")]),
        Some(1.0),
        "{}",
        s.logs()
    );
    // aedes-stats: `clients/total` and `clients/maximum` count our session and probes
    assert!(val(&sc, "mqtt_broker_clients_connected", &[]) >= Some(1.0));
    assert!(val(&sc, "mqtt_broker_clients_maximum", &[]) >= Some(1.0));
    assert!(val(&sc, "mqtt_broker_heap_bytes", &[]) > Some(1e6));
    // `messages/publish/sent` counts every non-$SYS PUBLISH aedes accepted: our probes'
    assert!(val(&sc, "mqtt_broker_publish_messages_received_total", &[]) > Some(0.0));
    // `new/clients` events, counted from when we subscribed
    assert!(
        val(&sc, "mqtt_broker_client_connects_total", &[]).is_some(),
        "{}",
        s.logs()
    );
    assert_eq!(
        val(&sc, "mqtt_sentinel_sys_parse_errors_total", &[]),
        Some(0.0)
    );
    assert!(
        sc.find("mqtt_broker_sys_value", &[]).is_empty(),
        "every aedes topic is mapped or ignored: {:?}",
        sc.find("mqtt_broker_sys_value", &[])
    );
    // `memory/heap/maximum` is V8's heapTotal (it grows and shrinks) and `cpu/usage` is the
    // whole host's: neither means what these metrics mean, so the profile leaves them out
    assert_eq!(val(&sc, "mqtt_broker_heap_maximum_bytes", &[]), None);
    assert_eq!(val(&sc, "mqtt_broker_cpu_usage_ratio", &[]), None);
}

#[test]
fn aedes_series_do_not_carry_its_instance_id() {
    // aedes publishes under `$SYS/<instance id>/`, a random UUID per start unless set: the
    // series must be the same whatever it is, or every broker restart makes new ones.
    let id = "aedes-instance-5f0c2e";
    let Some(broker) = Broker::aedes_with(Some(id), true) else {
        return;
    };
    let (s, sc) = aedes_collected_and_probed(&broker);
    assert!(
        val(&sc, "mqtt_sentinel_sys_messages_total", &[]) > Some(0.0),
        "{}",
        s.logs()
    );
    let carrying: Vec<_> = sc
        .samples
        .iter()
        .filter(|x| x.name.contains(id) || x.labels.values().any(|v| v.contains(id)))
        .collect();
    assert!(carrying.is_empty(), "{carrying:?}");
}

#[test]
fn nats_is_probed_over_3_1_1_and_exports_no_sys() {
    let broker = Broker::nats();
    // NATS' MQTT support has no QoS 2
    let qos = [0, 1];
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: b\n    url: {}\n{}",
        broker.url(),
        probes_yaml(&qos)
    ));
    let sc = s.wait_scrape(Duration::from_secs(60), "nats probed", |sc| {
        probes_succeed(sc, &qos)
    });
    assert_eq!(
        val(&sc, "mqtt_connection_info", &[("protocol", "3.1.1")]),
        Some(1.0),
        "{}\n{}",
        s.logs(),
        broker.log()
    );
    s.wait_log("MQTT 5 refused");
    assert_eq!(val(&sc, "mqtt_sentinel_sys_messages_total", &[]), Some(0.0));
    assert!(
        sc.names_with_prefix("mqtt_broker_").is_empty(),
        "no $SYS noise: {:?}",
        sc.names_with_prefix("mqtt_broker_")
    );
    assert_eq!(
        val(&sc, "mqtt_probe_lost_total", &[("probe", "rtt-qos1")]),
        Some(0.0)
    );
}

#[test]
fn a_mosquitto_bridge_goes_down_and_up_with_its_remote() {
    let mut remote = Mosquitto::start();
    let local = Mosquitto::builder()
        .conf("connection edge-uplink")
        .conf(&format!("address 127.0.0.1:{}", remote.port()))
        .conf("topic sensors/# both 0")
        // mosquitto names the state topic after the bridge's client id on the remote,
        // `<hostname>.<connection>` unless set
        .conf("remote_clientid edge-uplink")
        .conf("restart_timeout 1")
        .conf("keepalive_interval 5")
        .start();
    let s = Sentinel::watching(&local, "");
    let bridge = [("broker", "m"), ("bridge", "edge-uplink")];
    s.wait_scrape(Duration::from_secs(30), "bridge up", |sc| {
        sc.value("mqtt_broker_bridge_up", &bridge) == Some(1.0)
    });
    remote.kill();
    s.wait_scrape(Duration::from_secs(30), "bridge down", |sc| {
        sc.value("mqtt_broker_bridge_up", &bridge) == Some(0.0)
    });
    remote.restart();
    let sc = s.wait_scrape(Duration::from_secs(30), "bridge up again", |sc| {
        sc.value("mqtt_broker_bridge_up", &bridge) == Some(1.0)
    });
    // the local broker stayed up throughout: our own session never dropped
    assert_eq!(
        sc.value(
            "mqtt_connects_total",
            &[("broker", "m"), ("result", "success")]
        ),
        Some(1.0)
    );
}

#[test]
fn rabbitmq_probes_qos_0_and_1_and_reports_qos_2_unsupported_once() {
    let started = std::time::Instant::now();
    let broker = Broker::rabbitmq();
    let boot = started.elapsed();
    let s = Sentinel::start(&format!(
        "brokers:\n  - name: b\n    url: {}\n{}      - {{kind: retained, interval: 1s, timeout: 10s}}\n",
        broker.url(),
        probes_yaml(&[0, 1, 2])
    ));
    let sc = s.wait_scrape(Duration::from_secs(60), "rabbitmq probed", |sc| {
        probes_succeed(sc, &[0, 1])
            && val(sc, "mqtt_probe_success", &[("probe", "retained")]) == Some(1.0)
            && val(sc, "mqtt_probe_rtt_seconds_count", &[("qos", "1")]).unwrap_or(0.0) >= 4.0
    });
    let qos2 = [
        ("broker", "b"),
        ("probe", "rtt-qos2"),
        ("reason", "qos_not_supported"),
    ];
    assert_eq!(
        sc.value("mqtt_probe_errors_total", &qos2),
        Some(1.0),
        "reported once, not per run\n{}",
        s.logs()
    );
    assert_eq!(
        val(&sc, "mqtt_probe_success", &[("probe", "rtt-qos2")]),
        Some(0.0)
    );
    assert_eq!(
        val(&sc, "mqtt_probe_sent_total", &[("probe", "rtt-qos2")]),
        Some(0.0)
    );
    // no reconnect ping-pong (RabbitMQ answers a QoS 2 PUBLISH with a PUBACK, which makes
    // Paho drop the connection: we never send one). RabbitMQ closes a v5 CONNECT: the
    // fallback rule's 3.1.1 test connect is the other successful attempt.
    assert_eq!(
        val(&sc, "mqtt_connects_total", &[("result", "success")]),
        Some(2.0),
        "{}",
        s.logs()
    );
    assert_eq!(
        val(&sc, "mqtt_probe_health", &[("state", "healthy")]),
        Some(1.0)
    );
    assert_eq!(
        val(&sc, "mqtt_connection_info", &[("protocol", "3.1.1")]),
        Some(1.0)
    );
    assert_eq!(
        s.logs()
            .matches("does not support this probe's QoS")
            .count(),
        1
    );
    eprintln!("rabbitmq-server booted in {boot:?}");
}
