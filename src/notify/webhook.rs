//! Alertmanager's webhook payload, version 4, exactly as Alertmanager sends it.

use super::{Batch, Status, rfc3339};
use serde_json::{Value, json};

pub fn body(b: &Batch, receiver: &str, external_url: &str) -> Value {
    let alerts: Vec<Value> = b
        .alerts
        .iter()
        .map(|a| {
            json!({
                "status": a.status.as_str(),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                // Alertmanager sends the zero time while an alert fires.
                "endsAt": match a.status { Status::Firing => rfc3339(None), Status::Resolved => rfc3339(a.ends_at) },
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": b.group_key,
        "truncatedAlerts": 0,
        "status": b.status().as_str(),
        "receiver": receiver,
        "groupLabels": b.group_labels,
        "commonLabels": b.common(|a| &a.labels),
        "commonAnnotations": b.common(|a| &a.annotations),
        "externalURL": external_url,
        "alerts": alerts,
    })
}
