//! Evaluation of an expression at one instant (Prometheus' `promql/engine.go`): the
//! evaluator's walk over the AST, instant and range selectors, the lookback, and the cursors
//! a rule keeps so its range selectors resume decoding where they stood.

use super::value::{RangeSeries, Sample, Value};
use crate::rules::chunk::Cursor;
use crate::rules::labels::{Labels, METRIC_NAME};
use crate::rules::storage::{Series, Storage, is_stale};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    AtModifier, Call, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector,
};
use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::UNIX_EPOCH;

/// Prometheus' default lookback for instant selectors.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The longest time each metric name is read back (range + offset, or the lookback for an
/// instant selector). `None` as key: a selector without a fixed name (reads every series).
/// A selector with `@ <timestamp>` reads at that fixed instant, which this does not count:
/// it finds what the history still holds then, as Prometheus finds what its retention kept.
/// A subquery `e[range:step] offset o` adds `range + o` to what `e` reads back.
pub fn retention(expr: &Expr, out: &mut HashMap<Option<String>, i64>) {
    retention_from(expr, 0, out)
}

/// [`retention`] of `expr` evaluated `before` ms before the evaluation time (inside
/// subqueries).
fn retention_from(expr: &Expr, before: i64, out: &mut HashMap<Option<String>, i64>) {
    let retention =
        |e: &Expr, out: &mut HashMap<Option<String>, i64>| retention_from(e, before, out);
    let mut put = |vs: &VectorSelector, range: i64| {
        let back = before + range + offset_ms(vs).max(0);
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
        Expr::Subquery(sq) => {
            let back = before + sq.range.as_millis() as i64 + offset(&sq.offset).max(0);
            retention_from(&sq.expr, back, out)
        }
        _ => {}
    }
}

pub(super) fn selector_name(vs: &VectorSelector) -> Option<&str> {
    vs.name.as_deref().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.as_str())
    })
}

pub(super) fn offset_ms(vs: &VectorSelector) -> i64 {
    offset(&vs.offset)
}

/// An `offset` in milliseconds (negative for `offset -5m`; 0 without one).
fn offset(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

/// The instant `at` names in milliseconds: a timestamp, or for `start()`/`end()` the
/// evaluation time `ts` (one instant query: its start and end are the same).
fn at_ms(at: &AtModifier, ts: i64) -> i64 {
    match at {
        AtModifier::Start | AtModifier::End => ts,
        AtModifier::At(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(before) => -(before.duration().as_millis() as i64),
        },
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
    pub(super) fn slot(&mut self, node: usize, name: &str, generation: u64) -> &mut Vec<Cursor> {
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

/// Evaluates `expr` as an instant query at `ts` (milliseconds). `default_step` (ms) is the
/// step of a subquery that names none (`x[5m:]`): Prometheus takes its global
/// `evaluation_interval`, promtool the test file's.
pub fn eval(expr: &Expr, storage: &Storage, ts: i64, default_step: i64) -> Result<Value, String> {
    Evaluator {
        storage,
        ts,
        query_ts: ts,
        default_step,
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
    default_step: i64,
    cursors: &mut Cursors,
) -> Result<Value, String> {
    let cell = RefCell::new(std::mem::take(cursors));
    let out = Evaluator {
        storage,
        ts,
        query_ts: ts,
        default_step,
        cursors: Some(&cell),
    }
    .eval(expr);
    *cursors = cell.into_inner();
    out
}

pub(super) struct Evaluator<'a> {
    pub(super) storage: &'a Storage,
    /// The instant evaluated (ms): the query's time, or inside a subquery one of its steps.
    pub(super) ts: i64,
    /// The query's own time (ms), which `@ start()` and `@ end()` name even inside a
    /// subquery (an instant query starts and ends at its time).
    pub(super) query_ts: i64,
    /// The step (ms) of a subquery without one.
    pub(super) default_step: i64,
    /// Only for the query's own instant: a subquery's steps read without cursors.
    pub(super) cursors: Option<&'a RefCell<Cursors>>,
}
impl Evaluator<'_> {
    pub(super) fn eval(&self, expr: &Expr) -> Result<Value, String> {
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
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq)?.series)),
            Expr::Extension(_) => Err("unsupported expression".into()),
        }
    }

    /// The series `vs` picks, each with its place in its name's list (see
    /// [`Storage::named`]; for a selector without a name, a place among all series).
    pub(super) fn picked<'s>(
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

    /// The instant selector `vs` reads at (the end of its window for a range selector):
    /// its `@` time or the evaluation time, minus its offset (Prometheus' `vs.Timestamp`
    /// and `vs.OriginalOffset`). Functions still see the evaluation time (`predict_linear`
    /// extrapolates from it).
    pub(super) fn selector_time(&self, vs: &VectorSelector) -> i64 {
        let base = match &vs.at {
            None => self.ts,
            Some(at) => at_ms(at, self.query_ts),
        };
        base - offset_ms(vs)
    }

    /// Evaluates subquery `sq` (Prometheus 2.42's range evaluation of its expression): the
    /// window ends at the `@` time (or the evaluation time) minus the `offset`, and spans
    /// `range` back, both ends included as for a range selector; the expression is
    /// evaluated at every multiple of the step (counted from the Unix epoch) in the window,
    /// each series' values becoming its points. The step is the subquery's own or
    /// [`Evaluator::default_step`]. Errors: those of the expression at any step, or a
    /// step result that is neither an instant vector nor a scalar.
    pub(super) fn subquery(&self, sq: &SubqueryExpr) -> Result<Window, String> {
        let base = match &sq.at {
            None => self.ts,
            Some(at) => at_ms(at, self.query_ts),
        };
        let end = base - offset(&sq.offset);
        let start = end - sq.range.as_millis() as i64;
        let step = match sq.step {
            Some(s) => s.as_millis() as i64,
            None => self.default_step,
        }
        .max(1);
        let mut series: Vec<RangeSeries> = Vec::new();
        let mut place: FxHashMap<Labels, usize> = FxHashMap::default();
        let mut push = |labels: Labels, t: i64, v: f64| match place.get(&labels) {
            Some(&i) => series[i].points.push((t, v)),
            None => {
                place.insert(labels.clone(), series.len());
                series.push(RangeSeries {
                    labels,
                    points: vec![(t, v)],
                });
            }
        };
        // The first multiple of the step at or after the window's start.
        let mut t = start.div_euclid(step) * step;
        if t < start {
            t += step;
        }
        while t <= end {
            let inner = Evaluator {
                storage: self.storage,
                ts: t,
                query_ts: self.query_ts,
                default_step: self.default_step,
                cursors: None,
            };
            match inner.eval(&sq.expr)? {
                Value::Vector(v) => v.into_iter().for_each(|s| push(s.labels, t, s.value)),
                Value::Scalar(v) => push(Labels::default(), t, v),
                other => {
                    return Err(format!(
                        "subquery of a {}: only instant vectors and scalars have steps",
                        other.type_name()
                    ));
                }
            }
            t += step;
        }
        Ok(Window { start, end, series })
    }

    fn select(&self, vs: &VectorSelector) -> Vec<Sample> {
        let at = self.selector_time(vs);
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
        let end = self.selector_time(&ms.vs);
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

    pub(super) fn scalar_arg(&self, c: &Call, i: usize) -> Result<f64, String> {
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

    pub(super) fn vector_arg(&self, c: &Call, i: usize) -> Result<Vec<Sample>, String> {
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
}

/// What a subquery yields: its window (ms, both ends included) and the series of its steps.
pub(super) struct Window {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) series: Vec<RangeSeries>,
}

/// Prometheus refuses results with two identical label sets.
pub(super) fn unique(v: Vec<Sample>) -> Result<Vec<Sample>, String> {
    let mut seen = FxHashSet::with_capacity_and_hasher(v.len(), Default::default());
    for s in &v {
        if !seen.insert(&s.labels) {
            return Err("vector cannot contain metrics with the same labelset".into());
        }
    }
    Ok(v)
}

/// The range selector an argument is, through any parentheses (`rate((x[5m]))` is
/// `rate(x[5m])` to Prometheus); `None` for anything else (a subquery, an instant vector).
pub(super) fn range_arg(e: &Expr) -> Option<&MatrixSelector> {
    match e {
        Expr::MatrixSelector(ms) => Some(ms),
        Expr::Paren(p) => range_arg(&p.expr),
        _ => None,
    }
}

/// The subquery an argument is, through any parentheses; `None` for anything else.
pub(super) fn subquery_arg(e: &Expr) -> Option<&SubqueryExpr> {
    match e {
        Expr::Subquery(sq) => Some(sq),
        Expr::Paren(p) => subquery_arg(&p.expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::promql::parse;

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
        let Value::Vector(v) = eval(&e, &s, t, 60_000).expect("eval") else {
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
        let err = eval(&e, &s, 600_000, 60_000).expect_err("c and d both become {a=\"x\"}");
        assert_eq!(err, "vector cannot contain metrics with the same labelset");
        let e = parse(r#"rate({__name__=~"c|d", a="y"}[5m])"#).expect("parse");
        assert!(eval(&e, &s, 600_000, 60_000).is_ok());
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

    fn vector_with_step(q: &str, t: i64, default_step: i64) -> Vec<(String, f64)> {
        let e = parse(q).expect("parse");
        let Value::Vector(v) = eval(&e, &store(), t, default_step).expect("eval") else {
            panic!("not a vector")
        };
        let mut out: Vec<_> = v
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn one(q: &str, t: i64) -> f64 {
        let v = vector(q, t);
        assert_eq!(v.len(), 1, "{q}: {v:?}");
        v[0].1
    }

    /// `c{a="x"}` is 0, 1, … 10 at minutes 0 … 10.
    #[test]
    fn subquery_steps_are_multiples_of_the_step_and_both_ends_count() {
        assert_eq!(one(r#"count_over_time(c{a="x"}[5m:1m])"#, 600_000), 6.0);
        // Window 5m30s … 10m30s: steps 6m … 10m.
        assert_eq!(one(r#"count_over_time(c{a="x"}[5m:1m])"#, 630_000), 5.0);
        // The steps are multiples of 25s from the epoch, not from the window's start:
        // 8m20s, 8m45s, 9m10s, 9m35s; each reads the sample at or before it.
        assert_eq!(
            one(r#"sum_over_time(c{a="x"}[100s:25s])"#, 590_000),
            8.0 + 8.0 + 9.0 + 9.0
        );
        // Without a step: the default one (the evaluation interval), 2m here.
        assert_eq!(
            vector_with_step(r#"count_over_time(c{a="x"}[5m:])"#, 600_000, 120_000),
            vec![(r#"{a="x"}"#.into(), 3.0)]
        );
    }

    #[test]
    fn subquery_offset_and_at_move_the_whole_window() {
        assert_eq!(
            one(r#"sum_over_time(c{a="x"}[2m:1m] offset 1m)"#, 600_000),
            7.0 + 8.0 + 9.0
        );
        assert_eq!(
            one(r#"sum_over_time(c{a="x"}[2m:1m] @ 300)"#, 600_000),
            3.0 + 4.0 + 5.0
        );
        assert_eq!(
            one(r#"sum_over_time(c{a="x"}[2m:1m] @ 300 offset 1m)"#, 600_000),
            2.0 + 3.0 + 4.0
        );
        // A negative offset reads after the evaluation time.
        assert_eq!(
            one(r#"sum_over_time(c{a="x"}[2m:1m] offset -1m)"#, 480_000),
            7.0 + 8.0 + 9.0
        );
    }

    #[test]
    fn subqueries_nest_and_steps_are_their_own_evaluation_times() {
        // Inner at t: c(t - 1m) + c(t); outer at 8m, 9m, 10m.
        assert_eq!(
            one(
                r#"sum_over_time(sum_over_time(c{a="x"}[1m:1m])[2m:1m])"#,
                600_000
            ),
            (7.0 + 8.0) + (8.0 + 9.0) + (9.0 + 10.0)
        );
        // time() is each step's time; `@ start()` the query's.
        assert_eq!(
            one("sum_over_time(vector(time())[2m:1m])", 600_000),
            480.0 + 540.0 + 600.0
        );
        assert_eq!(
            one(
                r#"sum_over_time(timestamp(c{a="x"} @ start())[2m:1m])"#,
                600_000
            ),
            3.0 * 600.0
        );
    }

    #[test]
    fn range_functions_over_a_subquery_read_its_points() {
        // Steps on the samples: the same points, the same window, the same rate.
        assert_eq!(
            vector("rate(c[5m:1m])", 600_000),
            vector("rate(c[5m])", 600_000)
        );
        assert_eq!(
            vector("deriv(c[5m:1m])", 600_000),
            vector("deriv(c[5m])", 600_000)
        );
        assert_eq!(
            vector(r#"quantile_over_time(0.5, c{a="y"}[4m:1m])"#, 600_000),
            vec![(r#"{a="y"}"#.into(), 16.0)]
        );
        // last_over_time keeps the name; the others drop it.
        assert_eq!(
            vector(r#"last_over_time(c{a="x"}[2m:1m])"#, 600_000),
            vec![(r#"c{a="x"}"#.into(), 10.0)]
        );
        // absent_over_time of a subquery invents no labels.
        assert_eq!(
            vector(r#"absent_over_time(nope{a="x"}[2m:1m])"#, 600_000),
            vec![("{}".into(), 1.0)]
        );
        assert!(vector(r#"absent_over_time(c{a="x"}[2m:1m])"#, 600_000).is_empty());
        // A bare subquery is a range vector.
        let e = parse(r#"c{a="x"}[2m:1m]"#).expect("parse");
        let Value::Matrix(m) = eval(&e, &store(), 600_000, 60_000).expect("eval") else {
            panic!("not a matrix")
        };
        assert_eq!(
            m[0].points,
            vec![(480_000, 8.0), (540_000, 9.0), (600_000, 10.0)]
        );
    }

    #[test]
    fn retention_counts_subquery_windows() {
        let back = |q: &str| {
            let mut out = HashMap::new();
            retention(&parse(q).expect("parse"), &mut out);
            out[&Some("c".to_string())]
        };
        // The window (5m) and its offset (10m) before the lookback of the instant selector.
        assert_eq!(back("rate(c[5m:1m] offset 10m)"), 20 * 60_000);
        assert_eq!(back("max_over_time(rate(c[2m])[10m:])"), 12 * 60_000);
        assert_eq!(
            back("max_over_time(max_over_time(c[1m])[10m:1m])[1h:5m]"),
            71 * 60_000
        );
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
}
