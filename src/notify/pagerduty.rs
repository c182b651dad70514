//! PagerDuty Events API v2: one event per alert, `dedup_key` = the alert's fingerprint, so a
//! resolve closes the incident its trigger opened.

use super::{AlertMsg, Status, summary, truncate};
use serde_json::{Value, json};

pub fn event(a: &AlertMsg, routing_key: &str) -> Value {
    let severity = match a.labels.get("severity").map(String::as_str) {
        Some("critical") => "critical",
        Some("warning") => "warning",
        Some("error") => "error",
        _ => "info",
    };
    let source = a
        .labels
        .get("instance")
        .or_else(|| a.labels.get("broker"))
        .cloned()
        .unwrap_or_else(|| "mqtt-sentinel".into());
    match a.status {
        Status::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": a.fingerprint,
        }),
        Status::Firing => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": a.fingerprint,
            "payload": {
                "summary": truncate(&summary(a), 1024),
                "source": source,
                "severity": severity,
                "component": a.labels.get("broker"),
                "group": a.labels.get("job"),
                "class": a.labels.get("alertname"),
                "custom_details": { "labels": a.labels, "annotations": a.annotations },
            },
            "links": if a.generator_url.is_empty() { json!([]) } else { json!([{"href": a.generator_url, "text": "source"}]) },
        }),
    }
}
