//! Compiling a profile as written ([`ProfileDef`]) into a [`Profile`]: every mistake named
//! by its path in the profile (`metrics[2].parser`), which the config turns into file:line.

use super::known::{KNOWN, LAST_UPDATE};
use super::pattern::{Pattern, check_label_name};
use super::*;

/// Shares one `Family` per name across the profiles of a set.
#[derive(Default)]
pub(super) struct FamilyTable(HashMap<String, Arc<Family>>);

impl FamilyTable {
    pub(super) fn get(
        &mut self,
        name: &str,
        help: Option<&str>,
        default_help: String,
    ) -> Arc<Family> {
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

    pub(super) fn new_with_known() -> FamilyTable {
        let mut t = FamilyTable::default();
        for (name, help) in KNOWN {
            t.get(name, Some(help), String::new());
        }
        t
    }
}

pub(super) fn perr(path: impl Into<String>, message: impl Into<String>) -> ProfileError {
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

pub(super) fn compile(
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
    // Counters never go down, so never below zero either. `min` and `max` bound the value in
    // base units (after `scale`).
    let min = e.min.unwrap_or(if known || counter {
        0.0
    } else {
        f64::NEG_INFINITY
    });
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
