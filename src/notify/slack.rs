//! Slack incoming-webhook message: a title line plus one attachment per alert.

use super::{Batch, Status, summary};
use serde_json::{Value, json};

pub fn body(b: &Batch) -> Value {
    let attachments: Vec<Value> = b
        .alerts
        .iter()
        .map(|a| {
            json!({
                "color": if a.status == Status::Firing { "danger" } else { "good" },
                "title": format!("[{}] {}", a.status.as_str().to_uppercase(), summary(a)),
                "text": a.annotations.get("description").cloned().unwrap_or_default(),
                "fields": a.labels.iter().map(|(k, v)| json!({"title": k, "value": v, "short": true})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "text": b.title(), "attachments": attachments })
}
