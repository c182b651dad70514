//! Function calls (Prometheus' `promql/functions.go`): instant functions, the `*_over_time`
//! and counter functions over range selectors with `extrapolatedRate`, and their fast path:
//! a window over chunks without resets (or stale markers) is summarised from its ends
//! instead of decoded (see [`crate::rules::storage::Series::summary`]). The test at the end
//! proves the fast path gives bit for bit what decoding every sample gives.

use super::engine::{Evaluator, selector_name, unique};
use super::quantile::histogram_quantile;
use super::subset::RANGE_FUNCTIONS;
use super::value::{Sample, Value};
use crate::rules::chunk::{CLEAN, Cursor, RISING, Summary};
use crate::rules::labels::{Labels, METRIC_NAME};
use crate::rules::storage::is_stale;
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr, MatrixSelector, SubqueryExpr};

impl Evaluator<'_> {
    pub(super) fn call(&self, c: &Call) -> Result<Value, String> {
        let name = c.func.name;
        if RANGE_FUNCTIONS.contains(&name) {
            return self.range_function(c);
        }
        let map = |f: &dyn Fn(f64) -> f64| self.map_values(c, f);
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
            // Go's amd64 assembly `Exp` and `Log`, not the C library's (last-bit differences).
            "exp" => map(&super::math::go_exp),
            "ln" => map(&super::math::go_log),
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
                Ok(Value::Vector(histogram_quantile(q, v)?))
            }
            _ => self.call_more(c),
        }
    }

    pub(super) fn range_function(&self, c: &Call) -> Result<Value, String> {
        let name = c.func.name;
        let Some(ms) = super::engine::range_arg(&c.args.args[0]) else {
            return match super::engine::subquery_arg(&c.args.args[0]) {
                Some(sq) => self.range_function_of_subquery(c, sq),
                None => Err(format!("function {name:?} needs a range selector")),
            };
        };
        let range_ms = ms.range.as_millis() as i64;
        let end = self.selector_time(&ms.vs);
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
                window_value(name, &p, start, end, extra, self.ts)?
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
}

impl Evaluator<'_> {
    /// A range function over a subquery's points instead of stored samples: the same
    /// window functions ([`window_value`]) over the subquery's window (see
    /// [`Evaluator::subquery`]). `absent_over_time` of a subquery invents no labels (`{}`),
    /// as in Prometheus 2.42.
    fn range_function_of_subquery(&self, c: &Call, sq: &SubqueryExpr) -> Result<Value, String> {
        let name = c.func.name;
        let extra = if name == "predict_linear" {
            self.scalar_arg(c, 1)?
        } else {
            0.0
        };
        let w = self.subquery(sq)?;
        if name == "absent_over_time" {
            return Ok(Value::Vector(if w.series.is_empty() {
                vec![Sample {
                    labels: Labels::default(),
                    value: 1.0,
                }]
            } else {
                vec![]
            }));
        }
        let mut out = Vec::with_capacity(w.series.len());
        for s in w.series {
            if let Some(value) = window_value(name, &s.points, w.start, w.end, extra, self.ts)? {
                let labels = if name == "last_over_time" {
                    s.labels
                } else {
                    s.labels.without_name()
                };
                out.push(Sample { labels, value });
            }
        }
        Ok(Value::Vector(unique(out)?))
    }
}

/// The value of range function `name` over the points `p` (not empty, oldest first) of a
/// window from `start` to `end` (ms); `extra` is `predict_linear`'s second argument, `ts`
/// the evaluation time it extrapolates from. `None`: no result for this series (too few
/// points).
#[inline]
fn window_value(
    name: &str,
    p: &[(i64, f64)],
    start: i64,
    end: i64,
    extra: f64,
    ts: i64,
) -> Result<Option<f64>, String> {
    Ok(match name {
        "rate" => extrapolated_rate(p, start, end, true, true),
        "increase" => extrapolated_rate(p, start, end, true, false),
        "delta" => extrapolated_rate(p, start, end, false, false),
        "irate" => instant_delta(p, true),
        "idelta" => instant_delta(p, false),
        "deriv" => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
        "predict_linear" => (p.len() >= 2).then(|| {
            let (slope, intercept) = linear_regression(p, ts);
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
        "sum_over_time" => Some(sum_over_time(p)),
        "count_over_time" => Some(p.len() as f64),
        "last_over_time" => Some(p[p.len() - 1].1),
        "changes" => Some(
            p.windows(2)
                .filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan()))
                .count() as f64,
        ),
        "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        other => return Err(format!("function {other:?} is not supported")),
    })
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
    // Prometheus 2.42 works out the factor first (divided by the range for a rate) and
    // multiplies the value once: the order decides the last bit.
    let mut factor = interval / sampled;
    if rate {
        factor /= (end - start) as f64 / 1000.0;
    }
    result *= factor;
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

/// One step of Neumaier's improved Kahan summation, as Prometheus 2.42's `kahanSumInc`:
/// `sum + inc`, with the low-order bits that addition loses added to the compensation `c`.
/// Returns the new sum and compensation; the total is `sum + c` (or `sum` when infinite).
/// Written here because the result must be Prometheus' bit for bit, which fixes the exact
/// order of operations (a general-purpose summation crate does not promise that).
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let lost = if sum.abs() >= inc.abs() {
        (sum - t) + inc
    } else {
        (inc - t) + sum
    };
    (t, c + lost)
}

/// Prometheus `linearRegression` (2.42): least squares with x relative to `intercept_time`,
/// every sum compensated ([`kahan_inc`]).
fn linear_regression(p: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let mut n = 0.0;
    let (mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in p.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Prometheus `sum_over_time` (2.42): a compensated sum ([`kahan_inc`]).
fn sum_over_time(p: &[(i64, f64)]) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0);
    for &(_, v) in p {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// Prometheus `avg_over_time` (2.42): an incremental mean that survives overflow, its steps
/// compensated ([`kahan_inc`]).
fn avg_over_time(p: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0, 0.0);
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
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

#[cfg(test)]
mod summary_tests {
    use super::*;
    use crate::rules::promql::engine::{Cursors, eval_at_later};
    use crate::rules::promql::parse;
    use crate::rules::storage::Storage;
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
                    "resets" if r.is_multiple_of(97) => {
                        v = 0.0;
                        v
                    }
                    "stale" if r.is_multiple_of(61) => stale_nan(),
                    "nan" if r.is_multiple_of(83) => f64::NAN,
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
            "sum_over_time" => Some(sum_over_time(p)),
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
                    let Value::Vector(got) =
                        eval_at_later(e, &s, ts, 60_000, cursors).expect("eval")
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
