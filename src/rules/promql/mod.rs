//! PromQL 2.42 (all of it but the native histograms 2.42 gates behind a flag) evaluated at
//! one instant over a [`Storage`](super::storage::Storage), with Prometheus 2.42 semantics,
//! laid out as Prometheus' `promql` package:
//!
//! - [`subset`]: what we support; refuses everything else at load time, naming the construct;
//! - [`parse_error`]: the first parse error of a refused expression, worded as promtool 2.42's;
//! - [`engine`]: evaluation of the AST at one instant, selectors, the lookback, subqueries
//!   (evaluated at each of their steps), the cursors a rule keeps between evaluations
//!   (`engine.go`);
//! - [`functions`]: the function calls, `extrapolatedRate` and the window fast paths
//!   (`functions.go`);
//! - [`aggregation`]: `sum`, `avg`, `topk`, … (`engine.go`'s `aggregation`);
//! - [`binary`]: arithmetic, comparison and set operators, vector matching;
//! - [`quantile`]: `histogram_quantile` (`quantile.go`);
//! - [`functions_more`]: the functions beyond the first subset (`label_replace`,
//!   `label_join`, `timestamp`, `sort`, …), dispatching to [`date`] (the date functions),
//!   [`math`] (logarithms, `sgn`, trigonometry) and [`stats`] (`quantile`, `stddev`,
//!   `stdvar`, `count_values` and their `_over_time` forms, `holt_winters`);
//! - [`value`]: the values an expression yields (`value.go`).
//!
//! `promql-parser` gives the AST; [`parse`] refuses what [`subset`] does not allow, so [`eval`]
//! only ever sees supported nodes. The numeric code follows Prometheus' `promql/engine.go` and
//! `functions.go` closely (same operation order, same NaN handling) because `rules test` must
//! agree with `promtool test rules` bit for bit.

pub mod aggregation;
pub mod binary;
pub mod date;
pub mod engine;
pub mod functions;
pub mod functions_more;
pub mod math;
pub mod parse_error;
pub mod quantile;
pub mod stats;
pub mod subset;
pub mod value;

pub use engine::{Cursors, LOOKBACK_MS, eval, eval_at_later, retention};
pub use subset::{check, parse};
pub use value::{RangeSeries, Sample, Value};
