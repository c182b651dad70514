//! `mqtt-sentinel rules test`: promtool's rule unit-test files (Prometheus 2.42 format), run on
//! our engine so the same files give the same verdict under `promtool test rules` and here.
//!
//! Semantics follow promtool's `unittest.go`: input series start at time 0, one value per
//! `interval`; every group is evaluated at 0, `evaluation_interval`, … up to the largest
//! `eval_time`, and before each evaluation the input samples up to that instant are loaded
//! (so samples after the last step are never seen, not even through a negative `offset`); an `alert_rule_test` is checked against the evaluation at the latest step not
//! after its `eval_time`; only firing alerts count; `promql_expr_test` is an instant query.
//! Comparisons are exact, as promtool's are.

use super::alerting::AlertState;
use super::file::{self, parse_duration};
use super::group::{Context, GroupState};
use super::labels::{Labels, METRIC_NAME};
use super::promql::{self, Value};
use super::storage::{Storage, stale_nan};
use super::template::go_upper_exp;
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    /// Printed before each failed alert test of the group (promtool 2.42 does not print it
    /// for expression tests).
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// Runs every file and writes what promtool 2.42 writes where it writes it: to `out`
/// (stdout) `Unit Testing:  <file>`, then `  SUCCESS` or, per failure, an empty line, and an
/// empty line after each file; to `err` (stderr) `  FAILED:` and each failure (a file that
/// cannot run at all fails with one), and a `  WARNING:` for a rule file pattern that
/// matches nothing. Returns true when all passed.
pub fn run_files(files: &[PathBuf], out: &mut String, err: &mut String) -> bool {
    let mut ok = true;
    for f in files {
        let _ = writeln!(out, "Unit Testing:  {}", f.display());
        let errs = match run_file(f, err) {
            Ok(errs) => errs,
            // A file that cannot run: one failure per line of its error (a rule file's
            // errors, as promtool lists them).
            Err(e) => e.lines().map(str::to_owned).collect(),
        };
        if errs.is_empty() {
            out.push_str("  SUCCESS\n");
        } else {
            ok = false;
            err.push_str("  FAILED:\n");
            for e in errs {
                let _ = writeln!(err, "{e}");
                out.push('\n');
            }
        }
        out.push('\n');
    }
    ok
}

/// Runs one test file: `Err` when it cannot run at all, otherwise the failures (empty = pass).
/// Warnings (a rule file pattern that matches nothing, which promtool only warns about) go
/// to `warnings`, one line each.
pub fn run_file(path: &Path, warnings: &mut String) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tf: TestFile =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let interval = dur(tf.evaluation_interval.as_deref(), Duration::from_secs(60))?;
    let mut rule_paths = vec![];
    for pattern in &tf.rule_files {
        let full = base.join(pattern);
        let found = match crate::config::glob_files(&full) {
            Err(_) if !full.exists() => vec![],
            found => found?,
        };
        if found.is_empty() {
            let _ = writeln!(warnings, "  WARNING: no file match pattern {pattern}");
        }
        rule_paths.extend(found);
    }
    let mut groups = vec![];
    for p in &rule_paths {
        // Every error of the file, one per line (run_files prints each as its own failure).
        groups.extend(file::check_file(p).map_err(|errs| {
            errs.into_iter()
                .map(|e| e.promtool)
                .collect::<Vec<_>>()
                .join("\n")
        })?);
    }
    if !tf.group_eval_order.is_empty() {
        let pos = |n: &str| tf.group_eval_order.iter().position(|g| g == n);
        for g in &groups {
            if pos(&g.name).is_none() {
                return Err(format!(
                    "group {:?} is missing from group_eval_order",
                    g.name
                ));
            }
        }
        groups.sort_by_key(|g| pos(&g.name));
    }
    let mut errs = vec![];
    for tg in &tf.tests {
        let states: Vec<GroupState> = groups
            .iter()
            .cloned()
            .map(|g| GroupState::new(g, interval))
            .collect();
        errs.extend(run_group(tg, states, interval)?);
    }
    Ok(errs)
}

fn dur(text: Option<&str>, default: Duration) -> Result<Duration, String> {
    match text {
        Some(t) => parse_duration(t),
        None => Ok(default),
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn run_group(
    tg: &TestGroup,
    mut groups: Vec<GroupState>,
    eval_interval: Duration,
) -> Result<Vec<String>, String> {
    let step = ms(dur(tg.interval.as_deref(), Duration::from_secs(60))?);
    let mut storage = Storage::new();
    let mut input = Input::new(&tg.input_series, step)?;
    let ctx = Context {
        external_labels: tg.external_labels.clone().into(),
        external_url: tg.external_url.clone().into(),
    };
    let mut alert_tests: Vec<(i64, &AlertTest)> = vec![];
    for t in &tg.alert_rule_test {
        alert_tests.push((ms(parse_duration(&t.eval_time)?), t));
    }
    alert_tests.sort_by_key(|(t, _)| *t);
    let mut maxt = alert_tests.last().map_or(0, |(t, _)| *t);
    for t in &tg.promql_expr_test {
        maxt = maxt.max(ms(parse_duration(&t.eval_time)?));
    }
    let interval = ms(eval_interval).max(1);
    let mut errs = vec![];
    let mut curr = 0;
    let mut ts = 0;
    while ts <= maxt {
        input.append_till(&mut storage, ts);
        let mut eval_errs = vec![];
        for g in &mut groups {
            g.eval(&mut storage, ts, &ctx);
            for r in &g.rules {
                if let Some(e) = &r.last_error {
                    eval_errs.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.rule.name,
                        show_ms(ts)
                    ));
                }
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return Ok(errs);
        }
        while curr < alert_tests.len()
            && ts <= alert_tests[curr].0
            && alert_tests[curr].0 < ts + interval
        {
            let (t, test) = alert_tests[curr];
            let mut got: Vec<LabelsAndAnnotations> = vec![];
            for g in &groups {
                for r in &g.rules {
                    if r.rule.name != test.alertname || !r.rule.is_alert() {
                        continue;
                    }
                    for a in r.active.values().filter(|a| a.state == AlertState::Firing) {
                        got.push((a.labels.clone().into_map(), (*a.annotations).clone()));
                    }
                }
            }
            let mut exp: Vec<_> = test
                .exp_alerts
                .iter()
                .map(|a| {
                    let mut l = a.exp_labels.clone();
                    l.insert("alertname".into(), test.alertname.clone());
                    (l, a.exp_annotations.clone())
                })
                .collect();
            got.sort();
            exp.sort();
            if got != exp {
                // promtool names the test group in alert failures only.
                let name = if tg.name.is_empty() {
                    String::new()
                } else {
                    format!("    name: {},\n", tg.name)
                };
                errs.push(format!(
                    "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                    test.alertname,
                    show_ms(t),
                    show_alerts(&exp),
                    show_alerts(&got)
                ));
            }
            curr += 1;
        }
        ts += interval;
    }
    for t in &tg.promql_expr_test {
        let at = ms(parse_duration(&t.eval_time)?);
        let got = match query(&t.expr, &storage, at, interval) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!(
                    "    expr: {:?}, time: {}, err: {e}",
                    t.expr,
                    show_ms(at)
                ));
                continue;
            }
        };
        let mut exp = vec![];
        for s in &t.exp_samples {
            exp.push((parse_series(&s.labels)?, s.value));
        }
        let mut got = got;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        // Exact comparison (NaN never equals NaN), as promtool's reflect.DeepEqual.
        let same =
            got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && g.1 == e.1);
        if !same {
            errs.push(format!(
                "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
                t.expr,
                show_ms(at),
                show_samples(&exp),
                show_samples(&got)
            ));
        }
    }
    Ok(errs)
}

/// The test's input series, appended to the history step by step as promtool's lazy loader
/// does (`WithSamplesTill`): before the evaluation at `ts`, every sample at or before `ts`.
/// Samples after the last evaluation step are never loaded, so neither rules nor
/// `promql_expr_test` queries (run after the last step) see them, whatever their `offset`.
struct Input {
    series: Vec<InputPoints>,
}

/// One input series: its labels, its samples (time in ms, value) and how many are appended.
struct InputPoints {
    labels: Labels,
    points: Vec<(i64, f64)>,
    appended: usize,
}

impl Input {
    fn new(input: &[InputSeries], step: i64) -> Result<Self, String> {
        let mut series = Vec::with_capacity(input.len());
        for s in input {
            let (labels, values) = parse_input_series(&s.series, &s.values)?;
            let points = values
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i as i64 * step, v?)))
                .collect();
            series.push(InputPoints {
                labels,
                points,
                appended: 0,
            });
        }
        Ok(Self { series })
    }

    fn append_till(&mut self, storage: &mut Storage, ts: i64) {
        for s in &mut self.series {
            while let Some(&(t, v)) = s.points.get(s.appended).filter(|p| p.0 <= ts) {
                storage.append(&s.labels, t, v);
                s.appended += 1;
            }
        }
    }
}

/// `expr` as an instant query at `at` (ms); a subquery without a step takes `step` (ms),
/// the test file's `evaluation_interval`, as in promtool.
fn query(expr: &str, storage: &Storage, at: i64, step: i64) -> Result<Vec<(Labels, f64)>, String> {
    let e = promql::parse(expr)?;
    match promql::eval(&e, storage, at, step)? {
        Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.value)).collect()),
        Value::Scalar(v) => Ok(vec![(Labels::default(), v)]),
        // promtool's words, without the type.
        _ => Err("rule result is not a vector or scalar".into()),
    }
}

fn show_ms(t: i64) -> String {
    let d = Duration::from_millis(t.max(0) as u64);
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// An alert as promtool compares it: labels and annotations.
type LabelsAndAnnotations = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Alerts as promtool 2.42 prints them after `exp:`/`got:`: `[]` for none, otherwise
/// `[`, then per alert its index, `Labels:{…}` and `Annotations:{…}` (Prometheus' label
/// form, [`crate::labels::Braces`]), alerts separated by a comma, and `]`, every line after
/// the first indented by 12 spaces.
fn show_alerts(v: &[LabelsAndAnnotations]) -> String {
    use crate::labels::Braces;
    if v.is_empty() {
        return "[]".into();
    }
    let pairs = |m: &BTreeMap<String, String>| {
        Braces(m.iter().map(|(k, v)| (k.as_str(), v.as_str()))).to_string()
    };
    let items: Vec<String> = v
        .iter()
        .enumerate()
        .map(|(i, (l, a))| {
            format!(
                "{i}:\n              Labels:{}\n              Annotations:{}",
                pairs(l),
                pairs(a)
            )
        })
        .collect();
    format!(
        "[\n            {}\n            ]",
        items.join(",\n            ")
    )
}

/// Samples as promtool 2.42 prints them: `{__name__="x", a="b"} 1E+02, …` (every label in
/// braces, the value as Go's `%E`), `nil` for none.
fn show_samples(v: &[(Labels, f64)]) -> String {
    if v.is_empty() {
        return "nil".into();
    }
    let items: Vec<String> = v
        .iter()
        .map(|(l, x)| format!("{} {}", l.braces(), go_upper_exp(*x)))
        .collect();
    items.join(", ")
}

/// `metric{label="value", …}` → labels (promtool uses the PromQL parser for this too).
pub fn parse_series(text: &str) -> Result<Labels, String> {
    if text.trim().is_empty() || text.trim() == "{}" {
        return Ok(Labels::default());
    }
    let e = promql_parser::parser::parse(text).map_err(|e| format!("bad series {text:?}: {e}"))?;
    let Expr::VectorSelector(vs) = e else {
        return Err(format!("bad series {text:?}: not a series selector"));
    };
    let mut pairs = vec![];
    if let Some(n) = vs.name {
        pairs.push((METRIC_NAME.to_string(), n));
    }
    for m in vs.matchers.matchers {
        if !matches!(m.op, MatchOp::Equal) {
            return Err(format!(
                "bad series {text:?}: only = matchers describe a series"
            ));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::new(pairs))
}

/// An `input_series` entry as promtool 2.42 reads it: `series + " " + values` is ONE series
/// description (so `series: 'foo{a="b"} 1+1x10'` with `values: '1'` is 12 values), parsed
/// with PromQL's lexer. Errors are promtool's `1:<col>: parse error: …` (col: 1 + byte offset
/// in that joined text) for the cases learnt from real promtool runs (`tests/it/rules.rs`,
/// `rules_test_input_series_errors_read_as_promtools`): a selector that does not parse
/// ([`crate::rules::promql::parse_error`], with "label set" for "label matching"), a matcher
/// other than `=`, `{}` (`empty labelset: invalid sample`), a character or identifier that is
/// no value, an `x` at the end; other bad values keep our `bad value "…" in "…"`.
pub fn parse_input_series(
    series: &str,
    values: &str,
) -> Result<(Labels, Vec<Option<f64>>), String> {
    use crate::rules::promql::parse_error::describe;
    let text = format!("{series} {values}");
    let cut = selector_end(&text);
    let (sel, vals) = text.split_at(cut);
    let at = |i: usize, m: &str| format!("1:{}: parse error: {m}", i + 1);
    if text.trim().is_empty() {
        return Ok((Labels::default(), vec![]));
    }
    // No series (`series: ''`): promtool points at the start.
    if sel.trim().is_empty()
        && let Some(tok) = vals.split_whitespace().next()
        && tok.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(at(
            0,
            &format!("unexpected number {tok:?} in series values"),
        ));
    }
    // What 2.42 refuses in a selector (also what `promql-parser` accepts from later
    // versions, like quoted label names); positions are those in `text` (`sel` starts it).
    if let Some(d) = describe(if cut == text.len() {
        text.trim_end()
    } else {
        sel
    }) {
        return Err(d.replace(" in label matching", " in label set"));
    }
    let labels = match parse_series(sel) {
        Ok(l) => l,
        Err(ours) => {
            // A valid selector with `=~`, `!=` or `!~`: the first such operator.
            let b = sel.as_bytes();
            let mut quote = None;
            for i in 0..b.len() {
                match (quote, b[i]) {
                    (Some(q), c) if c == q && b[i - 1] != b'\\' => quote = None,
                    (Some(_), _) => {}
                    (None, c @ (b'"' | b'\'' | b'`')) => quote = Some(c),
                    (None, b'=' | b'!')
                        if matches!(b.get(i + 1), Some(b'~' | b'=')) || b[i] == b'!' =>
                    {
                        let op = &sel[i..(i + 2).min(sel.len())];
                        return Err(at(
                            i,
                            &format!("unexpected <op:{op}> in label set, expected \"=\""),
                        ));
                    }
                    _ => {}
                }
            }
            return Err(ours);
        }
    };
    if labels.is_empty() {
        return Err("empty labelset: invalid sample".into());
    }
    let toks: Vec<&str> = vals.split_whitespace().collect();
    let mut from = 0;
    for (n, tok) in toks.iter().enumerate() {
        let i = cut + from + vals[from..].find(tok).unwrap_or(0);
        from = i - cut + tok.len();
        if let Some(j) =
            tok.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
        {
            let c = &tok[j..].chars().next().unwrap_or(' ');
            return Err(at(
                i + j,
                &format!("unexpected character in series sequence: {c:?}"),
            ));
        }
        let ident = tok.starts_with(|c: char| c.is_ascii_alphabetic())
            && !["stale", "Inf", "inf", "NaN", "nan"].contains(tok)
            && !tok.contains(['+', '-', '.']);
        if *tok == "x" {
            return Err(at(i, "unexpected \"x\""));
        }
        if ident {
            return Err(at(
                i,
                &format!(
                    "unexpected identifier {tok:?} in series values, expected number or \"stale\""
                ),
            ));
        }
        // `1x-3`: a sign right after the `x` of a repetition.
        if let Some(k) = tok.find(['x']).filter(|&k| k > 0)
            && let Some(op @ ('+' | '-')) = tok[k + 1..].chars().next()
        {
            return Err(at(
                i + k + 1,
                &format!("unexpected <op:{op}> in series values"),
            ));
        }
        // `1+1y10`: a number run into a letter (not `x`, nor an exponent's `e`).
        let tb = tok.as_bytes();
        if !ident
            && !tok.contains(['I', 'N', 'n', 's'])
            && let Some(k) = (1..tb.len()).find(|&k| {
                tb[k].is_ascii_alphabetic()
                    && !matches!(tb[k], b'x' | b'e' | b'E')
                    && tb[k - 1].is_ascii_digit()
            })
        {
            let num_start = tok[..k].rfind(['+', '-', 'x']).map_or(0, |p| p + 1);
            return Err(at(
                i + num_start,
                &format!("bad number syntax: {:?}", &tok[num_start..k]),
            ));
        }
        if tok.ends_with('x') && n + 1 == toks.len() {
            return Err(at(text.len(), "unexpected end of input in series values"));
        }
    }
    Ok((labels, expand_values(vals)?))
}

/// Where the selector of a series description ends: after the metric name and its `{…}`
/// (quotes respected), or the whole text if a brace is not closed.
fn selector_end(text: &str) -> usize {
    let b = text.as_bytes();
    let start = b.len() - text.trim_start().len();
    let mut i = start;
    while i < b.len()
        && (b[i].is_ascii_alphabetic()
            || b[i] == b'_'
            || b[i] == b':'
            || (i > start && b[i].is_ascii_digit()))
    {
        i += 1;
    }
    if b.get(i) != Some(&b'{') {
        return i;
    }
    let mut quote = None;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(_), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c @ (b'"' | b'\'' | b'`')) => quote = Some(c),
            (None, b'}') => return i + 1,
            _ => {}
        }
        i += 1;
    }
    text.len()
}

/// promtool's expanding notation: `1 2 3`, `1+2x3` (4 values), `5x2`, `_`, `_x3` (3 gaps),
/// `stale`, `Inf`, `NaN`.
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let bad = |t: &str| format!("bad value {t:?} in {text:?}");
    let mut out = vec![];
    for tok in text.split_whitespace() {
        let (base, times) = match tok.rsplit_once('x') {
            Some((b, n))
                if !b.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() =>
            {
                (b, Some(n.parse::<usize>().map_err(|_| bad(tok))?))
            }
            _ => (tok, None),
        };
        if base == "_" {
            out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        if base == "stale" {
            if times.is_some() {
                return Err(bad(tok));
            }
            out.push(Some(stale_nan()));
            continue;
        }
        // `a+b` / `a-b`: the sign that starts the increment is not the first character and
        // does not follow an exponent marker.
        let bytes = base.as_bytes();
        let split = (1..bytes.len()).find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (start, delta) = match split {
            Some(i) => (
                num(&base[..i]).ok_or_else(|| bad(tok))?,
                num(&base[i..]).ok_or_else(|| bad(tok))?,
            ),
            None => (num(base).ok_or_else(|| bad(tok))?, 0.0),
        };
        match times {
            None if split.is_some() => return Err(bad(tok)),
            None => out.push(Some(start)),
            Some(n) => {
                let mut v = start;
                for _ in 0..=n {
                    out.push(Some(v));
                    v += delta;
                }
            }
        }
    }
    Ok(out)
}

fn num(s: &str) -> Option<f64> {
    match s.trim_start_matches('+') {
        "Inf" | "inf" => Some(f64::INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ if s.starts_with('-') && s[1..].eq_ignore_ascii_case("inf") => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation() {
        let v = |t: &str| expand_values(t).expect(t);
        assert_eq!(v("1+2x3"), vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)]);
        assert_eq!(
            v("5x1 _x2 -1-1x1"),
            vec![Some(5.0), Some(5.0), None, None, Some(-1.0), Some(-2.0)]
        );
        assert_eq!(v("1e3 +Inf"), vec![Some(1000.0), Some(f64::INFINITY)]);
        assert!(v("stale")[0].is_some_and(crate::rules::storage::is_stale));
        assert!(expand_values("1+2").is_err());
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn series_descriptions() {
        let l = parse_series(r#"up{job="a", instance="b:1"}"#).expect("series");
        assert_eq!(l.to_string(), r#"up{instance="b:1", job="a"}"#);
        assert!(parse_series(r#"up{job=~"a"}"#).is_err());
    }

    #[test]
    fn input_series_is_series_and_values_in_one_text() {
        // promtool joins them: the series' own values run on into `values`.
        let (l, v) = parse_input_series(r#"foo{a="b"} 1+1x2"#, "7").expect("joined");
        assert_eq!(l.to_string(), r#"foo{a="b"}"#);
        assert_eq!(v, vec![Some(1.0), Some(2.0), Some(3.0), Some(7.0)]);
        assert_eq!(
            parse_input_series("foo{a=b}", "1").expect_err("label set"),
            "1:7: parse error: unexpected identifier \"b\" in label set, expected string"
        );
        assert_eq!(
            parse_input_series("foo", "1 2x").expect_err("x at the end"),
            "1:9: parse error: unexpected end of input in series values"
        );
    }
}
