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

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One exported metric family. Counter names carry `_total`; the encoder strips it for the
/// OpenMetrics `# TYPE` line and puts it back on the sample. Ordered and compared by name.
#[derive(Debug)]
pub struct Family {
    pub name: Arc<str>,
    pub kind: Kind,
    pub help: Arc<str>,
}

impl PartialEq for Family {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Family {}
impl PartialOrd for Family {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Family {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(&other.name)
    }
}

pub const INFO: &str = "mqtt_broker_info";
pub const SYS_VALUE: &str = "mqtt_broker_sys_value";
const LAST_UPDATE: &str = "mqtt_broker_sys_last_update_timestamp_seconds";

/// Families whose meaning is the same whichever broker reports them: profiles map onto these
/// names, and their help text is fixed here.
pub static KNOWN: &[(&str, &str)] = &[
    (
        "mqtt_broker_clients_connected",
        "Clients currently connected.",
    ),
    (
        "mqtt_broker_clients_disconnected",
        "Disconnected clients whose persistent session the broker keeps.",
    ),
    (
        "mqtt_broker_clients_registered",
        "Connected plus disconnected clients with a session (mosquitto clients/total, EMQX sessions, VerneMQ queues).",
    ),
    (
        "mqtt_broker_clients_maximum",
        "Highest number of clients connected at once since the broker started.",
    ),
    (
        "mqtt_broker_clients_expired_total",
        "Disconnected sessions expired by the broker.",
    ),
    (
        "mqtt_broker_client_connects_total",
        "Client connections the broker accepted (NanoMQ: connect events seen since mqtt-sentinel subscribed).",
    ),
    (
        "mqtt_broker_client_disconnects_total",
        "Client disconnections the broker reported (NanoMQ: disconnect events seen since mqtt-sentinel subscribed).",
    ),
    (
        "mqtt_broker_messages_received_total",
        "MQTT packets of any type received by the broker.",
    ),
    (
        "mqtt_broker_messages_sent_total",
        "MQTT packets of any type sent by the broker.",
    ),
    (
        "mqtt_broker_messages_inflight",
        "QoS>0 messages awaiting acknowledgement.",
    ),
    (
        "mqtt_broker_publish_messages_received_total",
        "PUBLISH messages received by the broker.",
    ),
    (
        "mqtt_broker_publish_messages_sent_total",
        "PUBLISH messages sent by the broker.",
    ),
    (
        "mqtt_broker_publish_messages_dropped_total",
        "PUBLISH messages dropped by the broker (queue limits, offline clients).",
    ),
    (
        "mqtt_broker_bytes_received_total",
        "Bytes received by the broker.",
    ),
    ("mqtt_broker_bytes_sent_total", "Bytes sent by the broker."),
    (
        "mqtt_broker_publish_bytes_received_total",
        "PUBLISH payload bytes received by the broker.",
    ),
    (
        "mqtt_broker_publish_bytes_sent_total",
        "PUBLISH payload bytes sent by the broker.",
    ),
    ("mqtt_broker_subscriptions", "Active subscriptions."),
    (
        "mqtt_broker_shared_subscriptions",
        "Active shared subscriptions.",
    ),
    (
        "mqtt_broker_topics",
        "Topics with at least one subscriber (routing table size).",
    ),
    (
        "mqtt_broker_retained_messages",
        "Retained messages held by the broker.",
    ),
    (
        "mqtt_broker_stored_messages",
        "Messages held in the broker's message store, including retained and in-flight ones.",
    ),
    (
        "mqtt_broker_stored_messages_bytes",
        "Payload bytes held in the broker's message store.",
    ),
    (
        "mqtt_broker_heap_bytes",
        "Heap memory in use by the broker (mosquitto: only when built with memory tracking; amqtt: process RSS).",
    ),
    (
        "mqtt_broker_heap_maximum_bytes",
        "Largest heap memory use since the broker started.",
    ),
    (
        "mqtt_broker_cpu_usage_ratio",
        "CPU use of the broker process, 1 = one core.",
    ),
    (
        "mqtt_broker_uptime_seconds",
        "Seconds since the broker started.",
    ),
    (
        "mqtt_broker_load_connections_per_second",
        "Broker's moving average of new connections per second over `window`.",
    ),
    (
        "mqtt_broker_load_sockets_per_second",
        "Broker's moving average of opened sockets per second over `window`.",
    ),
    (
        "mqtt_broker_load_bytes_received_per_second",
        "Broker's moving average of bytes received per second over `window`.",
    ),
    (
        "mqtt_broker_load_bytes_sent_per_second",
        "Broker's moving average of bytes sent per second over `window`.",
    ),
    (
        "mqtt_broker_load_messages_received_per_second",
        "Broker's moving average of packets received per second over `window`.",
    ),
    (
        "mqtt_broker_load_messages_sent_per_second",
        "Broker's moving average of packets sent per second over `window`.",
    ),
    (
        "mqtt_broker_load_publish_received_per_second",
        "Broker's moving average of PUBLISH received per second over `window`.",
    ),
    (
        "mqtt_broker_load_publish_sent_per_second",
        "Broker's moving average of PUBLISH sent per second over `window`.",
    ),
    (
        "mqtt_broker_load_publish_dropped_per_second",
        "Broker's moving average of PUBLISH dropped per second over `window`.",
    ),
    (
        "mqtt_broker_sockets_opened_total",
        "Network connections the broker accepted, whether or not a CONNECT followed (mosquitto 2.1 connections/socket/count).",
    ),
    (
        "mqtt_broker_outgoing_packets",
        "Packets the broker has queued for sending and not yet written to the network (outbound backlog).",
    ),
    (
        "mqtt_broker_outgoing_packets_bytes",
        "Bytes of the packets the broker has queued for sending (outbound backlog).",
    ),
    (
        "mqtt_broker_bridge_up",
        "1 if the broker reports the bridge connected, 0 if not.",
    ),
    (
        SYS_VALUE,
        "Numeric $SYS topics no profile knows, by full topic (capped by sys.max_series).",
    ),
];

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

// ---- compiled ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Lit(String),
    Capture,
    Instance,
    Any,
    Rest,
}

/// The level name that captures a broker instance id instead of a label. `instance` is also
/// the label Prometheus sets from the scrape target, so it could never be ours anyway.
pub const INSTANCE_LEVEL: &str = "instance";

#[derive(Debug, Clone)]
struct Pattern {
    levels: Vec<Level>,
    captures: Vec<Arc<str>>,
}

/// What a topic matched: the captured label values in order, and the instance id if the
/// pattern has an `{instance}` level.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Captured<'t> {
    pub labels: Vec<&'t str>,
    pub instance: Option<&'t str>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("empty topic pattern".into());
        }
        let parts: Vec<&str> = text.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        let mut captures: Vec<Arc<str>> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let level = if *part == "+" {
                Level::Any
            } else if *part == "#" {
                if i + 1 != parts.len() {
                    return Err(format!("{text:?}: `#` must be the last level"));
                }
                Level::Rest
            } else if *part == "{instance}" {
                if levels.contains(&Level::Instance) {
                    return Err(format!("{text:?}: {{instance}} appears twice"));
                }
                Level::Instance
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                check_label_name(name).map_err(|e| format!("{text:?}: {e}"))?;
                if captures.iter().any(|c| &**c == name) {
                    return Err(format!("{text:?}: label {name:?} is captured twice"));
                }
                captures.push(name.into());
                Level::Capture
            } else if part.contains(['+', '#', '{', '}']) {
                return Err(format!(
                    "{text:?}: level {part:?} mixes text with a wildcard; use a whole level: +, # or {{label}}"
                ));
            } else {
                Level::Lit((*part).to_owned())
            };
            levels.push(level);
        }
        Ok(Pattern { levels, captures })
    }

    fn literal(&self) -> Option<String> {
        let mut out = Vec::with_capacity(self.levels.len());
        for l in &self.levels {
            match l {
                Level::Lit(s) => out.push(s.as_str()),
                _ => return None,
            }
        }
        Some(out.join("/"))
    }

    /// The captured values, in capture order, if `topic` matches.
    fn matches<'t>(&self, topic: &'t str) -> Option<Captured<'t>> {
        let mut caps = Captured::default();
        let mut parts = topic.split('/');
        for level in &self.levels {
            if *level == Level::Rest {
                return Some(caps);
            }
            let part = parts.next()?;
            match level {
                Level::Lit(s) if s == part => {}
                Level::Lit(_) => return None,
                Level::Capture | Level::Instance if part.is_empty() => return None,
                Level::Capture => caps.labels.push(part),
                Level::Instance => caps.instance = Some(part),
                Level::Any | Level::Rest => {}
            }
        }
        parts.next().is_none().then_some(caps)
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!("{name:?} is not a valid label name"));
    }
    if name.starts_with("__") {
        return Err(format!(
            "label names starting with __ are reserved ({name:?})"
        ));
    }
    if name == "broker" {
        return Err("label \"broker\" is set by mqtt-sentinel from the broker's name".into());
    }
    if name == "instance" || name == "job" {
        return Err(format!(
            "label {name:?} is set by Prometheus from the scrape target (`{{instance}}` in a topic captures a broker instance id, which is no label)"
        ));
    }
    Ok(())
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

/// Shares one `Family` per name across the profiles of a set.
#[derive(Default)]
struct FamilyTable(HashMap<String, Arc<Family>>);

impl FamilyTable {
    fn get(&mut self, name: &str, help: Option<&str>, default_help: String) -> Arc<Family> {
        if let Some(f) = self.0.get(name) {
            return f.clone();
        }
        let kind = if name.ends_with("_total") {
            Kind::Counter
        } else {
            Kind::Gauge
        };
        let help = help.map(str::to_owned).unwrap_or(default_help);
        let f = Arc::new(Family {
            name: name.into(),
            kind,
            help: help.into(),
        });
        self.0.insert(name.to_owned(), f.clone());
        f
    }

    fn new_with_known() -> FamilyTable {
        let mut t = FamilyTable::default();
        for (name, help) in KNOWN {
            t.get(name, Some(help), String::new());
        }
        t
    }
}

fn perr(path: impl Into<String>, message: impl Into<String>) -> ProfileError {
    ProfileError {
        path: path.into(),
        message: message.into(),
    }
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let body = name.strip_prefix("mqtt_broker_").ok_or_else(|| {
        format!("{name:?}: profile metrics are named mqtt_broker_* (so they cannot collide with mqtt-sentinel's own)")
    })?;
    let ok = !body.is_empty()
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !body.ends_with('_');
    if !ok {
        return Err(format!("{name:?} is not a valid metric name"));
    }
    if name == SYS_VALUE || name == LAST_UPDATE || name.starts_with("mqtt_broker_info_") {
        return Err(format!("{name:?} is reserved for mqtt-sentinel itself"));
    }
    Ok(())
}

fn compile(
    name: &str,
    def: &ProfileDef,
    families: &mut FamilyTable,
    builtin: bool,
) -> Result<Profile, ProfileError> {
    let mut entries = Vec::new();
    for (i, e) in def.metrics.iter().enumerate() {
        let at = |f: &str| format!("metrics[{i}].{f}");
        let pattern = Pattern::parse(&e.topic).map_err(|m| perr(at("topic"), m))?;
        let action = if e.metric == INFO {
            match e.parser.as_deref() {
                None | Some("version") => {}
                Some(p) => {
                    return Err(perr(
                        at("parser"),
                        format!("{INFO} takes the version parser, not {p:?}"),
                    ));
                }
            }
            // Captures are allowed (a node name in the topic) and dropped: the info series
            // carries implementation, version and profile only.
            let extra = [
                (!e.labels.is_empty(), "labels"),
                (e.scale.is_some(), "scale"),
                (e.field.is_some(), "field"),
                (e.when.is_some(), "when"),
                (e.min.is_some(), "min"),
                (e.max.is_some(), "max"),
                (e.unavailable.is_some(), "unavailable"),
            ];
            if let Some((_, what)) = extra.iter().find(|(set, _)| *set) {
                return Err(perr(at(what), format!("{INFO} takes no {what}")));
            }
            Action::Version
        } else {
            value_action(name, i, e, &pattern, families, builtin)?
        };
        entries.push(Entry { pattern, action });
    }
    for (i, t) in def.ignore.iter().enumerate() {
        let pattern = Pattern::parse(t).map_err(|m| perr(format!("ignore[{i}]"), m))?;
        entries.push(Entry {
            pattern,
            action: Action::Ignore,
        });
    }
    let (literal, patterned, groups) = group_entries(def, &entries)?;
    let mut detect = Vec::new();
    for (i, d) in def.detect.iter().enumerate() {
        let pattern =
            Pattern::parse(&d.topic).map_err(|m| perr(format!("detect[{i}].topic"), m))?;
        let payload = match &d.payload {
            None => None,
            Some(p) => Some(regex::Regex::new(p).map_err(|e| {
                perr(
                    format!("detect[{i}].payload"),
                    format!("invalid regular expression: {e}"),
                )
            })?),
        };
        detect.push(Detect { pattern, payload });
    }
    // `mqtt_broker_info{implementation}` is never empty: the profile says, else its name.
    let implementation = match (&def.implementation, name) {
        (Some(i), _) if !i.is_empty() => i.as_str(),
        (_, "generic") => "unknown",
        _ => name,
    };
    Ok(Profile {
        name: name.into(),
        implementation: implementation.into(),
        literal,
        patterned,
        groups,
        entries,
        detect,
    })
}

/// Compiles one `metrics[i]` entry that is not the info metric.
fn value_action(
    name: &str,
    i: usize,
    e: &EntryDef,
    pattern: &Pattern,
    families: &mut FamilyTable,
    builtin: bool,
) -> Result<Action, ProfileError> {
    let at = |f: &str| format!("metrics[{i}].{f}");
    check_metric_name(&e.metric).map_err(|m| perr(at("metric"), m))?;
    let counter = e.metric.ends_with("_total");
    let parser = match e.parser.as_deref() {
        None if counter => Parser::Counter,
        None => Parser::Number,
        Some(p) => Parser::from_name(p).ok_or_else(|| {
            perr(
                at("parser"),
                format!(
                    "unknown parser {p:?}: expected number, counter, duration, since, flag or event"
                ),
            )
        })?,
    };
    let fits = match parser {
        Parser::Counter | Parser::Event => counter,
        Parser::Number | Parser::Flag | Parser::Duration | Parser::Since => !counter,
        Parser::Version => false,
    };
    if !fits {
        let why = if counter {
            "a counter (name ends in _total) takes the counter or event parser"
        } else {
            "the counter and event parsers need a counter, whose name ends in _total"
        };
        return Err(perr(
            at("parser"),
            format!(
                "parser {:?} does not fit {:?}: {why}",
                e.parser.as_deref().unwrap_or(""),
                e.metric
            ),
        ));
    }
    if e.field.is_some() && !matches!(parser, Parser::Number | Parser::Counter) {
        return Err(perr(
            at("field"),
            format!(
                "a JSON field holds a number: parser {:?} reads the whole payload",
                e.parser.as_deref().unwrap_or("")
            ),
        ));
    }
    if e.field.as_deref() == Some("") {
        return Err(perr(at("field"), "empty field name"));
    }
    let scale = e.scale.unwrap_or(1.0);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(perr(
            at("scale"),
            format!("scale must be a positive number, not {scale}"),
        ));
    }
    let known = KNOWN.iter().any(|(n, _)| *n == e.metric);
    if known && e.help.is_some() && !builtin {
        return Err(perr(
            at("help"),
            format!(
                "{:?} is a built-in metric; its help text is fixed",
                e.metric
            ),
        ));
    }
    // Every built-in family is a count, size, duration, ratio or flag: never negative.
    let min = e.min.unwrap_or(if known { 0.0 } else { f64::NEG_INFINITY });
    let max = e.max.unwrap_or(f64::INFINITY);
    for (v, f) in [
        (e.min, "min"),
        (e.max, "max"),
        (e.unavailable, "unavailable"),
    ] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(perr(at(f), "must be a finite number"));
        }
    }
    if min > max {
        return Err(perr(at("max"), format!("max {max} is below min {min}")));
    }
    let mut labels = Vec::new();
    for (k, v) in &e.labels {
        check_label_name(k).map_err(|m| perr(format!("metrics[{i}].labels.{k}"), m))?;
        if pattern.captures.iter().any(|c| &**c == k) {
            return Err(perr(
                format!("metrics[{i}].labels.{k}"),
                format!("label {k:?} is also captured from the topic"),
            ));
        }
        labels.push((Arc::<str>::from(k.as_str()), Arc::<str>::from(v.as_str())));
    }
    let when = match &e.when {
        None => None,
        Some(w) if w.field.is_empty() => return Err(perr(at("when.field"), "empty field name")),
        Some(w) => Some((
            Arc::<str>::from(w.field.as_str()),
            Arc::<str>::from(w.equals.as_str()),
        )),
    };
    let family = families.get(
        &e.metric,
        e.help.as_deref(),
        format!("From $SYS topic {} (profile {name}).", e.topic),
    );
    Ok(Action::Value {
        family,
        parser,
        scale,
        labels,
        field: e.field.as_deref().map(Arc::from),
        when,
        range: (min, max),
        unavailable: e.unavailable,
    })
}

type Grouped = (HashMap<String, usize>, Vec<usize>, Vec<Group>);

/// Groups entries by topic text. One topic holds one entry, or several that all read a JSON
/// payload and differ in field or condition.
fn group_entries(def: &ProfileDef, entries: &[Entry]) -> Result<Grouped, ProfileError> {
    let path = |i: usize| {
        if i < def.metrics.len() {
            format!("metrics[{i}].topic")
        } else {
            format!("ignore[{}]", i - def.metrics.len())
        }
    };
    let topic = |i: usize| {
        if i < def.metrics.len() {
            def.metrics[i].topic.as_str()
        } else {
            def.ignore[i - def.metrics.len()].as_str()
        }
    };
    let mut by_topic: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let t = topic(i);
        let Some(&g) = by_topic.get(t) else {
            by_topic.insert(t, groups.len());
            groups.push(Group {
                topic: t.into(),
                pattern: e.pattern.clone(),
                entries: vec![i],
            });
            continue;
        };
        let first = &entries[groups[g].entries[0]];
        if !(e.action.reads_json() && first.action.reads_json()) {
            return Err(perr(
                path(i),
                format!(
                    "topic {t:?} is mapped twice (one topic maps to several metrics only through `field:` or `when:` on every entry)"
                ),
            ));
        }
        let key = |a: &Action| match a {
            Action::Value { field, when, .. } => (field.clone(), when.clone()),
            _ => (None, None),
        };
        if groups[g]
            .entries
            .iter()
            .any(|&j| key(&entries[j].action) == key(&e.action))
        {
            return Err(perr(
                path(i),
                format!("topic {t:?} maps the same field and condition twice"),
            ));
        }
        groups[g].entries.push(i);
    }
    let mut literal = HashMap::new();
    let mut patterned = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        match group.pattern.literal() {
            Some(t) => {
                literal.insert(t, g);
            }
            None => patterned.push(g),
        }
    }
    Ok((literal, patterned, groups))
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
