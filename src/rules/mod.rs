//! Prometheus rule files evaluated in-process: recording and alerting rules over a history of
//! our own samples, with Prometheus 2.42 semantics. See ARCHITECTURE.md (the flow of one alert).
//!
//! Laid out where Prometheus keeps the same things:
//!
//! - `file`: rule files parsed and checked (`rulefmt`);
//! - `manager`: the live engine (`rules.Manager`): shared group state, the `ALERTS`
//!   collector, group scheduling, reloads; `snapshot`: reading our own exposition into the
//!   history (line cache, encoder thread);
//! - `group` (`rules.Group`): a group's rules evaluated in order; `recording` and `alerting`
//!   (`RecordingRule`, `AlertingRule`: pending, firing, resolved) one rule each;
//! - `promql`: PromQL 2.42 but native histograms (subset check, engine, functions, aggregation, binary
//!   operators, quantile);
//! - `labels`, `chunk`, `storage`: label sets, XOR chunks, the in-memory head the rules read;
//! - `template`: annotation templates (parse, exec, Go's number formatting);
//! - `state` (alerts across restarts), `api` (`/api/v1/rules`, `/api/v1/alerts`), `unittest`
//!   (promtool's test files).

pub mod alerting;
pub mod api;
pub mod chunk;
pub mod file;
pub mod group;
/// Label sets live in [`crate::labels`] (Prometheus keeps them in `model/labels`, beside
/// the rule engine rather than in it); this path is kept for the engine's own modules.
pub use crate::labels;
pub mod manager;
pub mod promql;
pub mod recording;
pub mod snapshot;
pub mod state;
pub mod storage;
pub mod template;
pub mod unittest;
