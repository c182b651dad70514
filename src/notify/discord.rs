//! Discord webhook message: one embed per alert (Discord allows 10), within Discord's limits.

use super::{Batch, Status, summary, truncate};
use serde_json::{Value, json};

pub fn body(b: &Batch) -> Value {
    let embeds: Vec<Value> = b
        .alerts
        .iter()
        .take(10)
        .map(|a| {
            json!({
                "title": truncate(&format!("[{}] {}", a.status.as_str().to_uppercase(), summary(a)), 256),
                "description": truncate(a.annotations.get("description").map(String::as_str).unwrap_or(""), 4096),
                "color": if a.status == Status::Firing { 0xE0_1E_1E } else { 0x2E_B8_86 },
            })
        })
        .collect();
    json!({ "content": truncate(&b.title(), 2000), "embeds": embeds })
}
