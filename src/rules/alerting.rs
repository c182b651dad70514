//! Alerting rules, Prometheus' `AlertingRule` (`rules/alerting.go`, 2.42): the alert state
//! machine (pending after the first match, firing once `for` has passed, resolved when the
//! match goes, held firing for `keep_firing_for`), labels and annotations from templates,
//! and resolved alerts kept for [`RESOLVED_RETENTION_MS`].

use super::file::RuleKind;
use super::group::{Context, RuleState, query};
use super::labels::Labels;
use super::storage::Storage;
use super::template::{self, Data};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Resolved alerts are kept (and re-sent) this long, as Prometheus does.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Where an alert stands in the state machine (Prometheus' `AlertState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    /// The state as Prometheus' API and `ALERTS{alertstate}` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule; times are milliseconds since the epoch.
#[derive(Clone, Debug)]
pub struct Alert {
    /// Identity: series labels − `__name__` + rule labels + `alertname`.
    pub labels: Labels,
    /// Rendered annotations, shared with the readers' copy of the alert (see
    /// [`super::group::GroupState::published`]): published every evaluation, never copied.
    pub annotations: Arc<BTreeMap<String, String>>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    /// What receivers are sent of this alert (Prometheus' `sendAlerts`): `None` while pending,
    /// else firing, or resolved at `resolved_at` once inactive.
    pub fn to_notify(&self) -> Option<crate::notify::Alert<'_>> {
        (self.state != AlertState::Pending).then_some(crate::notify::Alert {
            labels: &self.labels,
            annotations: &self.annotations,
            starts_at: self.fired_at,
            resolved_at: match self.state {
                AlertState::Inactive => self.resolved_at,
                _ => None,
            },
        })
    }
}

pub(super) fn alert(
    r: &mut RuleState,
    storage: &Storage,
    ts: i64,
    limit: usize,
    ctx: &Context,
) -> Result<(), String> {
    let RuleKind::Alert {
        hold,
        keep_firing_for,
        annotations,
    } = &r.rule.kind
    else {
        return Ok(());
    };
    let hold = hold.as_millis() as i64;
    let keep_firing_for = keep_firing_for.as_millis() as i64;
    let samples = query(&r.rule.expr, storage, ts, r.subquery_step, &mut r.cursors)?;
    let mut fresh: FxHashMap<Labels, Alert> =
        FxHashMap::with_capacity_and_hasher(samples.len(), Default::default());
    // Label templates without actions (`severity: warning`) and `alertname` are the same for
    // every sample: made once per evaluation, applied with the templated ones in one rebuild.
    let mut fixed: Vec<(Arc<str>, Arc<str>)> = r
        .rule
        .labels
        .iter()
        .filter_map(|(k, _, t)| t.constant().map(|v| (Arc::from(k.as_str()), Arc::from(v))))
        .collect();
    fixed.push((Arc::from("alertname"), Arc::from(r.rule.name.as_str())));
    let templated: Vec<&(String, String, template::Template)> = r
        .rule
        .labels
        .iter()
        .filter(|(_, _, t)| t.constant().is_none())
        .collect();
    let mut sets: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(fixed.len() + templated.len());
    for s in samples {
        let data = Data {
            labels: s.labels.clone(),
            external_labels: ctx.external_labels.clone(),
            external_url: ctx.external_url.clone(),
            value: s.value,
        };
        sets.clear();
        for (k, _, t) in &templated {
            let v = template::expand_or_error(t, &data, &r.rule.name);
            sets.push((Arc::from(k.as_str()), Arc::from(v)));
        }
        sets.extend(fixed.iter().cloned());
        let l = s.labels.rebuilt(true, &sets);
        let ann: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, _, t)| {
                let v = match t.constant() {
                    Some(c) => c.to_owned(),
                    None => template::expand_or_error(t, &data, &r.rule.name),
                };
                (k.clone(), v)
            })
            .collect();
        if fresh.contains_key(&l) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        fresh.insert(
            l.clone(),
            Alert {
                labels: l,
                annotations: Arc::new(ann),
                state: AlertState::Pending,
                value: s.value,
                active_at: ts,
                fired_at: None,
                resolved_at: None,
                keep_firing_since: None,
            },
        );
    }
    let present: FxHashSet<Labels> = fresh.keys().cloned().collect();
    for (k, a) in fresh {
        match r.active.get_mut(&k) {
            Some(old) if old.state != AlertState::Inactive => {
                old.value = a.value;
                // Unchanged text keeps the map readers already share: no second copy of
                // every alert's annotations lives until the group is published.
                if old.annotations != a.annotations {
                    old.annotations = a.annotations;
                }
            }
            _ => {
                r.active.insert(k, a);
            }
        }
    }
    let mut active_pending = 0;
    let mut remove = vec![];
    for (k, a) in r.active.iter_mut() {
        if !present.contains(k) {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && keep_firing_for > 0 {
                let since = *a.keep_firing_since.get_or_insert(ts);
                keep_firing = ts - since < keep_firing_for;
            }
            if a.state == AlertState::Pending
                || a.resolved_at
                    .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
            {
                remove.push(k.clone());
            }
            if a.state != AlertState::Inactive && !keep_firing {
                a.state = AlertState::Inactive;
                a.resolved_at = Some(ts);
            }
            if !keep_firing {
                continue;
            }
        } else {
            a.keep_firing_since = None;
        }
        active_pending += 1;
        if a.state == AlertState::Pending && ts - a.active_at >= hold {
            a.state = AlertState::Firing;
            a.fired_at = Some(ts);
        }
    }
    for k in remove {
        r.active.remove(&k);
    }
    if limit > 0 && active_pending > limit {
        r.active.clear();
        return Err(format!(
            "exceeded limit of {limit} with {active_pending} alerts"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(state: AlertState, resolved_at: Option<i64>) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", "A")]),
            annotations: Arc::new([("summary".to_string(), "s".to_string())].into()),
            state,
            value: 1.0,
            active_at: 1_000,
            fired_at: Some(2_000),
            resolved_at,
            keep_firing_since: None,
        }
    }

    /// Pending alerts are never sent; firing ones are sent as firing even if they once
    /// resolved; inactive ones as resolved at their resolution time.
    #[test]
    fn receivers_see_firing_and_resolved_only() {
        assert!(held(AlertState::Pending, None).to_notify().is_none());
        let f = held(AlertState::Firing, Some(500));
        let n = f.to_notify().expect("firing is sent");
        assert_eq!((n.starts_at, n.resolved_at), (Some(2_000), None));
        assert_eq!(n.labels, &f.labels);
        assert_eq!(n.annotations["summary"], "s");
        let r = held(AlertState::Inactive, Some(3_000));
        assert_eq!(
            r.to_notify().expect("resolved is sent").resolved_at,
            Some(3_000)
        );
    }
}
