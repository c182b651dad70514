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
    /// Stored unknown topic -> its last update.
    seen: HashMap<String, SystemTime>,
    /// Topic with one id-like level replaced by `+` -> the distinct ids seen there, up to
    /// [`FANOUT_LIMIT`].
    shapes: HashMap<String, BTreeSet<String>>,
    /// Shapes found to fan out this session.
    unbounded: BTreeSet<String>,
    next_sweep: Option<SystemTime>,
}

impl Unknown {
    /// The session ended: forget everything, the next broker may be laid out differently.
    pub(super) fn session_ended(&mut self) {
        *self = Unknown::default();
    }

    /// The store's values were dropped (another broker instance took over).
    pub(super) fn values_cleared(&mut self) {
        self.seen.clear();
    }

    /// The key shapes of `topic`: for each id-like level, the topic with it replaced by `+`,
    /// and the id.
    fn key_shapes(topic: &str) -> Vec<(String, &str)> {
        let levels: Vec<&str> = topic.split('/').collect();
        (0..levels.len())
            .filter(|&i| looks_like_id(levels[i]))
            .map(|i| {
                let mut l = levels.clone();
                l[i] = "+";
                (l.join("/"), levels[i])
            })
            .collect()
    }
}

/// Whether a topic level looks like a key with no bound: six or more characters, one of them
/// a digit, as client ids (`sensor-0042`, `mqtt-sentinel-vm-5bfa0b0e`), session ids and UUIDs
/// have, and metric names (`connections.count`, `15min`, `1883`) do not. Ids without a digit
/// are not recognised; `sys.max_series` still bounds them.
fn looks_like_id(level: &str) -> bool {
    level.len() >= 6 && level.bytes().any(|b| b.is_ascii_digit())
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
            self.unknown.seen.insert(topic.to_owned(), now);
            return Outcome::Stored;
        }
        let shapes = Unknown::key_shapes(topic);
        let blocked = shapes
            .iter()
            .any(|(sh, _)| self.unknown.unbounded.contains(sh));
        if blocked || s.slots() >= self.max_series {
            self.counters.series_dropped.inc();
            return Outcome::Dropped;
        }
        for (shape, id) in shapes {
            let ids = self.unknown.shapes.entry(shape.clone()).or_default();
            ids.insert(id.to_owned());
            if ids.len() < FANOUT_LIMIT {
                continue;
            }
            // One level takes many ids: a per-client (or per-session) topic.
            self.unknown.shapes.remove(&shape);
            let sys_value = self.sys_value.clone();
            let removed = s.remove_where(|(f, l)| {
                Arc::ptr_eq(f, &sys_value)
                    && l.first().is_some_and(|(_, t)| shape_matches(&shape, t))
            });
            self.unknown.seen.retain(|t, _| !shape_matches(&shape, t));
            tracing::warn!(
                broker = %self.store.broker,
                topics = %shape.escape_debug(),
                removed,
                "unknown $SYS topics fan out over an id-like level (a client id?); not exporting them as mqtt_broker_sys_value (add the pattern to the profile's ignore list)"
            );
            self.unknown.unbounded.insert(shape);
            self.counters.series_dropped.inc();
            return Outcome::Dropped;
        }
        s.insert(key, v, true, self.max_series);
        self.unknown.seen.insert(topic.to_owned(), now);
        Outcome::Stored
    }

    /// Drops unknown topics with an id-like level that have been quiet for
    /// [`UNKNOWN_STALE_AFTER`]: the client or session they describe is gone. Other topics stay
    /// however long they are quiet, since brokers such as Mosquitto publish only on change.
    pub(super) fn sweep_unknown(&mut self, now: SystemTime) {
        if self.unknown.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.unknown.next_sweep = Some(now + SWEEP_EVERY);
        let stale: Vec<String> = self
            .unknown
            .seen
            .iter()
            .filter(|(t, last)| {
                t.split('/').any(looks_like_id)
                    && now.duration_since(**last).unwrap_or_default() > UNKNOWN_STALE_AFTER
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
            s.remove(&key);
        }
    }
}
