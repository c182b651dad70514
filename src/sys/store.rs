//! The latest `$SYS` values of one broker ([`SysStore`]), for the life of one MQTT session,
//! and the copy a scrape encodes ([`SysSnapshot`]).

use super::profile::Family;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// Broker-reported implementation and version, exported as `mqtt_broker_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub implementation: String,
    pub version: String,
    pub profile: Arc<str>,
}

/// Label values of one series, after `broker`: captured ones, then the profile's constants.
pub type Labels = Vec<(Arc<str>, String)>;
/// Series key: family and labels.
pub(crate) type Key = (Arc<Family>, Labels);

#[derive(Debug, Clone, Default)]
pub struct SysSnapshot {
    pub series: BTreeMap<Key, f64>,
    pub info: Option<BrokerInfo>,
    /// Unix time of the last `$SYS` message; survives disconnects.
    pub last_update: Option<f64>,
}

impl SysSnapshot {
    /// The value of a series, by family name and labels (for tests and diagnostics).
    pub fn get(&self, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series.iter().find_map(|((f, l), v)| {
            (&*f.name == family
                && l.len() == labels.len()
                && l.iter()
                    .zip(labels)
                    .all(|((k, v), (wk, wv))| &**k == *wk && v == wv))
            .then_some(*v)
        })
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) snap: SysSnapshot,
    /// The series whose labels came from the broker (captures, unknown topics): these count
    /// against `sys.max_series`. Kept as keys, not a count, so every way a series leaves
    /// (invalid payload, "unavailable", fan-out, ageing, a new instance) frees its slot once.
    dynamic: BTreeSet<Key>,
}

impl State {
    /// Removes a series (and its slot, if it held one); whether it existed.
    pub(super) fn remove(&mut self, key: &Key) -> bool {
        self.dynamic.remove(key);
        self.snap.series.remove(key).is_some()
    }

    /// Adds a new series. A broker-labelled one (`dynamic`) only while fewer than `cap` are
    /// held; `false` when it was refused for that.
    pub(super) fn insert(&mut self, key: Key, v: f64, dynamic: bool, cap: usize) -> bool {
        if dynamic {
            if self.dynamic.len() >= cap {
                return false;
            }
            self.dynamic.insert(key.clone());
        }
        self.snap.series.insert(key, v);
        true
    }

    /// Number of series holding a `max_series` slot.
    pub(super) fn slots(&self) -> usize {
        self.dynamic.len()
    }

    /// Removes every series `drop` selects; how many.
    pub(super) fn remove_where(&mut self, mut drop: impl FnMut(&Key) -> bool) -> usize {
        let before = self.snap.series.len();
        self.snap.series.retain(|k, _| !drop(k));
        let series = &self.snap.series;
        self.dynamic.retain(|k| series.contains_key(k));
        before - self.snap.series.len()
    }
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

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a bug in this module; the data
        // is plain values, so continuing with it is safe.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget every value (the session ended); keep the last-update time.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.snap.series.clear();
        s.snap.info = None;
        s.dynamic.clear();
    }

    pub fn snapshot(&self) -> SysSnapshot {
        self.lock().snap.clone()
    }

    pub fn last_update(&self) -> Option<f64> {
        self.lock().snap.last_update
    }
}
