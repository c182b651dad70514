//! Validated configuration.
//!
//! Two stages, as ripgrep does it: `raw` holds what was written (serde, unknown fields refused),
//! this module turns it into checked types (`Duration`, `SocketAddr`, URLs, enums, readable
//! files, secrets) and is the only place that knows the defaults. Every error names the source,
//! the line/column and the field path, and quotes the bad value unless the value is a secret.
//! `load(path)` reads a file; `parse(text, …)` takes bytes so unit tests need no files.

//!
//! Files: `raw.rs` the serde structs as written; `validate.rs` the second stage (and
//! `alerting.rs` for `rules:`/`notify:`, `broker_url.rs` for URLs); `types.rs` the checked
//! types; `error.rs` [`ConfigError`]; `locate.rs` the line/column of a field path;
//! `watched.rs` files re-read when they change; `web.rs` the exporter-toolkit web config;
//! `default.yaml` the embedded default.

mod alerting;
mod broker_url;
mod error;
pub(crate) mod locate;
pub mod raw;
pub mod signing;
mod types;
mod validate;
pub mod watched;
pub mod web;

/// `$SYS` settings are owned by `sys`; `config` builds them (re-exported for callers of the
/// checked configuration).
pub use crate::sys::SysConfig;
pub use alerting::{
    DEFAULT_RULES, DEFAULT_RULES_SOURCE, MatchOp, Matcher, NotifyConfig, Receiver, ReceiverKind,
    Route, RulesConfig, glob_files, parse_matcher,
};
pub use broker_url::{BrokerUrl, DEFAULT_WS_PATH, Transport, parse_broker_url};
pub use error::ConfigError;
pub(crate) use error::{read_text, yaml_error};
use locate::Locator;
use raw::RawConfig;
use std::path::Path;
pub use types::{
    Backoff, BridgeProbeConfig, BrokerConfig, Capacity, ClientRole, Config, LogConfig, LogFormat,
    LogLevel, ProbeConfig, ProbeKind, ProbeModule, Protocol, Qos, Secret, SecretSource, TlsConfig,
    WebSettings,
};
pub use types::{
    DEFAULT_DEGRADED_RTT, DEFAULT_PAYLOAD_BYTES, DEFAULT_PROBE_TIMEOUT, MAX_PAYLOAD_BYTES,
    MIN_PAYLOAD_BYTES, WILL_CLEAN_WATCH, WILL_DELAY_SLACK, mqtt_seconds,
};
pub use validate::expand_env;
use validate::{R, Validator, valid_name};

/// The configuration compiled into the binary, used when no file is given.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");
/// Name used in error messages for the embedded configuration.
pub const DEFAULT_SOURCE: &str = "<embedded default config>";

/// Read and validate a config file. Relative file paths inside it are resolved against the
/// file's directory, as Prometheus does.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let (source_name, text) = read_text(path, "config file")?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &source_name, &base, &|k| std::env::var(k).ok())
}

/// The embedded default configuration.
pub fn embedded_default() -> Result<Config, ConfigError> {
    parse(DEFAULT_YAML, DEFAULT_SOURCE, Path::new("."), &|k| {
        std::env::var(k).ok()
    })
}

/// Parse and validate `text`. `base` resolves relative file paths; `env` answers `${VAR}`.
pub fn parse(
    text: &str,
    source_name: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = if is_blank(text) {
        RawConfig::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| yaml_error(source_name, &e))?
    };
    let v = Validator {
        source_name,
        locator: Locator::new(text),
        base,
        env,
    };
    v.config(raw)
}

fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
}

#[cfg(test)]
mod tests;
