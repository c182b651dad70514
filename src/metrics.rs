//! Every metric handle the process owns, created and registered in one place. No statics:
//! `app` builds one [`Metrics`] per registry and hands each broker task its [`BrokerMetrics`]
//! (cheap clones of atomic handles, so the hot path does no map lookups).
//!
//! Broker `$SYS` values are not here: they are encoded at scrape time by `sys::SysCollector`.
//!
//! Every family with a `broker` label is a [`PerBroker`] family, made and registered by
//! [`PerBrokerRegistrar::family`], which also enrols it for [`Metrics::forget_broker`]: a
//! broker removed by a reload loses its series in every such family by construction, with no
//! list of families or label values to keep up to date. Closed label sets are the types of
//! [`labels`].

pub mod labels;
mod per_broker;

use crate::config::{Capacity, Qos};
use crate::sys::IngestCounters;
pub use labels::{MqttVersion, NotificationResult, Reason};
pub use per_broker::{BrokerLabelled, PerBroker, Retired};
use per_broker::{ForgetBroker, PerBrokerRegistrar, lock};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DisconnectLabels {
    pub broker: String,
    /// A v5 reason-code name, `connection_lost` or `unresponsive`.
    pub reason: Reason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub broker: String,
    pub protocol: MqttVersion,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabels {
    pub broker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectLabels {
    pub broker: String,
    /// `success`, a v5 reason-code name, or a transport outcome (`timeout`, `refused`, …).
    pub result: Reason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QosLabels {
    pub broker: String,
    pub qos: Qos,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub broker: String,
    pub probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub broker: String,
    pub probe: String,
    /// v5 reason-code names or a small closed set (timeout, not_connected, …).
    pub reason: Reason,
}

/// A bridge probe's series: `broker` publishes, `remote` receives.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BridgeLabels {
    pub broker: String,
    pub remote: String,
    pub probe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BridgeReasonLabels {
    pub broker: String,
    pub remote: String,
    pub probe: String,
    pub reason: Reason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthLabels {
    pub broker: String,
    pub state: Health,
}

macro_rules! broker_labelled {
    ($($t:ty),* $(,)?) => {$(
        impl BrokerLabelled for $t {
            fn broker(&self) -> &str {
                &self.broker
            }
        }
    )*};
}
broker_labelled!(
    BrokerLabels,
    DisconnectLabels,
    ProtocolLabels,
    ConnectLabels,
    QosLabels,
    ProbeLabels,
    ReasonLabels,
    HealthLabels,
    BridgeLabels,
    BridgeReasonLabels,
);

/// `"0"`, `"1"` or `"2"`, as [`Qos::label`] says.
impl EncodeLabelValue for Qos {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.label())
    }
}

/// Latency buckets from 50 µs (a loopback round trip) to 10 s (a probe timeout).
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Will delivery bounds (seconds): [`LATENCY_BUCKETS`], then up to 5 minutes. A will is
/// published when its Will Delay Interval passes (MQTT 5.0 §3.1.3.2.2), which can be minutes;
/// a delivery past the last latency bound (10 s) would otherwise only count in `+Inf`.
pub const WILL_DELIVERY_BUCKETS: [f64; 21] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

fn will_delivery_histogram() -> Histogram {
    Histogram::new(WILL_DELIVERY_BUCKETS)
}

type Histograms<L> = PerBroker<L, Histogram>;

/// Broker health derived from the probes, exported as a state set (the `state` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    Healthy,
    Degraded,
    Down,
}

impl Health {
    pub const ALL: [Health; 3] = [Health::Healthy, Health::Degraded, Health::Down];
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}
labels::label_value!(Health);

#[derive(Debug)]
pub struct Metrics {
    up: PerBroker<BrokerLabels, Gauge>,
    connection_info: PerBroker<ProtocolLabels, Gauge>,
    connects: PerBroker<ConnectLabels, Counter>,
    disconnects: PerBroker<DisconnectLabels, Counter>,
    sys_messages: PerBroker<BrokerLabels, Counter>,
    sys_parse_errors: PerBroker<BrokerLabels, Counter>,
    sys_series_dropped: PerBroker<BrokerLabels, Counter>,
    sys_values_refused: PerBroker<BrokerLabels, Counter>,
    sys_unmapped_text: PerBroker<BrokerLabels, Counter>,
    messages_dropped: PerBroker<BrokerLabels, Counter>,
    capacity_max_connections: PerBroker<BrokerLabels, Gauge>,
    capacity_max_heap_bytes: PerBroker<BrokerLabels, Gauge>,
    probe_rtt: Histograms<QosLabels>,
    probe_ack: Histograms<QosLabels>,
    probe_sent: PerBroker<ProbeLabels, Counter>,
    probe_received: PerBroker<ProbeLabels, Counter>,
    probe_lost: PerBroker<ProbeLabels, Counter>,
    probe_duplicates: PerBroker<ProbeLabels, Counter>,
    probe_out_of_order: PerBroker<ProbeLabels, Counter>,
    probe_ignored: PerBroker<ReasonLabels, Counter>,
    probe_success: PerBroker<ProbeLabels, Gauge>,
    probe_errors: PerBroker<ReasonLabels, Counter>,
    connect_duration: Histograms<BrokerLabels>,
    will_delivery: Histograms<ProbeLabels>,
    health: PerBroker<HealthLabels, Gauge>,
    bridge: BridgeFamilies,
    /// Every per-broker family above, for [`Self::forget_broker`].
    per_broker: Vec<Arc<dyn ForgetBroker>>,
    /// The marker of the handles made for each broker (see [`Retired`]).
    retired: Mutex<HashMap<String, Retired>>,
    pub reload_successful: Gauge,
    pub reload_success_time: Gauge<f64, AtomicU64>,
    pub web_reload_successful: Gauge,
}

/// The version this binary was built from (`git describe` when built from a checkout).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("MQTT_SENTINEL_REVISION");

impl Metrics {
    /// Make every metric and register it in `reg`.
    pub fn register(reg: &mut Registry) -> Self {
        let mut r = PerBrokerRegistrar {
            reg,
            families: Vec::new(),
        };
        let up = r.family(
            "mqtt_up",
            "1 while the MQTT session to the broker is up, 0 otherwise",
            Gauge::default,
        );
        let connection_info = r.family(
            "mqtt_connection_info",
            "1 for the MQTT protocol version (5 or 3.1.1) of the current or last session; protocol: auto settles on 3.1.1 when a broker refuses 5",
            Gauge::default,
        );
        let disconnects = r.family(
            "mqtt_disconnects",
            "Sessions that ended other than by our shutdown, by reason (v5 DISCONNECT reason-code name such as session_taken_over, connection_lost, unresponsive)",
            Counter::default,
        );
        let connects = r.family(
            "mqtt_connects",
            "Connection attempts to the broker by result (success, v5 reason-code name, timeout, refused, tls, dns, error)",
            Counter::default,
        );
        let sys_messages = r.family(
            "mqtt_sentinel_sys_messages",
            "$SYS messages received from the broker",
            Counter::default,
        );
        let sys_parse_errors = r.family(
            "mqtt_sentinel_sys_parse_errors",
            "$SYS messages on a topic the profile maps whose payload was not a valid value (not exported, never read as 0)",
            Counter::default,
        );
        let sys_series_dropped = r.family(
            "mqtt_sentinel_sys_series_dropped",
            "$SYS updates refused because the broker-labelled series cap (sys.max_series) was reached or the topic fans out over an unbounded key such as a client id",
            Counter::default,
        );
        let sys_values_refused = r.family(
            "mqtt_sentinel_sys_values_refused",
            "$SYS values outside their metric's range (a negative count, a wrapped unsigned -1); the previous value is kept",
            Counter::default,
        );
        let sys_unmapped_text = r.family(
            "mqtt_sentinel_sys_unmapped_text",
            "$SYS messages on topics no profile entry maps or ignores whose payload is not a number (not exported)",
            Counter::default,
        );
        let messages_dropped = r.family(
            "mqtt_sentinel_messages_dropped",
            "Messages dropped in the MQTT callback because the broker task's queue was full",
            Counter::default,
        );
        let capacity_max_connections = r.family(
            "mqtt_sentinel_capacity_max_connections",
            "Configured connection capacity of the broker (capacity.max_connections), for capacity alerts",
            Gauge::default,
        );
        let capacity_max_heap_bytes = r.family(
            "mqtt_sentinel_capacity_max_heap_bytes",
            "Configured memory limit of the broker (capacity.max_heap_bytes), for heap alerts",
            Gauge::default,
        );
        let probe_rtt = r.family(
            "mqtt_probe_rtt_seconds",
            "Publish-to-self round trip: publish call to receipt in the MQTT callback",
            latency_histogram,
        );
        let probe_ack = r.family(
            "mqtt_probe_ack_seconds",
            "Publish call to PUBACK (QoS 1) or PUBCOMP (QoS 2) of a round-trip probe",
            latency_histogram,
        );
        let probe_sent = r.family(
            "mqtt_probe_sent",
            "Round-trip probes published",
            Counter::default,
        );
        let probe_received = r.family(
            "mqtt_probe_received",
            "Round-trip probes that came back in time",
            Counter::default,
        );
        let probe_lost = r.family(
            "mqtt_probe_lost",
            "Round-trip probes not back within their timeout (or when the session ended)",
            Counter::default,
        );
        let probe_duplicates = r.family(
            "mqtt_probe_duplicates",
            "Round-trip probes received more than once",
            Counter::default,
        );
        let probe_out_of_order = r.family(
            "mqtt_probe_out_of_order",
            "Round-trip probes received after a newer one",
            Counter::default,
        );
        let probe_ignored = r.family(
            "mqtt_probe_ignored",
            "Messages on a probe topic that were not counted: foreign (other sender or run) or late (after their timeout)",
            Counter::default,
        );
        let probe_success = r.family(
            "mqtt_probe_success",
            "1 if the probe's last run succeeded in time, 0 otherwise",
            Gauge::default,
        );
        let probe_errors = r.family(
            "mqtt_probe_errors",
            "Failed probe runs by reason (v5 reason-code name, timeout, refused, tls, dns, not_connected, not_delivered, mismatch, session_not_present, duplicate, unexpected_will, error)",
            Counter::default,
        );
        let connect_duration = r.family(
            "mqtt_connect_duration_seconds",
            "Connect probe: TCP (+TLS) + CONNECT/CONNACK of a fresh client",
            latency_histogram,
        );
        let will_delivery = r.family(
            "mqtt_will_delivery_seconds",
            "Will probe: from closing a client's socket without DISCONNECT to receiving its will (includes the will delay)",
            will_delivery_histogram,
        );
        let health = r.family(
            "mqtt_probe_health",
            "Broker health from the probes as a state set: healthy, degraded (round trip above degraded_rtt) or down",
            Gauge::default,
        );
        let bridge = BridgeFamilies {
            success: r.family(
                "mqtt_bridge_probe_success",
                "1 if the bridge probe's last message published on broker arrived on remote in time, 0 otherwise",
                Gauge::default,
            ),
            sent: r.family(
                "mqtt_bridge_probe_sent",
                "Bridge probe messages published on broker",
                Counter::default,
            ),
            received: r.family(
                "mqtt_bridge_probe_received",
                "Bridge probe messages that arrived on remote in time",
                Counter::default,
            ),
            lost: r.family(
                "mqtt_bridge_probe_lost",
                "Bridge probe messages not on remote within their timeout (or when broker's session ended)",
                Counter::default,
            ),
            duplicates: r.family(
                "mqtt_bridge_probe_duplicates",
                "Bridge probe messages that arrived on remote more than once",
                Counter::default,
            ),
            out_of_order: r.family(
                "mqtt_bridge_probe_out_of_order",
                "Bridge probe messages that arrived on remote after a newer one",
                Counter::default,
            ),
            ignored: r.family(
                "mqtt_bridge_probe_ignored",
                "Messages on a bridge probe's remote topic that were not counted: foreign (other sender or run) or late (after their timeout)",
                Counter::default,
            ),
            errors: r.family(
                "mqtt_bridge_probe_errors",
                "Failed bridge probe runs by reason (not_delivered, remote_not_connected, timeout, v5 reason-code name of a refused publish)",
                Counter::default,
            ),
            delivery: r.family(
                "mqtt_bridge_delivery_seconds",
                "Bridge probe: publish call on broker to receipt in remote's MQTT callback (one way, one clock)",
                latency_histogram,
            ),
        };
        let m = Self {
            up,
            connection_info,
            disconnects,
            connects,
            sys_messages,
            sys_parse_errors,
            sys_series_dropped,
            sys_values_refused,
            sys_unmapped_text,
            messages_dropped,
            capacity_max_connections,
            capacity_max_heap_bytes,
            probe_rtt,
            probe_ack,
            probe_sent,
            probe_received,
            probe_lost,
            probe_duplicates,
            probe_out_of_order,
            probe_ignored,
            probe_success,
            probe_errors,
            connect_duration,
            will_delivery,
            health,
            bridge,
            per_broker: r.families,
            retired: Mutex::default(),
            reload_successful: Gauge::default(),
            reload_success_time: Gauge::default(),
            web_reload_successful: Gauge::default(),
        };
        r.reg.register(
            "mqtt_sentinel_config_last_reload_successful",
            "1 if the last configuration reload (SIGHUP, POST /-/reload) succeeded or none was tried, 0 if it failed and the previous configuration is still in use",
            m.reload_successful.clone(),
        );
        m.reload_successful.set(1);
        r.reg.register(
            "mqtt_sentinel_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load (start or reload)",
            m.reload_success_time.clone(),
        );
        r.reg.register(
            "mqtt_sentinel_web_config_last_reload_successful",
            "1 if the web config file (TLS, basic auth) loaded when it last changed, 0 if it does not load and the previous one is in use",
            m.web_reload_successful.clone(),
        );
        r.reg.register(
            "mqtt_sentinel_build",
            "Version and git revision of mqtt-sentinel",
            Info::new(vec![("version", VERSION), ("revision", REVISION)]),
        );
        m
    }

    /// Handles for one broker. Creating them makes the series exist (at 0) from the start,
    /// so `mqtt_up 0` is visible before the first connection attempt ends.
    pub fn broker(&self, name: &str, capacity: &Capacity) -> BrokerMetrics {
        let l = BrokerLabels {
            broker: name.to_owned(),
        };
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        if let Some(max) = capacity.max_connections {
            self.capacity_max_connections
                .get_or_create(&l)
                .set(as_i64(max));
        }
        if let Some(max) = capacity.max_heap_bytes {
            self.capacity_max_heap_bytes
                .get_or_create(&l)
                .set(as_i64(max));
        }
        BrokerMetrics {
            health: HealthHandle {
                gauges: Health::ALL.map(|state| {
                    self.health.get_or_create(&HealthLabels {
                        broker: name.to_owned(),
                        state,
                    })
                }),
            },
            name: name.to_owned(),
            retired: self.retired(name),
            up: self.up.get_or_create(&l),
            connection_info: self.connection_info.clone(),
            connects: self.connects.clone(),
            disconnects: self.disconnects.clone(),
            messages_dropped: self.messages_dropped.get_or_create(&l),
            ingest: IngestCounters {
                messages: self.sys_messages.get_or_create(&l),
                parse_errors: self.sys_parse_errors.get_or_create(&l),
                series_dropped: self.sys_series_dropped.get_or_create(&l),
                values_refused: self.sys_values_refused.get_or_create(&l),
                unmapped_text: self.sys_unmapped_text.get_or_create(&l),
            },
        }
    }
}

/// A probe's label set, which names one probe's series, and the same with a `reason` label
/// for its failed runs and ignored messages.
pub trait WithReason: Clone + Hash + Eq + std::fmt::Debug {
    /// The label set of `*_errors_total` and `*_ignored_total`: these labels + `reason`.
    type Reasoned: Clone + Hash + Eq + std::fmt::Debug;
    /// These labels with `reason`.
    fn with_reason(&self, reason: Reason) -> Self::Reasoned;
}

impl WithReason for ProbeLabels {
    type Reasoned = ReasonLabels;
    fn with_reason(&self, reason: Reason) -> ReasonLabels {
        ReasonLabels {
            broker: self.broker.clone(),
            probe: self.probe.clone(),
            reason,
        }
    }
}

impl WithReason for BridgeLabels {
    type Reasoned = BridgeReasonLabels;
    fn with_reason(&self, reason: Reason) -> BridgeReasonLabels {
        BridgeReasonLabels {
            broker: self.broker.clone(),
            remote: self.remote.clone(),
            probe: self.probe.clone(),
            reason,
        }
    }
}

/// Handles every probe has, over its label set `L`: the success gauge, and failed runs and
/// ignored messages counted by reason (`mqtt_probe_*` with [`ProbeLabels`],
/// `mqtt_bridge_probe_*` with [`BridgeLabels`]). Reason series are made on first use, and
/// never once the broker is forgotten ([`Retired`]).
#[derive(Debug, Clone)]
pub struct ProbeCounters<L: WithReason> {
    labels: L,
    retired: Retired,
    pub success: Gauge,
    ignored: PerBroker<L::Reasoned, Counter>,
    errors: PerBroker<L::Reasoned, Counter>,
}

impl<L: WithReason> ProbeCounters<L> {
    /// The handles of `labels` in the families `success`, `ignored` and `errors`.
    fn new(
        labels: L,
        retired: Retired,
        success: &PerBroker<L, Gauge>,
        ignored: &PerBroker<L::Reasoned, Counter>,
        errors: &PerBroker<L::Reasoned, Counter>,
    ) -> Self {
        Self {
            success: success.get_or_create(&labels),
            ignored: ignored.clone(),
            errors: errors.clone(),
            labels,
            retired,
        }
    }
    /// A failed run: success 0 and the reason counted.
    pub fn record_failure(&self, reason: Reason) {
        self.success.set(0);
        self.errors
            .inc(&self.labels.with_reason(reason), &self.retired);
    }
    /// A message on the probe's topic that was not counted (`late`, `foreign`).
    pub fn record_ignored(&self, reason: Reason) {
        self.ignored
            .inc(&self.labels.with_reason(reason), &self.retired);
    }
}

/// Handles every probe kind on one broker has (`mqtt_probe_success`, `_errors_total`,
/// `_ignored_total`).
pub type ProbeMetrics = ProbeCounters<ProbeLabels>;

/// Handles of a round-trip probe.
#[derive(Debug, Clone)]
pub struct RoundtripMetrics {
    pub base: ProbeMetrics,
    pub rtt: Histogram,
    /// `None` at QoS 0, which has no acknowledgement.
    pub ack: Option<Histogram>,
    pub sent: Counter,
    pub received: Counter,
    pub lost: Counter,
    pub duplicates: Counter,
    pub out_of_order: Counter,
}

/// The families of bridge probes (`mqtt_bridge_*`), apart from `mqtt_probe_*`: a bridge
/// probe is about the path between two brokers, not the health of the one it publishes on.
#[derive(Debug)]
struct BridgeFamilies {
    success: PerBroker<BridgeLabels, Gauge>,
    sent: PerBroker<BridgeLabels, Counter>,
    received: PerBroker<BridgeLabels, Counter>,
    lost: PerBroker<BridgeLabels, Counter>,
    duplicates: PerBroker<BridgeLabels, Counter>,
    out_of_order: PerBroker<BridgeLabels, Counter>,
    ignored: PerBroker<BridgeReasonLabels, Counter>,
    errors: PerBroker<BridgeReasonLabels, Counter>,
    delivery: Histograms<BridgeLabels>,
}

/// Handles of one bridge probe (`broker` publishes, `remote` receives); created at 0.
#[derive(Debug, Clone)]
pub struct BridgeMetrics {
    /// `mqtt_bridge_probe_success`, `_errors_total`, `_ignored_total`.
    pub base: ProbeCounters<BridgeLabels>,
    pub sent: Counter,
    pub received: Counter,
    pub lost: Counter,
    pub duplicates: Counter,
    pub out_of_order: Counter,
    /// One-way time: publish call on `broker` to the callback on `remote`.
    pub delivery: Histogram,
}

impl Metrics {
    /// Handles of bridge probe `probe` from `broker` to `remote`.
    pub fn bridge(&self, broker: &str, remote: &str, probe: &str) -> BridgeMetrics {
        let l = BridgeLabels {
            broker: broker.to_owned(),
            remote: remote.to_owned(),
            probe: probe.to_owned(),
        };
        let f = &self.bridge;
        BridgeMetrics {
            sent: f.sent.get_or_create(&l),
            received: f.received.get_or_create(&l),
            lost: f.lost.get_or_create(&l),
            duplicates: f.duplicates.get_or_create(&l),
            out_of_order: f.out_of_order.get_or_create(&l),
            delivery: f.delivery.get_or_create(&l),
            base: ProbeCounters::new(l, self.retired(broker), &f.success, &f.ignored, &f.errors),
        }
    }
}

/// The broker's health state set: exactly one of the three gauges is 1.
#[derive(Debug, Clone)]
pub struct HealthHandle {
    gauges: [Gauge; 3],
}

impl HealthHandle {
    pub fn set(&self, h: Health) {
        for (g, s) in self.gauges.iter().zip(Health::ALL) {
            g.set(i64::from(s == h));
        }
    }
}

/// One broker's handles; clones share the same atomics.
#[derive(Debug, Clone)]
pub struct BrokerMetrics {
    name: String,
    retired: Retired,
    pub health: HealthHandle,
    pub up: Gauge,
    connection_info: PerBroker<ProtocolLabels, Gauge>,
    connects: PerBroker<ConnectLabels, Counter>,
    disconnects: PerBroker<DisconnectLabels, Counter>,
    pub messages_dropped: Counter,
    pub ingest: IngestCounters,
}

impl Metrics {
    /// Handles any probe kind needs.
    pub fn probe(&self, broker: &str, probe: &str) -> ProbeMetrics {
        let pl = ProbeLabels {
            broker: broker.to_owned(),
            probe: probe.to_owned(),
        };
        ProbeCounters::new(
            pl,
            self.retired(broker),
            &self.probe_success,
            &self.probe_ignored,
            &self.probe_errors,
        )
    }

    /// Remove every series of broker `name` (a reload removed or replaced it): no stale
    /// `mqtt_up{broker="gone"} 0` forever. Every per-broker family is enrolled when it is
    /// made (see [`PerBrokerRegistrar`]), so none can be missed.
    pub fn forget_broker(&self, name: &str) {
        if let Some(r) = lock(&self.retired).remove(name) {
            r.set();
        }
        for f in &self.per_broker {
            f.forget(name);
        }
    }

    /// The marker of the handles made for `broker` until it is forgotten.
    fn retired(&self, broker: &str) -> Retired {
        lock(&self.retired)
            .entry(broker.to_owned())
            .or_default()
            .clone()
    }

    /// Handles of a round-trip probe at `qos`.
    pub fn roundtrip(&self, broker: &str, probe: &str, qos: Qos) -> RoundtripMetrics {
        let pl = ProbeLabels {
            broker: broker.to_owned(),
            probe: probe.to_owned(),
        };
        let ql = QosLabels {
            broker: broker.to_owned(),
            qos,
        };
        RoundtripMetrics {
            base: self.probe(broker, probe),
            rtt: self.probe_rtt.get_or_create(&ql),
            ack: (qos != Qos::AtMostOnce).then(|| self.probe_ack.get_or_create(&ql)),
            sent: self.probe_sent.get_or_create(&pl),
            received: self.probe_received.get_or_create(&pl),
            lost: self.probe_lost.get_or_create(&pl),
            duplicates: self.probe_duplicates.get_or_create(&pl),
            out_of_order: self.probe_out_of_order.get_or_create(&pl),
        }
    }

    /// The will-delivery histogram of will probe `probe` of `broker`.
    pub fn will_delivery(&self, broker: &str, probe: &str) -> Histogram {
        self.will_delivery.get_or_create(&ProbeLabels {
            broker: broker.to_owned(),
            probe: probe.to_owned(),
        })
    }

    /// The connect-probe latency histogram of `broker`.
    pub fn connect_duration(&self, broker: &str) -> Histogram {
        self.connect_duration.get_or_create(&BrokerLabels {
            broker: broker.to_owned(),
        })
    }
}

impl BrokerMetrics {
    /// The session that just started speaks `version`: its `mqtt_connection_info` series is
    /// 1, the other one is removed.
    pub fn set_protocol(&self, version: MqttVersion) {
        for &p in MqttVersion::ALL {
            let l = ProtocolLabels {
                broker: self.name.clone(),
                protocol: p,
            };
            if p == version {
                self.connection_info.update(&l, &self.retired, |g| {
                    g.set(1);
                });
            } else {
                self.connection_info.remove(&l);
            }
        }
    }

    /// A session ended for `reason` (not our shutdown).
    pub fn record_disconnect(&self, reason: Reason) {
        let labels = DisconnectLabels {
            broker: self.name.clone(),
            reason,
        };
        self.disconnects.inc(&labels, &self.retired);
    }

    /// A connection attempt ended with `result`.
    pub fn record_connect(&self, result: Reason) {
        let labels = ConnectLabels {
            broker: self.name.clone(),
            result,
        };
        self.connects.inc(&labels, &self.retired);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleGroupLabels {
    pub rule_group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub receiver: String,
    pub result: NotificationResult,
}

/// Rule evaluation and notification delivery (issue 4). Alerts themselves are exported at
/// scrape time by `rules::manager::AlertsCollector`.
#[derive(Clone, Debug)]
pub struct RulesMetrics {
    pub evaluations: Family<RuleGroupLabels, Counter>,
    pub evaluation_failures: Family<RuleGroupLabels, Counter>,
    pub evaluation_duration: Family<RuleGroupLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub history_samples: Gauge,
    pub notifications: Family<NotificationLabels, Counter>,
    pub queue_length: Family<ReceiverLabels, Gauge>,
}

impl RulesMetrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = RulesMetrics {
            evaluations: Family::default(),
            evaluation_failures: Family::default(),
            evaluation_duration: Family::default(),
            history_samples: Gauge::default(),
            notifications: Family::default(),
            queue_length: Family::default(),
        };
        reg.register(
            "mqtt_sentinel_rule_evaluations",
            "Rule evaluations by rule group (one per rule per group evaluation)",
            m.evaluations.clone(),
        );
        reg.register(
            "mqtt_sentinel_rule_evaluation_failures",
            "Rule evaluations that failed (see /api/v1/rules for the error)",
            m.evaluation_failures.clone(),
        );
        reg.register_with_unit(
            "mqtt_sentinel_rule_evaluation_duration",
            "How long the last evaluation of the rule group took",
            prometheus_client::registry::Unit::Seconds,
            m.evaluation_duration.clone(),
        );
        reg.register(
            "mqtt_sentinel_rule_history_samples",
            "Samples held in the rule engine's history of our own metrics",
            m.history_samples.clone(),
        );
        reg.register(
            "mqtt_sentinel_notifications",
            "Notifications by receiver and result (success, failure, dropped)",
            m.notifications.clone(),
        );
        reg.register(
            "mqtt_sentinel_notification_queue_length",
            "Notifications waiting to be delivered, by receiver",
            m.queue_length.clone(),
        );
        m
    }

    /// Creates every series of a receiver or rule group at 0, so `increase()` sees the first
    /// failure (a counter that appears at 1 has no increase in Prometheus).
    pub fn init_receiver(&self, receiver: &str) {
        for &result in NotificationResult::ALL {
            let _ = self.notifications.get_or_create(&NotificationLabels {
                receiver: receiver.to_owned(),
                result,
            });
        }
        let _ = self.queue_length.get_or_create(&ReceiverLabels {
            receiver: receiver.to_owned(),
        });
    }

    pub fn init_rule_group(&self, rule_group: &str) {
        let l = RuleGroupLabels {
            rule_group: rule_group.to_owned(),
        };
        let _ = self.evaluations.get_or_create(&l);
        let _ = self.evaluation_failures.get_or_create(&l);
    }

    /// A reload removed the group: its series go too.
    pub fn forget_rule_group(&self, rule_group: &str) {
        let l = RuleGroupLabels {
            rule_group: rule_group.to_owned(),
        };
        self.evaluations.remove(&l);
        self.evaluation_failures.remove(&l);
        self.evaluation_duration.remove(&l);
    }

    pub fn notified(&self, receiver: &str, result: NotificationResult) {
        self.notifications
            .get_or_create(&NotificationLabels {
                receiver: receiver.to_owned(),
                result,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every per-broker handle of `broker`, each series made.
    fn exercise(m: &Metrics, broker: &str) {
        let capacity = Capacity {
            max_connections: Some(1),
            max_heap_bytes: Some(1),
        };
        let b = m.broker(broker, &capacity);
        b.record_connect(Reason::Success);
        b.record_disconnect(Reason::SessionTakenOver);
        b.set_protocol(MqttVersion::V311);
        b.messages_dropped.inc();
        for qos in [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce] {
            let rt = m.roundtrip(broker, &format!("rtt-{}", qos.label()), qos);
            rt.base.record_failure(Reason::NotDelivered);
            rt.base.record_ignored(Reason::Late);
            rt.rtt.observe(0.001);
        }
        m.connect_duration(broker).observe(0.01);
        m.will_delivery(broker, "will").observe(0.01);
        m.probe(broker, "retained").record_failure(Reason::Mismatch);
        let br = m.bridge(broker, "remote", "up");
        br.base.record_failure(Reason::NotDelivered);
        br.base.record_ignored(Reason::Late);
        br.delivery.observe(0.01);
    }

    #[test]
    fn forgetting_a_broker_removes_its_series_from_every_family_and_no_other() {
        let mut reg = Registry::default();
        let m = Metrics::register(&mut reg);
        exercise(&m, "gone");
        exercise(&m, "kept");
        let text = |reg: &Registry| crate::exposition::encode(reg, crate::exposition::Format::Text);
        let before = text(&reg).unwrap_or_default();
        let families = |t: &str, b: &str| -> HashSet<String> {
            t.lines()
                .filter(|l| l.contains(&format!("broker=\"{b}\"")))
                .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
                .collect()
        };
        // A histogram family is three sample names (`_bucket`, `_sum`, `_count`).
        assert_eq!(families(&before, "gone").len(), m.per_broker.len() + 2 * 5);

        let late = (m.broker("gone", &Capacity::default()), m.probe("gone", "p"));
        let late_bridge = m.bridge("gone", "remote", "up");
        m.forget_broker("gone");
        // A task of the removed broker still finishing brings nothing back.
        late.0.record_connect(Reason::Timeout);
        late.0.record_disconnect(Reason::ConnectionLost);
        late.0.set_protocol(MqttVersion::V5);
        late.1.record_failure(Reason::Timeout);
        late.1.record_ignored(Reason::Foreign);
        late_bridge.base.record_failure(Reason::Timeout);
        late_bridge.base.record_ignored(Reason::Foreign);
        let after = text(&reg).unwrap_or_default();
        assert!(families(&after, "gone").is_empty(), "{after}");
        assert_eq!(families(&after, "kept"), families(&before, "kept"));
        // Started again under the same name, it exports again.
        m.broker("gone", &Capacity::default())
            .record_connect(Reason::Success);
        let again = text(&reg).unwrap_or_default();
        assert!(again.contains(r#"mqtt_connects_total{broker="gone",result="success"} 1"#));
    }

    #[test]
    fn closed_sets_encode_as_they_always_have() {
        let mut reg = Registry::default();
        let m = Metrics::register(&mut reg);
        exercise(&m, "x");
        let t =
            crate::exposition::encode(&reg, crate::exposition::Format::Text).unwrap_or_default();
        for line in [
            r#"mqtt_connection_info{broker="x",protocol="3.1.1"} 1"#,
            r#"mqtt_connects_total{broker="x",result="success"} 1"#,
            r#"mqtt_disconnects_total{broker="x",reason="session_taken_over"} 1"#,
            r#"mqtt_probe_errors_total{broker="x",probe="retained",reason="mismatch"} 1"#,
            r#"mqtt_probe_ignored_total{broker="x",probe="rtt-2",reason="late"} 1"#,
            r#"mqtt_probe_health{broker="x",state="degraded"} 0"#,
            r#"mqtt_probe_rtt_seconds_count{broker="x",qos="0"} 1"#,
            r#"mqtt_bridge_probe_errors_total{broker="x",remote="remote",probe="up",reason="not_delivered"} 1"#,
            r#"mqtt_bridge_probe_ignored_total{broker="x",remote="remote",probe="up",reason="late"} 1"#,
            r#"mqtt_bridge_probe_success{broker="x",remote="remote",probe="up"} 0"#,
        ] {
            assert!(t.lines().any(|l| l == line), "{line} in\n{t}");
        }
    }
}
