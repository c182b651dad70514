//! Prometheus 2.42 rule files, parsed strictly: unknown keys, bad durations, bad PromQL, bad
//! templates and PromQL outside our subset are errors that name the file, line, group, rule and
//! construct. The result is ready to evaluate: parsed expressions and templates.

use super::promql;
use super::template::Template;
use crate::config::ConfigError;
use crate::config::locate::Locator;
use promql_parser::parser::Expr;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    interval: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    #[serde(default)]
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval: Option<Duration>,
    pub limit: usize,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    Alert {
        hold: Duration,
        keep_firing_for: Duration,
        annotations: Vec<(String, String, Template)>,
    },
    Record,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub expr: Expr,
    pub expr_text: String,
    /// Label name, the template text as written, and the parsed template.
    pub labels: Vec<(String, String, Template)>,
    pub kind: RuleKind,
}

impl Rule {
    pub fn is_alert(&self) -> bool {
        matches!(self.kind, RuleKind::Alert { .. })
    }
}

/// How many rules `groups` hold, as `rules check` and `check` report them.
pub fn rule_count(groups: &[Group]) -> usize {
    groups.iter().map(|g| g.rules.len()).sum()
}

/// The groups a configuration names: its `rules.files` in order, or the embedded default
/// rules. Errors name the rule file, line and field (see [`parse`]).
pub fn load_configured(cfg: &crate::config::RulesConfig) -> Result<Vec<Group>, ConfigError> {
    use crate::config::{DEFAULT_RULES, DEFAULT_RULES_SOURCE};
    match &cfg.files {
        None => parse(DEFAULT_RULES, DEFAULT_RULES_SOURCE),
        Some(files) => {
            let mut groups = vec![];
            for f in files {
                groups.extend(load(f)?);
            }
            Ok(groups)
        }
    }
}

/// An error of [`load`] as `rules check` (and `rules test`, for its `rule_files`) prints it,
/// in promtool's framing:
/// `<file>: <line>:<col>: <message>` (no field path; `r.yml: 5:15: group "g", rule 1, "r":
/// could not parse expression: 1:7: parse error: …`), or `<file>: <message>` without a
/// position. The sidecar's own configuration errors keep [`ConfigError`]'s
/// `<file>:<line>:<col>: <path>: <message>`.
pub fn check_line(e: &ConfigError) -> String {
    match (e.line, e.column) {
        (Some(l), Some(c)) => format!("{}: {l}:{c}: {}", e.source_name, e.message),
        _ => format!("{}: {}", e.source_name, e.message),
    }
}

/// Reads and validates one rule file.
pub fn load(path: &Path) -> Result<Vec<Group>, ConfigError> {
    let (name, text) = crate::config::read_text(path, "rule file")?;
    parse(&text, &name)
}

/// Validates a rule file's text; `source_name` names it in errors.
pub fn parse(text: &str, source_name: &str) -> Result<Vec<Group>, ConfigError> {
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: vec![] }
    } else {
        serde_yaml::from_str(text).map_err(|e| crate::config::yaml_error(source_name, &e))?
    };
    let locator = Locator::new(text);
    let err = |path: String, message: String| {
        let pos = locator.find(&path);
        ConfigError {
            source_name: source_name.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path,
            message,
        }
    };
    let mut names = HashSet::new();
    let mut groups = Vec::with_capacity(raw.groups.len());
    for (gi, g) in raw.groups.into_iter().enumerate() {
        let gpath = format!("groups[{gi}]");
        if g.name.is_empty() {
            return Err(err(
                format!("{gpath}.name"),
                "group name must not be empty".into(),
            ));
        }
        if !names.insert(g.name.clone()) {
            return Err(err(
                format!("{gpath}.name"),
                format!("group name {:?} is repeated in the same file", g.name),
            ));
        }
        let interval = match &g.interval {
            Some(t) => Some(parse_duration(t).map_err(|m| err(format!("{gpath}.interval"), m))?)
                .filter(|d| !d.is_zero()),
            None => None,
        };
        let mut rules = Vec::with_capacity(g.rules.len());
        for (ri, r) in g.rules.into_iter().enumerate() {
            let rpath = format!("{gpath}.rules[{ri}]");
            // promtool's words for a rule: `group "g", rule 2, "name"`.
            let what = match (&r.alert, &r.record) {
                (Some(n), None) | (None, Some(n)) => {
                    format!("group {:?}, rule {}, {n:?}", g.name, ri + 1)
                }
                (Some(_), Some(_)) => {
                    return Err(err(
                        rpath,
                        format!(
                            "group {:?}, rule {}: only one of 'record' and 'alert' may be set",
                            g.name,
                            ri + 1
                        ),
                    ));
                }
                (None, None) => {
                    return Err(err(
                        rpath,
                        format!(
                            "group {:?}, rule {}: one of 'record' or 'alert' must be set",
                            g.name,
                            ri + 1
                        ),
                    ));
                }
            };
            rules.push(
                rule(r).map_err(|(field, m)| {
                    err(format!("{rpath}.{field}"), format!("{what}: {m}"))
                })?,
            );
        }
        groups.push(Group {
            name: g.name,
            file: source_name.to_string(),
            interval,
            limit: g.limit,
            rules,
        });
    }
    Ok(groups)
}

type FieldError = (String, String);

fn rule(r: RawRule) -> Result<Rule, FieldError> {
    let field = |f: &str, m: String| (f.to_string(), m);
    if r.expr.trim().is_empty() {
        return Err(field("expr", "field 'expr' must be set".into()));
    }
    let expr = promql::parse(&r.expr)
        .map_err(|e| field("expr", format!("could not parse expression: {e}")))?;
    let mut labels = Vec::with_capacity(r.labels.len());
    for (k, v) in &r.labels {
        if !valid_label_name(k) || k == "__name__" {
            return Err((format!("labels.{k}"), format!("invalid label name: {k:?}")));
        }
        let t =
            Template::parse(v).map_err(|e| (format!("labels.{k}"), format!("template: {e}")))?;
        labels.push((k.clone(), v.clone(), t));
    }
    if let Some(name) = r.record {
        if !valid_metric_name(&name) {
            return Err(field(
                "record",
                format!("invalid recording rule name: {name}"),
            ));
        }
        for (f, set) in [
            ("annotations", !r.annotations.is_empty()),
            ("for", r.for_.is_some()),
            ("keep_firing_for", r.keep_firing_for.is_some()),
        ] {
            if set {
                return Err(field(f, format!("invalid field '{f}' in recording rule")));
            }
        }
        return Ok(Rule {
            name,
            expr,
            expr_text: r.expr,
            labels,
            kind: RuleKind::Record,
        });
    }
    let name = r.alert.unwrap_or_default();
    if name.is_empty() {
        return Err(field("alert", "alert name must not be empty".into()));
    }
    let dur = |f: &str, t: &Option<String>| match t {
        Some(t) => parse_duration(t).map_err(|m| field(f, m)),
        None => Ok(Duration::ZERO),
    };
    let hold = dur("for", &r.for_)?;
    let keep_firing_for = dur("keep_firing_for", &r.keep_firing_for)?;
    let mut annotations = Vec::with_capacity(r.annotations.len());
    for (k, v) in &r.annotations {
        if !valid_label_name(k) {
            return Err((
                format!("annotations.{k}"),
                format!("invalid annotation name: {k:?}"),
            ));
        }
        let t = Template::parse(v)
            .map_err(|e| (format!("annotations.{k}"), format!("template: {e}")))?;
        annotations.push((k.clone(), v.clone(), t));
    }
    Ok(Rule {
        name,
        expr,
        expr_text: r.expr,
        labels,
        kind: RuleKind::Alert {
            hold,
            keep_firing_for,
            annotations,
        },
    })
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// Prometheus' `model.ParseDuration`: `1y2w3d4h5m6s7ms` (units in that order, each once), or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("not a valid duration string: {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = text;
    let mut next_unit = 0;
    let mut ms: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let i = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        if i < next_unit {
            return Err(bad());
        }
        next_unit = i + 1;
        ms = n
            .checked_mul(UNITS[i].1)
            .and_then(|v| ms.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(parse_duration("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("100ms").ok(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_duration("1d").ok(), Some(Duration::from_secs(86400)));
        for bad in ["", "1", "m", "5m1h", "1.5m", "-1m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_file_line_group_and_rule() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n      - alert: B\n        expr: histogram_count(up)\n";
        let e = parse(text, "r.yml").expect_err("native histograms");
        assert_eq!(
            e.to_string(),
            "r.yml:7:15: groups[0].rules[1].expr: group \"g\", rule 2, \"B\": could not parse expression: function \"histogram_count\" is not supported"
        );
        let e = parse("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        fore: 1m\n", "r.yml")
            .expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `fore`"), "{e}");
        let e = parse("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n        for: 1m\n", "r.yml")
            .expect_err("for on record");
        assert!(
            e.to_string()
                .contains("invalid field 'for' in recording rule"),
            "{e}"
        );
    }
}
