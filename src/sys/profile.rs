//! Broker profiles as data: which `$SYS` topic becomes which metric, with which type, labels
//! and payload parser. The built-in profiles are YAML files under `src/sys/profiles/`, in the
//! same schema users write under `sys_profiles:` in the config, so a broker we do not ship a
//! profile for needs a config change, not a release. Nothing here does I/O; `sys::Ingest`
//! applies a profile.
//!
//! Topic patterns are relative to the configured `sys.topic` prefix (`$SYS/` by default), so a
//! test can point the collector at `test/sys/#` and publish `test/sys/broker/...` itself.
//! A pattern level is a literal, `{label}` (one level, captured as a label value), `+` (one
//! level, not captured), `{instance}` (one level: the broker instance's id, such as aedes'
//! random UUID per start; never a label, see `sys::Ingest`) or, last, `#` (the rest).
//!
//! A profile entry reads the whole payload, or one field of a JSON object payload (`field:`),
//! optionally only when another field has a given value (`when:`); values outside the
//! metric's range (`min:`, `max:`) are refused and counted, and a value the broker uses for
//! "not available" (`unavailable:`) removes the series.

mod compile;
mod known;
mod pattern;

pub use known::{Family, INFO, KNOWN, Kind, SYS_VALUE};
pub use pattern::{Captured, INSTANCE_LEVEL};

use compile::{FamilyTable, compile, perr};
use pattern::Pattern;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How a payload becomes a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    /// A plain number.
    Number,
    /// A non-negative number.
    Counter,
    /// Seconds as a number, or text such as `"12 seconds"`, `"1 days, 2 hours, ..."`.
    Duration,
    /// Seconds since a date-time the broker announces (or seconds as a number).
    Since,
    /// `0`/`1`.
    Flag,
    /// Any payload: each message adds one (event topics such as NanoMQ's connects).
    Event,
    /// The version announcement, for `mqtt_broker_info`.
    Version,
}

impl Parser {
    fn from_name(s: &str) -> Option<Parser> {
        Some(match s {
            "number" => Parser::Number,
            "counter" => Parser::Counter,
            "duration" => Parser::Duration,
            "since" => Parser::Since,
            "flag" => Parser::Flag,
            "event" => Parser::Event,
            "version" => Parser::Version,
            _ => return None,
        })
    }
}

// ---- the schema, as written ----

/// One profile as written in YAML (built-in file or `sys_profiles.<name>` in the config).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDef {
    /// What `mqtt_broker_info{implementation}` says when the version topic does not.
    pub implementation: Option<String>,
    /// For documentation only.
    pub description: Option<String>,
    /// `auto` picks this profile when any of these matches a message.
    #[serde(default)]
    pub detect: Vec<DetectDef>,
    #[serde(default)]
    pub metrics: Vec<EntryDef>,
    /// Topics the broker publishes that carry nothing worth exporting.
    #[serde(default)]
    pub ignore: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectDef {
    pub topic: String,
    /// A regular expression the payload must match (searched, not anchored).
    pub payload: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryDef {
    pub topic: String,
    pub metric: String,
    pub parser: Option<String>,
    /// Multiplies numeric payloads into base units (`0.001` for milliseconds).
    pub scale: Option<f64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Help text for a metric name that is not one of the built-in ones.
    pub help: Option<String>,
    /// The payload is a JSON object and the value is this top-level key of it, taken as the
    /// key's literal text (rmqtt's `"connections.count"`). Several entries may read fields of
    /// one topic.
    pub field: Option<String>,
    /// Apply the entry only to JSON payloads whose `field` equals `equals` (NanoMQ's
    /// `"status": "online"`); several entries on one topic can split its messages.
    pub when: Option<WhenDef>,
    /// Smallest value the metric can take. Smaller ones are refused, counted in
    /// `mqtt_sentinel_sys_values_refused_total`, and the previous value is kept. Every
    /// built-in `mqtt_broker_*` metric is a count, a size, a duration or a ratio: 0 unless set.
    pub min: Option<f64>,
    /// Largest value the metric can plausibly take, refused and counted like `min` (a
    /// negative difference the broker prints as an unsigned number arrives as 4294967295).
    pub max: Option<f64>,
    /// A value the broker publishes to mean "not available" (rmqtt's `-1` when message
    /// storage is off): no series while it says so, and nothing counted.
    pub unavailable: Option<f64>,
}

/// A condition on a JSON payload: `{field: status, equals: online}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenDef {
    pub field: String,
    /// Compared with the field's text (a JSON string), or its JSON text for numbers and
    /// booleans (`1`, `true`).
    pub equals: String,
}

/// A mistake in a profile: `path` is relative to the profile (`metrics[2].parser`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub path: String,
    pub message: String,
}

/// What a matched topic does.
#[derive(Debug, Clone)]
pub enum Action {
    Value {
        family: Arc<Family>,
        parser: Parser,
        scale: f64,
        /// Constant labels, after the captured ones.
        labels: Vec<(Arc<str>, Arc<str>)>,
        /// Read this key of a JSON object payload instead of the whole payload.
        field: Option<Arc<str>>,
        /// Apply only to JSON payloads whose key (first) has this text (second).
        when: Option<(Arc<str>, Arc<str>)>,
        /// Accepted values, inclusive; others are refused (counted, previous value kept).
        range: (f64, f64),
        /// The broker's "not available": no series while it holds.
        unavailable: Option<f64>,
    },
    Version,
    Ignore,
}

impl Action {
    /// Whether the payload must be a JSON object for this action.
    pub fn reads_json(&self) -> bool {
        matches!(self, Action::Value { field, when, .. } if field.is_some() || when.is_some())
    }
}

#[derive(Debug)]
pub struct Entry {
    pattern: Pattern,
    pub action: Action,
}

impl Entry {
    /// Label names captured from the topic, in order.
    pub fn captures(&self) -> &[Arc<str>] {
        &self.pattern.captures
    }
}

#[derive(Debug)]
struct Detect {
    pattern: Pattern,
    payload: Option<regex::Regex>,
}

/// The entries one topic pattern maps to: one, or several reading fields of a JSON payload.
#[derive(Debug)]
struct Group {
    /// The topic pattern as written.
    topic: Arc<str>,
    pattern: Pattern,
    entries: Vec<usize>,
}

/// A topic matched by a profile: its entries (in the order written) and what the topic
/// captured.
#[derive(Debug)]
pub struct Matched<'p, 't> {
    /// The topic pattern as written in the profile (`brokers/{node}/stats`).
    pub topic: &'p str,
    pub entries: Vec<&'p Entry>,
    pub captured: Captured<'t>,
}

impl Matched<'_, '_> {
    /// Whether the payload must be a JSON object (some entry reads a field or a condition).
    pub fn reads_json(&self) -> bool {
        self.entries.iter().any(|e| e.action.reads_json())
    }
}

/// A compiled profile.
#[derive(Debug)]
pub struct Profile {
    pub name: Arc<str>,
    pub implementation: Arc<str>,
    /// Groups whose topic has no wildcard, by topic.
    literal: HashMap<String, usize>,
    /// Groups with wildcards, in the order written.
    patterned: Vec<usize>,
    groups: Vec<Group>,
    entries: Vec<Entry>,
    detect: Vec<Detect>,
}

impl Profile {
    /// Map a topic relative to the `$SYS` prefix: its entries and captured values. Exact
    /// topics win over patterns; patterns are tried in the order written.
    pub fn lookup<'t>(&self, rel: &'t str) -> Option<Matched<'_, 't>> {
        let (group, captured) = match self.literal.get(rel) {
            Some(&g) => (&self.groups[g], Captured::default()),
            None => self.patterned.iter().find_map(|&g| {
                let group = &self.groups[g];
                group.pattern.matches(rel).map(|c| (group, c))
            })?,
        };
        Some(Matched {
            topic: &group.topic,
            entries: group.entries.iter().map(|&i| &self.entries[i]).collect(),
            captured,
        })
    }

    /// Whether this message identifies the broker as one this profile is for.
    pub fn detects(&self, rel: &str, payload: &[u8]) -> bool {
        self.detect.iter().any(|d| {
            d.pattern.matches(rel).is_some()
                && d.payload
                    .as_ref()
                    .is_none_or(|re| std::str::from_utf8(payload).is_ok_and(|p| re.is_match(p)))
        })
    }

    /// Every entry (for documentation and tests).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// The built-in profiles, in the order `auto` tries them.
pub const BUILTIN: &[(&str, &str)] = &[
    ("mosquitto", include_str!("profiles/mosquitto.yaml")),
    ("amqtt", include_str!("profiles/amqtt.yaml")),
    ("emqx", include_str!("profiles/emqx.yaml")),
    ("vernemq", include_str!("profiles/vernemq.yaml")),
    ("nanomq", include_str!("profiles/nanomq.yaml")),
    ("rmqtt", include_str!("profiles/rmqtt.yaml")),
    ("aedes", include_str!("profiles/aedes.yaml")),
    ("generic", include_str!("profiles/generic.yaml")),
];

/// Every profile a config can name: user-defined ones first (so `auto` prefers them), then
/// the built-in ones.
#[derive(Debug)]
pub struct ProfileSet {
    profiles: Vec<Arc<Profile>>,
    generic: Arc<Profile>,
    sys_value: Arc<Family>,
    /// The user-defined profiles as written: what equality compares (a reload restarts the
    /// brokers whose profiles changed).
    user: BTreeMap<String, ProfileDef>,
}

impl PartialEq for ProfileSet {
    fn eq(&self, other: &Self) -> bool {
        self.user == other.user
    }
}
impl Eq for ProfileSet {}

impl ProfileSet {
    /// The built-in profiles only.
    pub fn builtin() -> ProfileSet {
        match ProfileSet::with_user(&BTreeMap::new()) {
            Ok(s) => s,
            // Startup invariant: the embedded files are compiled by a unit test.
            Err((name, e)) => panic!("built-in profile {name}: {}: {}", e.path, e.message),
        }
    }

    /// Built-in plus user-defined profiles. A user profile may not reuse a built-in name.
    /// The error carries the profile's name.
    pub fn with_user(
        user: &BTreeMap<String, ProfileDef>,
    ) -> Result<ProfileSet, (String, ProfileError)> {
        let mut families = FamilyTable::new_with_known();
        let mut builtin = Vec::new();
        for (name, text) in BUILTIN {
            let def: ProfileDef = serde_yaml::from_str(text)
                .map_err(|e| ((*name).to_owned(), perr("", e.to_string())))?;
            let p =
                compile(name, &def, &mut families, true).map_err(|e| ((*name).to_owned(), e))?;
            builtin.push(Arc::new(p));
        }
        let mut profiles = Vec::new();
        for (name, def) in user {
            if name == "auto" || BUILTIN.iter().any(|(b, _)| b == name) {
                return Err((
                    name.clone(),
                    perr(
                        "",
                        format!("{name:?} is a built-in profile name; choose another"),
                    ),
                ));
            }
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err((
                    name.clone(),
                    perr("", "profile names use letters, digits, - and _"),
                ));
            }
            let p = compile(name, def, &mut families, false).map_err(|e| (name.clone(), e))?;
            profiles.push(Arc::new(p));
        }
        profiles.extend(builtin);
        let generic = profiles
            .iter()
            .find(|p| &*p.name == "generic")
            .cloned()
            .ok_or_else(|| ("generic".to_owned(), perr("", "missing")))?;
        let sys_value = families.get(SYS_VALUE, None, String::new());
        Ok(ProfileSet {
            profiles,
            generic,
            sys_value,
            user: user.clone(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Profile>> {
        self.profiles.iter().find(|p| &*p.name == name)
    }

    pub fn generic(&self) -> &Arc<Profile> {
        &self.generic
    }

    /// The first profile this message identifies.
    pub fn detect(&self, rel: &str, payload: &[u8]) -> Option<&Arc<Profile>> {
        self.profiles.iter().find(|p| p.detects(rel, payload))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.iter().map(|p| &*p.name)
    }

    /// Every family the set's profiles can produce, with the label names each can carry
    /// (besides `broker`), for documentation checks.
    pub fn families(&self) -> BTreeMap<String, (Kind, std::collections::BTreeSet<String>)> {
        let mut out: BTreeMap<String, (Kind, std::collections::BTreeSet<String>)> = BTreeMap::new();
        for p in &self.profiles {
            for e in p.entries() {
                if let Action::Value { family, labels, .. } = &e.action {
                    let slot = out
                        .entry(family.name.to_string())
                        .or_insert_with(|| (family.kind, Default::default()));
                    slot.1.extend(e.captures().iter().map(|c| c.to_string()));
                    slot.1.extend(labels.iter().map(|(k, _)| k.to_string()));
                }
            }
        }
        out.insert(SYS_VALUE.into(), (Kind::Gauge, ["topic".to_owned()].into()));
        out
    }

    /// The family of unknown numeric topics.
    pub fn sys_value(&self) -> Arc<Family> {
        self.sys_value.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests;
