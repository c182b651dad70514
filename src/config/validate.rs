//! The second stage: `raw` (what was written) into the checked types of `types`. The only
//! place that knows the defaults. Every error names the field path and, through the
//! [`Locator`], its line and column; a bad value is quoted unless it is a secret.
//! The `rules:` and `notify:` sections are validated in `alerting.rs`.

use super::locate::{Locator, Position};
use super::raw::{DurationText, RawBroker, RawConfig, RawModule, RawProbe, RawSys, RawTls};
use super::*;
use crate::sys::profile::ProfileSet;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The second stage's context: where the text came from (for errors), how to find a field's
/// position, what relative paths are relative to, and how `${VAR}` is answered.
pub(super) struct Validator<'a> {
    pub(super) source_name: &'a str,
    pub(super) locator: Locator,
    pub(super) base: &'a Path,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

/// The result of one validation step.
pub(super) type R<T> = Result<T, ConfigError>;

impl Validator<'_> {
    pub(super) fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
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
    pub(super) fn expand(&self, path: &str, value: &str, secret: bool) -> R<String> {
        expand_env(value, self.env).map_err(|why| {
            let shown = if secret {
                String::new()
            } else {
                format!(" in {value:?}")
            };
            self.err(path, format!("{why}{shown}"))
        })
    }

    pub(super) fn file(&self, path: &str, value: &str) -> R<PathBuf> {
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

    pub(super) fn duration(
        &self,
        path: &str,
        d: Option<&DurationText>,
        default: Duration,
    ) -> R<Duration> {
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

    pub(super) fn config(&self, raw: RawConfig) -> R<Config> {
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
        self.bridge_remotes(&brokers)?;
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

    pub(super) fn web(&self, raw: raw::RawWebSettings) -> R<WebSettings> {
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

    pub(super) fn qos(&self, path: &str, q: Option<u8>, default: Qos) -> R<Qos> {
        match q {
            None => Ok(default),
            Some(q) => Qos::from_u8(q)
                .ok_or_else(|| self.err(path, format!("invalid qos {q}: expected 0, 1 or 2"))),
        }
    }

    pub(super) fn payload_bytes(&self, path: &str, n: Option<usize>) -> R<usize> {
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

    pub(super) fn protocol(&self, path: &str, p: Option<&str>) -> R<Protocol> {
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
    pub(super) fn credentials(
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

    pub(super) fn module(&self, at: &str, raw: RawModule) -> R<ProbeModule> {
        let p = |field: &str| format!("{at}.{field}");
        let protocol = self.protocol(&p("protocol"), raw.protocol.as_deref())?;
        let (username, password) = self.credentials(
            at,
            raw.username.as_ref(),
            raw.password.as_ref(),
            raw.password_file.as_ref(),
            protocol,
        )?;
        let kind = self.probe_kind(
            at,
            raw.kind.as_deref(),
            raw.qos,
            raw.payload_bytes,
            raw.will_delay.as_ref(),
            true,
        )?;
        let timeout = self.duration(&p("timeout"), raw.timeout.as_ref(), DEFAULT_PROBE_TIMEOUT)?;
        if let ProbeKind::Will { delay: Some(delay) } = kind {
            self.will_delay_needs_v5(at, protocol)?;
            self.will_delay_fits(at, delay, timeout)?;
        }
        Ok(ProbeModule {
            kind,
            qos: self.qos(&p("qos"), raw.qos, Qos::AtLeastOnce)?,
            timeout,
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

    /// The `kind` of a probe (`brokers[].probes[]`) or of a `/probe` module (`module`: `qos`
    /// and `payload_bytes` are the module's own settings, allowed with any kind).
    fn probe_kind(
        &self,
        at: &str,
        kind: Option<&str>,
        qos: Option<u8>,
        payload_bytes: Option<usize>,
        will_delay: Option<&DurationText>,
        module: bool,
    ) -> R<ProbeKind> {
        let p = |field: &str| format!("{at}.{field}");
        let k = kind.unwrap_or("roundtrip");
        if will_delay.is_some() && k != "will" {
            return Err(self.err(
                &p("will_delay"),
                format!("will_delay applies to will probes only, not {k}"),
            ));
        }
        if k == "roundtrip" || module {
            qos.map(|q| self.qos(&p("qos"), Some(q), Qos::AtLeastOnce))
                .transpose()?;
            self.payload_bytes(&p("payload_bytes"), payload_bytes)?;
        } else if qos.is_some() || payload_bytes.is_some() {
            let field = if qos.is_some() {
                "qos"
            } else {
                "payload_bytes"
            };
            return Err(self.err(
                &p(field),
                format!("{field} applies to roundtrip probes only, not {k}"),
            ));
        }
        Ok(match k {
            "roundtrip" => ProbeKind::Roundtrip {
                qos: self.qos(&p("qos"), qos, Qos::AtLeastOnce)?,
                payload_bytes: self.payload_bytes(&p("payload_bytes"), payload_bytes)?,
            },
            "connect" => ProbeKind::Connect,
            "retained" => ProbeKind::Retained,
            "session" => ProbeKind::Session,
            "will" => ProbeKind::Will {
                delay: will_delay
                    .map(|d| self.duration(&p("will_delay"), Some(d), Duration::ZERO))
                    .transpose()?,
            },
            _ => {
                return Err(self.err(
                    &p("kind"),
                    format!(
                        "unknown probe kind {k:?}: expected {}{}",
                        ProbeKind::NAMES.join(", "),
                        // A bridge probe spans two brokers: not a `/probe` module kind.
                        if module { "" } else { ", bridge" }
                    ),
                ));
            }
        })
    }

    /// What a will probe of a broker needs: an `mqtt://` or `mqtts://` url (the probe speaks
    /// CONNECT itself to close its socket without DISCONNECT, which Paho cannot do: see
    /// `mqtt::will`), MQTT 5 for a will delay, and a timeout longer than the delay.
    fn will_probe(
        &self,
        at: &str,
        delay: Option<Duration>,
        url: &BrokerUrl,
        protocol: Protocol,
        timeout: Option<&DurationText>,
    ) -> R<()> {
        let p = |field: &str| format!("{at}.{field}");
        if url.transport.is_websocket() {
            return Err(self.err(
                &p("kind"),
                "will probes need an mqtt:// or mqtts:// broker url: the probe speaks MQTT itself over TCP or TLS to drop its connection without DISCONNECT (Paho always sends one)",
            ));
        }
        let Some(delay) = delay else { return Ok(()) };
        self.will_delay_needs_v5(at, protocol)?;
        let timeout = self.duration(&p("timeout"), timeout, DEFAULT_PROBE_TIMEOUT)?;
        self.will_delay_fits(at, delay, timeout)
    }

    /// A will run must fit in the probe's timeout, or a healthy broker fails every run with
    /// `timeout`: the will delay as the will client sends it (whole seconds, rounded up: the
    /// Will Delay Interval is a count of seconds, §3.1.3.2.2), plus [`WILL_DELAY_SLACK`] (a
    /// delayed will comes on the broker's next one-second tick: mosquitto 2.0.11 delivered
    /// `will_delay: 1s` in 1.7 s on average, and failed 3 runs of 5 with a 1.5 s timeout), plus
    /// [`WILL_CLEAN_WATCH`] (the watch that a clean DISCONNECT sends no will).
    fn will_delay_fits(&self, at: &str, delay: Duration, timeout: Duration) -> R<()> {
        let sent = Duration::from_secs(mqtt_seconds(delay).into());
        let needed = ProbeKind::Will { delay: Some(delay) }.shortest_run();
        if needed <= timeout {
            return Ok(());
        }
        let sent_as = if sent == delay {
            String::new()
        } else {
            format!(" (sent as {sent:?}: MQTT counts whole seconds)")
        };
        Err(self.err(
            &format!("{at}.will_delay"),
            format!(
                "will_delay {delay:?}{sent_as} needs a timeout of at least {needed:?} (the delay, 1s for the broker's tick, 1s watching a clean DISCONNECT); the probe's timeout is {timeout:?}"
            ),
        ))
    }

    /// A will delay is an MQTT 5 property (§3.1.3.2.2): refused with `protocol: v3.1.1`.
    fn will_delay_needs_v5(&self, at: &str, protocol: Protocol) -> R<()> {
        if protocol == Protocol::V311 {
            return Err(self.err(
                &format!("{at}.will_delay"),
                "will_delay needs MQTT 5: protocol v3.1.1 has no will delay",
            ));
        }
        Ok(())
    }

    /// A broker's `probes:`: the bridge probes (`kind: bridge`) apart from the others, whose
    /// names are unique across both.
    pub(super) fn probes(
        &self,
        at: &str,
        raw: Option<Vec<RawProbe>>,
        url: &BrokerUrl,
        protocol: Protocol,
    ) -> R<(Vec<ProbeConfig>, Vec<BridgeProbeConfig>)> {
        let Some(raw) = raw else {
            // The embedded default: one QoS 1 round trip every 10 s.
            return Ok((
                vec![ProbeConfig {
                    name: "rtt-qos1".into(),
                    kind: ProbeKind::Roundtrip {
                        qos: Qos::AtLeastOnce,
                        payload_bytes: DEFAULT_PAYLOAD_BYTES,
                    },
                    interval: Duration::from_secs(10),
                    timeout: Duration::from_secs(5),
                }],
                Vec::new(),
            ));
        };
        let mut out: Vec<ProbeConfig> = Vec::with_capacity(raw.len());
        let mut bridges: Vec<BridgeProbeConfig> = Vec::new();
        for (i, rp) in raw.into_iter().enumerate() {
            let at = format!("{at}[{i}]");
            let p = |field: &str| format!("{at}.{field}");
            let taken = |name: &str| {
                out.iter()
                    .map(|o| &o.name)
                    .chain(bridges.iter().map(|b| &b.name))
                    .position(|n| n == name)
            };
            if rp.kind.as_deref() == Some("bridge") {
                let b = self.bridge_probe(&at, i, rp)?;
                if let Some(j) = taken(&b.name) {
                    return Err(self.err(
                        &p("name"),
                        format!("duplicate probe name {:?} (also probes[{j}])", b.name),
                    ));
                }
                bridges.push(b);
                continue;
            }
            for (field, set) in [
                ("to", rp.to.is_some()),
                ("topic", rp.topic.is_some()),
                ("remote_topic", rp.remote_topic.is_some()),
            ] {
                if set {
                    return Err(self.err(
                        &p(field),
                        format!(
                            "{field} applies to bridge probes only, not {}",
                            rp.kind.as_deref().unwrap_or("roundtrip")
                        ),
                    ));
                }
            }
            let kind = self.probe_kind(
                &at,
                rp.kind.as_deref(),
                rp.qos,
                rp.payload_bytes,
                rp.will_delay.as_ref(),
                false,
            )?;
            if let ProbeKind::Will { delay } = kind {
                self.will_probe(&at, delay, url, protocol, rp.timeout.as_ref())?;
            }
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
            if let Some(j) = taken(&name) {
                return Err(self.err(
                    &p("name"),
                    format!("duplicate probe name {name:?} (also probes[{j}])"),
                ));
            }
            if let Some(clash) = client_id_clash(&out, &name, kind) {
                return Err(self.err(&p("name"), clash));
            }
            let default_interval = Duration::from_secs(match kind {
                ProbeKind::Roundtrip { .. } => 10,
                ProbeKind::Connect => 30,
                ProbeKind::Retained | ProbeKind::Session | ProbeKind::Will { .. } => 60,
            });
            out.push(ProbeConfig {
                name,
                kind,
                interval: self.duration(&p("interval"), rp.interval.as_ref(), default_interval)?,
                timeout: self.duration(
                    &p("timeout"),
                    rp.timeout.as_ref(),
                    DEFAULT_PROBE_TIMEOUT,
                )?,
            });
        }
        Ok((out, bridges))
    }

    /// One `kind: bridge` entry of a broker's `probes:` (entry `index`). `to` is checked
    /// against the other brokers by [`Self::bridge_remotes`] once all are read.
    fn bridge_probe(&self, at: &str, index: usize, rp: RawProbe) -> R<BridgeProbeConfig> {
        let p = |field: &str| format!("{at}.{field}");
        if rp.will_delay.is_some() {
            return Err(self.err(
                &p("will_delay"),
                "will_delay applies to will probes only, not bridge",
            ));
        }
        let name = match &rp.name {
            Some(n) if valid_name(n) => n.clone(),
            Some(n) => {
                return Err(self.err(
                    &p("name"),
                    format!("invalid probe name {n:?}: use 1-64 characters from A-Z a-z 0-9 - _"),
                ));
            }
            None => "bridge".to_owned(),
        };
        let remote = match &rp.to {
            Some(t) => self.expand(&p("to"), t, false)?,
            None => {
                return Err(self.err(
                    at,
                    "a bridge probe needs `to`: the name of the configured broker the bridge delivers to",
                ));
            }
        };
        let topic = match &rp.topic {
            Some(t) => self.topic_name(&p("topic"), t)?,
            None => {
                return Err(self.err(
                    at,
                    "a bridge probe needs `topic`: the topic it publishes here, one the bridge forwards",
                ));
            }
        };
        let remote_topic = match &rp.remote_topic {
            Some(t) => self.topic_name(&p("remote_topic"), t)?,
            None => topic.clone(),
        };
        Ok(BridgeProbeConfig {
            name,
            index,
            remote,
            topic,
            remote_topic,
            qos: self.qos(&p("qos"), rp.qos, Qos::AtLeastOnce)?,
            payload_bytes: self.payload_bytes(&p("payload_bytes"), rp.payload_bytes)?,
            interval: self.duration(
                &p("interval"),
                rp.interval.as_ref(),
                Duration::from_secs(10),
            )?,
            timeout: self.duration(&p("timeout"), rp.timeout.as_ref(), DEFAULT_PROBE_TIMEOUT)?,
        })
    }

    /// An MQTT topic name to publish to or subscribe to exactly: not empty, no wildcard
    /// (`+`, `#`: MQTT 5.0 §4.7.1, a topic name has none), no NUL, at most 65535 bytes.
    fn topic_name(&self, path: &str, t: &str) -> R<String> {
        let t = self.expand(path, t, false)?;
        if t.is_empty() || t.len() > 65_535 || t.contains(['+', '#', '\0']) {
            return Err(self.err(
                path,
                format!(
                    "invalid topic {t:?}: a topic name, not a filter (no + or #), 1-65535 bytes"
                ),
            ));
        }
        Ok(t)
    }

    /// Every bridge probe's `to` names another configured broker (`brokers[i].probes[k].to`
    /// in the error otherwise).
    pub(super) fn bridge_remotes(&self, brokers: &[BrokerConfig]) -> R<()> {
        for (i, b) in brokers.iter().enumerate() {
            for br in &b.bridge_probes {
                let at = format!("brokers[{i}].probes[{}].to", br.index);
                if br.remote == b.name {
                    return Err(self.err(
                        &at,
                        format!(
                            "a bridge probe goes from one broker to another: {:?} is the broker it is configured under",
                            br.remote
                        ),
                    ));
                }
                if !brokers.iter().any(|o| o.name == br.remote) {
                    let names: Vec<&str> = brokers.iter().map(|o| o.name.as_str()).collect();
                    return Err(self.err(
                        &at,
                        format!(
                            "unknown broker {:?}: expected one of {}",
                            br.remote,
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn log(&self, raw: raw::RawLog) -> R<LogConfig> {
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

    pub(super) fn broker(
        &self,
        at: &str,
        raw: RawBroker,
        profiles: &Arc<ProfileSet>,
    ) -> R<BrokerConfig> {
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
        if let Some(why) = url.unverifiable_by_paho()
            && !tls.as_ref().is_some_and(|t| t.insecure_skip_verify)
        {
            return Err(self.err(&p("url"), format!("url {url_text:?}: {why}")));
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
        let (probes, bridge_probes) = self.probes(&p("probes"), raw.probes, &url, protocol)?;
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
            bridge_probes,
            probe_topic_prefix,
            degraded_rtt,
        })
    }

    pub(super) fn url(&self, path: &str, text: &str) -> R<BrokerUrl> {
        parse_broker_url(text).map_err(|m| self.err(path, m))
    }

    pub(super) fn tls(&self, at: &str, raw: RawTls) -> R<TlsConfig> {
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

    pub(super) fn sys(&self, at: &str, raw: RawSys, profiles: &Arc<ProfileSet>) -> R<SysConfig> {
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

/// Why a probe `name` of `kind` cannot join `earlier` (the broker's probes before it): one of
/// its clients would connect with an id one of theirs uses ([`ProbeKind::client_roles`]), and
/// a broker closes the older connection of two with one client id (MQTT 5.0 §3.1.4-3,
/// 3.1.1 §3.1.4-2), failing both probes. Ids are compared without the watching session's
/// id, which all of a broker's probes share.
fn client_id_clash(earlier: &[ProbeConfig], name: &str, kind: ProbeKind) -> Option<String> {
    for (j, o) in earlier.iter().enumerate() {
        for mine in kind.client_roles() {
            for theirs in o.kind.client_roles() {
                if mine.id(name) == theirs.id(&o.name) {
                    return Some(format!(
                        "probe {name:?} ({}) would connect as client id <id>-{}, which probes[{j}] {:?} ({}) also uses: rename one of them",
                        kind.as_str(),
                        mine.id(name),
                        o.name,
                        o.kind.as_str(),
                    ));
                }
            }
        }
    }
    None
}

/// Names of probes and modules: safe in topics, labels and URLs.
pub(super) fn valid_name(n: &str) -> bool {
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
