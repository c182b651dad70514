//! The PromQL subset we evaluate: [`check`] refuses, by name, every construct the evaluator
//! does not implement, so a rule file that loads never fails for want of a feature.

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
    "sum", "avg", "min", "max", "count", "group", "topk", "bottomk",
];

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
