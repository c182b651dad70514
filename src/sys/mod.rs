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
use profile::{Action, Family, Kind, Parser, Profile, ProfileSet};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Unit;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
type Key = (Arc<Family>, Labels);

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
struct State {
    snap: SysSnapshot,
    /// Series whose label came from the broker (captures, unknown topics), capped.
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
    /// At least one value was stored.
    Stored,
    /// The profile ignores the topic by design, a value said "not available", or the message
    /// came from a broker instance other than the one being followed.
    Ignored,
    /// A mapped topic's payload could not be read (`mqtt_sentinel_sys_parse_errors_total`).
    Invalid(ParseError),
    /// Every value was outside its metric's range (`..._sys_values_refused_total`); the
    /// previous values stay.
    Refused,
    /// No profile entry maps the topic and the payload is not a number
    /// (`..._sys_unmapped_text_total`).
    UnmappedText,
    /// A new broker-labelled series was refused because `max_series` was reached or its
    /// topic fans out over an unbounded key.
    Dropped,
    /// `auto` has not recognised the broker yet; the message is replayed once it has.
    Buffered,
}

/// Self-metrics of the collector, one set per broker.
#[derive(Debug, Clone, Default)]
pub struct IngestCounters {
    pub messages: Counter,
    pub parse_errors: Counter,
    pub series_dropped: Counter,
    pub values_refused: Counter,
    pub unmapped_text: Counter,
}

/// An unknown numeric topic (`mqtt_broker_sys_value`) that was updated and then went quiet
/// for this long is dropped: per-client or per-bridge topics of departed keys stop holding a
/// `max_series` slot. A topic seen only once (a static, retained fact) is kept.
pub const UNKNOWN_STALE_AFTER: Duration = Duration::from_secs(300);
/// How often (in message time) the stale unknown topics are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// When this many unknown topics differ only in one level, that level is taken for an
/// unbounded key (a client id, a session): their series are removed and no more are made.
pub const FANOUT_LIMIT: usize = 16;
/// A profile with an `{instance}` level follows the first instance it hears in a session;
/// another instance takes over only after the followed one has been silent this long (an
/// aedes cluster shares `$SYS` between nodes; a stale retained tree names a dead instance).
pub const INSTANCE_SILENCE: Duration = Duration::from_secs(30);

/// `auto` holds messages until one of them identifies the broker, at most this many ...
const AUTO_BUFFER: usize = 2_000;
/// ... or for this long; after that the generic profile handles them while detection goes on.
const AUTO_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Auto {
    chosen: Option<Arc<Profile>>,
    pending: Vec<(String, Vec<u8>, SystemTime)>,
    first: Option<SystemTime>,
    /// Gave up waiting: generic is in use until a profile is recognised.
    fallback: bool,
}

/// Applies one broker's `$SYS` messages to its store.
#[derive(Debug)]
pub struct Ingest {
    prefix: String,
    profiles: Arc<ProfileSet>,
    /// `None` = `auto`.
    fixed: Option<Arc<Profile>>,
    auto: Auto,
    /// The profile whose event counters were started at zero this session.
    started: Option<Arc<str>>,
    sys_value: Arc<Family>,
    max_series: usize,
    store: Arc<SysStore>,
    counters: IngestCounters,
    warned_invalid: bool,
    warned_refused: bool,
    unknown: Unknown,
    /// The broker instance followed this session (`{instance}` profiles) and when it last
    /// published.
    instance: Option<(String, SystemTime)>,
}

/// Bookkeeping for unknown numeric topics: when each stored one was last updated, and which
/// topic shapes fan out over an unbounded key.
#[derive(Debug, Default)]
struct Unknown {
    /// Stored unknown topic -> (last update, number of updates).
    seen: std::collections::HashMap<String, (SystemTime, u32)>,
    /// Topic with one level replaced by `+` -> the distinct values seen at that level,
    /// up to [`FANOUT_LIMIT`].
    shapes: std::collections::HashMap<String, BTreeSet<String>>,
    /// Shapes found to fan out; kept across sessions (the broker's layout does not change).
    unbounded: BTreeSet<String>,
    next_sweep: Option<SystemTime>,
}

impl Unknown {
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

enum Route {
    Use(Arc<Profile>),
    Detected(Arc<Profile>),
    GiveUp,
    Buffer,
}

impl Ingest {
    pub fn new(cfg: &SysConfig, store: Arc<SysStore>, counters: IngestCounters) -> Self {
        let profiles = cfg.profiles.clone();
        // The config has checked the name; an unknown one could only come from a test.
        let fixed = (cfg.profile != "auto")
            .then(|| profiles.get(&cfg.profile).cloned())
            .map(|p| p.unwrap_or_else(|| profiles.generic().clone()));
        Self {
            prefix: cfg.prefix().to_owned(),
            sys_value: profiles.sys_value(),
            profiles,
            fixed,
            auto: Auto::default(),
            started: None,
            max_series: cfg.max_series,
            store,
            counters,
            warned_invalid: false,
            warned_refused: false,
            unknown: Unknown::default(),
            instance: None,
        }
    }

    pub fn store(&self) -> &Arc<SysStore> {
        &self.store
    }

    /// Whether `topic` belongs to this collector's subscription.
    pub fn wants(&self, topic: &str) -> bool {
        topic.starts_with(&self.prefix)
    }

    /// The profile in use this session, if one is (for logs and tests).
    pub fn profile(&self) -> Option<&str> {
        match (&self.fixed, &self.auto) {
            (Some(p), _) => Some(&p.name),
            (None, a) if a.chosen.is_some() => a.chosen.as_ref().map(|p| &*p.name),
            (None, a) if a.fallback => Some(&self.profiles.generic().name),
            _ => None,
        }
    }

    /// The session ended: drop values, detect again next session, allow one more warning.
    pub fn session_ended(&mut self) {
        self.store.clear();
        self.auto = Auto::default();
        self.started = None;
        self.warned_invalid = false;
        self.warned_refused = false;
        self.unknown.seen.clear();
        self.unknown.shapes.clear();
        self.instance = None;
    }

    pub fn handle(&mut self, topic: &str, payload: &[u8], now: SystemTime) -> Outcome {
        self.counters.messages.inc();
        self.sweep_unknown(now);
        let rel = topic.strip_prefix(&self.prefix).unwrap_or(topic);
        let route = match (&self.fixed, &self.auto) {
            (Some(p), _) => Route::Use(p.clone()),
            (None, a) => match &a.chosen {
                Some(p) => Route::Use(p.clone()),
                None => match self.profiles.detect(rel, payload) {
                    Some(p) if &*p.name != "generic" => Route::Detected(p.clone()),
                    _ if a.fallback => Route::Use(self.profiles.generic().clone()),
                    _ => {
                        let first = a.first.unwrap_or(now);
                        let waited = now.duration_since(first).unwrap_or_default();
                        if a.pending.len() < AUTO_BUFFER && waited < AUTO_WAIT {
                            Route::Buffer
                        } else {
                            Route::GiveUp
                        }
                    }
                },
            },
        };
        let profile = match route {
            Route::Use(p) => p,
            Route::Buffer => {
                self.auto.first.get_or_insert(now);
                self.auto
                    .pending
                    .push((topic.to_owned(), payload.to_vec(), now));
                self.store.lock().snap.last_update = Some(unix(now));
                return Outcome::Buffered;
            }
            Route::Detected(p) => {
                tracing::info!(broker = %self.store.broker, profile = %p.name, "recognised the broker's $SYS layout");
                if self.auto.fallback {
                    // values from the generic fallback: replaced by the real profile's
                    self.store.clear(); // keeps the last-update time
                    self.started = None;
                }
                self.auto.chosen = Some(p.clone());
                self.auto.fallback = false;
                self.replay(&p);
                p
            }
            Route::GiveUp => {
                let g = self.profiles.generic().clone();
                tracing::info!(
                    broker = %self.store.broker,
                    waited_s = AUTO_WAIT.as_secs(),
                    "no built-in or configured profile recognises this broker's $SYS topics; exporting numeric ones as mqtt_broker_sys_value (set sys.profile or add one under sys_profiles)"
                );
                self.auto.fallback = true;
                self.replay(&g);
                g
            }
        };
        self.handle_with(&profile, topic, payload, now)
    }

    fn replay(&mut self, p: &Arc<Profile>) {
        for (t, pl, at) in std::mem::take(&mut self.auto.pending) {
            self.handle_with(p, &t, &pl, at);
        }
    }

    fn handle_with(
        &mut self,
        profile: &Arc<Profile>,
        topic: &str,
        payload: &[u8],
        now: SystemTime,
    ) -> Outcome {
        if self.started.as_deref() != Some(&*profile.name) {
            self.start(profile);
        }
        let rel = topic.strip_prefix(&self.prefix).unwrap_or(topic);
        let outcome = self.apply(profile, topic, rel, payload, now);
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
            Outcome::UnmappedText => {
                self.counters.unmapped_text.inc();
            }
            // refusals are counted per value, in `apply`
            Outcome::Stored | Outcome::Ignored | Outcome::Refused | Outcome::Buffered => {}
        }
        outcome
    }

    /// A profile starts handling this session: `mqtt_broker_info` says which, and event
    /// counters without captured labels start at zero so the first event is an increase.
    fn start(&mut self, profile: &Arc<Profile>) {
        self.started = Some(profile.name.clone());
        let mut s = self.store.lock();
        let keep = s.snap.info.take();
        s.snap.info = Some(BrokerInfo {
            implementation: keep
                .as_ref()
                .map(|i| i.implementation.clone())
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| profile.implementation.to_string()),
            version: keep.map(|i| i.version).unwrap_or_default(),
            profile: profile.name.clone(),
        });
        for e in profile.entries() {
            if let Action::Value {
                family,
                parser: Parser::Event,
                labels,
                ..
            } = &e.action
                && e.captures().is_empty()
            {
                let key = (family.clone(), const_labels(labels));
                s.snap.series.entry(key).or_insert(0.0);
            }
        }
    }

    fn apply(
        &mut self,
        profile: &Arc<Profile>,
        topic: &str,
        rel: &str,
        payload: &[u8],
        now: SystemTime,
    ) -> Outcome {
        let now_s = unix(now);
        let Some(m) = profile.lookup(rel) else {
            return self.unmapped(topic, payload, now);
        };
        if let Some(id) = m.captured.instance
            && !self.follow_instance(profile, id, now)
        {
            self.store.lock().snap.last_update = Some(now_s);
            return Outcome::Ignored;
        }
        match m.entries.first().map(|e| &e.action) {
            Some(Action::Ignore) => {
                self.store.lock().snap.last_update = Some(now_s);
                return Outcome::Ignored;
            }
            Some(Action::Version) => return self.version(profile, payload, now_s),
            _ => {}
        }
        // Parse before locking: the lock covers only the map update.
        let json = if m.reads_json() {
            match parse::json_object(payload) {
                Ok(o) => Some(o),
                Err(e) => {
                    let keys: Vec<Key> = m
                        .entries
                        .iter()
                        .filter_map(|e| value_key(e, &m.captured.labels))
                        .collect();
                    let dynamic = !m.captured.labels.is_empty();
                    return self.invalid(&keys, dynamic, e, now_s);
                }
            }
        } else {
            None
        };
        let mut writes = Vec::with_capacity(m.entries.len());
        for entry in &m.entries {
            let Action::Value {
                parser,
                scale,
                field,
                when,
                range,
                unavailable,
                ..
            } = &entry.action
            else {
                continue;
            };
            if let (Some((f, want)), Some(obj)) = (when, &json) {
                let holds = obj
                    .get(&**f)
                    .and_then(parse::json_text)
                    .is_some_and(|t| *t == **want);
                if !holds {
                    continue;
                }
            }
            let v = match (field, &json) {
                (Some(f), Some(obj)) => obj
                    .get(&**f)
                    .ok_or(ParseError::MissingField)
                    .and_then(parse::json_number)
                    .map(|v| v * scale),
                _ => match parser {
                    Parser::Number | Parser::Counter => parse::number(payload).map(|v| v * scale),
                    Parser::Duration => parse::duration(payload, *scale),
                    Parser::Since => parse::since(payload, *scale, now_s),
                    Parser::Flag => parse::flag(payload).map(|up| if up { 1.0 } else { 0.0 }),
                    Parser::Event => Ok(1.0),
                    Parser::Version => Err(ParseError::BadFormat),
                },
            };
            let Some(key) = value_key(entry, &m.captured.labels) else {
                continue;
            };
            writes.push(Write {
                key,
                value: v,
                event: *parser == Parser::Event,
                range: *range,
                unavailable: *unavailable,
                dynamic: !m.captured.labels.is_empty(),
            });
        }
        if writes.is_empty() {
            // a JSON event whose kind no entry takes (NanoMQ: neither online nor offline)
            self.store.lock().snap.last_update = Some(now_s);
            return Outcome::Invalid(ParseError::BadFormat);
        }
        self.write(writes, now_s)
    }

    /// Applies a message's values under one lock. The outcome is the first parse error, else
    /// `Stored` if any value was, else `Refused` if any was, else `Ignored`.
    fn write(&mut self, writes: Vec<Write>, now_s: f64) -> Outcome {
        let mut s = self.store.lock();
        s.snap.last_update = Some(now_s);
        let (mut stored, mut refused, mut invalid, mut dropped) = (false, false, None, false);
        for w in writes {
            let v = match w.value {
                Ok(v) => v,
                Err(e) => {
                    // Never keep a value the broker has just contradicted.
                    if s.snap.series.remove(&w.key).is_some() && w.dynamic {
                        s.dynamic -= 1;
                    }
                    invalid.get_or_insert(e);
                    continue;
                }
            };
            if w.unavailable == Some(v) {
                if s.snap.series.remove(&w.key).is_some() && w.dynamic {
                    s.dynamic -= 1;
                }
                continue;
            }
            if !(w.range.0..=w.range.1).contains(&v) {
                self.counters.values_refused.inc();
                if !self.warned_refused {
                    self.warned_refused = true;
                    tracing::info!(
                        broker = %self.store.broker,
                        metric = %w.key.0.name,
                        value = v,
                        "refusing a $SYS value outside its metric's range and keeping the previous one (further ones are only counted in mqtt_sentinel_sys_values_refused_total)"
                    );
                }
                refused = true;
                continue;
            }
            if let Some(old) = s.snap.series.get_mut(&w.key) {
                *old = if w.event { *old + v } else { v };
                stored = true;
                continue;
            }
            if w.dynamic {
                if s.dynamic >= self.max_series {
                    dropped = true;
                    continue;
                }
                s.dynamic += 1;
            }
            s.snap.series.insert(w.key, v);
            stored = true;
        }
        match (invalid, stored, refused, dropped) {
            (Some(e), ..) => Outcome::Invalid(e),
            (None, true, ..) => Outcome::Stored,
            (None, false, true, _) => Outcome::Refused,
            (None, false, false, true) => Outcome::Dropped,
            (None, false, false, false) => Outcome::Ignored,
        }
    }

    /// Removes the series of a mapped topic whose payload could not be read.
    fn invalid(&mut self, keys: &[Key], dynamic: bool, e: ParseError, now_s: f64) -> Outcome {
        let mut s = self.store.lock();
        s.snap.last_update = Some(now_s);
        for k in keys {
            if s.snap.series.remove(k).is_some() && dynamic {
                s.dynamic -= 1;
            }
        }
        Outcome::Invalid(e)
    }

    fn version(&mut self, profile: &Profile, payload: &[u8], now_s: f64) -> Outcome {
        let mut s = self.store.lock();
        s.snap.last_update = Some(now_s);
        match parse::version(payload) {
            Ok((implementation, version)) => {
                let implementation = if implementation.is_empty() {
                    profile.implementation.to_string()
                } else {
                    implementation
                };
                s.snap.info = Some(BrokerInfo {
                    implementation,
                    version,
                    profile: profile.name.clone(),
                });
                Outcome::Stored
            }
            Err(e) => Outcome::Invalid(e),
        }
    }

    /// Whether a message from instance `id` is to be used. The first instance heard in a
    /// session is followed; another one takes over once the followed one has been silent for
    /// [`INSTANCE_SILENCE`], and the values of the old one are dropped with it.
    fn follow_instance(&mut self, profile: &Arc<Profile>, id: &str, now: SystemTime) -> bool {
        match &mut self.instance {
            None => {
                self.instance = Some((id.to_owned(), now));
                true
            }
            Some((cur, last)) if cur == id => {
                *last = now;
                true
            }
            Some((cur, last)) => {
                if now.duration_since(*last).unwrap_or_default() < INSTANCE_SILENCE {
                    return false;
                }
                tracing::info!(
                    broker = %self.store.broker,
                    from = %cur.escape_debug(),
                    to = %id.escape_debug(),
                    "the broker instance publishing $SYS changed; dropping the old instance's values"
                );
                self.store.clear();
                self.unknown.seen.clear();
                self.instance = Some((id.to_owned(), now));
                self.start(profile);
                true
            }
        }
    }

    /// A topic no profile entry maps: a number becomes `mqtt_broker_sys_value{topic}` unless
    /// its topic fans out over an unbounded key or `max_series` is reached; text is counted.
    fn unmapped(&mut self, topic: &str, payload: &[u8], now: SystemTime) -> Outcome {
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
    fn sweep_unknown(&mut self, now: SystemTime) {
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

/// One value a message sets.
struct Write {
    key: Key,
    value: Result<f64, ParseError>,
    event: bool,
    range: (f64, f64),
    unavailable: Option<f64>,
    /// Whether the series' labels came from the broker (counted against `max_series`).
    dynamic: bool,
}

/// The series a value entry writes, given the topic's captured label values.
fn value_key(entry: &profile::Entry, caps: &[&str]) -> Option<Key> {
    let Action::Value { family, labels, .. } = &entry.action else {
        return None;
    };
    let mut l: Labels = entry
        .captures()
        .iter()
        .zip(caps)
        .map(|(k, v)| (k.clone(), (*v).to_owned()))
        .collect();
    l.extend(const_labels(labels));
    Some((family.clone(), l))
}

fn const_labels(labels: &[(Arc<str>, Arc<str>)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

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

#[cfg(test)]
mod captures;
#[cfg(test)]
mod tests;
