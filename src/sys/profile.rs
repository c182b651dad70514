//! Broker profiles as data: which `$SYS` topic becomes which metric, with which type, unit,
//! extra label and payload parser. Nothing here does I/O; `sys::Ingest` applies a profile.
//!
//! Topic patterns are relative to the configured `sys.topic` prefix (`$SYS/` by default), so a
//! test can point the collector at `test/sys/#` and publish `test/sys/broker/...` itself.

use crate::config::ProfileName;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One exported metric family. Counter names carry `_total`; the encoder strips it for the
/// OpenMetrics `# TYPE` line and puts it back on the sample.
#[derive(Debug)]
pub struct FamilyDesc {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Name of the broker-supplied extra label, if any (`window`, `bridge`, `topic`).
    pub label: Option<&'static str>,
}

/// How a payload becomes a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parser {
    /// A plain number; `scale` converts to base units (Mosquitto's per-minute loads → /s).
    Number { scale: f64 },
    /// A non-negative number (counters).
    Counter,
    /// `"N seconds"`.
    Seconds,
}

/// What a topic maps to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Value {
        family: usize,
        label: Option<&'static str>,
        parser: Parser,
    },
    /// The version announcement → `mqtt_broker_info{version}`.
    Version,
    /// A 0/1 bridge state; the bridge name is captured from the topic.
    Bridge,
    /// A known non-numeric topic with nothing worth exporting (build timestamps).
    Ignore,
}

macro_rules! families {
    ($($id:ident = $name:literal, $kind:ident, $label:expr, $help:literal;)*) => {
        /// Indexes into [`FAMILIES`].
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy)]
        #[repr(usize)]
        pub enum F { $($id),* }
        /// Every family a profile can produce, in exposition order.
        pub static FAMILIES: &[FamilyDesc] = &[
            $(FamilyDesc { name: $name, kind: Kind::$kind, help: $help, label: $label }),*
        ];
    };
}

families! {
    ClientsConnected = "mqtt_broker_clients_connected", Gauge, None, "Clients currently connected.";
    ClientsDisconnected = "mqtt_broker_clients_disconnected", Gauge, None, "Disconnected clients whose persistent session the broker keeps.";
    ClientsRegistered = "mqtt_broker_clients_registered", Gauge, None, "Connected plus disconnected clients with a session (mosquitto clients/total).";
    ClientsMaximum = "mqtt_broker_clients_maximum", Gauge, None, "Highest number of clients connected at once since the broker started.";
    ClientsExpired = "mqtt_broker_clients_expired_total", Counter, None, "Disconnected sessions expired by the broker.";
    MessagesReceived = "mqtt_broker_messages_received_total", Counter, None, "MQTT packets of any type received by the broker.";
    MessagesSent = "mqtt_broker_messages_sent_total", Counter, None, "MQTT packets of any type sent by the broker.";
    MessagesInflight = "mqtt_broker_messages_inflight", Gauge, None, "QoS>0 messages awaiting acknowledgement (mosquitto before 1.5).";
    PublishReceived = "mqtt_broker_publish_messages_received_total", Counter, None, "PUBLISH messages received by the broker.";
    PublishSent = "mqtt_broker_publish_messages_sent_total", Counter, None, "PUBLISH messages sent by the broker.";
    PublishDropped = "mqtt_broker_publish_messages_dropped_total", Counter, None, "PUBLISH messages dropped by the broker (queue limits, offline clients).";
    BytesReceived = "mqtt_broker_bytes_received_total", Counter, None, "Bytes received by the broker.";
    BytesSent = "mqtt_broker_bytes_sent_total", Counter, None, "Bytes sent by the broker.";
    PublishBytesReceived = "mqtt_broker_publish_bytes_received_total", Counter, None, "PUBLISH payload bytes received by the broker.";
    PublishBytesSent = "mqtt_broker_publish_bytes_sent_total", Counter, None, "PUBLISH payload bytes sent by the broker.";
    Subscriptions = "mqtt_broker_subscriptions", Gauge, None, "Active subscriptions.";
    SharedSubscriptions = "mqtt_broker_shared_subscriptions", Gauge, None, "Active shared subscriptions.";
    Retained = "mqtt_broker_retained_messages", Gauge, None, "Retained messages held by the broker.";
    Stored = "mqtt_broker_stored_messages", Gauge, None, "Messages held in the broker's message store, including retained and in-flight ones.";
    StoredBytes = "mqtt_broker_stored_messages_bytes", Gauge, None, "Payload bytes held in the broker's message store.";
    Heap = "mqtt_broker_heap_bytes", Gauge, None, "Heap memory in use by the broker (only when built with memory tracking).";
    HeapMaximum = "mqtt_broker_heap_maximum_bytes", Gauge, None, "Largest heap memory use since the broker started.";
    Uptime = "mqtt_broker_uptime_seconds", Gauge, None, "Seconds since the broker started.";
    LoadConnections = "mqtt_broker_load_connections_per_second", Gauge, Some("window"), "Broker's moving average of new connections per second over `window`.";
    LoadSockets = "mqtt_broker_load_sockets_per_second", Gauge, Some("window"), "Broker's moving average of opened sockets per second over `window`.";
    LoadBytesReceived = "mqtt_broker_load_bytes_received_per_second", Gauge, Some("window"), "Broker's moving average of bytes received per second over `window`.";
    LoadBytesSent = "mqtt_broker_load_bytes_sent_per_second", Gauge, Some("window"), "Broker's moving average of bytes sent per second over `window`.";
    LoadMessagesReceived = "mqtt_broker_load_messages_received_per_second", Gauge, Some("window"), "Broker's moving average of packets received per second over `window`.";
    LoadMessagesSent = "mqtt_broker_load_messages_sent_per_second", Gauge, Some("window"), "Broker's moving average of packets sent per second over `window`.";
    LoadPublishReceived = "mqtt_broker_load_publish_received_per_second", Gauge, Some("window"), "Broker's moving average of PUBLISH received per second over `window`.";
    LoadPublishSent = "mqtt_broker_load_publish_sent_per_second", Gauge, Some("window"), "Broker's moving average of PUBLISH sent per second over `window`.";
    LoadPublishDropped = "mqtt_broker_load_publish_dropped_per_second", Gauge, Some("window"), "Broker's moving average of PUBLISH dropped per second over `window`.";
    BridgeUp = "mqtt_broker_bridge_up", Gauge, Some("bridge"), "1 if the broker reports the bridge connected, 0 if not.";
    SysValue = "mqtt_broker_sys_value", Gauge, Some("topic"), "Numeric $SYS topics no profile knows, by full topic (capped by sys.max_series).";
}

/// A resolved profile: relative topic → target.
#[derive(Debug)]
pub struct Profile {
    pub name: &'static str,
    topics: HashMap<String, Target>,
    /// `connection/<name>/state` style bridge topics: (prefix, suffix) around the name.
    bridge: Option<(&'static str, &'static str)>,
}

impl Profile {
    pub fn for_name(name: ProfileName) -> Profile {
        match name {
            // `auto` has one concrete profile to choose from today; when a broker's layout
            // does not match, its topics still appear as `mqtt_broker_sys_value`.
            ProfileName::Auto | ProfileName::Mosquitto => mosquitto(),
            ProfileName::Generic => Profile {
                name: "generic",
                topics: HashMap::new(),
                bridge: None,
            },
        }
    }

    /// Map a topic relative to the `$SYS` prefix. `None` means "not in this profile".
    pub fn lookup<'t>(&self, rel: &'t str) -> Option<(Target, Option<&'t str>)> {
        if let Some(t) = self.topics.get(rel) {
            return Some((t.clone(), None));
        }
        let (pre, suf) = self.bridge?;
        let name = rel.strip_prefix(pre)?.strip_suffix(suf)?;
        if name.is_empty() || name.contains('/') {
            return None;
        }
        Some((Target::Bridge, Some(name)))
    }

    /// Every relative topic this profile maps (for documentation and tests).
    pub fn topics(&self) -> impl Iterator<Item = (&str, &Target)> {
        self.topics.iter().map(|(k, v)| (k.as_str(), v))
    }
}

fn mosquitto() -> Profile {
    let mut t: HashMap<String, Target> = HashMap::new();
    let mut v = |topic: &str, family: F, parser: Parser| {
        t.insert(
            topic.to_owned(),
            Target::Value {
                family: family as usize,
                label: None,
                parser,
            },
        );
    };
    let n = Parser::Number { scale: 1.0 };
    let c = Parser::Counter;
    // mosquitto(8), 1.6 through 2.1. Deprecated names fold into the current metric.
    v("broker/clients/connected", F::ClientsConnected, n);
    v("broker/clients/active", F::ClientsConnected, n); // deprecated alias
    v("broker/clients/disconnected", F::ClientsDisconnected, n);
    v("broker/clients/inactive", F::ClientsDisconnected, n); // deprecated alias
    v("broker/clients/total", F::ClientsRegistered, n);
    v("broker/clients/maximum", F::ClientsMaximum, n);
    v("broker/clients/expired", F::ClientsExpired, c);
    v("broker/messages/received", F::MessagesReceived, c);
    v("broker/messages/sent", F::MessagesSent, c);
    v("broker/messages/inflight", F::MessagesInflight, n);
    v("broker/messages/stored", F::Stored, n); // deprecated alias of store/messages/count
    v("broker/store/messages/count", F::Stored, n);
    v("broker/store/messages/bytes", F::StoredBytes, n);
    v("broker/publish/messages/received", F::PublishReceived, c);
    v("broker/publish/messages/sent", F::PublishSent, c);
    v("broker/publish/messages/dropped", F::PublishDropped, c);
    v("broker/publish/bytes/received", F::PublishBytesReceived, c);
    v("broker/publish/bytes/sent", F::PublishBytesSent, c);
    v("broker/bytes/received", F::BytesReceived, c);
    v("broker/bytes/sent", F::BytesSent, c);
    v("broker/subscriptions/count", F::Subscriptions, n);
    v(
        "broker/shared_subscriptions/count",
        F::SharedSubscriptions,
        n,
    );
    v("broker/retained messages/count", F::Retained, n); // the space is mosquitto's
    v("broker/heap/current", F::Heap, n);
    v("broker/heap/current size", F::Heap, n); // 1.4/1.5 spelling
    v("broker/heap/maximum", F::HeapMaximum, n);
    v("broker/heap/maximum size", F::HeapMaximum, n);
    v("broker/uptime", F::Uptime, Parser::Seconds);
    let loads = [
        ("connections", F::LoadConnections),
        ("sockets", F::LoadSockets),
        ("bytes/received", F::LoadBytesReceived),
        ("bytes/sent", F::LoadBytesSent),
        ("messages/received", F::LoadMessagesReceived),
        ("messages/sent", F::LoadMessagesSent),
        ("publish/received", F::LoadPublishReceived),
        ("publish/sent", F::LoadPublishSent),
        ("publish/dropped", F::LoadPublishDropped),
    ];
    for (what, family) in loads {
        for (suffix, window) in [("1min", "1m"), ("5min", "5m"), ("15min", "15m")] {
            t.insert(
                format!("broker/load/{what}/{suffix}"),
                Target::Value {
                    family: family as usize,
                    label: Some(window),
                    // mosquitto reports "per minute, averaged over the window"
                    parser: Parser::Number { scale: 1.0 / 60.0 },
                },
            );
        }
    }
    t.insert("broker/version".into(), Target::Version);
    t.insert("broker/timestamp".into(), Target::Ignore); // build time, 1.x
    t.insert("broker/changeset".into(), Target::Ignore); // source revision, 1.x
    Profile {
        name: "mosquitto",
        topics: t,
        bridge: Some(("broker/connection/", "/state")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_well_named() {
        for f in FAMILIES {
            assert!(f.name.starts_with("mqtt_broker_"), "{}", f.name);
            match f.kind {
                Kind::Counter => assert!(f.name.ends_with("_total"), "{}", f.name),
                Kind::Gauge => assert!(!f.name.ends_with("_total"), "{}", f.name),
            }
            assert!(!f.help.is_empty() && !f.help.contains('"'));
        }
        assert_eq!(FAMILIES[F::SysValue as usize].name, "mqtt_broker_sys_value");
    }

    #[test]
    fn every_captured_mosquitto_topic_is_mapped() {
        let p = Profile::for_name(ProfileName::Mosquitto);
        let capture = include_str!("../../tests/fixtures/mosquitto-2.0.11-sys.tsv");
        for line in capture.lines() {
            let topic = line.split_once('\t').unwrap().0;
            let rel = topic.strip_prefix("$SYS/").unwrap();
            assert!(p.lookup(rel).is_some(), "{topic} is not mapped");
        }
    }

    #[test]
    fn bridges_and_misses() {
        let p = Profile::for_name(ProfileName::Mosquitto);
        assert_eq!(
            p.lookup("broker/connection/cloud-bridge/state"),
            Some((Target::Bridge, Some("cloud-bridge")))
        );
        assert_eq!(p.lookup("broker/connection//state"), None);
        assert_eq!(p.lookup("broker/connection/a/b/state"), None);
        assert_eq!(p.lookup("broker/something/new"), None);
        let g = Profile::for_name(ProfileName::Generic);
        assert_eq!(g.lookup("broker/uptime"), None);
    }
}
