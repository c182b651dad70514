//! The `rules:` and `notify:` sections: rule file patterns are resolved to files here (the
//! files themselves are parsed by `rules::file`, which `check`, start-up and every reload call
//! before anything is applied); receivers get their secrets read and routes their receiver
//! names resolved.

use super::raw::{RawNotify, RawReceiver, RawRoute, RawRules};
use super::watched::{Parser, WatchedFile};
use super::{R, Secret, SecretSource, Validator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The embedded default rules: `alerts/mqtt-sentinel.rules.yml` as shipped.
pub const DEFAULT_RULES: &str = include_str!("../../alerts/mqtt-sentinel.rules.yml");
/// The name errors and `check` give [`DEFAULT_RULES`].
pub const DEFAULT_RULES_SOURCE: &str = "<embedded alerts/mqtt-sentinel.rules.yml>";

#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// The rule files `rules.files` matched, pattern by pattern (each pattern's matches
    /// sorted), no file twice; `None` when `files` is not set: the embedded [`DEFAULT_RULES`].
    /// `rules::file::load_configured` reads them.
    pub files: Option<Vec<PathBuf>>,
    pub evaluation_interval: Duration,
    /// Where active alerts are kept across restarts (`None`: not kept).
    pub state_file: Option<std::path::PathBuf>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    Webhook,
    Alertmanager,
    Slack,
    Teams,
    Discord,
    Pagerduty,
}

impl ReceiverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Alertmanager => "alertmanager",
            ReceiverKind::Slack => "slack",
            ReceiverKind::Teams => "teams",
            ReceiverKind::Discord => "discord",
            ReceiverKind::Pagerduty => "pagerduty",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
    /// Where to POST, complete (`/api/v2/alerts` appended for Alertmanager). May carry a
    /// token (Slack, Teams, Discord URLs do), so it is a secret; a `url_file` is read as it
    /// is at each delivery attempt.
    pub url: SecretSource,
    pub headers: Vec<(String, Secret)>,
    pub send_resolved: bool,
    /// Standard Webhooks signing key (bytes, after `whsec_` base64 decoding).
    /// Read as the file is at each delivery attempt.
    pub signing_key: Option<WatchedFile<super::signing::SigningKey>>,
    /// PagerDuty's integration key; a `routing_key_file` is read as it is at each dispatch.
    pub routing_key: Option<SecretSource>,
    pub timeout: Duration,
    pub max_attempts: u32,
}

/// An Alertmanager-style matcher: `name op "value"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    pub regex: Option<regex::Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

impl Matcher {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Index into `NotifyConfig::receivers`.
    pub receiver: usize,
    pub matchers: Vec<Matcher>,
    pub group_by: Vec<String>,
    pub continue_: bool,
    pub routes: Vec<Route>,
}

impl Route {
    /// Receivers for an alert: the first matching child (or every one up to and including the
    /// first without `continue`), else this route's own receiver. Alertmanager's rule. Each
    /// comes with its `group_by` and its route key (`{}/{severity="page"}`), which prefixes
    /// the group key as in Alertmanager.
    pub fn receivers(&self, labels: &BTreeMap<String, String>, out: &mut Vec<Target>) {
        self.walk(labels, "{}", out)
    }

    fn walk(&self, labels: &BTreeMap<String, String>, key: &str, out: &mut Vec<Target>) {
        let before = out.len();
        for r in &self.routes {
            if r.matchers.iter().all(|m| m.matches(labels)) {
                r.walk(
                    labels,
                    &format!("{key}/{}", matchers_string(&r.matchers)),
                    out,
                );
                if !r.continue_ {
                    break;
                }
            }
        }
        if out.len() == before {
            out.push(Target {
                receiver: self.receiver,
                group_by: self.group_by.clone(),
                route_key: key.to_string(),
            });
        }
    }
}

/// Where one alert goes: see [`Route::receivers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub receiver: usize,
    pub group_by: Vec<String>,
    pub route_key: String,
}

/// Alertmanager's `Matchers.String()`: sorted, `{name="v",other=~"re"}`.
fn matchers_string(ms: &[Matcher]) -> String {
    let mut parts: Vec<String> = ms
        .iter()
        .map(|m| {
            let op = match m.op {
                MatchOp::Eq => "=",
                MatchOp::Ne => "!=",
                MatchOp::Re => "=~",
                MatchOp::NotRe => "!~",
            };
            format!("{}{op}{:?}", m.name, m.value)
        })
        .collect();
    parts.sort();
    format!("{{{}}}", parts.join(","))
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub receivers: Vec<Receiver>,
    /// `None` when no receiver is configured: alerts are evaluated and exported only.
    pub route: Option<Route>,
    pub repeat_interval: Duration,
    pub resend_delay: Duration,
    pub queue_capacity: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            receivers: vec![],
            route: None,
            repeat_interval: Duration::from_secs(4 * 3600),
            resend_delay: Duration::from_secs(60),
            queue_capacity: 1000,
        }
    }
}

impl Validator<'_> {
    pub(super) fn rules(&self, raw: RawRules) -> R<RulesConfig> {
        let evaluation_interval = self.duration(
            "rules.evaluation_interval",
            raw.evaluation_interval.as_ref(),
            Duration::from_secs(15),
        )?;
        let state_file = match &raw.state_file {
            None => None,
            Some(f) => {
                let expanded = self.expand("rules.state_file", f, false)?;
                let p = self.base.join(&expanded);
                // The file itself may not exist yet; its directory must.
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                if !dir.is_dir() {
                    return Err(self.err(
                        "rules.state_file",
                        format!("directory of {expanded:?} does not exist"),
                    ));
                }
                Some(p)
            }
        };
        let files = match raw.files {
            None => None,
            Some(patterns) => {
                let mut files: Vec<PathBuf> = vec![];
                // The same files by their canonical names: `a.yml`, `./x/../a.yml` and a
                // symlink to it are one file.
                let mut real: Vec<PathBuf> = vec![];
                for (i, pat) in patterns.iter().enumerate() {
                    let at = format!("rules.files[{i}]");
                    let expanded = self.expand(&at, pat, false)?;
                    for f in glob_files(&self.base.join(&expanded)).map_err(|e| self.err(&at, e))? {
                        let canonical = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
                        // Its groups would be loaded twice.
                        if let Some(j) = real.iter().position(|r| *r == canonical) {
                            let alias = if files[j] == f {
                                String::new()
                            } else {
                                format!(" (as {})", files[j].display())
                            };
                            return Err(self.err(
                                &at,
                                format!(
                                    "{} is matched by an earlier pattern too{alias}",
                                    f.display()
                                ),
                            ));
                        }
                        real.push(canonical);
                        files.push(f);
                    }
                }
                Some(files)
            }
        };
        let external_labels = raw.external_labels.unwrap_or_default();
        for k in external_labels.keys() {
            if !k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(self.err(
                    &format!("rules.external_labels.{k}"),
                    format!("invalid label name {k:?}"),
                ));
            }
        }
        Ok(RulesConfig {
            files,
            evaluation_interval,
            state_file,
            external_labels,
            external_url: raw.external_url.unwrap_or_default(),
        })
    }

    pub(super) fn notify(&self, raw: RawNotify) -> R<NotifyConfig> {
        let d = NotifyConfig::default();
        let mut receivers: Vec<Receiver> = vec![];
        for (i, r) in raw.receivers.unwrap_or_default().into_iter().enumerate() {
            let at = format!("notify.receivers[{i}]");
            let rc = self.receiver(&at, r)?;
            if receivers.iter().any(|o| o.name == rc.name) {
                return Err(self.err(
                    &format!("{at}.name"),
                    format!("duplicate receiver name {:?}", rc.name),
                ));
            }
            receivers.push(rc);
        }
        let route = match raw.route {
            Some(r) => Some(self.route("notify.route", r, &receivers, None)?),
            None if receivers.len() == 1 => Some(Route {
                receiver: 0,
                matchers: vec![],
                group_by: vec!["alertname".into()],
                continue_: false,
                routes: vec![],
            }),
            None if receivers.is_empty() => None,
            None => {
                return Err(self.err(
                    "notify.route",
                    "with several receivers, set route.receiver (and routes) to say who gets what",
                ));
            }
        };
        let queue_capacity = raw.queue_capacity.unwrap_or(d.queue_capacity);
        if queue_capacity == 0 {
            return Err(self.err("notify.queue_capacity", "must be at least 1"));
        }
        Ok(NotifyConfig {
            receivers,
            route,
            repeat_interval: self.duration(
                "notify.repeat_interval",
                raw.repeat_interval.as_ref(),
                d.repeat_interval,
            )?,
            resend_delay: self.duration(
                "notify.resend_delay",
                raw.resend_delay.as_ref(),
                d.resend_delay,
            )?,
            queue_capacity,
        })
    }

    /// `field` or `field_file`; a file's text is trimmed and checked by `check` (which must
    /// not quote it) when loaded and at each later change.
    fn secret_value(
        &self,
        at: &str,
        field: &str,
        value: Option<&String>,
        file: Option<&String>,
        check: fn(String) -> Result<String, String>,
    ) -> R<Option<SecretSource>> {
        let p = |f: &str| format!("{at}.{f}");
        match (value, file) {
            (Some(_), Some(_)) => Err(self.err(
                &p(&format!("{field}_file")),
                format!("set either {field} or {field}_file, not both"),
            )),
            (Some(v), None) => {
                let v =
                    check(self.expand(&p(field), v, true)?).map_err(|e| self.err(&p(field), e))?;
                Ok(Some(SecretSource::Inline(Secret::new(v))))
            }
            (None, Some(f)) => {
                let parse: Parser<Secret> = Arc::new(move |b: &[u8]| {
                    super::watched::text_secret(b)
                        .and_then(check)
                        .map(Secret::new)
                });
                Ok(Some(SecretSource::File(self.watched_file(
                    &p(&format!("{field}_file")),
                    f,
                    parse,
                )?)))
            }
            (None, None) => Ok(None),
        }
    }

    fn receiver(&self, at: &str, r: RawReceiver) -> R<Receiver> {
        let p = |f: &str| format!("{at}.{f}");
        let name = r.name.clone().unwrap_or_default();
        if !super::valid_name(&name) {
            return Err(self.err(
                &p("name"),
                format!("invalid receiver name {name:?}: use 1-64 characters from A-Z a-z 0-9 - _"),
            ));
        }
        let kind = match r.kind.as_deref() {
            Some("webhook") => ReceiverKind::Webhook,
            Some("alertmanager") => ReceiverKind::Alertmanager,
            Some("slack") => ReceiverKind::Slack,
            Some("teams") => ReceiverKind::Teams,
            Some("discord") => ReceiverKind::Discord,
            Some("pagerduty") => ReceiverKind::Pagerduty,
            other => {
                return Err(self.err(
                    &p("type"),
                    format!("unknown receiver type {:?}: use webhook, alertmanager, slack, teams, discord or pagerduty", other.unwrap_or("")),
                ));
            }
        };
        let check_url: fn(String) -> Result<String, String> = match kind {
            ReceiverKind::Alertmanager => {
                |u| http_url(format!("{}/api/v2/alerts", u.trim_end_matches('/')))
            }
            _ => http_url,
        };
        let url =
            match self.secret_value(at, "url", r.url.as_ref(), r.url_file.as_ref(), check_url)? {
                Some(u) => u,
                None if kind == ReceiverKind::Pagerduty => {
                    SecretSource::Inline(Secret::new("https://events.pagerduty.com/v2/enqueue"))
                }
                None => return Err(self.err(&p("url"), "set url or url_file")),
            };
        let routing_key = self.secret_value(
            at,
            "routing_key",
            r.routing_key.as_ref(),
            r.routing_key_file.as_ref(),
            Ok,
        )?;
        if kind == ReceiverKind::Pagerduty && routing_key.is_none() {
            return Err(self.err(
                &p("routing_key"),
                "a pagerduty receiver needs routing_key or routing_key_file",
            ));
        }
        let signing_key = match &r.signing_secret_file {
            None => None,
            Some(f) => Some(self.watched_file(
                &p("signing_secret_file"),
                f,
                Arc::new(|b: &[u8]| {
                    super::watched::text_secret(b).and_then(|t| super::signing::decode_secret(&t))
                }),
            )?),
        };
        let mut headers = vec![];
        for (k, v) in r.headers.unwrap_or_default() {
            let at = p(&format!("headers.{k}"));
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(self.err(&at, format!("invalid header name {k:?}")));
            }
            let v = self.expand(&at, &v, true)?;
            if reqwest::header::HeaderValue::from_str(&v).is_err() {
                return Err(self.err(&at, "invalid header value"));
            }
            headers.push((k, Secret::new(v)));
        }
        let max_attempts = r.max_attempts.unwrap_or(5);
        if !(1..=20).contains(&max_attempts) {
            return Err(self.err(&p("max_attempts"), "must be between 1 and 20"));
        }
        Ok(Receiver {
            name,
            kind,
            url,
            headers,
            send_resolved: r.send_resolved.unwrap_or(true),
            signing_key,
            routing_key,
            timeout: self.duration(&p("timeout"), r.timeout.as_ref(), Duration::from_secs(10))?,
            max_attempts,
        })
    }

    fn route(
        &self,
        at: &str,
        r: RawRoute,
        receivers: &[Receiver],
        parent: Option<&Route>,
    ) -> R<Route> {
        let p = |f: &str| format!("{at}.{f}");
        let receiver = match (&r.receiver, parent) {
            (Some(name), _) => receivers
                .iter()
                .position(|x| &x.name == name)
                .ok_or_else(|| self.err(&p("receiver"), format!("unknown receiver {name:?}")))?,
            (None, Some(parent)) => parent.receiver,
            (None, None) => {
                return Err(self.err(&p("receiver"), "the top-level route needs a receiver"));
            }
        };
        let mut matchers = vec![];
        for (i, m) in r.matchers.unwrap_or_default().iter().enumerate() {
            matchers
                .push(parse_matcher(m).map_err(|e| self.err(&format!("{at}.matchers[{i}]"), e))?);
        }
        let group_by = r
            .group_by
            .or_else(|| parent.map(|p| p.group_by.clone()))
            .unwrap_or_else(|| vec!["alertname".into()]);
        let mut route = Route {
            receiver,
            matchers,
            group_by,
            continue_: r.continue_.unwrap_or(false),
            routes: vec![],
        };
        let mut children = vec![];
        for (i, c) in r.routes.unwrap_or_default().into_iter().enumerate() {
            children.push(self.route(&format!("{at}.routes[{i}]"), c, receivers, Some(&route))?);
        }
        route.routes = children;
        Ok(route)
    }
}

/// `severity="critical"`, `team=~"db|mq"`, `env!=dev`.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    let re = regex::Regex::new(r#"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$"#)
        .map_err(|e| e.to_string())?;
    let c = re
        .captures(text)
        .ok_or_else(|| format!("bad matcher {text:?}: expected name=\"value\" (=, !=, =~, !~)"))?;
    let raw = &c[3];
    let value = if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        serde_json::from_str::<String>(raw).map_err(|_| format!("bad quoted value in {text:?}"))?
    } else {
        raw.to_string()
    };
    let op = match &c[2] {
        "=" => MatchOp::Eq,
        "!=" => MatchOp::Ne,
        "=~" => MatchOp::Re,
        _ => MatchOp::NotRe,
    };
    let regex = match op {
        MatchOp::Re | MatchOp::NotRe => Some(
            regex::Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("bad regex in {text:?}: {e}"))?,
        ),
        _ => None,
    };
    Ok(Matcher {
        name: c[1].to_string(),
        op,
        value,
        regex,
    })
}

/// An http:// or https:// URL; the error does not quote it (it may hold a token).
fn http_url(u: String) -> Result<String, String> {
    match url::Url::parse(&u) {
        Ok(p) if p.scheme() == "http" || p.scheme() == "https" => Ok(u),
        _ => Err("not an http:// or https:// URL".into()),
    }
}

/// Files matching `pattern` (a path, or a glob in its last components), sorted. A pattern
/// without glob characters must name an existing file; a glob may match nothing.
pub fn glob_files(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return if pattern.is_file() {
            Ok(vec![pattern.to_path_buf()])
        } else {
            Err(format!("{text}: no such rule file"))
        };
    }
    let mut out: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| format!("{text}: bad glob: {e}"))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}
