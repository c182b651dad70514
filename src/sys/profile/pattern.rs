//! Topic patterns of profile entries: literal levels, `{label}`, `{instance}`, `+` and `#`.

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Level {
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
pub(super) struct Pattern {
    pub(super) levels: Vec<Level>,
    /// Label names captured from the topic, in order.
    pub(super) captures: Vec<Arc<str>>,
}

/// What a topic matched: the captured label values in order, and the instance id if the
/// pattern has an `{instance}` level.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Captured<'t> {
    pub labels: Vec<&'t str>,
    pub instance: Option<&'t str>,
}

impl Pattern {
    pub(super) fn parse(text: &str) -> Result<Pattern, String> {
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

    pub(super) fn literal(&self) -> Option<String> {
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
    pub(super) fn matches<'t>(&self, topic: &'t str) -> Option<Captured<'t>> {
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

pub(super) fn check_label_name(name: &str) -> Result<(), String> {
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
