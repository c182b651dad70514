//! A PromQL subset evaluated at one instant over a [`Storage`], with Prometheus 2.42 semantics.
//!
//! `promql-parser` gives the AST; [`check`] refuses everything outside the subset at load time
//! (naming the construct), so [`eval`] only ever sees supported nodes. The numeric code follows
//! Prometheus' `promql/engine.go` and `functions.go` closely (same operation order, same NaN
//! handling) because `rules test` must agree with `promtool test rules` bit for bit.

use super::chunk::{CLEAN, Cursor, RISING, Summary};
use super::labels::{Labels, METRIC_NAME};
use super::storage::{Series, Storage, is_stale};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset,
    VectorMatchCardinality, VectorSelector,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::RefCell;
use std::collections::HashMap;

/// Prometheus' default lookback for instant selectors.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "absent_over_time",
    "changes",
    "resets",
];
const INSTANT_FUNCTIONS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "round",
    "sqrt",
    "exp",
    "ln",
    "clamp",
    "clamp_min",
    "clamp_max",
    "histogram_quantile",
    "absent",
    "time",
    "vector",
    "scalar",
];
const AGGREGATIONS: &[&str] = &[
    "sum", "avg", "min", "max", "count", "group", "topk", "bottomk",
];

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

#[derive(Clone, Debug)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

#[derive(Clone, Debug)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Parses `text` and refuses constructs outside the subset.
pub fn parse(text: &str) -> Result<Expr, String> {
    let expr = promql_parser::parser::parse(text)?;
    check(&expr)?;
    Ok(expr)
}

/// Refuses, by name, every construct the evaluator does not implement.
pub fn check(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(p) => check(&p.expr),
        Expr::Unary(u) => check(&u.expr),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::Subquery(_) => Err("subqueries are not supported".into()),
        Expr::Extension(_) => Err("extension expressions are not supported".into()),
        Expr::Call(c) => {
            let name = c.func.name;
            if !RANGE_FUNCTIONS.contains(&name) && !INSTANT_FUNCTIONS.contains(&name) {
                return Err(format!("function {name:?} is not supported"));
            }
            if RANGE_FUNCTIONS.contains(&name)
                && !matches!(*c.args.args[0], Expr::MatrixSelector(_))
            {
                return Err(format!(
                    "function {name:?} needs a range selector argument (subqueries are not supported)"
                ));
            }
            c.args.args.iter().try_for_each(|a| check(a))
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if !AGGREGATIONS.contains(&op.as_str()) {
                return Err(format!("aggregation {op:?} is not supported"));
            }
            if let Some(p) = &a.param {
                check(p)?;
            }
            check(&a.expr)
        }
        Expr::Binary(b) => {
            let op = b.op.to_string();
            if op == "atan2" {
                return Err("operator \"atan2\" is not supported".into());
            }
            if let Some(m) = &b.modifier
                && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
            {
                return Err("fill modifiers are not supported".into());
            }
            check(&b.lhs)?;
            check(&b.rhs)
        }
    }
}

fn check_selector(vs: &VectorSelector) -> Result<(), String> {
    if vs.at.is_some() {
        return Err("the @ modifier is not supported".into());
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err("\"or\" inside label matchers is not supported".into());
    }
    Ok(())
}

/// The longest time each metric name is read back (range + offset, or the lookback for an
/// instant selector). `None` as key: a selector without a fixed name (reads every series).
pub fn retention(expr: &Expr, out: &mut HashMap<Option<String>, i64>) {
    let mut put = |vs: &VectorSelector, range: i64| {
        let back = range + offset_ms(vs).max(0);
        let e = out
            .entry(selector_name(vs).map(str::to_string))
            .or_insert(0);
        *e = (*e).max(back);
    };
    match expr {
        Expr::VectorSelector(vs) => put(vs, LOOKBACK_MS),
        Expr::MatrixSelector(ms) => put(&ms.vs, ms.range.as_millis() as i64),
        Expr::Paren(p) => retention(&p.expr, out),
        Expr::Unary(u) => retention(&u.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| retention(a, out)),
        Expr::Aggregate(a) => {
            retention(&a.expr, out);
            if let Some(p) = &a.param {
                retention(p, out);
            }
        }
        Expr::Binary(b) => {
            retention(&b.lhs, out);
            retention(&b.rhs, out);
        }
        _ => {}
    }
}

fn selector_name(vs: &VectorSelector) -> Option<&str> {
    vs.name.as_deref().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.as_str())
    })
}

fn offset_ms(vs: &VectorSelector) -> i64 {
    match &vs.offset {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

/// The matchers a series found in the index by [`selector_name`] still has to pass (the
/// name was checked by the lookup).
fn residual(vs: &VectorSelector) -> Vec<&Matcher> {
    let name = selector_name(vs);
    vs.matchers
        .matchers
        .iter()
        .filter(|m| {
            !(m.name == METRIC_NAME
                && matches!(m.op, MatchOp::Equal)
                && name == Some(m.value.as_str()))
        })
        .collect()
}

fn all_match(matchers: &[&Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.is_match(labels.get(&m.name)))
}

/// Per rule: where decoding stood at the start of each window its range selectors read
/// last time, by selector and by the series' place in its name's list (see
/// [`Storage::named`]); forgotten whenever series are removed.
#[derive(Debug, Default)]
pub struct Cursors {
    generation: u64,
    slots: Vec<(usize, Box<str>, Vec<Cursor>)>,
}

impl Cursors {
    /// The cursors of selector `node` (its address in the rule's expression) over `name`.
    fn slot(&mut self, node: usize, name: &str, generation: u64) -> &mut Vec<Cursor> {
        if generation != self.generation {
            self.slots.clear();
            self.generation = generation;
        }
        let i = match self
            .slots
            .iter()
            .position(|(n, m, _)| *n == node && **m == *name)
        {
            Some(i) => i,
            None => {
                self.slots.push((node, name.into(), Vec::new()));
                self.slots.len() - 1
            }
        };
        &mut self.slots[i].2
    }
}

/// Evaluates `expr` as an instant query at `ts` (milliseconds).
pub fn eval(expr: &Expr, storage: &Storage, ts: i64) -> Result<Value, String> {
    Evaluator {
        storage,
        ts,
        cursors: None,
    }
    .eval(expr)
}

/// [`eval`] for an expression evaluated again and again at later and later instants (a
/// rule): range selectors resume decoding where `cursors` say their windows started.
pub fn eval_at_later(
    expr: &Expr,
    storage: &Storage,
    ts: i64,
    cursors: &mut Cursors,
) -> Result<Value, String> {
    let cell = RefCell::new(std::mem::take(cursors));
    let out = Evaluator {
        storage,
        ts,
        cursors: Some(&cell),
    }
    .eval(expr);
    *cursors = cell.into_inner();
    out
}

struct Evaluator<'a> {
    storage: &'a Storage,
    ts: i64,
    cursors: Option<&'a RefCell<Cursors>>,
}

impl Evaluator<'_> {
    fn eval(&self, expr: &Expr) -> Result<Value, String> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(vec) => Ok(Value::Vector(unique(
                    vec.into_iter()
                        .map(|s| Sample {
                            labels: s.labels.without_name(),
                            value: -s.value,
                        })
                        .collect(),
                )?)),
                other => Err(format!("unary minus on a {}", other.type_name())),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.select(vs))),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.select_range(ms))),
            Expr::Call(c) => self.call(c),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Binary(b) => self.binary(b),
            Expr::Subquery(_) | Expr::Extension(_) => Err("unsupported expression".into()),
        }
    }

    /// The series `vs` picks, each with its place in its name's list (see
    /// [`Storage::named`]; for a selector without a name, a place among all series).
    fn picked<'s>(
        &'s self,
        vs: &'s VectorSelector,
    ) -> impl Iterator<Item = (usize, &'s Series)> + 's {
        let rest = residual(vs);
        let all: Box<dyn Iterator<Item = (usize, &Series)>> = match selector_name(vs) {
            Some(n) => Box::new(self.storage.named(n)),
            None => Box::new(self.storage.candidates(None).enumerate()),
        };
        all.filter(move |(_, s)| all_match(&rest, &s.labels))
    }

    fn select(&self, vs: &VectorSelector) -> Vec<Sample> {
        let at = self.ts - offset_ms(vs);
        self.picked(vs)
            .filter_map(|(_, s)| {
                let (t, v) = s.at_or_before(at)?;
                (t >= at - LOOKBACK_MS && !is_stale(v)).then(|| Sample {
                    labels: s.labels.clone(),
                    value: v,
                })
            })
            .collect()
    }

    fn select_range(&self, ms: &MatrixSelector) -> Vec<RangeSeries> {
        let end = self.ts - offset_ms(&ms.vs);
        let start = end - ms.range.as_millis() as i64;
        self.picked(&ms.vs)
            .filter_map(|(_, s)| {
                let mut points = Vec::with_capacity(s.range_bound(start, end));
                points.extend(s.range(start, end).filter(|(_, v)| !is_stale(*v)));
                (!points.is_empty()).then(|| RangeSeries {
                    labels: s.labels.clone(),
                    points,
                })
            })
            .collect()
    }

    fn scalar_arg(&self, c: &Call, i: usize) -> Result<f64, String> {
        match self.eval(&c.args.args[i])? {
            Value::Scalar(v) => Ok(v),
            other => Err(format!(
                "argument {} of {} must be a scalar, got {}",
                i + 1,
                c.func.name,
                other.type_name()
            )),
        }
    }

    fn vector_arg(&self, c: &Call, i: usize) -> Result<Vec<Sample>, String> {
        match self.eval(&c.args.args[i])? {
            Value::Vector(v) => Ok(v),
            other => Err(format!(
                "argument {} of {} must be an instant vector, got {}",
                i + 1,
                c.func.name,
                other.type_name()
            )),
        }
    }

    fn call(&self, c: &Call) -> Result<Value, String> {
        let name = c.func.name;
        if RANGE_FUNCTIONS.contains(&name) {
            return self.range_function(c);
        }
        let map = |f: &dyn Fn(f64) -> f64| -> Result<Value, String> {
            let v = self.vector_arg(c, 0)?;
            Ok(Value::Vector(unique(
                v.into_iter()
                    .map(|s| Sample {
                        labels: s.labels.without_name(),
                        value: f(s.value),
                    })
                    .collect(),
            )?))
        };
        match name {
            "time" => Ok(Value::Scalar(self.ts as f64 / 1000.0)),
            "vector" => Ok(Value::Vector(vec![Sample {
                labels: Labels::default(),
                value: self.scalar_arg(c, 0)?,
            }])),
            "scalar" => {
                let v = self.vector_arg(c, 0)?;
                Ok(Value::Scalar(if v.len() == 1 {
                    v[0].value
                } else {
                    f64::NAN
                }))
            }
            "abs" => map(&f64::abs),
            "ceil" => map(&f64::ceil),
            "floor" => map(&f64::floor),
            "sqrt" => map(&f64::sqrt),
            "exp" => map(&f64::exp),
            "ln" => map(&f64::ln),
            "round" => {
                let to = if c.args.args.len() > 1 {
                    self.scalar_arg(c, 1)?
                } else {
                    1.0
                };
                let inv = 1.0 / to;
                map(&|v| (v * inv + 0.5).floor() / inv)
            }
            "clamp" => {
                let (lo, hi) = (self.scalar_arg(c, 1)?, self.scalar_arg(c, 2)?);
                if hi < lo {
                    return Ok(Value::Vector(vec![]));
                }
                map(&|v| go_max(lo, go_min(hi, v)))
            }
            "clamp_min" => {
                let lo = self.scalar_arg(c, 1)?;
                map(&|v| go_max(lo, v))
            }
            "clamp_max" => {
                let hi = self.scalar_arg(c, 1)?;
                map(&|v| go_min(hi, v))
            }
            "absent" => {
                let v = self.vector_arg(c, 0)?;
                Ok(Value::Vector(if v.is_empty() {
                    vec![Sample {
                        labels: absent_labels(&c.args.args[0]),
                        value: 1.0,
                    }]
                } else {
                    vec![]
                }))
            }
            "histogram_quantile" => {
                let q = self.scalar_arg(c, 0)?;
                let v = self.vector_arg(c, 1)?;
                Ok(Value::Vector(histogram_quantile(q, v)))
            }
            other => Err(format!("function {other:?} is not supported")),
        }
    }

    fn range_function(&self, c: &Call) -> Result<Value, String> {
        let name = c.func.name;
        let Expr::MatrixSelector(ms) = &*c.args.args[0] else {
            return Err(format!("function {name:?} needs a range selector"));
        };
        let range_ms = ms.range.as_millis() as i64;
        let end = self.ts - offset_ms(&ms.vs);
        let start = end - range_ms;
        if name == "absent_over_time" {
            let any = self
                .picked(&ms.vs)
                .any(|(_, s)| s.range(start, end).any(|(_, v)| !is_stale(v)));
            return Ok(Value::Vector(if any {
                vec![]
            } else {
                vec![Sample {
                    labels: absent_labels(&c.args.args[0]),
                    value: 1.0,
                }]
            }));
        }
        let extra = if name == "predict_linear" {
            self.scalar_arg(c, 1)?
        } else {
            0.0
        };
        let mut out = Vec::new();
        // One buffer for every series: the points of a range are only needed while its value
        // is computed.
        let mut p: Vec<(i64, f64)> = Vec::new();
        // Functions of a window's ends and length only: over chunks without resets (counter
        // functions) or stale markers (the others), the samples in between are not decoded.
        let need = match name {
            "rate" | "increase" | "resets" => RISING,
            "delta" | "count_over_time" | "last_over_time" => CLEAN,
            _ => 0,
        };
        // Cursors by the series' place in its name's list (only named selectors have one).
        let mut cursors = match (self.cursors, selector_name(&ms.vs)) {
            (Some(c), Some(n)) => Some((c.borrow_mut(), n)),
            _ => None,
        };
        let mut slot = cursors.as_mut().map(|(c, n)| {
            let node = ms as *const MatrixSelector as usize;
            let v = c.slot(node, n, self.storage.generation());
            let len = self.storage.named_len(n);
            if v.len() < len {
                v.reserve_exact(len - v.len());
                v.resize(len, Cursor::NONE);
            }
            v
        });
        for (at, s) in self.picked(&ms.vs) {
            let mut cur = slot.as_mut().and_then(|v| v.get_mut(at));
            let summary = if need != 0 {
                s.summary(start, end, need, cur.as_deref_mut())
            } else {
                None
            };
            let value = if let Some(w) = summary {
                match name {
                    "rate" | "increase" | "delta" => {
                        let counter = name != "delta";
                        let mut result = w.last.1 - w.first.1;
                        // What Prometheus' reset loop adds when nothing in between resets.
                        if counter && w.first.1 < 0.0 {
                            result += 0.0;
                        }
                        extrapolate(result, w, start, end, counter, name == "rate")
                    }
                    "resets" => Some(0.0),
                    "count_over_time" => Some(w.count as f64),
                    _ => Some(w.last.1),
                }
            } else {
                p.clear();
                s.range_into(start, end, &mut p, cur);
                if p.is_empty() {
                    continue;
                }
                let p = &p[..];
                match name {
                    "rate" => extrapolated_rate(p, start, end, true, true),
                    "increase" => extrapolated_rate(p, start, end, true, false),
                    "delta" => extrapolated_rate(p, start, end, false, false),
                    "irate" => instant_delta(p, true),
                    "idelta" => instant_delta(p, false),
                    "deriv" => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
                    "predict_linear" => (p.len() >= 2).then(|| {
                        let (slope, intercept) = linear_regression(p, self.ts);
                        slope * extra + intercept
                    }),
                    "avg_over_time" => Some(avg_over_time(p)),
                    "min_over_time" => Some(
                        p.iter()
                            .fold(p[0].1, |m, &(_, v)| if v < m || m.is_nan() { v } else { m }),
                    ),
                    "max_over_time" => Some(
                        p.iter()
                            .fold(p[0].1, |m, &(_, v)| if v > m || m.is_nan() { v } else { m }),
                    ),
                    "sum_over_time" => Some(p.iter().map(|(_, v)| v).sum()),
                    "count_over_time" => Some(p.len() as f64),
                    "last_over_time" => Some(p[p.len() - 1].1),
                    "changes" => Some(
                        p.windows(2)
                            .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                            .count() as f64,
                    ),
                    "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
                    other => return Err(format!("function {other:?} is not supported")),
                }
            };
            if let Some(value) = value {
                let labels = if name == "last_over_time" {
                    s.labels.clone()
                } else {
                    s.labels.without_name()
                };
                out.push(Sample { labels, value });
            }
        }
        // Series of one name stay distinct without it: only a selector that may pick
        // several names can yield two equal label sets.
        if selector_name(&ms.vs).is_some() {
            return Ok(Value::Vector(out));
        }
        Ok(Value::Vector(unique(out)?))
    }

    fn aggregate(&self, a: &AggregateExpr) -> Result<Value, String> {
        let op = a.op.to_string();
        let input = match self.eval(&a.expr)? {
            Value::Vector(v) => v,
            other => {
                return Err(format!(
                    "{op} needs an instant vector, got {}",
                    other.type_name()
                ));
            }
        };
        let param = match &a.param {
            Some(p) => match self.eval(p)? {
                Value::Scalar(v) => Some(v),
                other => {
                    return Err(format!(
                        "{op} parameter must be a scalar, got {}",
                        other.type_name()
                    ));
                }
            },
            None => None,
        };
        let key = |l: &Labels| match &a.modifier {
            Some(LabelModifier::Include(by)) => l.keep(&by.labels),
            Some(LabelModifier::Exclude(without)) => l.drop(&without.labels).without_name(),
            None => Labels::default(),
        };
        // Grouping compares a hash of the grouping labels; a group's label set is built
        // once, for its first sample.
        let key_hash = |l: &Labels| match &a.modifier {
            Some(LabelModifier::Include(by)) => signature(l, true, &by.labels),
            Some(LabelModifier::Exclude(without)) => signature(l, false, &without.labels),
            None => 0,
        };
        if op == "topk" || op == "bottomk" {
            let k = param.unwrap_or(0.0);
            if k < 1.0 {
                return Ok(Value::Vector(vec![]));
            }
            let k = if k > i64::MAX as f64 {
                usize::MAX
            } else {
                k as usize
            };
            let mut groups: FxHashMap<u64, Vec<Sample>> = FxHashMap::default();
            for s in input {
                groups.entry(key_hash(&s.labels)).or_default().push(s);
            }
            let top = op == "topk";
            let mut out = vec![];
            for (_, mut g) in groups {
                // Prometheus: NaN sorts below every number for topk, above for bottomk.
                g.sort_by(|x, y| {
                    let (a, b) = (x.value, y.value);
                    match (a.is_nan(), b.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if top => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
                        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
                g.truncate(k);
                out.extend(g);
            }
            return Ok(Value::Vector(out));
        }
        struct Group {
            labels: Labels,
            value: f64,
            mean: f64,
            count: f64,
        }
        let mut order: Vec<u64> = vec![];
        let mut groups: FxHashMap<u64, Group> = FxHashMap::default();
        for s in input {
            let k = key_hash(&s.labels);
            let Some(g) = groups.get_mut(&k) else {
                order.push(k);
                groups.insert(
                    k,
                    Group {
                        labels: key(&s.labels),
                        value: s.value,
                        mean: s.value,
                        count: 1.0,
                    },
                );
                continue;
            };
            match op.as_str() {
                "sum" => g.value += s.value,
                "avg" => {
                    g.count += 1.0;
                    if g.mean.is_infinite() {
                        if s.value.is_infinite() && (g.mean > 0.0) == (s.value > 0.0) {
                            continue;
                        }
                        if !s.value.is_infinite() && !s.value.is_nan() {
                            continue;
                        }
                    }
                    g.mean += s.value / g.count - g.mean / g.count;
                }
                "max" if g.value < s.value || g.value.is_nan() => g.value = s.value,
                "min" if g.value > s.value || g.value.is_nan() => g.value = s.value,
                "count" | "group" => g.count += 1.0,
                _ => {}
            }
        }
        let out = order
            .into_iter()
            .filter_map(|k| groups.remove(&k))
            .map(|g| Sample {
                value: match op.as_str() {
                    "avg" => g.mean,
                    "count" => g.count,
                    "group" => 1.0,
                    _ => g.value,
                },
                labels: g.labels,
            })
            .collect();
        Ok(Value::Vector(out))
    }

    fn binary(&self, b: &BinaryExpr) -> Result<Value, String> {
        let op = b.op.to_string();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = b.op.is_comparison_operator();
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = elem_binop(&op, l, r)?;
                Ok(Value::Scalar(if comparison {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    v
                }))
            }
            (Value::Vector(l), Value::Scalar(r)) => {
                vector_scalar(&op, l, r, false, return_bool, comparison).map(Value::Vector)
            }
            (Value::Scalar(l), Value::Vector(r)) => {
                vector_scalar(&op, r, l, true, return_bool, comparison).map(Value::Vector)
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let (on, names) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                    Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                    None => (false, vec![]),
                };
                // Matching compares a hash of the matched labels, as Prometheus does
                // (`HashForLabels`); the label set itself is only built for an error.
                let sig = |l: &Labels| signature(l, on, &names);
                let sig_labels = |l: &Labels| {
                    if on {
                        l.keep(&names)
                    } else {
                        l.drop(&names).without_name()
                    }
                };
                if b.op.is_set_operator() {
                    return Ok(Value::Vector(set_op(&op, l, r, &sig)));
                }
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                vector_vector(
                    &op,
                    l,
                    r,
                    &card,
                    on,
                    &names,
                    return_bool,
                    (&sig, &sig_labels),
                )
                .map(Value::Vector)
            }
            (l, r) => Err(format!(
                "operator {op} not allowed between {} and {}",
                l.type_name(),
                r.type_name()
            )),
        }
    }
}

/// Prometheus `vectorElemBinop`: the value, and whether a comparison keeps the element.
fn elem_binop(op: &str, l: f64, r: f64) -> Result<(f64, bool), String> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "^" => (l.powf(r), true),
        "%" => (go_mod(l, r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => return Err(format!("operator {other:?} is not supported")),
    })
}

fn vector_scalar(
    op: &str,
    vec: Vec<Sample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
    comparison: bool,
) -> Result<Vec<Sample>, String> {
    let drop_name = !comparison || return_bool;
    let mut out = Vec::with_capacity(vec.len());
    for s in vec {
        let (lv, rv) = if swap {
            (scalar, s.value)
        } else {
            (s.value, scalar)
        };
        let (mut value, mut keep) = elem_binop(op, lv, rv)?;
        if comparison && swap {
            value = rv;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if drop_name {
                s.labels.without_name()
            } else {
                s.labels
            };
            out.push(Sample { labels, value });
        }
    }
    unique(out)
}

fn set_op(
    op: &str,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    sig: &dyn Fn(&Labels) -> u64,
) -> Vec<Sample> {
    match op {
        "and" => {
            let right: FxHashSet<u64> = rhs.iter().map(|s| sig(&s.labels)).collect();
            lhs.into_iter()
                .filter(|s| right.contains(&sig(&s.labels)))
                .collect()
        }
        "unless" => {
            let right: FxHashSet<u64> = rhs.iter().map(|s| sig(&s.labels)).collect();
            lhs.into_iter()
                .filter(|s| !right.contains(&sig(&s.labels)))
                .collect()
        }
        _ => {
            let left: FxHashSet<u64> = lhs.iter().map(|s| sig(&s.labels)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|s| !left.contains(&sig(&s.labels))));
            out
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// The hash of the labels a binary operation matches on: `on(names)`, or all but `names`
/// and `__name__` (`ignoring`). Label names and values are separated by bytes that UTF-8
/// never contains, so two different sets never feed the hasher the same bytes.
fn signature(l: &Labels, on: bool, names: &[String]) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    for (k, v) in l.iter() {
        let listed = names.iter().any(|n| n == k);
        let include = if on {
            listed
        } else {
            !listed && k != METRIC_NAME
        };
        if include {
            h.write(k.as_bytes());
            h.write_u8(0xff);
            h.write(v.as_bytes());
            h.write_u8(0xfe);
        }
    }
    h.finish()
}

type Signatures<'a> = (&'a dyn Fn(&Labels) -> u64, &'a dyn Fn(&Labels) -> Labels);

#[allow(clippy::too_many_arguments)]
fn vector_vector(
    op: &str,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    card: &VectorMatchCardinality,
    on: bool,
    names: &[String],
    return_bool: bool,
    (sig, sig_labels): Signatures<'_>,
) -> Result<Vec<Sample>, String> {
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let (lhs, rhs) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let include: &[String] = card.labels().map(|l| l.labels.as_slice()).unwrap_or(&[]);
    let mut right: FxHashMap<u64, Sample> =
        FxHashMap::with_capacity_and_hasher(rhs.len(), Default::default());
    for s in rhs {
        let k = sig(&s.labels);
        if let Some(d) = right.get(&k) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                sig_labels(&s.labels),
                s.labels,
                d.labels
            ));
        }
        right.insert(k, s);
    }
    let comparison = matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=");
    let arithmetic = !comparison;
    // one-to-one: which match groups were used; many-to-one: the result sets per group
    let mut used: FxHashSet<u64> = FxHashSet::default();
    let mut matched: FxHashMap<u64, FxHashSet<Labels>> = FxHashMap::default();
    let mut out = Vec::with_capacity(lhs.len());
    for ls in lhs {
        let k = sig(&ls.labels);
        let Some(rs) = right.get(&k) else { continue };
        let (vl, vr) = if one_to_many {
            (rs.value, ls.value)
        } else {
            (ls.value, rs.value)
        };
        let (mut value, keep) = elem_binop(op, vl, vr)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        // resultMetric
        let mut labels = if arithmetic {
            ls.labels.without_name()
        } else {
            ls.labels.clone()
        };
        if one_to_one {
            labels = if on {
                labels.keep(names)
            } else {
                labels.drop(names)
            };
        }
        for n in include {
            labels.set(n, rs.labels.get(n));
        }
        if return_bool {
            labels = labels.without_name();
        }
        if one_to_one {
            if !used.insert(k) {
                return Err("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into());
            }
        } else {
            let seen = matched.entry(k).or_default();
            if seen.contains(&labels) {
                return Err(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                );
            }
            seen.insert(labels.clone());
        }
        out.push(Sample { labels, value });
    }
    unique(out)
}

/// Prometheus refuses results with two identical label sets.
fn unique(v: Vec<Sample>) -> Result<Vec<Sample>, String> {
    let mut seen = FxHashSet::with_capacity_and_hasher(v.len(), Default::default());
    for s in &v {
        if !seen.insert(&s.labels) {
            return Err("vector cannot contain metrics with the same labelset".into());
        }
    }
    Ok(v)
}

/// Labels `absent()` invents from the equality matchers of its selector argument.
fn absent_labels(arg: &Expr) -> Labels {
    let vs = match arg {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut l = Labels::default();
    let mut empty = vec![];
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && l.get(&m.name).is_empty() {
            l.set(&m.name, &m.value);
        } else {
            empty.push(m.name.clone());
        }
    }
    for n in empty {
        l.set(&n, "");
    }
    l
}

/// Go's `math.Max`/`math.Min`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Go's `math.Mod` (sign of the dividend), which Rust's `%` on f64 matches.
fn go_mod(a: f64, b: f64) -> f64 {
    a % b
}

/// Prometheus `extrapolatedRate` (2.42).
fn extrapolated_rate(
    p: &[(i64, f64)],
    start: i64,
    end: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first, last) = (p[0], p[p.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
        let mut last_value = 0.0;
        for &(_, v) in p {
            if v < last_value {
                result += last_value;
            }
            last_value = v;
        }
    }
    let w = Summary {
        first,
        last,
        count: p.len(),
    };
    extrapolate(result, w, start, end, counter, rate)
}

/// The rest of Prometheus' `extrapolatedRate` once `result` (last - first, plus the values
/// before each counter reset) is known: only the window's ends and length matter.
fn extrapolate(
    mut result: f64,
    w: Summary,
    start: i64,
    end: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if w.count < 2 {
        return None;
    }
    let (first, last) = (w.first, w.last);
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg_step = sampled / (w.count - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_step * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_step / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_step / 2.0
    };
    result *= interval / sampled;
    if rate {
        result /= (end - start) as f64 / 1000.0;
    }
    Some(result)
}

/// Prometheus `instantValue` (irate / idelta).
fn instant_delta(p: &[(i64, f64)], rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut result = if rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let interval = last.0 - prev.0;
    if interval == 0 {
        return None;
    }
    if rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Prometheus `linearRegression` (2.42): least squares with x relative to `intercept_time`.
fn linear_regression(p: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in p.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        sum_x += x;
        sum_y += v;
        sum_xy += x * v;
        sum_x2 += x * x;
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Prometheus `avg_over_time` (2.42): an incremental mean that survives overflow.
fn avg_over_time(p: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count) = (0.0f64, 0.0);
    for &(_, v) in p {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

fn histogram_quantile(q: f64, v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: FxHashMap<Labels, Vec<(f64, f64)>> = FxHashMap::default();
    let mut order = vec![];
    for s in v {
        let le = s.labels.get("le");
        let bound = match le {
            "+Inf" | "Inf" | "+inf" | "inf" => f64::INFINITY,
            "-Inf" | "-inf" => f64::NEG_INFINITY,
            other => match other.parse::<f64>() {
                Ok(b) => b,
                Err(_) => continue,
            },
        };
        let key = s.labels.drop(&["le".to_string()]).without_name();
        let e = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            vec![]
        });
        e.push((bound, s.value));
    }
    order
        .into_iter()
        .filter_map(|k| {
            let b = groups.remove(&k)?;
            Some(Sample {
                labels: k,
                value: bucket_quantile(q, b),
            })
        })
        .collect()
}

/// Prometheus `bucketQuantile` (2.42).
fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // coalesceBuckets
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (bound, count) in b {
        match c.last_mut() {
            Some(last) if last.0 == bound => last.1 += count,
            _ => c.push((bound, count)),
        }
    }
    // ensureMonotonic
    let mut max = f64::NEG_INFINITY;
    for x in &mut c {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if c.len() < 2 {
        return f64::NAN;
    }
    let observations = c[c.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = c.len() - 1;
    let i = c[..n].partition_point(|x| x.1 < rank);
    if i == n {
        return c[n - 1].0;
    }
    if i == 0 && c[0].0 <= 0.0 {
        return c[0].0;
    }
    let mut start = 0.0;
    let end = c[i].0;
    let mut count = c[i].1;
    if i > 0 {
        start = c[i - 1].0;
        count -= c[i - 1].1;
        rank -= c[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Storage {
        let mut s = Storage::new();
        for (labels, step) in [
            (Labels::from_pairs([("__name__", "c"), ("a", "x")]), 1.0),
            (Labels::from_pairs([("__name__", "c"), ("a", "y")]), 2.0),
        ] {
            for i in 0..=10 {
                s.append(&labels, i * 60_000, step * i as f64);
            }
        }
        s
    }

    fn vector(q: &str, t: i64) -> Vec<(String, f64)> {
        let s = store();
        let e = parse(q).expect("parse");
        let Value::Vector(v) = eval(&e, &s, t).expect("eval") else {
            panic!("not a vector")
        };
        let mut out: Vec<_> = v
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn a_range_function_over_several_names_refuses_equal_label_sets() {
        let mut s = store();
        let d = Labels::from_pairs([("__name__", "d"), ("a", "x")]);
        for i in 0..=10 {
            s.append(&d, i * 60_000, i as f64);
        }
        let e = parse(r#"rate({__name__=~"c|d"}[5m])"#).expect("parse");
        let err = eval(&e, &s, 600_000).expect_err("c and d both become {a=\"x\"}");
        assert_eq!(err, "vector cannot contain metrics with the same labelset");
        let e = parse(r#"rate({__name__=~"c|d", a="y"}[5m])"#).expect("parse");
        assert!(eval(&e, &s, 600_000).is_ok());
    }

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // 5 samples over 4m in a 5m window: extrapolated by half a step at each end... capped
        // at the zero point. Values worked out from Prometheus' algorithm by hand.
        assert_eq!(
            vector("rate(c[5m])", 600_000),
            vec![
                (r#"{a="x"}"#.into(), 1.0 / 60.0),
                (r#"{a="y"}"#.into(), 2.0 / 60.0)
            ]
        );
        assert_eq!(
            vector("sum(increase(c[5m]))", 600_000),
            vec![("{}".into(), 15.0)]
        );
    }

    #[test]
    fn matching_and_lookback() {
        assert_eq!(
            vector(r#"c{a="x"} > on () group_left c{a="y"} - 100"#, 600_000).len(),
            1
        );
        assert!(vector("c", 600_000 + LOOKBACK_MS + 1).is_empty());
        assert_eq!(vector("c", 600_000 + LOOKBACK_MS).len(), 2);
        assert_eq!(
            vector(r#"absent(nope{job="j", a=~"x"})"#, 0),
            vec![(r#"{job="j"}"#.into(), 1.0)]
        );
    }

    #[test]
    fn unsupported_constructs_are_named() {
        for (q, want) in [
            ("rate(c[5m:1m])", "range selector"),
            (
                "label_join(c, \"a\", \",\", \"b\")",
                "\"label_join\" is not supported",
            ),
            ("quantile(0.5, c)", "\"quantile\" is not supported"),
            ("c @ 100", "@ modifier"),
        ] {
            let err = parse(q).expect_err(q);
            assert!(err.contains(want), "{q}: {err}");
        }
    }

    #[test]
    fn bucket_quantile_interpolates() {
        let b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        assert_eq!(bucket_quantile(0.5, b.clone()), 0.1 + 0.4 * 0.5);
        assert_eq!(bucket_quantile(0.99, b), 0.5);
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;
    use crate::rules::storage::{stale_nan, xorshift};

    /// The window functions that skip decoding (rate, increase, delta, resets,
    /// count_over_time, last_over_time over chunks that allow it) and every window read
    /// through a rule's cursors give bit for bit what decoding every sample from the chunk's
    /// start gives, over counters with and without resets, negative values, NaN, stale
    /// markers, irregular steps, windows at every position and length, and now and then an
    /// evaluation back in time (cursors must then not be trusted).
    #[test]
    fn window_summaries_agree_with_decoding_every_sample() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        // Series sampled at the same instants, kinds offset by a millisecond each.
        let kinds = ["rising", "resets", "negative", "stale", "nan", "gauge"];
        // rows[i][k]: the i-th sample of kind k.
        let mut rows: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 700];
        for (k, kind) in kinds.iter().enumerate() {
            let (mut t, mut v) = (0i64, if *kind == "negative" { -500.0 } else { 0.0 });
            for (i, row) in rows.iter_mut().enumerate() {
                let r = next();
                t += if i % 50 == 7 {
                    1 + (r % 40_000) as i64
                } else {
                    15_000
                };
                v += (r % 100) as f64 / 4.0;
                let w = match *kind {
                    "resets" if r % 97 == 0 => {
                        v = 0.0;
                        v
                    }
                    "stale" if r % 61 == 0 => stale_nan(),
                    "nan" if r % 83 == 0 => f64::NAN,
                    "gauge" => (r % 1000) as f64 - 500.0,
                    _ => v,
                };
                row.push((t + k as i64, w));
            }
        }
        let reference = |name: &str, p: &[(i64, f64)], start: i64, end: i64| match name {
            "rate" => extrapolated_rate(p, start, end, true, true),
            "increase" => extrapolated_rate(p, start, end, true, false),
            "delta" => extrapolated_rate(p, start, end, false, false),
            "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
            "count_over_time" => Some(p.len() as f64),
            "avg_over_time" => Some(avg_over_time(p)),
            "sum_over_time" => Some(p.iter().map(|(_, v)| v).sum()),
            "changes" => Some(
                p.windows(2)
                    .filter(|w| w[1].1.to_bits() != w[0].1.to_bits())
                    .count() as f64,
            ),
            _ => Some(p[p.len() - 1].1),
        };
        let names = [
            "rate",
            "increase",
            "delta",
            "resets",
            "count_over_time",
            "last_over_time",
            "avg_over_time",
            "sum_over_time",
            "changes",
        ];
        let mut queries = Vec::new();
        for name in names {
            for range in ["30s", "5m", "47m", "2h", "1d"] {
                let e = parse(&format!("{name}(m[{range}])")).expect("parse");
                let Expr::Call(c) = &e else { panic!("call") };
                let Expr::MatrixSelector(ms) = &*c.args.args[0] else {
                    panic!("matrix")
                };
                let range_ms = ms.range.as_millis() as i64;
                queries.push((name, range, range_ms, e, Cursors::default()));
            }
        }
        // Appended as the engine does, evaluated now and then at the newest instant (as rules
        // are) and a little after it.
        let mut s = Storage::new();
        let mut summarised = 0;
        for (i, row) in rows.iter().enumerate() {
            for (kind, &(t, v)) in kinds.iter().zip(row) {
                let l = Labels::from_pairs([("__name__", "m"), ("kind", kind)]);
                s.append(&l, t, v);
            }
            if i % 7 != 3 {
                continue;
            }
            let back = (i % 5 == 3).then(|| row[0].0 - 600_000);
            for ts in [row[kinds.len() - 1].0, row[0].0 + 9_000]
                .into_iter()
                .chain(back)
            {
                for (name, range, range_ms, e, cursors) in &mut queries {
                    let Value::Vector(got) = eval_at_later(e, &s, ts, cursors).expect("eval")
                    else {
                        panic!("vector")
                    };
                    let mut want = Vec::new();
                    let start = ts - *range_ms;
                    for series in s.candidates(Some("m")) {
                        let p: Vec<(i64, f64)> = series
                            .range(start, ts)
                            .filter(|(_, v)| !is_stale(*v))
                            .collect();
                        if series.summary(start, ts, RISING, None).is_some() {
                            summarised += 1;
                        }
                        if let Some(v) = (!p.is_empty())
                            .then(|| reference(name, &p, start, ts))
                            .flatten()
                        {
                            want.push((series.labels.get("kind").to_string(), v.to_bits()));
                        }
                    }
                    let mut got: Vec<(String, u64)> = got
                        .iter()
                        .map(|x| (x.labels.get("kind").to_string(), x.value.to_bits()))
                        .collect();
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "{name}(m[{range}]) at {ts}");
                }
            }
        }
        assert!(summarised > 500, "the summary path ran {summarised} times");
    }
}
