//! [`Ingest`]: one broker's `$SYS` messages through its profile into its [`SysStore`].
//! Pure except for the store's mutex and logging: time is passed in, so tests replay
//! captures at any pace.

mod unknown;

use super::parse::{self, ParseError};
use super::profile::{self, Action, Family, Parser, Profile, ProfileSet};
use super::store::{BrokerInfo, Key, Labels, SysStore};
use crate::sys::SysConfig;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use unknown::Unknown;

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
    pending: Vec<(String, Vec<u8>, bool, SystemTime)>,
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
    /// The broker instance followed this session (`{instance}` profiles).
    instance: Option<Followed>,
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
        self.unknown.session_ended();
        self.instance = None;
    }

    /// One `$SYS` message that was not retained (tests; see [`Ingest::handle_message`]).
    pub fn handle(&mut self, topic: &str, payload: &[u8], now: SystemTime) -> Outcome {
        self.handle_message(topic, payload, false, now)
    }

    /// One `$SYS` message. `retained` is the PUBLISH's retain flag: a retained message may
    /// describe a broker instance that no longer runs, so it never takes the place of a live
    /// one (see [`INSTANCE_SILENCE`]).
    pub fn handle_message(
        &mut self,
        topic: &str,
        payload: &[u8],
        retained: bool,
        now: SystemTime,
    ) -> Outcome {
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
                    .push((topic.to_owned(), payload.to_vec(), retained, now));
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
        self.handle_with(&profile, topic, payload, retained, now)
    }

    fn replay(&mut self, p: &Arc<Profile>) {
        for (t, pl, retained, at) in std::mem::take(&mut self.auto.pending) {
            self.handle_with(p, &t, &pl, retained, at);
        }
    }

    fn handle_with(
        &mut self,
        profile: &Arc<Profile>,
        topic: &str,
        payload: &[u8],
        retained: bool,
        now: SystemTime,
    ) -> Outcome {
        if self.started.as_deref() != Some(&*profile.name) {
            self.start(profile);
        }
        let rel = topic.strip_prefix(&self.prefix).unwrap_or(topic);
        let outcome = self.apply(profile, topic, rel, payload, retained, now);
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
            Outcome::UnmappedText => {
                self.counters.unmapped_text.inc();
            }
            // refusals and drops are counted per value where they happen
            Outcome::Stored
            | Outcome::Ignored
            | Outcome::Refused
            | Outcome::Dropped
            | Outcome::Buffered => {}
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
        retained: bool,
        now: SystemTime,
    ) -> Outcome {
        let now_s = unix(now);
        let Some(m) = profile.lookup(rel) else {
            return self.unmapped(topic, payload, now);
        };
        if let Some(id) = m.captured.instance
            && !self.follow_instance(profile, id, retained, now)
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
                    return self.invalid(&keys, e, now_s);
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
            // A number as published, so `unavailable` compares before `scale` applies.
            let number = |raw: Result<f64, ParseError>| {
                raw.map(|v| (*unavailable != Some(v)).then_some(v * scale))
            };
            let v = match (field, &json) {
                (Some(f), Some(obj)) => number(
                    obj.get(&**f)
                        .ok_or(ParseError::MissingField)
                        .and_then(parse::json_number),
                ),
                _ => match parser {
                    Parser::Number | Parser::Counter => number(parse::number(payload)),
                    Parser::Duration => parse::duration(payload, *scale).map(Some),
                    Parser::Since => parse::since(payload, *scale, now_s).map(Some),
                    Parser::Flag => parse::flag(payload).map(|up| Some(if up { 1.0 } else { 0.0 })),
                    Parser::Event => Ok(Some(1.0)),
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
                    s.remove(&w.key);
                    invalid.get_or_insert(e);
                    continue;
                }
            };
            let Some(v) = v else {
                // the broker says "not available"
                s.remove(&w.key);
                continue;
            };
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
            if s.insert(w.key, v, w.dynamic, self.max_series) {
                stored = true;
            } else {
                self.counters.series_dropped.inc();
                dropped = true;
            }
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
    fn invalid(&mut self, keys: &[Key], e: ParseError, now_s: f64) -> Outcome {
        let mut s = self.store.lock();
        s.snap.last_update = Some(now_s);
        for k in keys {
            s.remove(k);
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
    /// session is followed; a retained message (perhaps from an instance that is gone) only
    /// provisionally, until a live one arrives. Another instance takes over once the followed
    /// one has been silent for [`INSTANCE_SILENCE`], or at once if the followed one was only
    /// heard retained; the values of the old one are dropped with it.
    fn follow_instance(
        &mut self,
        profile: &Arc<Profile>,
        id: &str,
        retained: bool,
        now: SystemTime,
    ) -> bool {
        let Some(cur) = &mut self.instance else {
            self.instance = Some(Followed {
                id: id.to_owned(),
                last: now,
                live: !retained,
            });
            return true;
        };
        if cur.id == id {
            cur.last = now;
            cur.live |= !retained;
            return true;
        }
        let silent = now.duration_since(cur.last).unwrap_or_default() >= INSTANCE_SILENCE;
        if retained || (cur.live && !silent) {
            return false;
        }
        tracing::info!(
            broker = %self.store.broker,
            from = %cur.id.escape_debug(),
            to = %id.escape_debug(),
            "the broker instance publishing $SYS changed; dropping the old instance's values"
        );
        self.store.clear();
        self.unknown.values_cleared();
        self.instance = Some(Followed {
            id: id.to_owned(),
            last: now,
            live: true,
        });
        self.start(profile);
        true
    }
}

/// The broker instance a profile with an `{instance}` level follows.
#[derive(Debug)]
struct Followed {
    id: String,
    /// When it last published.
    last: SystemTime,
    /// Whether a message of it arrived live (not retained).
    live: bool,
}

/// One value a message sets.
struct Write {
    key: Key,
    /// The value in base units; `None` when the broker published its "not available".
    value: Result<Option<f64>, ParseError>,
    event: bool,
    range: (f64, f64),
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
