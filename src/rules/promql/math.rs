//! Element-wise math of PromQL 2.42 beside the first subset (Prometheus' `functions.go`:
//! `funcLog2`, `funcLog10`, `funcSgn`, the trigonometric functions, `funcDeg`, `funcRad`;
//! `engine.go`'s `atan2` operator).
//!
//! Each is the Go `math` function of the same name on the sample value. The logarithms
//! follow Go's own method ([`go_log`]) to agree with promtool to the bit; the others call
//! the platform's libm, within one ulp like Go's implementations: `sin`, `cos`, `asin`,
//! `acos`, `atan`, `cosh`, `tanh`, `asinh` agree on the values tried against promtool 2.42;
//! `tan`, `acosh`, and `sinh`/`atanh` near zero can differ from Go in the last bit.

/// The function `name` applies to each sample value, or `None` when `name` is not one of
/// these. Prometheus: `log2`, `log10`, `sgn`, `sin`, `cos`, `tan`, `asin`, `acos`, `atan`,
/// `sinh`, `cosh`, `tanh`, `asinh`, `acosh`, `atanh`, `deg` (radians to degrees), `rad`
/// (degrees to radians).
pub(super) fn element_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "log2" => log2,
        "log10" => log10,
        "sgn" => sgn,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => deg,
        "rad" => rad,
        _ => return None,
    })
}

/// Go's `math.Log2`: exact for powers of two, else `ln(frac) / ln 2 + exp` from the
/// binary exponent, which rounds differently from libm's `log2` in the last bit.
fn log2(v: f64) -> f64 {
    let (frac, exp) = frexp(v);
    if frac == 0.5 {
        return f64::from(exp - 1);
    }
    go_log(frac) * std::f64::consts::LOG2_E + f64::from(exp)
}

/// Go's `math.Log10`: `ln(v) * (1 / ln 10)`, the constant rounded once (`LOG10_E`).
fn log10(v: f64) -> f64 {
    go_log(v) * std::f64::consts::LOG10_E
}

/// Go's `math.Log`: fdlibm's `e_log.c` method (reduce to `f` in [√2/2−1, √2−1] and `k`
/// with `v = 2^k (1 + f)`, then a degree-14 polynomial in `s = f / (2 + f)`), which differs
/// from glibc's `log` in the last bit for some inputs (`ln 3`: Go …096, glibc …098).
/// Written here because Go's functions built on it (`Log2`, `Log10`) must agree to the bit.
pub(super) fn go_log(v: f64) -> f64 {
    const LN2_HI: f64 = 0.6931471803691238;
    const LN2_LO: f64 = 1.9082149292705877e-10;
    const L: [f64; 7] = [
        0.6666666666666735,
        0.3999999999940942,
        0.2857142874366239,
        0.22222198432149784,
        0.1818357216161805,
        0.15313837699209373,
        0.14798198605116586,
    ];
    if v.is_nan() || v == f64::INFINITY {
        return v;
    }
    if v < 0.0 {
        return f64::NAN;
    }
    if v == 0.0 {
        return f64::NEG_INFINITY;
    }
    let (mut f1, mut ki) = frexp(v);
    if f1 < std::f64::consts::FRAC_1_SQRT_2 {
        f1 *= 2.0;
        ki -= 1;
    }
    let f = f1 - 1.0;
    let k = f64::from(ki);
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L[0] + s4 * (L[2] + s4 * (L[4] + s4 * L[6])));
    let t2 = s4 * (L[1] + s4 * (L[3] + s4 * L[5]));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `math.Frexp`: `v = frac × 2^exp` with `|frac|` in [½, 1); zero, infinities and NaN
/// come back unchanged with exponent 0.
fn frexp(v: f64) -> (f64, i32) {
    if v == 0.0 || v.is_infinite() || v.is_nan() {
        return (v, 0);
    }
    let (mut v, mut exp) = (v, 0);
    if v.abs() < f64::MIN_POSITIVE {
        // Subnormal: scale into the normal range first.
        v *= (1u64 << 52) as f64;
        exp = -52;
    }
    let bits = v.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// Prometheus `funcSgn`: -1 below zero, 1 above, the value itself otherwise (0, -0, NaN).
fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

/// Prometheus `funcDeg`: `v * 180 / π`, in that order.
fn deg(v: f64) -> f64 {
    v * 180.0 / std::f64::consts::PI
}

/// Prometheus `funcRad`: `v * π / 180`, in that order.
fn rad(v: f64) -> f64 {
    v * std::f64::consts::PI / 180.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgn_keeps_zero_signed_and_nan() {
        assert_eq!(sgn(-3.5), -1.0);
        assert_eq!(sgn(0.1), 1.0);
        assert_eq!(sgn(-0.0).to_bits(), (-0.0f64).to_bits());
        assert!(sgn(f64::NAN).is_nan());
        assert_eq!(sgn(f64::NEG_INFINITY), -1.0);
    }

    #[test]
    fn degrees_and_radians_round_trip_common_angles() {
        assert_eq!(deg(std::f64::consts::PI), 180.0);
        assert_eq!(rad(180.0), std::f64::consts::PI);
        assert_eq!(deg(rad(90.0)), 90.0);
        assert!(element_function("sort_by_label").is_none());
        let log2 = element_function("log2").expect("log2");
        assert_eq!(log2(1024.0), 10.0);
        // Go's value (promtool 2.42), one ulp above libm's log2(3).
        assert_eq!(log2(3.0), 1.5849625007211563);
        assert_eq!(frexp(8.0), (0.5, 4));
        assert_eq!(go_log(3.0), 1.0986122886681096);
        assert_eq!(log10(3.0), 0.4771212547196624);
        assert_eq!(log10(1e-5), -5.0);
        assert_eq!(go_log(1.0), 0.0);
        assert!(go_log(-1.0).is_nan());
        assert_eq!(frexp(-3.0), (-0.75, 2));
        assert_eq!(frexp(f64::MIN_POSITIVE / 4.0), (0.5, -1023));
        assert_eq!(log2(0.0), f64::NEG_INFINITY);
        assert!(log2(-1.0).is_nan());
    }
}
