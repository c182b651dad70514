//! The values an expression yields (Prometheus' `promql/value.go`).

use crate::rules::labels::Labels;

/// One element of an instant vector: a series' labels and its value at the instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One element of a range vector: a series' labels and its samples in the window
/// (milliseconds, value), oldest first.
#[derive(Clone, Debug)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// What an expression evaluates to (Prometheus' `parser.Value`).
#[derive(Clone, Debug)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The type as Prometheus names it in errors: `scalar`, `string`, `vector`, `matrix`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
