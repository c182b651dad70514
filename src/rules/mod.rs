//! Prometheus rule files evaluated in-process: recording and alerting rules over a history of
//! our own samples, with Prometheus 2.42 semantics. See `../shared/DESIGN.md` (Rules and alerts).

pub mod alert;
pub mod eval;
pub mod file;
pub mod series;
pub mod template;
