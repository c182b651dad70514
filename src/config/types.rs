//! The validated configuration: what `Validator` produces from `raw` and every other module
//! reads. Durations, addresses, URLs and enums are checked types here; secrets print as
//! `<secret>`; equality is what a reload compares.

use super::{BrokerUrl, NotifyConfig, RulesConfig};
use super::{watched, web};
use crate::sys::SysConfig;
use crate::sys::profile::ProfileSet;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// A bridge probe (`kind: bridge` in `brokers[].probes`): publish on the broker it is
/// configured under, receive on broker `remote` (both through their watching sessions), and
/// account for each message as a round trip does (`probe::bridge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeProbeConfig {
    /// Unique per broker, shared with its other probes; the `probe` label.
    pub name: String,
    /// Position in the broker's `probes:` list (for errors found after every broker is read).
    pub index: usize,
    /// The configured name of the receiving broker: never the publishing one, and it exists
    /// (checked once all brokers are read).
    pub remote: String,
    /// Published on this broker; a topic name (no `+` or `#`).
    pub topic: String,
    /// Subscribed on `remote`: `topic` as the bridge maps it (`topic` unless configured).
    pub remote_topic: String,
    /// QoS of the publish on this broker and of the subscription on `remote`.
    pub qos: Qos,
    pub payload_bytes: usize,
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
    /// A client with a persistent session (MQTT 5 session expiry, 3.1.1 clean session off)
    /// subscribes at QoS 1 and leaves; a message published while it is offline must be
    /// delivered exactly once when it comes back, with session present.
    Session,
    /// A client dropped without DISCONNECT must have its will published; one that sends
    /// DISCONNECT must not. `delay`: the MQTT 5 Will Delay Interval it asks for (§3.1.3.2.2).
    Will { delay: Option<Duration> },
}

impl ProbeKind {
    /// The shortest run that can succeed on a healthy broker: for a will probe with a delay,
    /// the delay as sent (whole seconds, rounded up: §3.1.3.2.2) + [`WILL_DELAY_SLACK`] +
    /// [`WILL_CLEAN_WATCH`]; zero for every other kind. A probe's `timeout`, and the deadline
    /// `/probe` gets from the scrape timeout, must be at least this.
    pub fn shortest_run(self) -> Duration {
        match self {
            ProbeKind::Will { delay: Some(d) } if !d.is_zero() => {
                Duration::from_secs(mqtt_seconds(d).into()) + WILL_DELAY_SLACK + WILL_CLEAN_WATCH
            }
            _ => Duration::ZERO,
        }
    }

    /// The client ids a scheduled probe of this kind connects with, as suffixes of
    /// `<watching client id>-<probe name>` ([`ClientRole`]); empty for the round trip, which
    /// runs on the watching session. Probe names may contain `-`, so config refuses two
    /// probes of one broker whose ids would meet (a `session` probe `x` connects as
    /// `…-x-session`, exactly what a `connect` probe named `x-session` uses): a broker
    /// disconnects the older of two clients with one id (MQTT 5.0 §3.1.4-3).
    pub fn client_roles(self) -> &'static [ClientRole] {
        match self {
            ProbeKind::Roundtrip { .. } => &[],
            ProbeKind::Connect => &[ClientRole::Own],
            ProbeKind::Retained => &[ClientRole::Publisher, ClientRole::Subscriber],
            ProbeKind::Session => &[ClientRole::Session, ClientRole::Publisher],
            ProbeKind::Will { .. } => &[ClientRole::Watcher, ClientRole::Will, ClientRole::Clean],
        }
    }

    /// Every kind's config name, as `kind:` takes it (and `mqtt-sentinel probe --kind`).
    pub const NAMES: [&'static str; 5] = ["roundtrip", "connect", "retained", "session", "will"];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Roundtrip { .. } => "roundtrip",
            ProbeKind::Connect => "connect",
            ProbeKind::Retained => "retained",
            ProbeKind::Session => "session",
            ProbeKind::Will { .. } => "will",
        }
    }
}

/// One of the clients a probe run connects: its id is the probe's id (`<watching client
/// id>-<probe name>`, random for one-shot probes) with [`Self::suffix`] appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    /// The probe's id itself (the connect probe's one client).
    Own,
    /// Publishes the run's message (retained and session probes): `-pub`.
    Publisher,
    /// Receives the retained value: `-sub`.
    Subscriber,
    /// The persistent session of the session probe: `-session`.
    Session,
    /// Subscribes to the will probe's topic: `-watch`.
    Watcher,
    /// Connects with a will and is dropped without DISCONNECT: `-will`.
    Will,
    /// Connects with a will and leaves with DISCONNECT: `-clean`.
    Clean,
}

impl ClientRole {
    /// What this role appends to the probe's id.
    pub fn suffix(self) -> &'static str {
        match self {
            ClientRole::Own => "",
            ClientRole::Publisher => "-pub",
            ClientRole::Subscriber => "-sub",
            ClientRole::Session => "-session",
            ClientRole::Watcher => "-watch",
            ClientRole::Will => "-will",
            ClientRole::Clean => "-clean",
        }
    }

    /// The client id of this role in the run of a probe whose id is `probe_id`.
    pub fn id(self, probe_id: &str) -> String {
        format!("{probe_id}{}", self.suffix())
    }
}

/// How `/probe` and `mqtt-sentinel probe` reach a target.
#[derive(Debug, Clone)]
pub struct ProbeModule {
    /// What a one-shot probe does (`kind`, default `roundtrip` at `qos` with `payload_bytes`).
    pub kind: ProbeKind,
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
            kind: ProbeKind::Roundtrip {
                qos: Qos::AtLeastOnce,
                payload_bytes: DEFAULT_PAYLOAD_BYTES,
            },
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

impl ProbeModule {
    /// The kind called `name` (one of [`ProbeKind::NAMES`]) with this module's settings: its
    /// `qos` and `payload_bytes` for `roundtrip`, its `will_delay` for `will`.
    pub fn kind_named(&self, name: &str) -> Option<ProbeKind> {
        Some(match name {
            "roundtrip" => ProbeKind::Roundtrip {
                qos: self.qos,
                payload_bytes: self.payload_bytes,
            },
            "connect" => ProbeKind::Connect,
            "retained" => ProbeKind::Retained,
            "session" => ProbeKind::Session,
            "will" => ProbeKind::Will {
                delay: match self.kind {
                    ProbeKind::Will { delay } => delay,
                    _ => None,
                },
            },
            _ => return None,
        })
    }
}

/// Probe payloads carry a nonce and a sequence number; this is the smallest that fits.
pub const MIN_PAYLOAD_BYTES: usize = 32;
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
pub const DEFAULT_PAYLOAD_BYTES: usize = 64;
pub const DEFAULT_DEGRADED_RTT: Duration = Duration::from_millis(100);
/// A probe run's `timeout` when none is given.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A duration as an MQTT interval in whole seconds (Will Delay Interval §3.1.3.2.2, Session
/// Expiry Interval §3.1.2.11.2): rounded up, so a client never asks for less than configured,
/// and capped at the four-byte maximum.
pub fn mqtt_seconds(d: Duration) -> u32 {
    d.as_secs_f64().ceil().min(f64::from(u32::MAX)) as u32
}

/// How long a will probe watches that a clean DISCONNECT sends no will, on top of the will
/// delay (`probe::will`). Mosquitto publishes a will within a millisecond of the socket
/// closing, so a will that is coming comes well within it.
pub const WILL_CLEAN_WATCH: Duration = Duration::from_secs(1);

/// How late a broker may send a delayed will: brokers check delayed wills on a one-second
/// tick (mosquitto 2.0.11 delivered `will_delay: 1s` in 1.7 s on average). A will probe's
/// timeout must hold the delay, this and [`WILL_CLEAN_WATCH`].
pub const WILL_DELAY_SLACK: Duration = Duration::from_secs(1);

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
    /// Bridge probes that publish on this broker (`probes:` entries of `kind: bridge`).
    pub bridge_probes: Vec<BridgeProbeConfig>,
    /// Probe topics are `<prefix>/<client-id>/<probe-name>`.
    pub probe_topic_prefix: String,
    /// A round trip slower than this makes the broker `degraded`.
    pub degraded_rtt: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 5 first; MQTT 3.1.1 for one session when the broker refuses 5 (the rule is in
    /// `mqtt::negotiate`; fresh clients follow the watching session through `Negotiated`).
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
pub struct Secret(pub(super) String);

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

impl BrokerConfig {
    /// Settings for a one-shot probe of `url` with `module` (`/probe`, `mqtt-sentinel probe`).
    pub fn for_oneshot(url: BrokerUrl, m: &ProbeModule) -> BrokerConfig {
        BrokerConfig {
            name: format!("{}:{}", url.host, url.port),
            url,
            protocol: m.protocol,
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
            bridge_probes: Vec::new(),
            probe_topic_prefix: "mqtt-sentinel".into(),
            degraded_rtt: m.degraded_rtt,
        }
    }
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
                    ProbeKind::Will { delay: Some(d) } => format!("will, will delay {d:?}"),
                    other => other.as_str().to_owned(),
                };
                let _ = writeln!(
                    s,
                    "      probe {}: {what} every {:?}, timeout {:?}",
                    pr.name, pr.interval, pr.timeout
                );
            }
            for br in &b.bridge_probes {
                let _ = writeln!(
                    s,
                    "      probe {}: bridge qos {} payload {} B, {:?} here -> {:?} on {} every {:?}, timeout {:?}",
                    br.name,
                    br.qos.label(),
                    br.payload_bytes,
                    br.topic,
                    br.remote_topic,
                    br.remote,
                    br.interval,
                    br.timeout
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
        let _ = writeln!(
            s,
            "rules: from {}, every {:?}",
            match &self.rules.files {
                None => super::DEFAULT_RULES_SOURCE.to_owned(),
                Some(f) if f.is_empty() => "no files".to_owned(),
                Some(f) => f
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
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
