//! `$SYS` collection: turns broker statistics into samples held per broker, and encodes them
//! at scrape time.
//!
//! * [`Ingest`] (one per broker, owned by its connection task) maps a topic through the
//!   [`profile`], parses the payload with [`parse`] and writes the [`SysStore`].
//! * [`SysStore`] holds the latest value of every series for the life of one MQTT session.
//!   The connection task clears it when the session ends, so a dead broker exports no frozen
//!   values; only the last-update timestamp survives.
//! * [`SysCollector`] is a prometheus-client `Collector` that encodes all stores on each
//!   scrape. The store's mutex is held only to copy or write a few values, never across I/O.

pub mod parse;
pub mod profile;

use crate::config::SysConfig;
use parse::ParseError;
use profile::{FAMILIES, Kind, Parser, Profile, Target};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Unit;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Broker-reported version, exported as `mqtt_broker_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub implementation: String,
    pub version: String,
    pub profile: &'static str,
}

/// Series key: family index and the broker-supplied label value (window, bridge, topic).
type Key = (usize, Option<String>);

#[derive(Debug, Clone, Default)]
pub struct SysSnapshot {
    pub series: BTreeMap<Key, f64>,
    pub info: Option<BrokerInfo>,
    /// Unix time of the last `$SYS` message; survives disconnects.
    pub last_update: Option<f64>,
}

#[derive(Debug, Default)]
struct State {
    snap: SysSnapshot,
    /// Series whose label came from the broker (bridges, unknown topics), capped.
    dynamic: usize,
}

/// Latest `$SYS` values of one broker.
#[derive(Debug)]
pub struct SysStore {
    pub broker: String,
    state: Mutex<State>,
}

impl SysStore {
    pub fn new(broker: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            broker: broker.into(),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a bug in this module; the data
        // is plain values, so continuing with it is safe.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget every value (the session ended); keep the last-update time.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.snap.series.clear();
        s.snap.info = None;
        s.dynamic = 0;
    }

    pub fn snapshot(&self) -> SysSnapshot {
        self.lock().snap.clone()
    }

    pub fn last_update(&self) -> Option<f64> {
        self.lock().snap.last_update
    }
}

/// What happened to one message (for counters and tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Stored,
    Ignored,
    Invalid(ParseError),
    /// A new broker-labelled series was refused because `max_series` was reached.
    Dropped,
}

/// Self-metrics of the collector, one set per broker.
#[derive(Debug, Clone, Default)]
pub struct IngestCounters {
    pub messages: Counter,
    pub parse_errors: Counter,
    pub series_dropped: Counter,
}

/// Applies one broker's `$SYS` messages to its store.
#[derive(Debug)]
pub struct Ingest {
    prefix: String,
    profile: Profile,
    max_series: usize,
    store: Arc<SysStore>,
    counters: IngestCounters,
    warned_invalid: bool,
}

impl Ingest {
    pub fn new(cfg: &SysConfig, store: Arc<SysStore>, counters: IngestCounters) -> Self {
        Self {
            prefix: cfg.prefix().to_owned(),
            profile: Profile::for_name(cfg.profile),
            max_series: cfg.max_series,
            store,
            counters,
            warned_invalid: false,
        }
    }

    pub fn store(&self) -> &Arc<SysStore> {
        &self.store
    }

    /// Whether `topic` belongs to this collector's subscription.
    pub fn wants(&self, topic: &str) -> bool {
        topic.starts_with(&self.prefix)
    }

    /// The session ended: drop values, allow one more warning next session.
    pub fn session_ended(&mut self) {
        self.store.clear();
        self.warned_invalid = false;
    }

    pub fn handle(&mut self, topic: &str, payload: &[u8], now: SystemTime) -> Outcome {
        self.counters.messages.inc();
        let rel = topic.strip_prefix(&self.prefix).unwrap_or(topic);
        let outcome = self.apply(topic, rel, payload, now);
        match &outcome {
            Outcome::Invalid(e) => {
                self.counters.parse_errors.inc();
                if !self.warned_invalid {
                    self.warned_invalid = true;
                    tracing::warn!(
                        broker = %self.store.broker,
                        topic = %topic.escape_debug(),
                        error = %e,
                        "ignoring $SYS payload that is not a valid value (further ones are only counted)"
                    );
                } else {
                    tracing::debug!(broker = %self.store.broker, topic = %topic.escape_debug(), error = %e, "invalid $SYS payload");
                }
            }
            Outcome::Dropped => {
                self.counters.series_dropped.inc();
            }
            Outcome::Stored | Outcome::Ignored => {}
        }
        outcome
    }

    fn apply(&mut self, topic: &str, rel: &str, payload: &[u8], now: SystemTime) -> Outcome {
        let now_s = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let found = self.profile.lookup(rel);
        // Parse before locking: the lock covers only the map update.
        let (key, parsed, dynamic) = match found {
            Some((Target::Ignore, _)) => {
                self.store.lock().snap.last_update = Some(now_s);
                return Outcome::Ignored;
            }
            Some((Target::Version, _)) => {
                let mut s = self.store.lock();
                s.snap.last_update = Some(now_s);
                return match parse::version(payload) {
                    Ok((implementation, version)) => {
                        let profile = if implementation == "mosquitto" {
                            self.profile.name
                        } else {
                            "generic"
                        };
                        s.snap.info = Some(BrokerInfo {
                            implementation,
                            version,
                            profile,
                        });
                        Outcome::Stored
                    }
                    Err(e) => {
                        s.snap.info = None;
                        Outcome::Invalid(e)
                    }
                };
            }
            Some((Target::Bridge, name)) => {
                let key = (profile::F::BridgeUp as usize, name.map(str::to_owned));
                let v = parse::flag(payload).map(|up| if up { 1.0 } else { 0.0 });
                (key, v, true)
            }
            Some((
                Target::Value {
                    family,
                    label,
                    parser,
                },
                _,
            )) => {
                let v = match parser {
                    Parser::Number { scale } => parse::number(payload).map(|v| v * scale),
                    Parser::Counter => parse::counter(payload),
                    Parser::Seconds => parse::seconds(payload),
                };
                ((family, label.map(str::to_owned)), v, false)
            }
            None => {
                let key = (profile::F::SysValue as usize, Some(topic.to_owned()));
                (key, parse::number(payload), true)
            }
        };
        let mut s = self.store.lock();
        s.snap.last_update = Some(now_s);
        match parsed {
            Ok(v) => {
                if let Some(old) = s.snap.series.get_mut(&key) {
                    *old = v;
                    return Outcome::Stored;
                }
                if dynamic {
                    if s.dynamic >= self.max_series {
                        return Outcome::Dropped;
                    }
                    s.dynamic += 1;
                }
                s.snap.series.insert(key, v);
                Outcome::Stored
            }
            Err(e) => {
                // Never keep a value the broker has just contradicted.
                if s.snap.series.remove(&key).is_some() && dynamic {
                    s.dynamic -= 1;
                }
                Outcome::Invalid(e)
            }
        }
    }
}

/// Encodes every broker's `$SYS` series on each scrape.
#[derive(Debug)]
pub struct SysCollector {
    stores: Vec<Arc<SysStore>>,
}

impl SysCollector {
    pub fn new(stores: Vec<Arc<SysStore>>) -> Self {
        Self { stores }
    }
}

/// prometheus-client appends the unit to the name itself; our table holds full names.
fn split_unit(name: &str) -> (&str, Option<Unit>) {
    if let Some(stem) = name.strip_suffix("_bytes") {
        (stem, Some(Unit::Bytes))
    } else if let Some(stem) = name.strip_suffix("_seconds") {
        (stem, Some(Unit::Seconds))
    } else {
        (name, None)
    }
}

impl Collector for SysCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snaps: Vec<(&str, SysSnapshot)> = self
            .stores
            .iter()
            .map(|s| (s.broker.as_str(), s.snapshot()))
            .collect();

        for (fi, fam) in FAMILIES.iter().enumerate() {
            let has_any = snaps
                .iter()
                .any(|(_, s)| s.series.range((fi, None)..(fi + 1, None)).next().is_some());
            if !has_any {
                continue;
            }
            let stem = fam.name.strip_suffix("_total").unwrap_or(fam.name);
            let (name, unit) = split_unit(stem);
            let metric_type = match fam.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let mut me = encoder.encode_descriptor(name, fam.help, unit.as_ref(), metric_type)?;
            for (broker, snap) in &snaps {
                for ((_, label), v) in snap.series.range((fi, None)..(fi + 1, None)) {
                    let mut labels: Vec<(&str, &str)> = vec![("broker", broker)];
                    if let (Some(k), Some(l)) = (fam.label, label.as_deref()) {
                        labels.push((k, l));
                    }
                    let mut fe = me.encode_family(&labels)?;
                    match fam.kind {
                        Kind::Counter => fe.encode_counter::<NoLabelSet, _, f64>(v, None)?,
                        Kind::Gauge => fe.encode_gauge(v)?,
                    }
                }
            }
        }

        if snaps.iter().any(|(_, s)| s.info.is_some()) {
            let mut me = encoder.encode_descriptor(
                "mqtt_broker",
                "Broker implementation and version as announced in $SYS; always 1.",
                None,
                MetricType::Info,
            )?;
            for (broker, snap) in &snaps {
                if let Some(i) = &snap.info {
                    let labels = [("broker", *broker)];
                    let info = [
                        ("implementation", i.implementation.as_str()),
                        ("version", i.version.as_str()),
                        ("profile", i.profile),
                    ];
                    me.encode_family(&labels)?.encode_info(&info)?;
                }
            }
        }

        if snaps.iter().any(|(_, s)| s.last_update.is_some()) {
            let mut me = encoder.encode_descriptor(
                "mqtt_broker_sys_last_update_timestamp",
                "Unix time of the last $SYS message from the broker; kept after it disconnects.",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?;
            for (broker, snap) in &snaps {
                if let Some(t) = snap.last_update {
                    me.encode_family(&[("broker", *broker)])?.encode_gauge(&t)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
