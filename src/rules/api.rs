//! `/api/v1/alerts` and `/api/v1/rules` in Prometheus' JSON shape (pure: state → JSON).

use super::alerting::{Alert, AlertState};
use super::file::RuleKind;
use super::group::GroupState;
use crate::notify::rfc3339;
use serde_json::{Value, json};

/// Prometheus writes alert values as `strconv.FormatFloat(v, 'e', 10, 64)`.
fn value(v: f64) -> String {
    super::template::go_exp(v, 10)
}

fn alert(a: &Alert) -> Value {
    json!({
        "labels": a.labels.clone().into_map(),
        "annotations": &*a.annotations,
        "state": a.state.as_str(),
        "activeAt": rfc3339(Some(a.active_at)),
        "value": value(a.value),
    })
}

fn active(g: &GroupState) -> impl Iterator<Item = &Alert> {
    g.rules
        .iter()
        .flat_map(|r| r.active.values())
        .filter(|a| a.state != AlertState::Inactive)
}

pub fn alerts(groups: &[GroupState]) -> Value {
    let list: Vec<Value> = groups.iter().flat_map(active).map(alert).collect();
    json!({"status": "success", "data": {"alerts": list}})
}

pub fn rules(groups: &[GroupState]) -> Value {
    let gs: Vec<Value> = groups
        .iter()
        .map(|g| {
            let rules: Vec<Value> = g
                .rules
                .iter()
                .map(|r| {
                    let labels: serde_json::Map<String, Value> = r
                        .rule
                        .labels
                        .iter()
                        .map(|(k, v, _)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    let common = json!({
                        "name": r.rule.name,
                        "query": r.rule.expr_text.trim(),
                        "labels": labels,
                        "health": r.health.as_str(),
                        "lastError": r.last_error.clone().unwrap_or_default(),
                        "evaluationTime": r.eval_seconds,
                        "lastEvaluation": rfc3339(r.last_eval),
                    });
                    let mut v = common;
                    match &r.rule.kind {
                        RuleKind::Record => {
                            v["type"] = json!("recording");
                        }
                        RuleKind::Alert {
                            hold,
                            keep_firing_for,
                            annotations,
                        } => {
                            let alerts: Vec<&Alert> = r
                                .active
                                .values()
                                .filter(|a| a.state != AlertState::Inactive)
                                .collect();
                            let state = if alerts.iter().any(|a| a.state == AlertState::Firing) {
                                "firing"
                            } else if alerts.is_empty() {
                                "inactive"
                            } else {
                                "pending"
                            };
                            v["type"] = json!("alerting");
                            v["state"] = json!(state);
                            v["duration"] = json!(hold.as_secs_f64());
                            v["keepFiringFor"] = json!(keep_firing_for.as_secs_f64());
                            v["annotations"] = annotations
                                .iter()
                                .map(|(k, t, _)| (k.clone(), Value::String(t.clone())))
                                .collect::<serde_json::Map<_, _>>()
                                .into();
                            v["alerts"] = alerts.into_iter().map(alert).collect::<Vec<_>>().into();
                        }
                    }
                    v
                })
                .collect();
            json!({
                "name": g.name,
                "file": g.file,
                "interval": g.interval.as_secs_f64(),
                "limit": g.limit,
                "rules": rules,
                "evaluationTime": g.eval_seconds,
                "lastEvaluation": rfc3339(g.last_eval),
            })
        })
        .collect();
    json!({"status": "success", "data": {"groups": gs}})
}

#[cfg(test)]
mod tests {
    #[test]
    fn prometheus_value_format() {
        assert_eq!(super::value(1.0), "1.0000000000e+00");
        assert_eq!(super::value(0.00012), "1.2000000000e-04");
    }
}
