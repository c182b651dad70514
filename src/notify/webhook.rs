//! Alertmanager's webhook payload, version 4, exactly as Alertmanager sends it (fields in
//! the order of its Go structs). Serialized straight from the batch: every evaluation that
//! changes a group builds one, so no intermediate JSON tree.

use super::{Batch, Status, rfc3339};
use serde::Serialize;
use std::collections::BTreeMap;

type Map = BTreeMap<String, String>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    receiver: &'a str,
    status: &'static str,
    alerts: Vec<Alert<'a>>,
    group_labels: &'a Map,
    common_labels: Map,
    common_annotations: Map,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    version: &'static str,
    group_key: &'a str,
    truncated_alerts: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Alert<'a> {
    status: &'static str,
    labels: &'a Map,
    annotations: &'a Map,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: &'a str,
}

/// The JSON body for `receiver`.
pub fn body(b: &Batch, receiver: &str, external_url: &str) -> Vec<u8> {
    let alerts = b
        .alerts
        .iter()
        .map(|a| Alert {
            status: a.status.as_str(),
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339(a.starts_at),
            // Alertmanager sends the zero time while an alert fires.
            ends_at: match a.status {
                Status::Firing => rfc3339(None),
                Status::Resolved => rfc3339(a.ends_at),
            },
            generator_url: &a.generator_url,
            fingerprint: &a.fingerprint,
        })
        .collect();
    let m = Message {
        receiver,
        status: b.status().as_str(),
        alerts,
        group_labels: &b.group_labels,
        common_labels: b.common(|a| &a.labels),
        common_annotations: b.common(|a| &a.annotations),
        external_url,
        version: "4",
        group_key: &b.group_key,
        truncated_alerts: 0,
    };
    // Maps of strings and strings: serializing cannot fail.
    serde_json::to_vec(&m).unwrap_or_default()
}
