//! Unknown numeric topics (`mqtt_broker_sys_value`): the fan-out guard against per-client
//! keys and the ageing of topics that stopped updating.

use super::{FANOUT_LIMIT, Ingest, Outcome, SWEEP_EVERY, UNKNOWN_STALE_AFTER, unix};
use crate::sys::parse;
use crate::sys::store::Key;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

/// Bookkeeping for unknown numeric topics: when each stored one was last updated, and which
/// topic shapes fan out over an unbounded key.
#[derive(Debug, Default)]
pub(super) struct Unknown {
    /// Stored unknown topic -> (last update, number of updates).
    seen: HashMap<String, (SystemTime, u32)>,
    /// Topic with one level replaced by `+` -> the distinct values seen at that level,
    /// up to [`FANOUT_LIMIT`].
    shapes: HashMap<String, BTreeSet<String>>,
    /// Shapes found to fan out; kept across sessions (the broker's layout does not change).
    unbounded: BTreeSet<String>,
    next_sweep: Option<SystemTime>,
}

impl Unknown {
    /// The session ended: its series are gone; the shapes learned of the layout stay.
    pub(super) fn session_ended(&mut self) {
        self.seen.clear();
        self.shapes.clear();
    }

    /// The store's values were dropped (another broker instance took over).
    pub(super) fn values_cleared(&mut self) {
        self.seen.clear();
    }

    /// The shapes of `topic`: each level in turn replaced by `+`.
    fn shapes(topic: &str) -> Vec<String> {
        let levels: Vec<&str> = topic.split('/').collect();
        (0..levels.len())
            .map(|i| {
                let mut l = levels.clone();
                l[i] = "+";
                l.join("/")
            })
            .collect()
    }

    fn level(topic: &str, i: usize) -> &str {
        topic.split('/').nth(i).unwrap_or("")
    }
}

/// Whether `topic` has the shape `shape` (levels equal, `+` matching any one level).
fn shape_matches(shape: &str, topic: &str) -> bool {
    let (mut a, mut b) = (shape.split('/'), topic.split('/'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == "+" || x == y => {}
            _ => return false,
        }
    }
}

impl Ingest {
    /// A topic no profile entry maps: a number becomes `mqtt_broker_sys_value{topic}` unless
    /// its topic fans out over an unbounded key or `max_series` is reached; text is counted.
    pub(super) fn unmapped(&mut self, topic: &str, payload: &[u8], now: SystemTime) -> Outcome {
        let now_s = unix(now);
        let Ok(v) = parse::number(payload) else {
            self.store.lock().snap.last_update = Some(now_s);
            return Outcome::UnmappedText;
        };
        let key: Key = (
            self.sys_value.clone(),
            vec![(Arc::<str>::from("topic"), topic.to_owned())],
        );
        let mut s = self.store.lock();
        s.snap.last_update = Some(now_s);
        if let Some(old) = s.snap.series.get_mut(&key) {
            *old = v;
            let seen = self
                .unknown
                .seen
                .entry(topic.to_owned())
                .or_insert((now, 0));
            *seen = (now, seen.1.saturating_add(1));
            return Outcome::Stored;
        }
        let shapes = Unknown::shapes(topic);
        if shapes.iter().any(|sh| self.unknown.unbounded.contains(sh)) {
            return Outcome::Dropped;
        }
        if s.dynamic >= self.max_series {
            return Outcome::Dropped;
        }
        for (i, shape) in shapes.into_iter().enumerate() {
            let level = Unknown::level(topic, i).to_owned();
            let values = self.unknown.shapes.entry(shape.clone()).or_default();
            values.insert(level);
            if values.len() >= FANOUT_LIMIT {
                // One level takes many values: a per-client (or per-anything) topic.
                self.unknown.shapes.remove(&shape);
                let pattern = |t: &str| shape_matches(&shape, t);
                let before = s.snap.series.len();
                s.snap.series.retain(|(f, l), _| {
                    !(Arc::ptr_eq(f, &self.sys_value) && l.first().is_some_and(|(_, t)| pattern(t)))
                });
                let removed = before - s.snap.series.len();
                s.dynamic = s.dynamic.saturating_sub(removed);
                self.unknown.seen.retain(|t, _| !pattern(t));
                tracing::warn!(
                    broker = %self.store.broker,
                    topics = %shape.escape_debug(),
                    removed,
                    "unknown $SYS topics fan out over one level (a client id?); not exporting them as mqtt_broker_sys_value (add the pattern to the profile's ignore list)"
                );
                self.unknown.unbounded.insert(shape);
                return Outcome::Dropped;
            }
        }
        s.dynamic += 1;
        s.snap.series.insert(key, v);
        self.unknown.seen.insert(topic.to_owned(), (now, 1));
        Outcome::Stored
    }

    /// Drops unknown topics that were updated and then stayed quiet [`UNKNOWN_STALE_AFTER`].
    pub(super) fn sweep_unknown(&mut self, now: SystemTime) {
        if self.unknown.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.unknown.next_sweep = Some(now + SWEEP_EVERY);
        let stale: Vec<String> = self
            .unknown
            .seen
            .iter()
            .filter(|(_, (last, updates))| {
                *updates > 1 && now.duration_since(*last).unwrap_or_default() > UNKNOWN_STALE_AFTER
            })
            .map(|(t, _)| t.clone())
            .collect();
        if stale.is_empty() {
            return;
        }
        let mut s = self.store.lock();
        for t in stale {
            self.unknown.seen.remove(&t);
            let key: Key = (self.sys_value.clone(), vec![(Arc::<str>::from("topic"), t)]);
            if s.snap.series.remove(&key).is_some() {
                s.dynamic = s.dynamic.saturating_sub(1);
            }
        }
    }
}
