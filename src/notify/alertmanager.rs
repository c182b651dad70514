//! Alertmanager's `POST /api/v2/alerts` body: what Prometheus itself sends.

use super::{AlertMsg, rfc3339};
use serde_json::{Value, json};

pub fn body(alerts: &[AlertMsg]) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.starts_at),
                    "endsAt": rfc3339(a.ends_at),
                    "generatorURL": a.generator_url,
                })
            })
            .collect(),
    )
}
