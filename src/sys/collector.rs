//! [`SysCollector`]: encodes every broker's `$SYS` series on each scrape.

use super::profile::{Family, Kind};
use super::store::{SysSnapshot, SysStore};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Encodes every broker's `$SYS` series on each scrape.
/// The stores the collector encodes; a reload adds and removes brokers here.
pub type SharedStores = Arc<std::sync::RwLock<Vec<Arc<SysStore>>>>;

#[derive(Debug)]
pub struct SysCollector {
    stores: SharedStores,
}

impl SysCollector {
    pub fn new(stores: Vec<Arc<SysStore>>) -> Self {
        Self::shared(Arc::new(std::sync::RwLock::new(stores)))
    }

    pub fn shared(stores: SharedStores) -> Self {
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
        let stores: Vec<Arc<SysStore>> = self
            .stores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let snaps: Vec<(&str, SysSnapshot)> = stores
            .iter()
            .map(|s| (s.broker.as_str(), s.snapshot()))
            .collect();
        let families: BTreeSet<Arc<Family>> = snaps
            .iter()
            .flat_map(|(_, s)| s.series.keys().map(|(f, _)| f.clone()))
            .collect();

        for fam in &families {
            let stem = fam.name.strip_suffix("_total").unwrap_or(&fam.name);
            let (name, unit) = split_unit(stem);
            let metric_type = match fam.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let mut me = encoder.encode_descriptor(name, &fam.help, unit.as_ref(), metric_type)?;
            for (broker, snap) in &snaps {
                let from = (fam.clone(), Vec::new());
                for ((f, labels), v) in snap.series.range(from..) {
                    if f != fam {
                        break;
                    }
                    let mut all: Vec<(&str, &str)> = vec![("broker", broker)];
                    all.extend(labels.iter().map(|(k, v)| (&**k, v.as_str())));
                    let mut fe = me.encode_family(&all)?;
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
                        ("profile", &*i.profile),
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
