//! Element-wise math of PromQL 2.42 beside the first subset (Prometheus' `functions.go`:
//! `funcLog2`, `funcLog10`, `funcSgn`, the trigonometric functions, `funcDeg`, `funcRad`;
//! `engine.go`'s `atan2` operator).
//!
//! Each is the Go `math` function of the same name on the sample value. Rust's `f64`
//! methods call the platform's libm, which is correctly rounded or within one ulp like Go's
//! own implementations: for the values rule authors feed them (angles, ratios) the results
//! are the same; an input where Go and libm round differently in the last bit would differ.

/// The function `name` applies to each sample value, or `None` when `name` is not one of
/// these. Prometheus: `log2`, `log10`, `sgn`, `sin`, `cos`, `tan`, `asin`, `acos`, `atan`,
/// `sinh`, `cosh`, `tanh`, `asinh`, `acosh`, `atanh`, `deg` (radians to degrees), `rad`
/// (degrees to radians).
pub(super) fn element_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "log2" => f64::log2,
        "log10" => f64::log10,
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
        assert_eq!(log2(0.0), f64::NEG_INFINITY);
        assert!(log2(-1.0).is_nan());
    }
}
