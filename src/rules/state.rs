//! Alert state across restarts (`rules.state_file`): what Prometheus restores from its
//! `ALERTS_FOR_STATE` series. Every evaluation writes the active alerts of every rule to a
//! JSON file (written aside, then renamed: a crash never leaves half a file); at start the
//! alerts of rules whose definition is unchanged are restored with their `activeAt`, so a
//! pending alert keeps its `for` progress and a firing one its `startsAt`. What each receiver
//! was already sent is kept beside them, so a restart neither notifies again nor forgets a
//! resolution. A file older than [`OUTAGE_TOLERANCE_MS`] is ignored, as Prometheus'
//! `rules.alert.for-outage-tolerance`.

use super::alerting::{Alert, AlertState};
use super::group::{GroupState, definition};
use super::labels::Labels;
use crate::notify::ReceiverSent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Prometheus' default `--rules.alert.for-outage-tolerance`.
pub const OUTAGE_TOLERANCE_MS: i64 = 3_600_000;

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    saved_at_ms: i64,
    rules: Vec<SavedRule>,
    /// What each receiver was already sent (absent in files from before it was kept).
    #[serde(default)]
    receivers: Vec<ReceiverSent>,
}

#[derive(Serialize, Deserialize)]
struct SavedRule {
    file: String,
    group: String,
    /// The rule as written (name, expression, `for`, labels, annotations): a rule whose
    /// definition changed starts afresh.
    definition: String,
    alerts: Vec<SavedAlert>,
}

#[derive(Serialize, Deserialize)]
struct SavedAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    state: String,
    value: f64,
    active_at: i64,
    fired_at: Option<i64>,
    resolved_at: Option<i64>,
    keep_firing_since: Option<i64>,
}

/// Write the active alerts of `groups` and what the receivers were sent to `path` (via
/// `path.tmp` and a rename).
pub fn save(
    groups: &[GroupState],
    receivers: Vec<ReceiverSent>,
    path: &Path,
    now_ms: i64,
) -> std::io::Result<()> {
    let mut rules = Vec::new();
    for g in groups {
        for r in &g.rules {
            if r.active.is_empty() {
                continue;
            }
            let alerts = r
                .active
                .values()
                .map(|a| SavedAlert {
                    labels: a.labels.clone().into_map(),
                    annotations: (*a.annotations).clone(),
                    state: a.state.as_str().to_owned(),
                    value: if a.value.is_finite() { a.value } else { 0.0 },
                    active_at: a.active_at,
                    fired_at: a.fired_at,
                    resolved_at: a.resolved_at,
                    keep_firing_since: a.keep_firing_since,
                })
                .collect();
            rules.push(SavedRule {
                file: g.file.clone(),
                group: g.name.clone(),
                definition: definition(&r.rule),
                alerts,
            });
        }
    }
    let body = serde_json::to_vec(&Saved {
        version: VERSION,
        saved_at_ms: now_ms,
        rules,
        receivers,
    })
    .map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

/// What a state file brought back.
#[derive(Debug, Default)]
pub struct Restored {
    /// Alerts put back into their (unchanged) rules.
    pub alerts: usize,
    /// What the receivers had been sent, for [`crate::notify::Dispatcher::restore_sent`].
    pub receivers: Vec<ReceiverSent>,
}

/// Restore the alerts saved in `path` into the rules of `groups` whose definition is
/// unchanged, and return them with what the receivers had been sent. A missing file, or one
/// older than [`OUTAGE_TOLERANCE_MS`], restores nothing.
pub fn restore(groups: &mut [GroupState], path: &Path, now_ms: i64) -> Result<Restored, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restored::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let saved: Saved = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not an alert state file: {e}", path.display()))?;
    if saved.version != VERSION {
        return Err(format!(
            "{}: state file version {} is not {VERSION}",
            path.display(),
            saved.version
        ));
    }
    if now_ms - saved.saved_at_ms > OUTAGE_TOLERANCE_MS {
        return Ok(Restored::default());
    }
    let mut restored = 0;
    for sr in saved.rules {
        let Some(g) = groups
            .iter_mut()
            .find(|g| g.file == sr.file && g.name == sr.group)
        else {
            continue;
        };
        let Some(r) = g
            .rules
            .iter_mut()
            .find(|r| r.active.is_empty() && definition(&r.rule) == sr.definition)
        else {
            continue;
        };
        for a in sr.alerts {
            let state = match a.state.as_str() {
                "pending" => AlertState::Pending,
                "firing" => AlertState::Firing,
                _ => AlertState::Inactive,
            };
            let labels = Labels::from_pairs(a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            r.active.insert(
                labels.clone(),
                Alert {
                    labels,
                    annotations: Arc::new(a.annotations),
                    state,
                    value: a.value,
                    active_at: a.active_at,
                    fired_at: a.fired_at,
                    resolved_at: a.resolved_at,
                    keep_firing_since: a.keep_firing_since,
                },
            );
            restored += 1;
        }
    }
    Ok(Restored {
        alerts: restored,
        receivers: saved.receivers,
    })
}
