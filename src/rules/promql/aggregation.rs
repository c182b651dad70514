//! Aggregation operators (`sum`, `avg`, `min`, `max`, `count`, `group`, `topk`, `bottomk`)
//! as Prometheus' `promql/engine.go` `aggregation` computes them: groups by a hash of the
//! grouping labels, in the order their first sample came.

use super::binary::signature;
use super::engine::Evaluator;
use super::stats;
use super::value::{Sample, Value};
use crate::rules::labels::Labels;
use promql_parser::parser::{AggregateExpr, LabelModifier};
use rustc_hash::FxHashMap;

impl Evaluator<'_> {
    pub(super) fn aggregate(&self, a: &AggregateExpr) -> Result<Value, String> {
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
        if stats::AGGREGATIONS.contains(&op.as_str()) {
            return self.stats_aggregate(a, &op, input);
        }
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
}
