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

/// One error of a rule file, in both framings: `error` for the sidecar (`file:line:col:
/// path: message`, via [`ConfigError`]'s `Display`), `promtool` for `rules check` / `rules
/// test`: the whole line `promtool check rules` 2.42 prints for it (Prometheus' `rulefmt`
/// wording and positions: `r.yml: 8:17: 9:16: group "g", rule 1, "b": only one of 'record'
/// and 'alert' must be set`, `r.yml: 0:0: …` for a field not written, no position for
/// label and annotation names and templates). Learnt from real promtool 2.42 runs
/// (`tests/it/rules.rs`, `rules_check_prints_what_promtool_prints`).
#[derive(Debug, Clone)]
pub struct FileError {
    pub error: ConfigError,
    pub promtool: String,
}

/// Reads and validates one rule file; `Err` holds EVERY error, in promtool's order (by group,
/// then rule; within a rule: record/alert, expr, recording-rule fields, label names,
/// annotation names, templates). A file that cannot be read or is not YAML gives one error.
pub fn check_file(path: &Path) -> Result<Vec<Group>, Vec<FileError>> {
    let one = |e: ConfigError| {
        vec![FileError {
            promtool: check_line(&e),
            error: e,
        }]
    };
    let (name, text) = crate::config::read_text(path, "rule file").map_err(one)?;
    check(&text, &name)
}

/// Reads and validates one rule file; the first error of [`check_file`].
pub fn load(path: &Path) -> Result<Vec<Group>, ConfigError> {
    check_file(path).map_err(first)
}

/// Validates a rule file's text; `source_name` names it in errors. The first error of
/// [`check`].
pub fn parse(text: &str, source_name: &str) -> Result<Vec<Group>, ConfigError> {
    check(text, source_name).map_err(first)
}

fn first(mut errs: Vec<FileError>) -> ConfigError {
    errs.swap_remove(0).error
}

/// Validates a rule file's text; `source_name` names it in errors. `Err` holds every error
/// (never empty), as [`check_file`].
pub fn check(text: &str, source_name: &str) -> Result<Vec<Group>, Vec<FileError>> {
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: vec![] }
    } else {
        serde_yaml::from_str(text).map_err(|e| {
            let e = crate::config::yaml_error(source_name, &e);
            vec![FileError {
                promtool: check_line(&e),
                error: e,
            }]
        })?
    };
    let locator = Locator::new(text);
    let mut errors: Vec<FileError> = vec![];
    // `path`: where the sidecar's error points; `promtool`: the line after `<file>: `.
    let mut push = |path: String, message: String, promtool: String| {
        let pos = locator.find(&path);
        errors.push(FileError {
            error: ConfigError {
                source_name: source_name.to_string(),
                line: pos.map(|p| p.line),
                column: pos.map(|p| p.column),
                path,
                message,
            },
            promtool: format!("{source_name}: {promtool}"),
        });
    };
    // promtool's `line:col: ` of a node: where its value was written, `0:0: ` if it was not.
    let at = |path: &str| match locator.get(path) {
        Some(p) => format!("{}:{}: ", p.line, p.column),
        None => "0:0: ".to_string(),
    };
    let start = |path: &str| match locator.start(path) {
        Some(p) => format!("{}:{}: ", p.line, p.column),
        None => "0:0: ".to_string(),
    };
    let mut names = HashSet::new();
    let mut groups = Vec::with_capacity(raw.groups.len());
    for (gi, g) in raw.groups.into_iter().enumerate() {
        let gpath = format!("groups[{gi}]");
        if g.name.is_empty() {
            push(
                format!("{gpath}.name"),
                "group name must not be empty".into(),
                format!("{}Groupname must not be empty", start(&gpath)),
            );
        }
        if !names.insert(g.name.clone()) {
            push(
                format!("{gpath}.name"),
                format!("group name {:?} is repeated in the same file", g.name),
                format!(
                    "{}groupname: \"{}\" is repeated in the same file",
                    start(&gpath),
                    g.name
                ),
            );
        }
        let interval = match &g.interval {
            Some(t) => match parse_duration(t) {
                Ok(d) => Some(d).filter(|d| !d.is_zero()),
                Err(m) => {
                    let path = format!("{gpath}.interval");
                    let promtool = format!("{}{m}", at(&path));
                    push(path, m, promtool);
                    None
                }
            },
            None => None,
        };
        let mut rules = Vec::with_capacity(g.rules.len());
        for (ri, r) in g.rules.into_iter().enumerate() {
            let rpath = format!("{gpath}.rules[{ri}]");
            // promtool's words for a rule: `group "g", rule 2, "name"` (the alert's name if
            // set, else the record's).
            let shown = r
                .alert
                .as_deref()
                .filter(|a| !a.is_empty())
                .or(r.record.as_deref())
                .unwrap_or("");
            let what = format!("group {:?}, rule {}, {shown:?}", g.name, ri + 1);
            let set = |n: &Option<String>| n.as_deref().is_some_and(|n| !n.is_empty());
            match (set(&r.alert), set(&r.record)) {
                (true, true) => push(
                    rpath.clone(),
                    format!(
                        "group {:?}, rule {}: only one of 'record' and 'alert' may be set",
                        g.name,
                        ri + 1
                    ),
                    format!(
                        "{}{}{what}: only one of 'record' and 'alert' must be set",
                        at(&format!("{rpath}.record")),
                        at(&format!("{rpath}.alert"))
                    ),
                ),
                (false, false) => push(
                    rpath.clone(),
                    format!(
                        "group {:?}, rule {}: one of 'record' or 'alert' must be set",
                        g.name,
                        ri + 1
                    ),
                    format!(
                        "{}{what}: one of 'record' or 'alert' must be set",
                        at(&format!("{rpath}.record"))
                    ),
                ),
                _ => {}
            }
            match rule(r) {
                Ok(rule) => rules.push(rule),
                Err(errs) => {
                    for e in errs {
                        let path = format!("{rpath}.{}", e.field);
                        let pos = match e.at {
                            Some(f) => at(&format!("{rpath}.{f}")),
                            None => String::new(),
                        };
                        let promtool = format!("{pos}{what}: {}", e.promtool);
                        push(path, format!("{what}: {}", e.message), promtool);
                    }
                }
            }
        }
        groups.push(Group {
            name: g.name,
            file: source_name.to_string(),
            interval,
            limit: g.limit,
            rules,
        });
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

/// What `promtool check rules` 2.42 warns about in a file that is otherwise valid: rules
/// with the same name (alert or record) and the same labels, anywhere in the file. The
/// lines after `  FAILED:` (on stderr; the exit code stays 0): `lint error N duplicate
/// rule(s) found.`, then `Metric: <name>` and `Label(s):` with one `\t<name>: <value>` line
/// per label for each repeated rule, then `Might cause inconsistency while recording
/// expressions`. `None` without duplicates.
pub fn duplicate_warning(groups: &[Group]) -> Option<String> {
    let mut rules: Vec<(&str, Vec<(&str, &str)>)> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .map(|r| {
            let mut labels: Vec<(&str, &str)> = r
                .labels
                .iter()
                .map(|(k, v, _)| (k.as_str(), v.as_str()))
                .collect();
            labels.sort();
            (r.name.as_str(), labels)
        })
        .collect();
    rules.sort();
    // Each repeated (name, labels) once, however often it is repeated.
    let mut dups: Vec<&(&str, Vec<(&str, &str)>)> = vec![];
    for w in rules.windows(2) {
        if w[0] == w[1] && dups.last() != Some(&&w[1]) {
            dups.push(&w[1]);
        }
    }
    if dups.is_empty() {
        return None;
    }
    let mut m = format!("lint error {} duplicate rule(s) found.\n", dups.len());
    for (name, labels) in dups {
        m.push_str(&format!("Metric: {name}\nLabel(s):\n"));
        for (k, v) in labels {
            m.push_str(&format!("\t{k}: {v}\n"));
        }
    }
    m.push_str("Might cause inconsistency while recording expressions");
    Some(m)
}

/// An error of one rule field: `field` is where the sidecar's error points, `message` our
/// words, `promtool` promtool's, `at` the field promtool's position is that of (`None`: no
/// position).
struct FieldError {
    field: String,
    message: String,
    promtool: String,
    at: Option<&'static str>,
}

/// Every error of one rule, in promtool's order (see [`check`]).
fn rule(r: RawRule) -> Result<Rule, Vec<FieldError>> {
    let mut errs = vec![];
    let mut fail = |field: &str, message: String, promtool: String, at: Option<&'static str>| {
        errs.push(FieldError {
            field: field.to_string(),
            message,
            promtool,
            at,
        })
    };
    let expr = if r.expr.trim().is_empty() {
        fail(
            "expr",
            "field 'expr' must be set".into(),
            "field 'expr' must be set in rule".into(),
            Some("expr"),
        );
        None
    } else {
        match promql::parse(&r.expr) {
            Ok(e) => Some(e),
            Err(e) => {
                let m = format!("could not parse expression: {e}");
                fail("expr", m.clone(), m, Some("expr"));
                None
            }
        }
    };
    let mut dur = |f: &'static str, t: &Option<String>| match t {
        Some(t) => parse_duration(t).unwrap_or_else(|m| {
            fail(f, m.clone(), m, Some(f));
            Duration::ZERO
        }),
        None => Duration::ZERO,
    };
    let hold = dur("for", &r.for_);
    let keep_firing_for = dur("keep_firing_for", &r.keep_firing_for);
    let record = r.record.as_deref().filter(|n| !n.is_empty());
    if let Some(name) = record {
        for (f, set) in [
            ("annotations", !r.annotations.is_empty()),
            ("for", !hold.is_zero()),
            ("keep_firing_for", !keep_firing_for.is_zero()),
        ] {
            if set {
                let m = format!("invalid field '{f}' in recording rule");
                fail(f, m.clone(), m, Some("record"));
            }
        }
        if !valid_metric_name(name) {
            let m = format!("invalid recording rule name: {name}");
            fail("record", m.clone(), m, Some("record"));
        }
    }
    for k in r.labels.keys() {
        if !valid_label_name(k) || k == "__name__" {
            fail(
                &format!("labels.{k}"),
                format!("invalid label name: {k:?}"),
                format!("invalid label name: {k}"),
                None,
            );
        }
    }
    for k in r.annotations.keys() {
        if !valid_label_name(k) {
            fail(
                &format!("annotations.{k}"),
                format!("invalid annotation name: {k:?}"),
                format!("invalid annotation name: {k}"),
                None,
            );
        }
    }
    // Go's `template: <name>:<line>: …`, where promtool names an alert's template
    // `__alert_<alert>`; a line we only know for one-line texts.
    let alert = r.alert.as_deref().filter(|a| !a.is_empty());
    let mut templates = |what: &str, map: &BTreeMap<String, String>| {
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            match Template::parse(v) {
                Ok(t) => out.push((k.clone(), v.clone(), t)),
                Err(e) => fail(
                    &format!("{what}s.{k}"),
                    format!("template: {e}"),
                    match alert {
                        Some(a) if !v.contains('\n') => {
                            format!("{what} {k:?}: template: __alert_{a}:1: {e}")
                        }
                        _ => format!("{what} {k:?}: template: {e}"),
                    },
                    None,
                ),
            }
        }
        out
    };
    let labels = templates("label", &r.labels);
    let annotations = templates("annotation", &r.annotations);
    let (Some(expr), true) = (expr, errs.is_empty()) else {
        return Err(errs);
    };
    let kind = match (record, r.alert.filter(|a| !a.is_empty())) {
        (Some(_), None) => RuleKind::Record,
        (None, Some(a)) => {
            return Ok(Rule {
                name: a,
                expr,
                expr_text: r.expr,
                labels,
                kind: RuleKind::Alert {
                    hold,
                    keep_firing_for,
                    annotations,
                },
            });
        }
        // Neither or both: [`check`] reports it.
        _ => return Err(errs),
    };
    Ok(Rule {
        name: r.record.unwrap_or_default(),
        expr,
        expr_text: r.expr,
        labels,
        kind,
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
    fn check_lists_every_error_in_promtools_words() {
        let text = "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up +\n      - expr: up\n  - name: g\n    rules: []\n";
        let errs = check(text, "r.yml").expect_err("three errors");
        let lines: Vec<&str> = errs.iter().map(|e| e.promtool.as_str()).collect();
        assert_eq!(
            lines,
            [
                "r.yml: 5:15: group \"g\", rule 1, \"a\": could not parse expression: 1:5: parse error: unexpected end of input",
                "r.yml: 0:0: group \"g\", rule 2, \"\": one of 'record' or 'alert' must be set",
                "r.yml: 7:5: groupname: \"g\" is repeated in the same file",
            ]
        );
        // The sidecar's framing of the first one, with its field path.
        assert!(
            errs[0]
                .error
                .to_string()
                .starts_with("r.yml:5:15: groups[0].rules[0].expr: ")
        );
        let dup = "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n      - record: a\n        expr: up\n        labels: {x: y}\n      - alert: b\n        expr: up\n";
        assert_eq!(
            duplicate_warning(&parse(dup, "d.yml").expect("valid")),
            None
        );
        let dup = dup.replace("labels: {x: y}", "labels: {}");
        assert_eq!(
            duplicate_warning(&parse(&dup, "d.yml").expect("valid")).as_deref(),
            Some(
                "lint error 1 duplicate rule(s) found.\nMetric: a\nLabel(s):\nMight cause inconsistency while recording expressions"
            )
        );
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
