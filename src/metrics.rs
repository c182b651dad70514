//! Every metric handle the process owns, created and registered in one place. No statics:
//! `app` builds one [`Metrics`] per registry and hands each broker task its [`BrokerMetrics`]
//! (cheap clones of atomic handles, so the hot path does no map lookups).
//!
//! Broker `$SYS` values are not here: they are encoded at scrape time by `sys::SysCollector`.

use crate::sys::IngestCounters;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabels {
    pub broker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectLabels {
    pub broker: String,
    /// Bounded: `success`, a v5 reason-code name, or `timeout|refused|tls|dns|error`.
    pub result: &'static str,
}

#[derive(Debug, Default)]
pub struct Metrics {
    up: Family<BrokerLabels, Gauge>,
    connects: Family<ConnectLabels, Counter>,
    sys_messages: Family<BrokerLabels, Counter>,
    sys_parse_errors: Family<BrokerLabels, Counter>,
    sys_series_dropped: Family<BrokerLabels, Counter>,
    messages_dropped: Family<BrokerLabels, Counter>,
    capacity_max_connections: Family<BrokerLabels, Gauge>,
}

/// The version this binary was built from (`git describe` when built from a checkout).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("MQTT_SENTINEL_REVISION");

impl Metrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self::default();
        reg.register(
            "mqtt_up",
            "1 while the MQTT session to the broker is up, 0 otherwise",
            m.up.clone(),
        );
        reg.register(
            "mqtt_connects",
            "Connection attempts to the broker by result (success, v5 reason-code name, timeout, refused, tls, dns, error)",
            m.connects.clone(),
        );
        reg.register(
            "mqtt_sentinel_sys_messages",
            "$SYS messages received from the broker",
            m.sys_messages.clone(),
        );
        reg.register(
            "mqtt_sentinel_sys_parse_errors",
            "$SYS messages whose payload was not a valid value (not exported, never read as 0)",
            m.sys_parse_errors.clone(),
        );
        reg.register(
            "mqtt_sentinel_sys_series_dropped",
            "$SYS updates refused because the broker-labelled series cap (sys.max_series) was reached",
            m.sys_series_dropped.clone(),
        );
        reg.register(
            "mqtt_sentinel_messages_dropped",
            "Messages dropped in the MQTT callback because the broker task's queue was full",
            m.messages_dropped.clone(),
        );
        reg.register(
            "mqtt_sentinel_capacity_max_connections",
            "Configured connection capacity of the broker (capacity.max_connections), for capacity alerts",
            m.capacity_max_connections.clone(),
        );
        reg.register(
            "mqtt_sentinel_build",
            "Version and git revision of mqtt-sentinel",
            Info::new(vec![("version", VERSION), ("revision", REVISION)]),
        );
        m
    }

    /// Handles for one broker. Creating them makes the series exist (at 0) from the start,
    /// so `mqtt_up 0` is visible before the first connection attempt ends.
    pub fn broker(&self, name: &str, max_connections: Option<u64>) -> BrokerMetrics {
        let l = BrokerLabels {
            broker: name.to_owned(),
        };
        if let Some(max) = max_connections {
            self.capacity_max_connections
                .get_or_create(&l)
                .set(i64::try_from(max).unwrap_or(i64::MAX));
        }
        BrokerMetrics {
            name: name.to_owned(),
            up: self.up.get_or_create(&l).clone(),
            connects: self.connects.clone(),
            messages_dropped: self.messages_dropped.get_or_create(&l).clone(),
            ingest: IngestCounters {
                messages: self.sys_messages.get_or_create(&l).clone(),
                parse_errors: self.sys_parse_errors.get_or_create(&l).clone(),
                series_dropped: self.sys_series_dropped.get_or_create(&l).clone(),
            },
        }
    }
}

/// One broker's handles; clones share the same atomics.
#[derive(Debug, Clone)]
pub struct BrokerMetrics {
    name: String,
    pub up: Gauge,
    connects: Family<ConnectLabels, Counter>,
    pub messages_dropped: Counter,
    pub ingest: IngestCounters,
}

impl BrokerMetrics {
    pub fn record_connect(&self, result: &'static str) {
        self.connects
            .get_or_create(&ConnectLabels {
                broker: self.name.clone(),
                result,
            })
            .inc();
    }
}
