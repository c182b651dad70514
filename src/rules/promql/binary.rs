//! Binary operators (Prometheus' `promql/engine.go`: `VectorBinop`, `vectorElemBinop`, the
//! set operators): arithmetic and comparison between scalars and vectors, and vector
//! matching (`on`/`ignoring`, `group_left`/`group_right`) by a hash of the matched labels.

use super::engine::{Evaluator, unique};
use super::value::{Sample, Value};
use crate::rules::labels::{Labels, METRIC_NAME};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use rustc_hash::{FxHashMap, FxHashSet};

impl Evaluator<'_> {
    pub(super) fn binary(&self, b: &BinaryExpr) -> Result<Value, String> {
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
        // Go's math.Atan2(l, r).
        "atan2" => (l.atan2(r), true),
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
    // Prometheus' `shouldDropMetricName`: arithmetic but `atan2`.
    let drop_name = (!comparison && op != "atan2") || return_bool;
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
pub(super) fn signature(l: &Labels, on: bool, names: &[String]) -> u64 {
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
    // Prometheus' `shouldDropMetricName`: arithmetic but `atan2`.
    let arithmetic = !comparison && op != "atan2";
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
/// Go's `math.Mod` (sign of the dividend), which Rust's `%` on f64 matches.
fn go_mod(a: f64, b: f64) -> f64 {
    a % b
}
