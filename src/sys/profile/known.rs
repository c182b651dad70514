//! The metric families every profile maps onto: names, types and fixed help texts.

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One exported metric family. Counter names carry `_total`; the encoder strips it for the
/// OpenMetrics `# TYPE` line and puts it back on the sample. Ordered and compared by name.
#[derive(Debug)]
pub struct Family {
    pub name: Arc<str>,
    pub kind: Kind,
    pub help: Arc<str>,
}

impl PartialEq for Family {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Family {}
impl PartialOrd for Family {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Family {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(&other.name)
    }
}

pub const INFO: &str = "mqtt_broker_info";
pub const SYS_VALUE: &str = "mqtt_broker_sys_value";
pub(super) const LAST_UPDATE: &str = "mqtt_broker_sys_last_update_timestamp_seconds";

/// Families whose meaning is the same whichever broker reports them: profiles map onto these
/// names, and their help text is fixed here.
pub static KNOWN: &[(&str, &str)] = &[
    (
        "mqtt_broker_clients_connected",
        "Clients currently connected.",
    ),
    (
        "mqtt_broker_clients_disconnected",
        "Disconnected clients whose persistent session the broker keeps.",
    ),
    (
        "mqtt_broker_clients_registered",
        "Connected plus disconnected clients with a session (mosquitto clients/total, EMQX and rmqtt sessions, VerneMQ queues).",
    ),
    (
        "mqtt_broker_clients_maximum",
        "Highest number of clients connected at once since the broker started.",
    ),
    (
        "mqtt_broker_clients_expired_total",
        "Disconnected sessions expired by the broker.",
    ),
    (
        "mqtt_broker_client_connects_total",
        "Client connections the broker accepted (NanoMQ, aedes: connect events seen since mqtt-sentinel subscribed).",
    ),
    (
        "mqtt_broker_client_disconnects_total",
        "Client disconnections the broker reported (NanoMQ, aedes: disconnect events seen since mqtt-sentinel subscribed).",
    ),
    (
        "mqtt_broker_messages_received_total",
        "MQTT packets of any type received by the broker.",
    ),
    (
        "mqtt_broker_messages_sent_total",
        "MQTT packets of any type sent by the broker.",
    ),
    (
        "mqtt_broker_messages_inflight",
        "QoS>0 messages awaiting acknowledgement.",
    ),
    (
        "mqtt_broker_publish_messages_received_total",
        "PUBLISH messages received by the broker.",
    ),
    (
        "mqtt_broker_publish_messages_sent_total",
        "PUBLISH messages sent by the broker.",
    ),
    (
        "mqtt_broker_publish_messages_dropped_total",
        "PUBLISH messages dropped by the broker (queue limits, offline clients).",
    ),
    (
        "mqtt_broker_bytes_received_total",
        "Bytes received by the broker.",
    ),
    ("mqtt_broker_bytes_sent_total", "Bytes sent by the broker."),
    (
        "mqtt_broker_publish_bytes_received_total",
        "PUBLISH payload bytes received by the broker.",
    ),
    (
        "mqtt_broker_publish_bytes_sent_total",
        "PUBLISH payload bytes sent by the broker.",
    ),
    ("mqtt_broker_subscriptions", "Active subscriptions."),
    (
        "mqtt_broker_shared_subscriptions",
        "Active shared subscriptions.",
    ),
    (
        "mqtt_broker_topics",
        "Topics with at least one subscriber (routing table size).",
    ),
    (
        "mqtt_broker_retained_messages",
        "Retained messages held by the broker.",
    ),
    (
        "mqtt_broker_stored_messages",
        "Messages held in the broker's message store, including retained and in-flight ones.",
    ),
    (
        "mqtt_broker_stored_messages_bytes",
        "Payload bytes held in the broker's message store.",
    ),
    (
        "mqtt_broker_heap_bytes",
        "Heap memory in use by the broker (mosquitto: only when built with memory tracking; amqtt: process RSS).",
    ),
    (
        "mqtt_broker_heap_maximum_bytes",
        "Largest heap memory use since the broker started.",
    ),
    (
        "mqtt_broker_cpu_usage_ratio",
        "CPU use of the broker process, 1 = one core.",
    ),
    (
        "mqtt_broker_uptime_seconds",
        "Seconds since the broker started.",
    ),
    (
        "mqtt_broker_load_connections_per_second",
        "Broker's moving average of new connections per second over `window`.",
    ),
    (
        "mqtt_broker_load_sockets_per_second",
        "Broker's moving average of opened sockets per second over `window`.",
    ),
    (
        "mqtt_broker_load_bytes_received_per_second",
        "Broker's moving average of bytes received per second over `window`.",
    ),
    (
        "mqtt_broker_load_bytes_sent_per_second",
        "Broker's moving average of bytes sent per second over `window`.",
    ),
    (
        "mqtt_broker_load_messages_received_per_second",
        "Broker's moving average of packets received per second over `window`.",
    ),
    (
        "mqtt_broker_load_messages_sent_per_second",
        "Broker's moving average of packets sent per second over `window`.",
    ),
    (
        "mqtt_broker_load_publish_received_per_second",
        "Broker's moving average of PUBLISH received per second over `window`.",
    ),
    (
        "mqtt_broker_load_publish_sent_per_second",
        "Broker's moving average of PUBLISH sent per second over `window`.",
    ),
    (
        "mqtt_broker_load_publish_dropped_per_second",
        "Broker's moving average of PUBLISH dropped per second over `window`.",
    ),
    (
        "mqtt_broker_sockets_opened_total",
        "Network connections the broker accepted, whether or not a CONNECT followed (mosquitto 2.1 connections/socket/count).",
    ),
    (
        "mqtt_broker_outgoing_packets",
        "Packets the broker has queued for sending and not yet written to the network (outbound backlog).",
    ),
    (
        "mqtt_broker_outgoing_packets_bytes",
        "Bytes of the packets the broker has queued for sending (outbound backlog).",
    ),
    (
        "mqtt_broker_bridge_up",
        "1 if the broker reports the bridge connected, 0 if not.",
    ),
    (
        SYS_VALUE,
        "Numeric $SYS topics no profile knows, by full topic (capped by sys.max_series).",
    ),
];
