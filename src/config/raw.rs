//! The configuration exactly as written in YAML.
//!
//! Every field is optional and unknown fields are refused, so a typo is an error, not a
//! silently ignored setting. Nothing here is validated beyond YAML types: `mod.rs` turns these
//! structs into checked types and is the only consumer.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub log: Option<RawLog>,
    pub brokers: Option<Vec<RawBroker>>,
    pub probe_modules: Option<std::collections::BTreeMap<String, RawModule>>,
    /// Regex a `/probe?target=` URL must match in full; absent = any target.
    pub probe_allowed_targets: Option<String>,
    pub rules: Option<RawRules>,
    pub notify: Option<RawNotify>,
    pub web: Option<RawWebSettings>,
    /// User-defined `$SYS` profiles, by name (same schema as the built-in ones).
    pub sys_profiles: Option<std::collections::BTreeMap<String, crate::sys::profile::ProfileDef>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebSettings {
    /// An exporter-toolkit web-config.yml (TLS, basic auth, headers).
    pub config_file: Option<String>,
    pub max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    /// Rule files (globs). Absent: the embedded default rules. Empty list: no rules.
    pub files: Option<Vec<String>>,
    pub evaluation_interval: Option<DurationText>,
    /// Keeps active alerts across restarts.
    pub state_file: Option<String>,
    pub external_labels: Option<std::collections::BTreeMap<String, String>>,
    pub external_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub receivers: Option<Vec<RawReceiver>>,
    pub route: Option<RawRoute>,
    pub repeat_interval: Option<DurationText>,
    pub resend_delay: Option<DurationText>,
    pub queue_capacity: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub send_resolved: Option<bool>,
    pub signing_secret_file: Option<String>,
    pub routing_key: Option<String>,
    pub routing_key_file: Option<String>,
    pub timeout: Option<DurationText>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub receiver: Option<String>,
    pub matchers: Option<Vec<String>>,
    pub group_by: Option<Vec<String>>,
    #[serde(rename = "continue")]
    pub continue_: Option<bool>,
    pub routes: Option<Vec<RawRoute>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    pub name: Option<String>,
    pub url: Option<String>,
    pub protocol: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub tls: Option<RawTls>,
    pub keep_alive: Option<DurationText>,
    pub connect_timeout: Option<DurationText>,
    pub reconnect: Option<RawReconnect>,
    pub capacity: Option<RawCapacity>,
    pub sys: Option<RawSys>,
    pub probes: Option<Vec<RawProbe>>,
    pub probe_topic_prefix: Option<String>,
    pub degraded_rtt: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub qos: Option<u8>,
    pub interval: Option<DurationText>,
    pub timeout: Option<DurationText>,
    pub payload_bytes: Option<usize>,
    /// Will probes only: the MQTT 5 Will Delay Interval.
    pub will_delay: Option<DurationText>,
    /// Bridge probes only: the configured name of the broker that receives.
    pub to: Option<String>,
    /// Bridge probes only: the topic published on this broker (the bridge forwards it).
    pub topic: Option<String>,
    /// Bridge probes only: the topic the message arrives on at `to` (default: `topic`).
    pub remote_topic: Option<String>,
}

/// A `/probe` module: how to reach and probe an arbitrary target.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModule {
    pub kind: Option<String>,
    pub will_delay: Option<DurationText>,
    pub qos: Option<u8>,
    pub timeout: Option<DurationText>,
    pub protocol: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub tls: Option<RawTls>,
    pub payload_bytes: Option<usize>,
    pub degraded_rtt: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReconnect {
    pub initial_backoff: Option<DurationText>,
    pub max_backoff: Option<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacity {
    pub max_connections: Option<u64>,
    pub max_heap_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSys {
    pub enabled: Option<bool>,
    pub topic: Option<String>,
    pub profile: Option<String>,
    pub max_series: Option<usize>,
}

/// A duration as written (`"30s"`, `"1m30s"`, `"500ms"`). A bare number is refused here with a
/// message that shows the expected form, because `keep_alive: 30` is ambiguous.
#[derive(Debug, Clone)]
pub struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration with a unit, such as \"30s\" or \"500ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}
