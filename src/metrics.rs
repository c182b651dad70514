//! Every metric handle the process owns, created and registered in one place. No statics:
//! `app` builds one [`Metrics`] per registry and hands each broker task its [`BrokerMetrics`]
//! (cheap clones of atomic handles, so the hot path does no map lookups).
//!
//! Broker `$SYS` values are not here: they are encoded at scrape time by `sys::SysCollector`.

use crate::config::Capacity;
use crate::sys::IngestCounters;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DisconnectLabels {
    pub broker: String,
    /// Bounded: a v5 reason-code name, `connection_lost` or `unresponsive`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub broker: String,
    pub protocol: &'static str,
}

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QosLabels {
    pub broker: String,
    pub qos: &'static str,
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
    /// Bounded: v5 reason-code names or a small closed set (timeout, not_connected, …).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthLabels {
    pub broker: String,
    pub state: &'static str,
}

/// Latency buckets from 50 µs (a loopback round trip) to 10 s (a probe timeout).
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Broker health derived from the probes, exported as a state set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug)]
pub struct Metrics {
    up: Family<BrokerLabels, Gauge>,
    connection_info: Family<ProtocolLabels, Gauge>,
    connects: Family<ConnectLabels, Counter>,
    disconnects: Family<DisconnectLabels, Counter>,
    sys_messages: Family<BrokerLabels, Counter>,
    sys_parse_errors: Family<BrokerLabels, Counter>,
    sys_series_dropped: Family<BrokerLabels, Counter>,
    sys_values_refused: Family<BrokerLabels, Counter>,
    sys_unmapped_text: Family<BrokerLabels, Counter>,
    messages_dropped: Family<BrokerLabels, Counter>,
    capacity_max_connections: Family<BrokerLabels, Gauge>,
    capacity_max_heap_bytes: Family<BrokerLabels, Gauge>,
    probe_rtt: Histograms<QosLabels>,
    probe_ack: Histograms<QosLabels>,
    probe_sent: Family<ProbeLabels, Counter>,
    probe_received: Family<ProbeLabels, Counter>,
    probe_lost: Family<ProbeLabels, Counter>,
    probe_duplicates: Family<ProbeLabels, Counter>,
    probe_out_of_order: Family<ProbeLabels, Counter>,
    probe_ignored: Family<ReasonLabels, Counter>,
    probe_success: Family<ProbeLabels, Gauge>,
    probe_errors: Family<ReasonLabels, Counter>,
    connect_duration: Histograms<BrokerLabels>,
    health: Family<HealthLabels, Gauge>,
    /// Every `result`/`reason` label value used so far, so a broker removed by a reload can
    /// have all its series removed (a `Family` cannot list its label sets).
    reasons: Arc<Mutex<BTreeSet<&'static str>>>,
    pub reload_successful: Gauge,
    pub reload_success_time: Gauge<f64, AtomicU64>,
    pub web_reload_successful: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let h: fn() -> Histogram = latency_histogram;
        Self {
            up: Family::default(),
            connection_info: Family::default(),
            connects: Family::default(),
            disconnects: Family::default(),
            sys_messages: Family::default(),
            sys_parse_errors: Family::default(),
            sys_series_dropped: Family::default(),
            sys_values_refused: Family::default(),
            sys_unmapped_text: Family::default(),
            messages_dropped: Family::default(),
            capacity_max_connections: Family::default(),
            capacity_max_heap_bytes: Family::default(),
            probe_rtt: Family::new_with_constructor(h),
            probe_ack: Family::new_with_constructor(h),
            probe_sent: Family::default(),
            probe_received: Family::default(),
            probe_lost: Family::default(),
            probe_duplicates: Family::default(),
            probe_out_of_order: Family::default(),
            probe_ignored: Family::default(),
            probe_success: Family::default(),
            probe_errors: Family::default(),
            connect_duration: Family::new_with_constructor(h),
            health: Family::default(),
            reasons: Arc::default(),
            reload_successful: Gauge::default(),
            reload_success_time: Gauge::default(),
            web_reload_successful: Gauge::default(),
        }
    }
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
            "mqtt_connection_info",
            "1 for the MQTT protocol version (5 or 3.1.1) of the current or last session; protocol: auto settles on 3.1.1 when a broker refuses 5",
            m.connection_info.clone(),
        );
        reg.register(
            "mqtt_disconnects",
            "Sessions that ended other than by our shutdown, by reason (v5 DISCONNECT reason-code name such as session_taken_over, connection_lost, unresponsive)",
            m.disconnects.clone(),
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
            "$SYS messages on a topic the profile maps whose payload was not a valid value (not exported, never read as 0)",
            m.sys_parse_errors.clone(),
        );
        reg.register(
            "mqtt_sentinel_sys_series_dropped",
            "$SYS updates refused because the broker-labelled series cap (sys.max_series) was reached or the topic fans out over an unbounded key such as a client id",
            m.sys_series_dropped.clone(),
        );
        reg.register(
            "mqtt_sentinel_sys_values_refused",
            "$SYS values outside their metric's range (a negative count, a wrapped unsigned -1); the previous value is kept",
            m.sys_values_refused.clone(),
        );
        reg.register(
            "mqtt_sentinel_sys_unmapped_text",
            "$SYS messages on topics no profile entry maps or ignores whose payload is not a number (not exported)",
            m.sys_unmapped_text.clone(),
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
            "mqtt_sentinel_capacity_max_heap_bytes",
            "Configured memory limit of the broker (capacity.max_heap_bytes), for heap alerts",
            m.capacity_max_heap_bytes.clone(),
        );
        reg.register(
            "mqtt_probe_rtt_seconds",
            "Publish-to-self round trip: publish call to receipt in the MQTT callback",
            m.probe_rtt.clone(),
        );
        reg.register(
            "mqtt_probe_ack_seconds",
            "Publish call to PUBACK (QoS 1) or PUBCOMP (QoS 2) of a round-trip probe",
            m.probe_ack.clone(),
        );
        reg.register(
            "mqtt_probe_sent",
            "Round-trip probes published",
            m.probe_sent.clone(),
        );
        reg.register(
            "mqtt_probe_received",
            "Round-trip probes that came back in time",
            m.probe_received.clone(),
        );
        reg.register(
            "mqtt_probe_lost",
            "Round-trip probes not back within their timeout (or when the session ended)",
            m.probe_lost.clone(),
        );
        reg.register(
            "mqtt_probe_duplicates",
            "Round-trip probes received more than once",
            m.probe_duplicates.clone(),
        );
        reg.register(
            "mqtt_probe_out_of_order",
            "Round-trip probes received after a newer one",
            m.probe_out_of_order.clone(),
        );
        reg.register(
            "mqtt_probe_ignored",
            "Messages on a probe topic that were not counted: foreign (other sender or run) or late (after their timeout)",
            m.probe_ignored.clone(),
        );
        reg.register(
            "mqtt_probe_success",
            "1 if the probe's last run succeeded in time, 0 otherwise",
            m.probe_success.clone(),
        );
        reg.register(
            "mqtt_probe_errors",
            "Failed probe runs by reason (v5 reason-code name, timeout, refused, tls, dns, not_connected, mismatch, error)",
            m.probe_errors.clone(),
        );
        reg.register(
            "mqtt_connect_duration_seconds",
            "Connect probe: TCP (+TLS) + CONNECT/CONNACK of a fresh client",
            m.connect_duration.clone(),
        );
        reg.register(
            "mqtt_probe_health",
            "Broker health from the probes as a state set: healthy, degraded (round trip above degraded_rtt) or down",
            m.health.clone(),
        );
        reg.register(
            "mqtt_sentinel_config_last_reload_successful",
            "1 if the last configuration reload (SIGHUP, POST /-/reload) succeeded or none was tried, 0 if it failed and the previous configuration is still in use",
            m.reload_successful.clone(),
        );
        m.reload_successful.set(1);
        reg.register(
            "mqtt_sentinel_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load (start or reload)",
            m.reload_success_time.clone(),
        );
        reg.register(
            "mqtt_sentinel_web_config_last_reload_successful",
            "1 if the web config file (TLS, basic auth) loaded when it last changed, 0 if it does not load and the previous one is in use",
            m.web_reload_successful.clone(),
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
                gauges: Health::ALL.map(|h| {
                    self.health
                        .get_or_create(&HealthLabels {
                            broker: name.to_owned(),
                            state: h.as_str(),
                        })
                        .clone()
                }),
            },
            name: name.to_owned(),
            up: self.up.get_or_create(&l).clone(),
            connection_info: self.connection_info.clone(),
            connects: self.connects.clone(),
            disconnects: self.disconnects.clone(),
            reasons: self.reasons.clone(),
            messages_dropped: self.messages_dropped.get_or_create(&l).clone(),
            ingest: IngestCounters {
                messages: self.sys_messages.get_or_create(&l).clone(),
                parse_errors: self.sys_parse_errors.get_or_create(&l).clone(),
                series_dropped: self.sys_series_dropped.get_or_create(&l).clone(),
                values_refused: self.sys_values_refused.get_or_create(&l).clone(),
                unmapped_text: self.sys_unmapped_text.get_or_create(&l).clone(),
            },
        }
    }
}

/// Handles every probe kind has.
#[derive(Debug, Clone)]
pub struct ProbeMetrics {
    broker: String,
    probe: String,
    pub success: Gauge,
    ignored: Family<ReasonLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    reasons: Arc<Mutex<BTreeSet<&'static str>>>,
}

fn remember(reasons: &Mutex<BTreeSet<&'static str>>, r: &'static str) {
    reasons.lock().unwrap_or_else(|p| p.into_inner()).insert(r);
}

impl ProbeMetrics {
    fn labels(&self, reason: &'static str) -> ReasonLabels {
        ReasonLabels {
            broker: self.broker.clone(),
            probe: self.probe.clone(),
            reason,
        }
    }
    /// A failed run: success 0 and the reason counted.
    pub fn record_failure(&self, reason: &'static str) {
        remember(&self.reasons, reason);
        self.success.set(0);
        self.errors.get_or_create(&self.labels(reason)).inc();
    }
    pub fn record_ignored(&self, reason: &'static str) {
        remember(&self.reasons, reason);
        self.ignored.get_or_create(&self.labels(reason)).inc();
    }
}

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
    pub health: HealthHandle,
    pub up: Gauge,
    connection_info: Family<ProtocolLabels, Gauge>,
    connects: Family<ConnectLabels, Counter>,
    disconnects: Family<DisconnectLabels, Counter>,
    reasons: Arc<Mutex<BTreeSet<&'static str>>>,
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
        ProbeMetrics {
            broker: broker.to_owned(),
            probe: probe.to_owned(),
            success: self.probe_success.get_or_create(&pl).clone(),
            ignored: self.probe_ignored.clone(),
            errors: self.probe_errors.clone(),
            reasons: self.reasons.clone(),
        }
    }

    /// Remove every series of broker `name` as `cfg` configured it (a reload removed or
    /// replaced it): no stale `mqtt_up{broker="gone"} 0` forever.
    pub fn forget_broker(&self, cfg: &crate::config::BrokerConfig) {
        let broker = || cfg.name.clone();
        let b = BrokerLabels { broker: broker() };
        for f in [
            &self.up,
            &self.capacity_max_connections,
            &self.capacity_max_heap_bytes,
        ] {
            f.remove(&b);
        }
        for f in [
            &self.sys_messages,
            &self.sys_parse_errors,
            &self.sys_series_dropped,
            &self.sys_values_refused,
            &self.sys_unmapped_text,
            &self.messages_dropped,
        ] {
            f.remove(&b);
        }
        self.connect_duration.remove(&b);
        for protocol in ["5", "3.1.1"] {
            self.connection_info.remove(&ProtocolLabels {
                broker: broker(),
                protocol,
            });
        }
        for h in Health::ALL {
            self.health.remove(&HealthLabels {
                broker: broker(),
                state: h.as_str(),
            });
        }
        for qos in ["0", "1", "2"] {
            let q = QosLabels {
                broker: broker(),
                qos,
            };
            self.probe_rtt.remove(&q);
            self.probe_ack.remove(&q);
        }
        let reasons: Vec<&'static str> = self
            .reasons
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        for &result in &reasons {
            self.connects.remove(&ConnectLabels {
                broker: broker(),
                result,
            });
            self.disconnects.remove(&DisconnectLabels {
                broker: broker(),
                reason: result,
            });
        }
        for p in &cfg.probes {
            let pl = ProbeLabels {
                broker: broker(),
                probe: p.name.clone(),
            };
            for f in [
                &self.probe_sent,
                &self.probe_received,
                &self.probe_lost,
                &self.probe_duplicates,
                &self.probe_out_of_order,
            ] {
                f.remove(&pl);
            }
            self.probe_success.remove(&pl);
            for &reason in &reasons {
                let rl = ReasonLabels {
                    broker: broker(),
                    probe: p.name.clone(),
                    reason,
                };
                self.probe_ignored.remove(&rl);
                self.probe_errors.remove(&rl);
            }
        }
    }

    /// Handles of a round-trip probe at `qos` (`"0"`, `"1"`, `"2"`).
    pub fn roundtrip(&self, broker: &str, probe: &str, qos: &'static str) -> RoundtripMetrics {
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
            rtt: self.probe_rtt.get_or_create(&ql).clone(),
            ack: (qos != "0").then(|| self.probe_ack.get_or_create(&ql).clone()),
            sent: self.probe_sent.get_or_create(&pl).clone(),
            received: self.probe_received.get_or_create(&pl).clone(),
            lost: self.probe_lost.get_or_create(&pl).clone(),
            duplicates: self.probe_duplicates.get_or_create(&pl).clone(),
            out_of_order: self.probe_out_of_order.get_or_create(&pl).clone(),
        }
    }

    /// The connect-probe latency histogram of `broker`.
    pub fn connect_duration(&self, broker: &str) -> Histogram {
        self.connect_duration
            .get_or_create(&BrokerLabels {
                broker: broker.to_owned(),
            })
            .clone()
    }
}

impl BrokerMetrics {
    /// The session that just started speaks `protocol` (`v5` or `v3.1.1`).
    pub fn set_protocol(&self, protocol: &'static str) {
        for p in ["5", "3.1.1"] {
            let l = ProtocolLabels {
                broker: self.name.clone(),
                protocol: p,
            };
            if protocol.trim_start_matches('v') == p {
                self.connection_info.get_or_create(&l).set(1);
            } else {
                self.connection_info.remove(&l);
            }
        }
    }

    /// A session ended for `reason` (not our shutdown).
    pub fn record_disconnect(&self, reason: &'static str) {
        remember(&self.reasons, reason);
        self.disconnects
            .get_or_create(&DisconnectLabels {
                broker: self.name.clone(),
                reason,
            })
            .inc();
    }

    pub fn record_connect(&self, result: &'static str) {
        remember(&self.reasons, result);
        self.connects
            .get_or_create(&ConnectLabels {
                broker: self.name.clone(),
                result,
            })
            .inc();
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
    /// Bounded: `success`, `failure` (gave up or refused), `dropped` (queue full).
    pub result: &'static str,
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
        for result in ["success", "failure", "dropped"] {
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

    pub fn notified(&self, receiver: &str, result: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                receiver: receiver.to_owned(),
                result,
            })
            .inc();
    }
}
