//! The function calls of PromQL 2.42 beyond the first subset (Prometheus' `functions.go`),
//! kept beside [`super::functions`] so its hot paths (`rate` and the window fast paths) stay
//! as they are: `label_replace`, `label_join`, `timestamp`, `sort`, `sort_desc`, `pi`, and
//! the dispatch to the date functions ([`super::date`]), the element-wise math
//! ([`super::math`]) and the statistics ([`super::stats`]).
//!
//! Which functions drop the metric name follows Prometheus: the math, date and
//! `timestamp` functions and every range function do; `label_replace`, `label_join`, `sort`
//! and `sort_desc` keep it.

use super::date::{Civil, date_function};
use super::engine::{Evaluator, LOOKBACK_MS, unique};
use super::math::element_function;
use super::stats::valid_label_name;
use super::value::{Sample, Value};
use crate::rules::labels::Labels;
use crate::rules::storage::is_stale;
use promql_parser::parser::{Call, Expr};
use regex::Regex;

impl Evaluator<'_> {
    /// Evaluates `c` when it is one of the functions this file dispatches.
    pub(super) fn call_more(&self, c: &Call) -> Result<Value, String> {
        let name = c.func.name;
        if let Some(f) = element_function(name) {
            return self.map_values(c, f);
        }
        if let Some(field) = date_function(name) {
            if c.args.args.is_empty() {
                // Without an argument: `vector(time())`.
                return Ok(Value::Vector(vec![Sample {
                    labels: Labels::default(),
                    value: field(Civil::at(self.ts as f64 / 1000.0)),
                }]));
            }
            return self.map_values(c, |v| field(Civil::at(v)));
        }
        if let Some(v) = self.stats_function(c) {
            return v;
        }
        match name {
            "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
            "timestamp" => self.timestamp(c),
            "sort" | "sort_desc" => {
                let mut v = self.vector_arg(c, 0)?;
                let desc = name == "sort_desc";
                // NaN last either way, as Prometheus' `funcSort`/`funcSortDesc`.
                v.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => b.value.total_cmp(&a.value),
                    _ => a.value.total_cmp(&b.value),
                });
                Ok(Value::Vector(v))
            }
            "label_replace" => self.label_replace(c),
            "label_join" => self.label_join(c),
            other => Err(format!("function {other:?} is not supported")),
        }
    }

    /// `f` of each sample's value, without the metric name (Prometheus' `simpleFunc`).
    pub(super) fn map_values(&self, c: &Call, f: impl Fn(f64) -> f64) -> Result<Value, String> {
        let v = self.vector_arg(c, 0)?;
        Ok(Value::Vector(unique(
            v.into_iter()
                .map(|s| Sample {
                    labels: s.labels.without_name(),
                    value: f(s.value),
                })
                .collect(),
        )?))
    }

    fn string_arg(&self, c: &Call, i: usize) -> Result<String, String> {
        match self.eval(&c.args.args[i])? {
            Value::String(s) => Ok(s),
            other => Err(format!(
                "argument {} of {} must be a string, got {}",
                i + 1,
                c.func.name,
                other.type_name()
            )),
        }
    }

    /// Prometheus `funcTimestamp`: the time of each sample, in seconds, without the metric
    /// name. For an instant selector (in parentheses or not) the time its sample was
    /// written; for any other expression the evaluation time.
    fn timestamp(&self, c: &Call) -> Result<Value, String> {
        let mut arg = &*c.args.args[0];
        while let Expr::Paren(p) = arg {
            arg = &p.expr;
        }
        let Expr::VectorSelector(vs) = arg else {
            let now = self.ts as f64 / 1000.0;
            return self.map_values(c, |_| now);
        };
        let at = self.selector_time(vs);
        let out = self
            .picked(vs)
            .filter_map(|(_, s)| {
                let (t, v) = s.at_or_before(at)?;
                (t >= at - LOOKBACK_MS && !is_stale(v)).then(|| Sample {
                    labels: s.labels.without_name(),
                    value: t as f64 / 1000.0,
                })
            })
            .collect();
        Ok(Value::Vector(unique(out)?))
    }

    /// Prometheus `funcLabelReplace`: where `src`'s value matches `regex` (anchored at
    /// both ends), `dst` becomes `replacement` with `$1`, `${name}` expanded (an empty
    /// result removes `dst`); other samples pass unchanged. Errors: an invalid regex or
    /// `dst` name, or two results with the same labels.
    fn label_replace(&self, c: &Call) -> Result<Value, String> {
        let v = self.vector_arg(c, 0)?;
        let dst = self.string_arg(c, 1)?;
        let replacement = self.string_arg(c, 2)?;
        let src = self.string_arg(c, 3)?;
        let pattern = self.string_arg(c, 4)?;
        let re = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("invalid regular expression in label_replace(): {e}"))?;
        if !valid_label_name(&dst) {
            return Err(format!(
                "invalid destination label name in label_replace(): {dst}"
            ));
        }
        let mut res = String::new();
        let out = v
            .into_iter()
            .map(|mut s| {
                if let Some(caps) = re.captures(s.labels.get(&src)) {
                    res.clear();
                    caps.expand(&replacement, &mut res);
                    s.labels.set(&dst, &res);
                }
                s
            })
            .collect();
        Ok(Value::Vector(unique(out)?))
    }

    /// Prometheus `funcLabelJoin`: `dst` becomes the values of the `src` labels (empty for
    /// a missing one) joined by `separator`; an empty result removes `dst`. Errors: an
    /// invalid `dst` or `src` name, or two results with the same labels.
    fn label_join(&self, c: &Call) -> Result<Value, String> {
        let v = self.vector_arg(c, 0)?;
        let dst = self.string_arg(c, 1)?;
        let separator = self.string_arg(c, 2)?;
        let src = (3..c.args.args.len())
            .map(|i| self.string_arg(c, i))
            .collect::<Result<Vec<_>, _>>()?;
        if !valid_label_name(&dst) {
            return Err(format!(
                "invalid destination label name in label_join(): {dst}"
            ));
        }
        if let Some(bad) = src.iter().find(|s| !valid_label_name(s)) {
            return Err(format!("invalid source label name in label_join(): {bad}"));
        }
        let out = v
            .into_iter()
            .map(|mut s| {
                let joined = src
                    .iter()
                    .map(|n| s.labels.get(n))
                    .collect::<Vec<_>>()
                    .join(&separator);
                s.labels.set(&dst, &joined);
                s
            })
            .collect();
        Ok(Value::Vector(unique(out)?))
    }
}
