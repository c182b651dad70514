//! Statistics of PromQL 2.42 beside the first subset: the `quantile`, `stddev`, `stdvar`
//! and `count_values` aggregations (Prometheus' `engine.go` `aggregation`), and the range
//! functions `present_over_time`, `quantile_over_time`, `stddev_over_time`,
//! `stdvar_over_time` and `holt_winters` (`functions.go`).

use super::engine::{Evaluator, unique};
use super::value::{RangeSeries, Sample, Value};
use crate::rules::labels::Labels;
use promql_parser::parser::{AggregateExpr, Call, LabelModifier};
use rustc_hash::FxHashMap;

/// Aggregations this file evaluates.
pub(super) const AGGREGATIONS: &[&str] = &["quantile", "stddev", "stdvar", "count_values"];

/// Prometheus `quantile` (`quantile.go`): the φ-quantile of `values` with linear
/// interpolation between the closest ranks (rank φ·(n−1)). NaN for no values or φ NaN,
/// −Inf for φ < 0, +Inf for φ > 1. NaN values sort below every number, as Prometheus'
/// `vectorByValueHeap` orders them. Sorts `values` in place.
pub(super) fn quantile(phi: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = phi * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// The running variance Prometheus keeps for the `stddev`/`stdvar` aggregations
/// (Welford's update: count, mean, sum of squared deviations).
#[derive(Clone, Copy, Default)]
struct Variance {
    count: f64,
    mean: f64,
    squares: f64,
}

impl Variance {
    fn push(&mut self, v: f64) {
        self.count += 1.0;
        let delta = v - self.mean;
        self.mean += delta / self.count;
        self.squares += delta * (v - self.mean);
    }

    /// The population variance (`stdvar`), or its square root (`stddev`).
    fn result(&self, deviation: bool) -> f64 {
        let var = self.squares / self.count;
        if deviation { var.sqrt() } else { var }
    }
}

/// Prometheus' `kahanSumInc` (Neumaier's variant of Kahan summation): `sum + inc`, and the
/// compensation `c` carries what the addition lost.
fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus' `stddev_over_time`/`stdvar_over_time` (2.42): Welford's update with the
/// mean and the sum of squared deviations each kept as a compensated sum.
fn variance_over_time(p: &[(i64, f64)], deviation: bool) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in p {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    let var = (aux + c_aux) / count;
    if deviation { var.sqrt() } else { var }
}

/// Prometheus `funcHoltWinters` (2.42): double exponential smoothing of the window's values
/// with smoothing factor `sf` and trend factor `tf`; `None` below two points.
fn holt_winters(p: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, p[0].1);
    let mut trend = p[1].1 - p[0].1;
    for (i, &(_, v)) in p.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            trend = tf * (s1 - s0) + (1.0 - tf) * trend;
        }
        let y = (1.0 - sf) * (s1 + trend);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// Go's `%f`: six decimals, `+Inf`/`-Inf`/`NaN` spelled as Go spells them.
fn go_fixed(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v:.6}")
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest decimal that reads back as `v`,
/// never in exponent form (`count_values`' label values).
pub(super) fn go_shortest_fixed(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust's Display is the shortest round-trip form without an exponent, NaN as "NaN".
        format!("{v}")
    }
}

/// Prometheus' `model.LabelName.IsValid` (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub(super) fn valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl Evaluator<'_> {
    /// `present_over_time`, `quantile_over_time`, `stddev_over_time`, `stdvar_over_time`,
    /// `holt_winters`; `None` for any other function. Each drops the metric name, as every
    /// Prometheus range function but `last_over_time` does.
    pub(super) fn stats_function(&self, c: &Call) -> Option<Result<Value, String>> {
        let name = c.func.name;
        let at = match name {
            "present_over_time" | "stddev_over_time" | "stdvar_over_time" | "holt_winters" => 0,
            "quantile_over_time" => 1,
            _ => return None,
        };
        Some(self.over_time(c, at))
    }

    fn over_time(&self, c: &Call, at: usize) -> Result<Value, String> {
        let name = c.func.name;
        let series: Vec<RangeSeries> = match self.eval(&c.args.args[at])? {
            Value::Matrix(m) => m,
            other => {
                return Err(format!(
                    "argument {} of {name} must be a range vector, got {}",
                    at + 1,
                    other.type_name()
                ));
            }
        };
        let phi = if name == "quantile_over_time" {
            self.scalar_arg(c, 0)?
        } else {
            0.0
        };
        let (sf, tf) = if name == "holt_winters" {
            (self.scalar_arg(c, 1)?, self.scalar_arg(c, 2)?)
        } else {
            (0.5, 0.5)
        };
        let mut out = Vec::with_capacity(series.len());
        let mut values = Vec::new();
        for s in series {
            let value = match name {
                "present_over_time" => Some(1.0),
                "quantile_over_time" => {
                    values.clear();
                    values.extend(s.points.iter().map(|p| p.1));
                    Some(quantile(phi, &mut values))
                }
                "stddev_over_time" | "stdvar_over_time" => {
                    Some(variance_over_time(&s.points, name == "stddev_over_time"))
                }
                _ => {
                    // Prometheus checks the factors when it meets a series to smooth.
                    if !(sf > 0.0 && sf < 1.0) {
                        return Err(format!(
                            "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                            go_fixed(sf)
                        ));
                    }
                    if !(tf > 0.0 && tf < 1.0) {
                        return Err(format!(
                            "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                            go_fixed(tf)
                        ));
                    }
                    holt_winters(&s.points, sf, tf)
                }
            };
            if let Some(value) = value {
                out.push(Sample {
                    labels: s.labels.without_name(),
                    value,
                });
            }
        }
        Ok(Value::Vector(unique(out)?))
    }

    /// `quantile`, `stddev`, `stdvar` and `count_values` over `input` (`a`'s evaluated
    /// argument), grouped by `a`'s `by`/`without` as every aggregation is.
    pub(super) fn stats_aggregate(
        &self,
        a: &AggregateExpr,
        op: &str,
        input: Vec<Sample>,
    ) -> Result<Value, String> {
        let param = match &a.param {
            Some(p) => Some(self.eval(p)?),
            None => None,
        };
        let group_of = |l: &Labels| match &a.modifier {
            Some(LabelModifier::Include(by)) => l.keep(&by.labels),
            Some(LabelModifier::Exclude(without)) => l.drop(&without.labels).without_name(),
            None => Labels::default(),
        };
        let mut order: Vec<Labels> = Vec::new();
        let mut groups: FxHashMap<Labels, Vec<f64>> = FxHashMap::default();
        let mut push = |labels: Labels, v: f64| match groups.get_mut(&labels) {
            Some(g) => g.push(v),
            None => {
                order.push(labels.clone());
                groups.insert(labels, vec![v]);
            }
        };
        let mut phi = f64::NAN;
        match (op, param) {
            ("count_values", Some(Value::String(label))) => {
                if !valid_label_name(&label) {
                    return Err(format!("invalid label name {label:?}"));
                }
                for s in input {
                    // The value becomes a label of the series before grouping, and is kept
                    // by `by` (or no modifier) as if listed.
                    let mut l = s.labels;
                    l.set(&label, &go_shortest_fixed(s.value));
                    let mut g = group_of(&l);
                    if !matches!(a.modifier, Some(LabelModifier::Exclude(_))) {
                        g.set(&label, l.get(&label));
                    }
                    push(g, s.value);
                }
            }
            ("count_values", other) => {
                return Err(format!(
                    "count_values parameter must be a string, got {}",
                    other.map_or("nothing", |v| v.type_name())
                ));
            }
            ("quantile", Some(Value::Scalar(q))) => {
                phi = q;
                for s in input {
                    push(group_of(&s.labels), s.value);
                }
            }
            ("stddev" | "stdvar", None) => {
                for s in input {
                    push(group_of(&s.labels), s.value);
                }
            }
            (_, other) => {
                return Err(format!(
                    "{op} parameter must be a scalar, got {}",
                    other.map_or("nothing", |v| v.type_name())
                ));
            }
        }
        let out = order
            .into_iter()
            .filter_map(|l| {
                let mut values = groups.remove(&l)?;
                let value = match op {
                    "quantile" => quantile(phi, &mut values),
                    "count_values" => values.len() as f64,
                    _ => stddev_stdvar(&values, op == "stddev"),
                };
                Some(Sample { labels: l, value })
            })
            .collect();
        Ok(Value::Vector(out))
    }
}

/// Prometheus' `stddev`/`stdvar` aggregation (2.42): the running variance started from
/// the group's first value as its mean.
fn stddev_stdvar(values: &[f64], deviation: bool) -> f64 {
    let mut s = Variance {
        count: 1.0,
        mean: values[0],
        squares: 0.0,
    };
    values[1..].iter().for_each(|&v| s.push(v));
    s.result(deviation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_between_ranks_and_bounds_phi() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(0.0, &mut v), 1.0);
        assert_eq!(quantile(1.0, &mut v), 4.0);
        assert_eq!(quantile(-0.1, &mut v), f64::NEG_INFINITY);
        assert_eq!(quantile(1.1, &mut v), f64::INFINITY);
        assert!(quantile(f64::NAN, &mut v).is_nan());
        assert!(quantile(0.5, &mut []).is_nan());
        // NaN sorts first: the 0-quantile is NaN, the 1-quantile the largest number.
        let mut v = vec![2.0, f64::NAN, 1.0];
        assert!(quantile(0.0, &mut v).is_nan());
        assert_eq!(quantile(1.0, &mut v), 2.0);
    }

    #[test]
    fn variance_is_population_variance() {
        assert_eq!(
            stddev_stdvar(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], true),
            2.0
        );
        assert_eq!(stddev_stdvar(&[1.0], false), 0.0);
        assert!(stddev_stdvar(&[1.0, f64::INFINITY], true).is_nan());
        let p = |v: &[f64]| v.iter().map(|&v| (0, v)).collect::<Vec<_>>();
        assert_eq!(variance_over_time(&p(&[1.0, 3.0]), false), 1.0);
        // Values promtool 2.42 gives: the compensated sums keep the last bits that plain
        // Welford (the aggregation's 2874797872.46347) loses.
        let v = [0.1, 0.2, 0.3, 0.7, 1.3, 2.9, 0.001, 1e10, 3.0, 3.0, 3.0];
        assert_eq!(variance_over_time(&p(&v), true), 2874797872.4634705);
        assert_eq!(stddev_stdvar(&v, true), 2874797872.46347);
    }

    #[test]
    fn holt_winters_needs_two_points_and_follows_a_line() {
        assert_eq!(holt_winters(&[(0, 1.0)], 0.5, 0.5), None);
        let line: Vec<(i64, f64)> = (0..10).map(|i| (i, 2.0 * i as f64)).collect();
        assert_eq!(holt_winters(&line, 0.5, 0.5), Some(18.0));
    }

    #[test]
    fn go_number_forms() {
        assert_eq!(go_fixed(1.0), "1.000000");
        assert_eq!(go_fixed(f64::INFINITY), "+Inf");
        assert_eq!(go_shortest_fixed(1e21), "1000000000000000000000");
        assert_eq!(go_shortest_fixed(1e-7), "0.0000001");
        assert_eq!(go_shortest_fixed(-0.0), "-0");
        assert_eq!(go_shortest_fixed(f64::NEG_INFINITY), "-Inf");
        assert_eq!(go_shortest_fixed(f64::NAN), "NaN");
        assert!(valid_label_name("_a1") && !valid_label_name("1a") && !valid_label_name(""));
    }
}
