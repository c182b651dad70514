//! Microsoft Teams (Workflows / incoming webhook) message carrying an Adaptive Card.

use super::{Batch, summary};
use serde_json::{Value, json};

pub fn body(b: &Batch) -> Value {
    let mut items = vec![
        json!({"type": "TextBlock", "text": b.title(), "weight": "Bolder", "size": "Medium", "wrap": true}),
    ];
    for a in &b.alerts {
        items.push(json!({"type": "TextBlock", "text": format!("**{}** {}", a.status.as_str().to_uppercase(), summary(a)), "wrap": true}));
        if let Some(d) = a.annotations.get("description") {
            items.push(json!({"type": "TextBlock", "text": d, "wrap": true, "isSubtle": true}));
        }
        let facts: Vec<Value> = a
            .labels
            .iter()
            .map(|(k, v)| json!({"title": k, "value": v}))
            .collect();
        items.push(json!({"type": "FactSet", "facts": facts}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": items,
            }
        }]
    })
}
