//! Prometheus rule files evaluated in-process: recording and alerting rules over a history of
//! our own samples, with Prometheus 2.42 semantics. See `../shared/DESIGN.md` (Rules and alerts).
//!
//! `file` parses rule files, `eval` is the PromQL subset, `alert` the group evaluator and
//! alert state machine, `template` the annotation templates, `unittest` promtool's test files.

pub mod alert;
pub mod api;
pub mod chunk;
pub mod engine;
pub mod file;
pub mod labels;
pub mod promql;
pub mod state;
pub mod storage;
pub mod template;
pub mod unittest;

use std::path::{Path, PathBuf};

/// Files matching `pattern` (a path, or a glob in its last components), sorted. A pattern
/// without glob characters must name an existing file; a glob may match nothing.
pub fn glob_files(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return if pattern.is_file() {
            Ok(vec![pattern.to_path_buf()])
        } else {
            Err(format!("{text}: no such rule file"))
        };
    }
    let mut out: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| format!("{text}: bad glob: {e}"))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}
