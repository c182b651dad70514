//! The PromQL we evaluate: all of Prometheus 2.42's. Refused: native histograms (2.42 gates
//! them behind a flag) and what later Prometheus versions added that `promql-parser` also
//! parses (`sort_by_label`, `limitk`, `mad_over_time`, …). [`check`] refuses, by name, every
//! construct the evaluator does not implement, so a rule file that loads never fails for
//! want of a feature.

use promql_parser::parser::{Expr, VectorSelector};

pub(super) const RANGE_FUNCTIONS: &[&str] = &[
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
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "stdvar",
    "count_values",
];
/// Functions evaluated by [`super::functions_more`], with the place of their range-vector
/// argument if they take one.
const MORE_FUNCTIONS: &[(&str, Option<usize>)] = &[
    ("label_replace", None),
    ("label_join", None),
    ("timestamp", None),
    ("minute", None),
    ("hour", None),
    ("day_of_week", None),
    ("day_of_month", None),
    ("day_of_year", None),
    ("days_in_month", None),
    ("month", None),
    ("year", None),
    ("log2", None),
    ("log10", None),
    ("sgn", None),
    ("sin", None),
    ("cos", None),
    ("tan", None),
    ("asin", None),
    ("acos", None),
    ("atan", None),
    ("sinh", None),
    ("cosh", None),
    ("tanh", None),
    ("asinh", None),
    ("acosh", None),
    ("atanh", None),
    ("deg", None),
    ("rad", None),
    ("pi", None),
    ("sort", None),
    ("sort_desc", None),
    ("present_over_time", Some(0)),
    ("quantile_over_time", Some(1)),
    ("stddev_over_time", Some(0)),
    ("stdvar_over_time", Some(0)),
    ("holt_winters", Some(0)),
];

/// Parses `text` and refuses constructs outside the subset.
///
/// Prometheus 2.42's verdict comes first: what it refuses is refused with its first parse
/// error in its words (`"<line>:<col>: parse error: <message>"`,
/// [`super::parse_error::describe`]), including what `promql-parser` accepts from later
/// Prometheus versions (a bare `5m` as a number, quoted label names, functions 2.42 does not
/// know). Then `promql-parser` gives the AST (its own message where it refuses what the
/// checker let through) and [`check`] refuses what we do not evaluate.
pub fn parse(text: &str) -> Result<Expr, String> {
    register_holt_winters();
    if let Some(e) = super::parse_error::describe(text) {
        return Err(e);
    }
    let expr = promql_parser::parser::parse(&super::parse_error::raw_strings_quoted(text))?;
    check(&expr)?;
    Ok(expr)
}

/// `promql-parser` knows Prometheus 2.42's `holt_winters` only under its 3.x name
/// `double_exponential_smoothing` (which 2.42 does not have): teach it the 2.42 signature
/// once, `holt_winters(range vector, scalar sf, scalar tf)`.
fn register_holt_winters() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use promql_parser::parser::function::{Function, register_extra_functions};
        use promql_parser::parser::value::ValueType;
        // Fails only for a name the parser already knows, which this one is not.
        let _ = register_extra_functions(vec![Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
    });
}

/// Refuses, by name, every construct the evaluator does not implement.
pub fn check(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(p) => check(&p.expr),
        Expr::Unary(u) => check(&u.expr),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::Subquery(sq) => check(&sq.expr),
        Expr::Extension(_) => Err("extension expressions are not supported".into()),
        Expr::Call(c) => {
            let name = c.func.name;
            let more = MORE_FUNCTIONS.iter().find(|(n, _)| *n == name);
            if !RANGE_FUNCTIONS.contains(&name)
                && !INSTANT_FUNCTIONS.contains(&name)
                && more.is_none()
            {
                return Err(format!("function {name:?} is not supported"));
            }
            let range_at = match more {
                Some((_, at)) => *at,
                None => RANGE_FUNCTIONS.contains(&name).then_some(0),
            };
            if let Some(at) = range_at
                && !is_range(&c.args.args[at])
            {
                return Err(format!(
                    "function {name:?} needs a range selector or subquery argument"
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

/// A range selector or a subquery, through any parentheses: what a range function reads.
fn is_range(e: &Expr) -> bool {
    super::engine::range_arg(e).is_some() || super::engine::subquery_arg(e).is_some()
}

fn check_selector(vs: &VectorSelector) -> Result<(), String> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err("\"or\" inside label matchers is not supported".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_constructs_are_named() {
        for (q, want) in [
            ("histogram_count(c)", "\"histogram_count\" is not supported"),
            (
                "sort_by_label(c, \"a\")",
                "1:1: parse error: unknown function with name \"sort_by_label\"",
            ),
            (
                "mad_over_time(c[5m])",
                "1:1: parse error: unknown function with name \"mad_over_time\"",
            ),
            (
                "limitk(2, c)",
                "1:1: parse error: unknown function with name \"limitk\"",
            ),
        ] {
            let err = parse(q).expect_err(q);
            assert!(err.contains(want), "{q}: {err}");
        }
    }

    /// Constructs the first subset refused, accepted since issue 17.
    #[test]
    fn constructs_of_prometheus_2_42_are_accepted() {
        for q in [
            "label_join(c, \"a\", \",\", \"b\")",
            "label_replace(c, \"a\", \"$1\", \"b\", \"(.*)\")",
            "quantile(0.5, c)",
            "stddev by (a) (c)",
            "stdvar without (a) (c)",
            "count_values(\"v\", c)",
            "c atan2 c",
            "timestamp(c)",
            "hour() + minute(c) + day_of_week() + day_of_month() + days_in_month() + month() + year()",
            "log2(c) + log10(c) + sgn(c) + sin(c) + acosh(c) + deg(c) + rad(c) + pi()",
            "sort(c)",
            "sort_desc(c)",
            "present_over_time(c[5m])",
            "quantile_over_time(0.9, c[5m])",
            "stddev_over_time(c[5m]) + stdvar_over_time(c[5m])",
            "holt_winters(c[5m], 0.5, 0.5)",
            "c @ 100",
            "rate(c[5m] @ end() offset 1m) / c @ start()",
            "rate(c[5m:1m])",
            "quantile_over_time(0.5, (c)[5m:] offset 1m)",
            "max_over_time(rate(c[1m])[1h:5m] @ 100)",
            "sum_over_time(sum_over_time(c[1m])[10m:1m])[1h:10m]",
        ] {
            parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }
}
