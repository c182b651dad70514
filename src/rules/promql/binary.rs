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
        "^" => (go_pow(l, r), true),
        "%" => (go_mod(l, r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        // Go's math.Atan2(l, r).
        "atan2" => (super::math::go_atan2(l, r), true),
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
                sig_labels(&s.labels).braces(),
                s.labels.braces(),
                d.labels.braces()
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
/// Go's `math.Pow`, which Prometheus' `^` is: its special cases, then the fractional part of
/// the exponent as `exp(yf·ln x)` and the integral part by repeated squaring of x's mantissa
/// with the binary exponent kept apart. Go does not round as the C library's `pow` (which
/// Rust's `powf` calls) does, so `^` differs in the last bit without this: about half of all
/// results with a fractional exponent. `exp(yf·ln x)` is Go's amd64 `Exp` and `Log`
/// ([`super::math::go_exp`], [`super::math::go_log`]) as in Go.
fn go_pow(x: f64, y: f64) -> f64 {
    let odd_int = |v: f64| v.abs() < (1u64 << 53) as f64 && v.fract() == 0.0 && (v as i64) % 2 != 0;
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if y == 1.0 {
        return x;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 {
        let keep_sign = x.is_sign_negative() && odd_int(y);
        return match (y < 0.0, keep_sign) {
            (true, true) => f64::NEG_INFINITY,
            (true, false) => f64::INFINITY,
            (false, true) => x,
            (false, false) => 0.0,
        };
    }
    if y.is_infinite() {
        return huge_power(x, y);
    }
    if x.is_infinite() {
        if x < 0.0 {
            return go_pow(1.0 / x, -y);
        }
        return if y < 0.0 { 0.0 } else { f64::INFINITY };
    }
    if y == 0.5 {
        return x.sqrt();
    }
    if y == -0.5 {
        return 1.0 / x.sqrt();
    }
    let mut yi = y.abs().trunc();
    let mut yf = y.abs() - yi;
    if yf != 0.0 && x < 0.0 {
        return f64::NAN;
    }
    if yi >= (1u64 << 63) as f64 {
        return huge_power(x, y);
    }
    let (mut a1, mut ae) = (1.0f64, 0i64);
    if yf != 0.0 {
        if yf > 0.5 {
            yf -= 1.0;
            yi += 1.0;
        }
        a1 = super::math::go_exp(yf * super::math::go_log(x));
    }
    let (mut x1, mut xe) = frexp(x);
    let mut i = yi as i64;
    while i != 0 {
        if !(-(1 << 12)..=(1 << 12)).contains(&xe) {
            ae += xe;
            break;
        }
        if i & 1 == 1 {
            a1 *= x1;
            ae += xe;
        }
        x1 *= x1;
        xe <<= 1;
        if x1 < 0.5 {
            x1 += x1;
            xe -= 1;
        }
        i >>= 1;
    }
    if y < 0.0 {
        a1 = 1.0 / a1;
        ae = -ae;
    }
    ldexp(a1, ae)
}

/// x^y for an exponent too large to matter but for its sign (infinite, or an even integer
/// of 2^63 or more): 1 for x = -1, else 0 or +Inf.
fn huge_power(x: f64, y: f64) -> f64 {
    if x == -1.0 {
        1.0
    } else if (x.abs() < 1.0) == (y > 0.0) {
        0.0
    } else {
        f64::INFINITY
    }
}

const MANTISSA_BITS: u32 = 52;
const EXP_MASK: u64 = 0x7ff;
const EXP_BIAS: i64 = 1023;

/// Go's `normalize`: a subnormal `f` scaled into the normal range, and the power of two
/// that undoes the scaling.
fn normalize(f: f64) -> (f64, i64) {
    if f.abs() < f64::MIN_POSITIVE {
        (f * (1u64 << 52) as f64, -52)
    } else {
        (f, 0)
    }
}

/// The unbiased binary exponent stored in `bits`.
fn raw_exponent(bits: u64) -> i64 {
    ((bits >> MANTISSA_BITS) & EXP_MASK) as i64 - EXP_BIAS
}

/// `bits` with its exponent field set to `exp` (unbiased).
fn with_exponent(bits: u64, exp: i64) -> f64 {
    f64::from_bits(
        (bits & !(EXP_MASK << MANTISSA_BITS)) | (((exp + EXP_BIAS) as u64) << MANTISSA_BITS),
    )
}

/// Go's `math.Frexp` for a finite non-zero `f`: `(frac, exp)` with |frac| in [½, 1) and
/// f = frac·2^exp.
fn frexp(f: f64) -> (f64, i64) {
    let (f, e) = normalize(f);
    let bits = f.to_bits();
    (with_exponent(bits, -1), e + raw_exponent(bits) + 1)
}

/// Go's `math.Ldexp`: frac·2^exp, rounded once when the result is subnormal.
fn ldexp(frac: f64, exp: i64) -> f64 {
    if frac == 0.0 || !frac.is_finite() {
        return frac;
    }
    let (frac, e) = normalize(frac);
    let bits = frac.to_bits();
    let mut exp = exp + e + raw_exponent(bits);
    if exp < -1075 {
        return 0.0f64.copysign(frac);
    }
    if exp > 1023 {
        return if frac < 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let mut m = 1.0;
    if exp < -1022 {
        exp += 53;
        m = 1.0 / (1u64 << 53) as f64;
    }
    m * with_exponent(bits, exp)
}

/// Go's `math.Mod` (sign of the dividend), which Rust's `%` on f64 matches.
fn go_mod(a: f64, b: f64) -> f64 {
    a % b
}

#[cfg(test)]
mod pow_tests {
    use super::go_pow;

    /// Go's documented special cases of `math.Pow`, and results that need `Ldexp`'s
    /// subnormal and overflow handling.
    #[test]
    fn go_pow_special_cases() {
        assert_eq!(go_pow(f64::NAN, 0.0), 1.0);
        assert_eq!(go_pow(1.0, f64::NAN), 1.0);
        assert!(go_pow(f64::NAN, 2.0).is_nan());
        assert_eq!(go_pow(-0.0, -3.0), f64::NEG_INFINITY);
        assert_eq!(go_pow(0.0, -2.0), f64::INFINITY);
        assert_eq!(go_pow(-0.0, 3.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(go_pow(-1.0, f64::INFINITY), 1.0);
        assert_eq!(go_pow(0.5, f64::INFINITY), 0.0);
        assert_eq!(go_pow(f64::NEG_INFINITY, 3.0), f64::NEG_INFINITY);
        assert_eq!(
            go_pow(f64::NEG_INFINITY, -3.0).to_bits(),
            (-0.0f64).to_bits()
        );
        assert!(go_pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(go_pow(-2.0, 3.0), -8.0);
        assert_eq!(go_pow(2.0, -1074.0), f64::from_bits(1));
        assert_eq!(go_pow(2.0, 1024.0), f64::INFINITY);
        assert_eq!(go_pow(4.0, 0.5), 2.0);
        assert_eq!(go_pow(10.0, -2.0), 1.0 / 100.0);
    }

    /// promtool 2.42's `x ^ y` where the C library's `exp`/`log` under Go's method gave
    /// another last bit (and `5e-324 ^ 0.3`, where Go's `Log` does not normalise subnormals).
    #[test]
    fn go_pow_agrees_with_promtool_to_the_bit() {
        let cases: &[(f64, f64, f64)] = &[
            (5.0e-324, 0.3, 4.110496954075371e-93),
            (3.0e-09, 0.3, 0.0027741911146721815),
            (0.625, 0.3, 0.8684883661098435),
            (2.4, 0.3, 1.3003593134073366),
            (3.8e-09, -1.7, 206237618817130.72),
            (0.625, -1.7, 2.2233302172411986),
            (536870911.0, -1.7, 1.442850104155424e-15),
            (0.1, 2.5, 0.00316227766016838),
            (0.625, 2.5, 0.3088161777508183),
            (0.75, 2.5, 0.4871392896287467),
            (1.5, 7.9, 24.610528866006813),
            (3.0, 7.9, 5878.383455015243),
            (1.0e+22, 7.9, 6.309573444802044e+173),
            (1.7, 709.44, 3.0880390429245526e+163),
            (1.7, -709.44, 3.2383010256662488e-164),
            (1.7, 0.4927903923327688, 1.2988620097993067),
        ];
        for &(x, y, want) in cases {
            assert_eq!(go_pow(x, y).to_bits(), want.to_bits(), "{x:e} ^ {y:e}");
        }
    }
}
