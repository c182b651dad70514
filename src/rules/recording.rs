//! Recording rules, Prometheus' `RecordingRule` (`rules/recording.go`): the result is
//! written back into the history under the rule's name and labels; series the rule wrote
//! last time and no longer yields get a stale marker.

use super::group::{RuleState, query};
use super::labels::{Labels, METRIC_NAME};
use super::storage::{Storage, stale_nan};
use rustc_hash::FxHashSet;

pub(super) fn record(
    r: &mut RuleState,
    storage: &mut Storage,
    ts: i64,
    limit: usize,
) -> Result<(), String> {
    let samples = match query(&r.rule.expr, storage, ts, r.subquery_step, &mut r.cursors) {
        Ok(s) => s,
        Err(e) => {
            mark_stale(r, storage, ts, &FxHashSet::default());
            return Err(e);
        }
    };
    let mut out = Vec::with_capacity(samples.len());
    let mut seen = FxHashSet::with_capacity_and_hasher(samples.len(), Default::default());
    for s in samples {
        let mut l = s.labels;
        l.set(METRIC_NAME, &r.rule.name);
        for (k, v, _) in &r.rule.labels {
            l.set(k, v);
        }
        if !seen.insert(l.clone()) {
            mark_stale(r, storage, ts, &FxHashSet::default());
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((l, s.value));
    }
    if limit > 0 && out.len() > limit {
        mark_stale(r, storage, ts, &FxHashSet::default());
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            out.len()
        ));
    }
    for (l, v) in &out {
        storage.append(l, ts, *v);
    }
    mark_stale(r, storage, ts, &seen);
    Ok(())
}

fn mark_stale(r: &mut RuleState, storage: &mut Storage, ts: i64, now: &FxHashSet<Labels>) {
    for l in r.written.difference(now) {
        storage.append(l, ts, stale_nan());
    }
    r.written = now.clone();
}
