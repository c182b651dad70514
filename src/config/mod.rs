//! Validated configuration.
//!
//! Two stages, as ripgrep does it: `raw` holds what was written (serde, unknown fields refused),
//! this module turns it into checked types (`Duration`, `SocketAddr`, URLs, enums, readable
//! files, secrets) and is the only place that knows the defaults. Every error names the source,
//! the line/column and the field path, and quotes the bad value unless the value is a secret.
//! `load(path)` reads a file; `parse(text, …)` takes bytes so unit tests need no files.

mod alerting;
mod broker_url;
pub(crate) mod locate;
pub mod raw;
pub mod watched;
pub mod web;

use crate::sys::profile::ProfileSet;
pub use alerting::{
    DEFAULT_RULES, MatchOp, Matcher, NotifyConfig, Receiver, ReceiverKind, Route, RulesConfig,
    parse_matcher,
};
pub use broker_url::{BrokerUrl, DEFAULT_WS_PATH, Transport, parse_broker_url};
use locate::{Locator, Position};
use raw::{DurationText, RawBroker, RawConfig, RawModule, RawProbe, RawSys, RawTls};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The configuration compiled into the binary, used when no file is given.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");
/// Name used in error messages for the embedded configuration.
pub const DEFAULT_SOURCE: &str = "<embedded default config>";

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub web: WebSettings,
    pub log: LogConfig,
    pub brokers: Vec<BrokerConfig>,
    /// `/probe?module=` settings by name; `default` always exists.
    pub probe_modules: BTreeMap<String, ProbeModule>,
    /// `/probe?target=` must match this in full; `None` allows any target (see README: SSRF).
    pub probe_allowed_targets: Option<regex::Regex>,
    pub rules: RulesConfig,
    pub notify: NotifyConfig,
}

/// The HTTP endpoint's security and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSettings {
    /// exporter-toolkit web-config.yml; `None`: plain HTTP, no auth.
    pub config_file: Option<PathBuf>,
    /// Loaded at start; re-read by the server when the file changes.
    pub config: Option<web::WebConfig>,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
}

impl PartialEq for web::WebConfig {
    fn eq(&self, other: &Self) -> bool {
        // compared for "needs a restart" only: the file path is what matters
        self.describe() == other.describe()
    }
}

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Qos {
    pub fn as_i32(self) -> i32 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
            Qos::ExactlyOnce => 2,
        }
    }
    /// Label value: `"0"`, `"1"` or `"2"`.
    pub fn label(self) -> &'static str {
        ["0", "1", "2"][self.as_i32() as usize]
    }
    pub fn from_u8(q: u8) -> Option<Qos> {
        match q {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Unique per broker; part of the probe topic and the `probe` label.
    pub name: String,
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Publish to ourselves on the watching session and wait for it to come back.
    Roundtrip { qos: Qos, payload_bytes: usize },
    /// A fresh client per run: TCP(+TLS) + CONNECT/CONNACK.
    Connect,
    /// Publish a unique retained value; a fresh subscriber must receive exactly it.
    Retained,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Roundtrip { .. } => "roundtrip",
            ProbeKind::Connect => "connect",
            ProbeKind::Retained => "retained",
        }
    }
}

/// How `/probe` and `mqtt-sentinel probe` reach a target.
#[derive(Debug, Clone)]
pub struct ProbeModule {
    pub qos: Qos,
    pub timeout: Duration,
    pub protocol: Protocol,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub tls: Option<TlsConfig>,
    pub payload_bytes: usize,
    pub degraded_rtt: Duration,
}

impl Default for ProbeModule {
    fn default() -> Self {
        Self {
            qos: Qos::AtLeastOnce,
            timeout: Duration::from_secs(5),
            protocol: Protocol::Auto,
            username: None,
            password: None,
            tls: None,
            payload_bytes: DEFAULT_PAYLOAD_BYTES,
            degraded_rtt: DEFAULT_DEGRADED_RTT,
        }
    }
}

/// Probe payloads carry a nonce and a sequence number; this is the smallest that fits.
pub const MIN_PAYLOAD_BYTES: usize = 32;
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
pub const DEFAULT_PAYLOAD_BYTES: usize = 64;
pub const DEFAULT_DEGRADED_RTT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Equality is what a reload compares: an unchanged broker keeps its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// The `broker` label on every series of this broker.
    pub name: String,
    pub url: BrokerUrl,
    pub protocol: Protocol,
    /// What `protocol: auto` settled on (runtime state shared by clones).
    pub negotiated: Negotiated,
    /// Explicit client id; `None` means a unique id is generated per process.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub tls: Option<TlsConfig>,
    pub keep_alive: Duration,
    pub connect_timeout: Duration,
    pub reconnect: Backoff,
    pub capacity: Capacity,
    pub sys: SysConfig,
    pub probes: Vec<ProbeConfig>,
    /// Probe topics are `<prefix>/<client-id>/<probe-name>`.
    pub probe_topic_prefix: String,
    /// A round trip slower than this makes the broker `degraded`.
    pub degraded_rtt: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 5 first; MQTT 3.1.1 for one session when the broker refuses 5 (the rule is in
    /// `mqtt::negotiate`; fresh clients follow the watching session through [`Negotiated`]).
    Auto,
    V5,
    V311,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Auto => "auto",
            Protocol::V5 => "v5",
            Protocol::V311 => "v3.1.1",
        }
    }
}

/// Shared by every clone of one broker's config (the watching connection, fresh probe
/// clients): set while the watching session runs on MQTT 3.1.1 because the broker refused
/// MQTT 5 (see `mqtt::negotiate`), so fresh clients start with 3.1.1 instead of repeating the
/// refused attempts. Cleared when that session ends or a MQTT 5 connect succeeds: it never
/// outlives the session whose evidence set it.
#[derive(Debug, Clone, Default)]
pub struct Negotiated(Arc<std::sync::atomic::AtomicBool>);

impl Negotiated {
    /// Whether the broker's watching session currently runs on 3.1.1 after a refusal of 5.
    pub fn v311(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Record what the watching session runs on.
    pub fn set_v311(&self, v311: bool) {
        self.0.store(v311, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PartialEq for Negotiated {
    fn eq(&self, _: &Self) -> bool {
        true // runtime state, not configuration
    }
}
impl Eq for Negotiated {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA bundle to verify the broker with; `None` uses the system trust store. Each file is
    /// read as it is at each connect (a broken one keeps its last good content).
    pub ca_file: Option<watched::WatchedFile<watched::PemFile>>,
    /// Client certificate for mTLS (may also hold the key).
    pub cert_file: Option<watched::WatchedFile<watched::PemFile>>,
    pub key_file: Option<watched::WatchedFile<watched::PemFile>>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    pub max_connections: Option<u64>,
    /// Memory the broker may use, for heap alerts (mosquitto has no such $SYS value).
    pub max_heap_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysConfig {
    pub enabled: bool,
    /// The subscription filter, always `<prefix>#`.
    pub topic: String,
    /// `auto` or the name of a built-in or `sys_profiles` profile.
    pub profile: String,
    /// Every profile the config can name (shared by all brokers).
    pub profiles: Arc<ProfileSet>,
    /// Cap on series whose labels come from the broker (unknown topics, bridges).
    pub max_series: usize,
}

impl SysConfig {
    /// The filter without its trailing `#`: what profile patterns are relative to.
    pub fn prefix(&self) -> &str {
        self.topic.strip_suffix('#').unwrap_or(&self.topic)
    }
}

/// A secret given inline or by a `*_file`; a file is read as it is at each use (see
/// [`watched`]). `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Inline(Secret),
    File(watched::WatchedFile<Secret>),
}

impl SecretSource {
    /// The value to use now: an inline one, or the file's current (else last good) content.
    pub fn current(&self) -> Secret {
        match self {
            SecretSource::Inline(s) => s.clone(),
            SecretSource::File(f) => (*f.get()).clone(),
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("<secret>"),
            SecretSource::File(w) => write!(f, "<secret in {:?}>", w.path()),
        }
    }
}

/// A value that must never be printed: `Debug` and `Display` show `<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The plain value, for handing to the MQTT client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A configuration error: where (source, position, field path) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted field path (`brokers[0].tls.ca_file`); empty for whole-document errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_name)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The text of a file named by the configuration (`what` names it in the error).
pub(crate) fn read_text(path: &Path, what: &str) -> Result<(String, String), ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source_name: name.clone(),
        line: None,
        column: None,
        path: String::new(),
        message: format!("cannot read {what}: {e}"),
    })?;
    Ok((name, text))
}

/// Read and validate a config file. Relative file paths inside it are resolved against the
/// file's directory, as Prometheus does.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source_name: source_name.clone(),
        line: None,
        column: None,
        path: String::new(),
        message: format!("cannot read config file: {e}"),
    })?;
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

/// serde_yaml's message ends in " at line L column C"; we move the position to the front,
/// and split off its `path: ` prefix so every error reads the same way.
pub(crate) fn yaml_error(source_name: &str, e: &serde_yaml::Error) -> ConfigError {
    let mut message = e.to_string();
    let (line, column) = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
            (Some(loc.line()), Some(loc.column()))
        }
        None => (None, None),
    };
    let mut path = String::new();
    if let Some((p, rest)) = message.split_once(": ") {
        let looks_like_path = !p.is_empty()
            && !p.contains(' ')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
        if looks_like_path {
            path = p.to_owned();
            message = rest.to_owned();
        }
    }
    // Point at the misspelt field itself, not at the mapping that holds it.
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
        .map(|(f, _)| f.to_owned())
    {
        path = if path.is_empty() {
            field
        } else {
            format!("{path}.{field}")
        };
    }
    ConfigError {
        source_name: source_name.to_owned(),
        line,
        column,
        path,
        message,
    }
}

struct Validator<'a> {
    source_name: &'a str,
    locator: Locator,
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

type R<T> = Result<T, ConfigError>;

impl Validator<'_> {
    fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let pos: Option<Position> = self.locator.find(path);
        ConfigError {
            source_name: self.source_name.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// Expand `${VAR}` (and `$${` for a literal `${`). `secret` hides the value in messages.
    fn expand(&self, path: &str, value: &str, secret: bool) -> R<String> {
        expand_env(value, self.env).map_err(|why| {
            let shown = if secret {
                String::new()
            } else {
                format!(" in {value:?}")
            };
            self.err(path, format!("{why}{shown}"))
        })
    }

    fn file(&self, path: &str, value: &str) -> R<PathBuf> {
        let expanded = self.expand(path, value, false)?;
        if expanded.is_empty() {
            return Err(self.err(path, "file name is empty"));
        }
        let p = self.base.join(&expanded);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => match std::fs::File::open(&p) {
                Ok(_) => Ok(p),
                Err(e) => Err(self.err(path, format!("cannot read {expanded:?}: {e}"))),
            },
            Ok(_) => Err(self.err(path, format!("{expanded:?} is not a regular file"))),
            Err(e) => Err(self.err(path, format!("cannot read {expanded:?}: {e}"))),
        }
    }

    /// A file read now (an error names file, line and field) and then at each use.
    pub(crate) fn watched_file<T>(
        &self,
        path: &str,
        value: &str,
        parse: watched::Parser<T>,
    ) -> R<watched::WatchedFile<T>> {
        let file = self.file(path, value)?;
        watched::WatchedFile::load(path, file, parse).map_err(|e| self.err(path, e))
    }

    fn duration(&self, path: &str, d: Option<&DurationText>, default: Duration) -> R<Duration> {
        let Some(DurationText(text)) = d else {
            return Ok(default);
        };
        let t = self.expand(path, text, false)?;
        let parsed = humantime::parse_duration(t.trim()).map_err(|e| {
            self.err(
                path,
                format!("invalid duration {t:?}: {e} (write it like \"30s\" or \"500ms\")"),
            )
        })?;
        if parsed.is_zero() {
            return Err(self.err(path, format!("duration {t:?} must be greater than zero")));
        }
        Ok(parsed)
    }

    fn config(&self, raw: RawConfig) -> R<Config> {
        let listen = match &raw.listen {
            None => SocketAddr::from(([0, 0, 0, 0], 10883)),
            Some(s) => {
                let t = self.expand("listen", s, false)?;
                t.parse().map_err(|_| {
                    self.err(
                        "listen",
                        format!(
                            "invalid address {t:?}: expected ip:port such as \"0.0.0.0:10883\""
                        ),
                    )
                })?
            }
        };
        let log = self.log(raw.log.unwrap_or_default())?;
        let web = self.web(raw.web.unwrap_or_default())?;
        let raw_brokers = raw.brokers.unwrap_or_else(|| {
            vec![RawBroker {
                name: Some("local".into()),
                url: Some("mqtt://localhost:1883".into()),
                ..RawBroker::default()
            }]
        });
        let profiles = ProfileSet::with_user(&raw.sys_profiles.unwrap_or_default())
            .map(Arc::new)
            .map_err(|(name, e)| {
                let at = if e.path.is_empty() {
                    format!("sys_profiles.{name}")
                } else {
                    format!("sys_profiles.{name}.{}", e.path)
                };
                self.err(&at, e.message)
            })?;
        let mut brokers: Vec<BrokerConfig> = Vec::with_capacity(raw_brokers.len());
        for (i, rb) in raw_brokers.into_iter().enumerate() {
            let b = self.broker(&format!("brokers[{i}]"), rb, &profiles)?;
            if let Some(j) = brokers.iter().position(|o| o.name == b.name) {
                return Err(self.err(
                    &format!("brokers[{i}].name"),
                    format!(
                        "duplicate broker name {:?} (also brokers[{j}]); names are the `broker` label and must be unique",
                        b.name
                    ),
                ));
            }
            brokers.push(b);
        }
        let mut probe_modules = BTreeMap::new();
        probe_modules.insert("default".to_owned(), ProbeModule::default());
        for (name, rm) in raw.probe_modules.unwrap_or_default() {
            let at = format!("probe_modules.{name}");
            if !valid_name(&name) {
                return Err(self.err(
                    &at,
                    format!(
                        "invalid module name {name:?}: use 1-64 characters from A-Z a-z 0-9 - _"
                    ),
                ));
            }
            let m = self.module(&at, rm)?;
            probe_modules.insert(name, m);
        }
        let probe_allowed_targets = match &raw.probe_allowed_targets {
            None => None,
            Some(re) => Some(regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| {
                self.err(
                    "probe_allowed_targets",
                    format!(
                        "invalid regular expression {re:?}: {}",
                        e.to_string().lines().last().unwrap_or("")
                    ),
                )
            })?),
        };
        let rules = self.rules(raw.rules.unwrap_or_default())?;
        let notify = self.notify(raw.notify.unwrap_or_default())?;
        Ok(Config {
            listen,
            web,
            log,
            brokers,
            probe_modules,
            probe_allowed_targets,
            rules,
            notify,
        })
    }

    fn web(&self, raw: raw::RawWebSettings) -> R<WebSettings> {
        let max_connections = raw.max_connections.unwrap_or(1024);
        if !(16..=65_536).contains(&max_connections) {
            return Err(self.err(
                "web.max_connections",
                format!("max_connections {max_connections} is outside 16..65536"),
            ));
        }
        let (config_file, config) = match &raw.config_file {
            None => (None, None),
            Some(f) => {
                let path = self.file("web.config_file", f)?;
                let w = web::load(&path)?;
                (Some(path), Some(w))
            }
        };
        Ok(WebSettings {
            config_file,
            config,
            max_connections,
        })
    }

    fn qos(&self, path: &str, q: Option<u8>, default: Qos) -> R<Qos> {
        match q {
            None => Ok(default),
            Some(q) => Qos::from_u8(q)
                .ok_or_else(|| self.err(path, format!("invalid qos {q}: expected 0, 1 or 2"))),
        }
    }

    fn payload_bytes(&self, path: &str, n: Option<usize>) -> R<usize> {
        let n = n.unwrap_or(DEFAULT_PAYLOAD_BYTES);
        if !(MIN_PAYLOAD_BYTES..=MAX_PAYLOAD_BYTES).contains(&n) {
            return Err(self.err(
                path,
                format!(
                    "payload_bytes {n} is out of range {MIN_PAYLOAD_BYTES}..={MAX_PAYLOAD_BYTES}"
                ),
            ));
        }
        Ok(n)
    }

    fn protocol(&self, path: &str, p: Option<&str>) -> R<Protocol> {
        match p {
            None | Some("auto") => Ok(Protocol::Auto),
            Some("v5") | Some("5") => Ok(Protocol::V5),
            Some("v3.1.1") | Some("3.1.1") => Ok(Protocol::V311),
            Some(s) => Err(self.err(
                path,
                format!("unknown protocol {s:?}: expected auto, v5 or v3.1.1"),
            )),
        }
    }

    /// username / password / password_file, shared by brokers and probe modules.
    fn credentials(
        &self,
        at: &str,
        username: Option<&String>,
        password: Option<&String>,
        password_file: Option<&String>,
        protocol: Protocol,
    ) -> R<(Option<String>, Option<SecretSource>)> {
        let p = |field: &str| format!("{at}.{field}");
        let username = match username {
            None => None,
            Some(u) => Some(self.expand(&p("username"), u, false)?),
        };
        let password = match (password, password_file) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    &p("password_file"),
                    "set either password or password_file, not both",
                ));
            }
            (Some(pw), None) => Some(SecretSource::Inline(Secret(self.expand(
                &p("password"),
                pw,
                true,
            )?))),
            (None, Some(f)) => Some(SecretSource::File(self.watched_file(
                &p("password_file"),
                f,
                // Line ends only: a password may begin or end with blanks.
                Arc::new(|b: &[u8]| {
                    let s = std::str::from_utf8(b).map_err(|_| "not UTF-8 text".to_string())?;
                    let s = s.trim_end_matches(['\r', '\n']);
                    if s.is_empty() {
                        // A file being rewritten in place is empty for a moment.
                        return Err("the file is empty".into());
                    }
                    Ok(Secret(s.to_owned()))
                }),
            )?)),
            (None, None) => None,
        };
        if password.is_some() && username.is_none() && protocol == Protocol::V311 {
            return Err(self.err(
                &p("username"),
                "a password needs a username with MQTT v3.1.1",
            ));
        }
        Ok((username, password))
    }

    fn module(&self, at: &str, raw: RawModule) -> R<ProbeModule> {
        let p = |field: &str| format!("{at}.{field}");
        let protocol = self.protocol(&p("protocol"), raw.protocol.as_deref())?;
        let (username, password) = self.credentials(
            at,
            raw.username.as_ref(),
            raw.password.as_ref(),
            raw.password_file.as_ref(),
            protocol,
        )?;
        Ok(ProbeModule {
            qos: self.qos(&p("qos"), raw.qos, Qos::AtLeastOnce)?,
            timeout: self.duration(&p("timeout"), raw.timeout.as_ref(), Duration::from_secs(5))?,
            protocol,
            username,
            password,
            tls: raw.tls.map(|t| self.tls(&p("tls"), t)).transpose()?,
            payload_bytes: self.payload_bytes(&p("payload_bytes"), raw.payload_bytes)?,
            degraded_rtt: self.duration(
                &p("degraded_rtt"),
                raw.degraded_rtt.as_ref(),
                DEFAULT_DEGRADED_RTT,
            )?,
        })
    }

    fn probes(&self, at: &str, raw: Option<Vec<RawProbe>>) -> R<Vec<ProbeConfig>> {
        let Some(raw) = raw else {
            // The embedded default: one QoS 1 round trip every 10 s.
            return Ok(vec![ProbeConfig {
                name: "rtt-qos1".into(),
                kind: ProbeKind::Roundtrip {
                    qos: Qos::AtLeastOnce,
                    payload_bytes: DEFAULT_PAYLOAD_BYTES,
                },
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
            }]);
        };
        let mut out: Vec<ProbeConfig> = Vec::with_capacity(raw.len());
        for (i, rp) in raw.into_iter().enumerate() {
            let at = format!("{at}[{i}]");
            let p = |field: &str| format!("{at}.{field}");
            let kind = match rp.kind.as_deref() {
                None | Some("roundtrip") => ProbeKind::Roundtrip {
                    qos: self.qos(&p("qos"), rp.qos, Qos::AtLeastOnce)?,
                    payload_bytes: self.payload_bytes(&p("payload_bytes"), rp.payload_bytes)?,
                },
                Some(k @ ("connect" | "retained")) => {
                    if rp.qos.is_some() || rp.payload_bytes.is_some() {
                        let field = if rp.qos.is_some() {
                            "qos"
                        } else {
                            "payload_bytes"
                        };
                        return Err(self.err(
                            &p(field),
                            format!("{field} applies to roundtrip probes only, not {k}"),
                        ));
                    }
                    if k == "connect" {
                        ProbeKind::Connect
                    } else {
                        ProbeKind::Retained
                    }
                }
                Some(k) => {
                    return Err(self.err(
                        &p("kind"),
                        format!(
                            "unknown probe kind {k:?}: expected roundtrip, connect or retained"
                        ),
                    ));
                }
            };
            let name = match &rp.name {
                Some(n) if valid_name(n) => n.clone(),
                Some(n) => {
                    return Err(self.err(
                        &p("name"),
                        format!(
                            "invalid probe name {n:?}: use 1-64 characters from A-Z a-z 0-9 - _"
                        ),
                    ));
                }
                None => match kind {
                    ProbeKind::Roundtrip { qos, .. } => format!("rtt-qos{}", qos.label()),
                    other => other.as_str().to_owned(),
                },
            };
            if let Some(j) = out.iter().position(|o| o.name == name) {
                return Err(self.err(
                    &p("name"),
                    format!("duplicate probe name {name:?} (also probes[{j}])"),
                ));
            }
            let default_interval = Duration::from_secs(match kind {
                ProbeKind::Roundtrip { .. } => 10,
                ProbeKind::Connect => 30,
                ProbeKind::Retained => 60,
            });
            out.push(ProbeConfig {
                name,
                kind,
                interval: self.duration(&p("interval"), rp.interval.as_ref(), default_interval)?,
                timeout: self.duration(
                    &p("timeout"),
                    rp.timeout.as_ref(),
                    Duration::from_secs(5),
                )?,
            });
        }
        Ok(out)
    }

    fn log(&self, raw: raw::RawLog) -> R<LogConfig> {
        let level = match raw.level.as_deref() {
            None => LogLevel::Info,
            Some(s) => match s.to_ascii_lowercase().as_str() {
                "error" => LogLevel::Error,
                "warn" | "warning" => LogLevel::Warn,
                "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                "trace" => LogLevel::Trace,
                _ => {
                    return Err(self.err(
                        "log.level",
                        format!("unknown level {s:?}: expected error, warn, info, debug or trace"),
                    ));
                }
            },
        };
        let format = match raw.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(s) => {
                return Err(self.err(
                    "log.format",
                    format!("unknown format {s:?}: expected text or json"),
                ));
            }
        };
        Ok(LogConfig { level, format })
    }

    fn broker(&self, at: &str, raw: RawBroker, profiles: &Arc<ProfileSet>) -> R<BrokerConfig> {
        let p = |field: &str| format!("{at}.{field}");
        let url_text = match &raw.url {
            Some(u) => self.expand(&p("url"), u, false)?,
            None => return Err(self.err(at, "missing field `url`")),
        };
        let url = self.url(&p("url"), &url_text)?;
        let name = match &raw.name {
            Some(n) => {
                let n = self.expand(&p("name"), n, false)?;
                let ok = !n.is_empty()
                    && n.len() <= 64
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
                if !ok {
                    return Err(self.err(
                        &p("name"),
                        format!("invalid name {n:?}: use 1-64 characters from A-Z a-z 0-9 - _ . :"),
                    ));
                }
                n
            }
            None => format!("{}:{}", url.host, url.port),
        };
        let protocol = self.protocol(&p("protocol"), raw.protocol.as_deref())?;
        let client_id = match &raw.client_id {
            None => None,
            Some(c) => {
                let c = self.expand(&p("client_id"), c, false)?;
                if c.is_empty() {
                    None
                } else if c.len() > 65535 || c.contains(['+', '#', '\0']) {
                    return Err(self.err(
                        &p("client_id"),
                        format!("invalid client id {c:?}: must not contain +, # or NUL"),
                    ));
                } else {
                    Some(c)
                }
            }
        };
        let (username, password) = self.credentials(
            at,
            raw.username.as_ref(),
            raw.password.as_ref(),
            raw.password_file.as_ref(),
            protocol,
        )?;
        let tls = match raw.tls {
            None => None,
            Some(t) => Some(self.tls(&p("tls"), t)?),
        };
        if let Some(why) = url.unverifiable_by_paho() {
            if !tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
                return Err(self.err(&p("url"), format!("url {url_text:?}: {why}")));
            }
        }
        if tls.is_some() && !url.is_tls() {
            return Err(self.err(
                &p("tls"),
                format!(
                    "tls is set but url {url_text:?} is not a TLS url (use mqtts:// or wss://)"
                ),
            ));
        }
        let keep_alive = self.duration(
            &p("keep_alive"),
            raw.keep_alive.as_ref(),
            Duration::from_secs(30),
        )?;
        if keep_alive < Duration::from_secs(1) || keep_alive > Duration::from_secs(65535) {
            return Err(self.err(
                &p("keep_alive"),
                format!("keep_alive {keep_alive:?} is out of range: MQTT allows 1s to 65535s"),
            ));
        }
        let connect_timeout = self.duration(
            &p("connect_timeout"),
            raw.connect_timeout.as_ref(),
            Duration::from_secs(10),
        )?;
        let rr = raw.reconnect.unwrap_or_default();
        let reconnect = Backoff {
            initial: self.duration(
                &p("reconnect.initial_backoff"),
                rr.initial_backoff.as_ref(),
                Duration::from_millis(500),
            )?,
            max: self.duration(
                &p("reconnect.max_backoff"),
                rr.max_backoff.as_ref(),
                Duration::from_secs(30),
            )?,
        };
        if reconnect.initial > reconnect.max {
            return Err(self.err(
                &p("reconnect.max_backoff"),
                format!(
                    "max_backoff {:?} is shorter than initial_backoff {:?}",
                    reconnect.max, reconnect.initial
                ),
            ));
        }
        let rc = raw.capacity.unwrap_or_default();
        let capacity = Capacity {
            max_connections: rc.max_connections,
            max_heap_bytes: rc.max_heap_bytes,
        };
        let sys = self.sys(&p("sys"), raw.sys.unwrap_or_default(), profiles)?;
        let probes = self.probes(&p("probes"), raw.probes)?;
        let probe_topic_prefix = match &raw.probe_topic_prefix {
            None => "mqtt-sentinel".to_owned(),
            Some(t) => {
                let t = self.expand(&p("probe_topic_prefix"), t, false)?;
                let ok = !t.is_empty()
                    && !t.starts_with(['/', '$'])
                    && !t.ends_with('/')
                    && !t.contains(['+', '#', '.', ' ', '\0']);
                if !ok {
                    return Err(self.err(
                        &p("probe_topic_prefix"),
                        format!("invalid probe topic prefix {t:?}: no leading $ or /, no trailing /, and no + # . or spaces (RabbitMQ and NATS rewrite dots)"),
                    ));
                }
                t
            }
        };
        let degraded_rtt = self.duration(
            &p("degraded_rtt"),
            raw.degraded_rtt.as_ref(),
            DEFAULT_DEGRADED_RTT,
        )?;
        Ok(BrokerConfig {
            name,
            url,
            protocol,
            negotiated: Negotiated::default(),
            client_id,
            username,
            password,
            tls,
            keep_alive,
            connect_timeout,
            reconnect,
            capacity,
            sys,
            probes,
            probe_topic_prefix,
            degraded_rtt,
        })
    }

    fn url(&self, path: &str, text: &str) -> R<BrokerUrl> {
        parse_broker_url(text).map_err(|m| self.err(path, m))
    }

    fn tls(&self, at: &str, raw: RawTls) -> R<TlsConfig> {
        let p = |field: &str| format!("{at}.{field}");
        if let Some(sn) = &raw.server_name {
            return Err(self.err(
                &p("server_name"),
                format!(
                    "server_name {sn:?} cannot be honoured: the Paho C client verifies the host of the url and has no SNI override; put the certificate's name in the url, or set insecure_skip_verify"
                ),
            ));
        }
        if raw.key_file.is_some() && raw.cert_file.is_none() {
            return Err(self.err(&p("key_file"), "key_file needs cert_file"));
        }
        use watched::{PemKind, pem};
        let file = |field: &str, f: Option<&str>, kind| {
            f.map(|f| self.watched_file(&p(field), f, pem(kind)))
                .transpose()
        };
        let ca_file = file("ca_file", raw.ca_file.as_deref(), PemKind::Certificates)?;
        let cert_file = file("cert_file", raw.cert_file.as_deref(), PemKind::Certificates)?;
        let key_file = file("key_file", raw.key_file.as_deref(), PemKind::PrivateKey)?;
        Ok(TlsConfig {
            ca_file,
            cert_file,
            key_file,
            insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
        })
    }

    fn sys(&self, at: &str, raw: RawSys, profiles: &Arc<ProfileSet>) -> R<SysConfig> {
        let p = |field: &str| format!("{at}.{field}");
        let topic = match &raw.topic {
            None => "$SYS/#".to_owned(),
            Some(t) => self.expand(&p("topic"), t, false)?,
        };
        let valid = (topic == "#" || topic.ends_with("/#"))
            && !topic[..topic.len() - 1].contains(['+', '#']);
        if !valid {
            return Err(self.err(
                &p("topic"),
                format!("invalid topic filter {topic:?}: expected a prefix ending in /# such as \"$SYS/#\""),
            ));
        }
        let profile = match raw.profile.as_deref() {
            None | Some("auto") => "auto".to_owned(),
            Some(s) if profiles.get(s).is_some() => s.to_owned(),
            Some(s) => {
                let known: Vec<&str> = profiles.names().collect();
                return Err(self.err(
                    &p("profile"),
                    format!(
                        "unknown profile {s:?}: expected auto, {} (or one defined under sys_profiles)",
                        known.join(", ")
                    ),
                ));
            }
        };
        let max_series = raw.max_series.unwrap_or(500);
        if max_series > 100_000 {
            return Err(self.err(
                &p("max_series"),
                format!("max_series {max_series} is above the limit of 100000"),
            ));
        }
        Ok(SysConfig {
            enabled: raw.enabled.unwrap_or(true),
            topic,
            profile,
            max_series,
            profiles: profiles.clone(),
        })
    }
}

impl BrokerConfig {
    /// Settings for a one-shot probe of `url` with `module` (`/probe`, `mqtt-sentinel probe`).
    pub fn for_oneshot(url: BrokerUrl, m: &ProbeModule) -> BrokerConfig {
        BrokerConfig {
            name: format!("{}:{}", url.host, url.port),
            url,
            protocol: m.protocol,
            negotiated: Negotiated::default(),
            client_id: None,
            username: m.username.clone(),
            password: m.password.clone(),
            tls: m.tls.clone(),
            keep_alive: Duration::from_secs(30),
            connect_timeout: m.timeout,
            reconnect: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
            capacity: Capacity::default(),
            sys: SysConfig {
                enabled: false,
                topic: "$SYS/#".into(),
                profile: "auto".into(),
                max_series: 0,
                profiles: Arc::new(ProfileSet::builtin()),
            },
            probes: Vec::new(),
            probe_topic_prefix: "mqtt-sentinel".into(),
            degraded_rtt: m.degraded_rtt,
        }
    }
}

/// Names of probes and modules: safe in topics, labels and URLs.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Replace `${NAME}` with the variable's value; `$${` stands for a literal `${`.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err("unterminated ${".to_owned());
            };
            let name = &tail[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

impl Config {
    /// A human summary for `check`; secrets print as `<secret>`.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "listen: {}", self.listen);
        let _ = writeln!(
            s,
            "log: level {}, format {}",
            self.log.level.as_str(),
            match self.log.format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        );
        let _ = writeln!(s, "brokers: {}", self.brokers.len());
        for b in &self.brokers {
            let _ = writeln!(
                s,
                "  - {}: {} protocol {} client_id {} username {} password {} tls {} keep_alive {:?} sys {} (profile {}, max_series {})",
                b.name,
                b.url,
                b.protocol.as_str(),
                b.client_id.as_deref().unwrap_or("<generated>"),
                b.username.as_deref().unwrap_or("<none>"),
                if b.password.is_some() {
                    "<secret>"
                } else {
                    "<none>"
                },
                match &b.tls {
                    None if b.url.is_tls() => "system-ca",
                    None => "off",
                    Some(t) if t.insecure_skip_verify => "INSECURE",
                    Some(t) if t.cert_file.is_some() => "mtls",
                    Some(_) => "on",
                },
                b.keep_alive,
                if b.sys.enabled {
                    b.sys.topic.as_str()
                } else {
                    "off"
                },
                b.sys.profile,
                b.sys.max_series,
            );
            for pr in &b.probes {
                let what = match pr.kind {
                    ProbeKind::Roundtrip { qos, payload_bytes } => {
                        format!("roundtrip qos {} payload {payload_bytes} B", qos.label())
                    }
                    other => other.as_str().to_owned(),
                };
                let _ = writeln!(
                    s,
                    "      probe {}: {what} every {:?}, timeout {:?}",
                    pr.name, pr.interval, pr.timeout
                );
            }
        }
        match (&self.web.config_file, &self.web.config) {
            (Some(f), Some(w)) => {
                let _ = writeln!(
                    s,
                    "web: {} from {} (max {} connections)",
                    w.describe(),
                    f.display(),
                    self.web.max_connections
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "web: plain HTTP, no auth (max {} connections)",
                    self.web.max_connections
                );
            }
        }
        if let Some(b) = self.brokers.first() {
            let profiles: Vec<&str> = b.sys.profiles.names().collect();
            let _ = writeln!(s, "sys profiles: {}", profiles.join(", "));
        }
        let names: Vec<&str> = self.probe_modules.keys().map(String::as_str).collect();
        let _ = writeln!(s, "probe modules: {}", names.join(", "));
        let _ = writeln!(
            s,
            "probe targets allowed: {}",
            self.probe_allowed_targets
                .as_ref()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_else(|| "any".to_owned())
        );
        let rules: usize = self.rules.groups.iter().map(|g| g.rules.len()).sum();
        let _ = writeln!(
            s,
            "rules: {rules} in {} groups from {}, every {:?}",
            self.rules.groups.len(),
            if self.rules.sources.is_empty() {
                "no files".to_owned()
            } else {
                self.rules.sources.join(", ")
            },
            self.rules.evaluation_interval
        );
        for r in &self.notify.receivers {
            // URLs can carry tokens: never printed.
            let _ = writeln!(
                s,
                "  receiver {}: {} url <secret> send_resolved {} signed {}",
                r.name,
                r.kind.as_str(),
                r.send_resolved,
                r.signing_key.is_some()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests;
