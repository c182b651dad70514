//! The live rule engine: every `evaluation_interval` it snapshots our own registry into the
//! history (a stale marker for each series that vanished, as a Prometheus scrape would write),
//! evaluates the groups that are due, hands firing/resolved alerts to the notification
//! dispatcher (which only enqueues), and trims the history to what the rules can read back.
//!
//! Group state sits behind a std `Mutex` that is never held across an `.await`; the HTTP API
//! and [`AlertsCollector`] read it.

use super::alert::{AlertState, Context, GroupState};
use super::eval;
use super::series::{Labels, METRIC_NAME, Storage, stale_nan};
use crate::config::{NotifyConfig, RulesConfig};
use crate::exposition::{self, Format};
use crate::metrics::{RuleGroupLabels, RulesMetrics};
use crate::notify::queue::Queues;
use crate::notify::{Dispatcher, now_ms};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Rule groups and their alerts, shared with the HTTP API and the collector.
#[derive(Clone, Debug, Default)]
pub struct SharedGroups(Arc<Mutex<Vec<GroupState>>>);

impl SharedGroups {
    pub fn new(groups: Vec<GroupState>) -> Self {
        SharedGroups(Arc::new(Mutex::new(groups)))
    }

    /// Fresh state (no alerts yet) for every group the configuration loaded.
    pub fn from_config(cfg: &RulesConfig) -> Self {
        Self::new(
            cfg.groups
                .iter()
                .cloned()
                .map(|g| GroupState::new(g, cfg.evaluation_interval))
                .collect(),
        )
    }

    /// A poisoned lock only means a panic elsewhere; the data is still consistent enough to
    /// read, so keep serving it.
    pub fn lock(&self) -> MutexGuard<'_, Vec<GroupState>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `mqtt_sentinel_alerts{alertname, alertstate, …}`: our `ALERTS`, 1 per pending or firing alert.
#[derive(Debug)]
pub struct AlertsCollector(pub SharedGroups);

impl Collector for AlertsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let groups = self.0.lock();
        let mut rows: Vec<Vec<(String, String)>> = vec![];
        for g in groups.iter() {
            for r in &g.rules {
                for a in r.active.values() {
                    if a.state == AlertState::Inactive {
                        continue;
                    }
                    let mut l: Vec<(String, String)> = a
                        .labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    l.push(("alertstate".into(), a.state.as_str().into()));
                    rows.push(l);
                }
            }
        }
        drop(groups);
        if rows.is_empty() {
            return Ok(());
        }
        let mut me = encoder.encode_descriptor(
            "mqtt_sentinel_alerts",
            "Pending and firing alerts of the built-in rule engine (Prometheus' ALERTS), always 1",
            None,
            MetricType::Gauge,
        )?;
        let one = prometheus_client::metrics::gauge::ConstGauge::new(1i64);
        for l in rows {
            let fe = me.encode_family(&l)?;
            one.encode(fe)?;
        }
        Ok(())
    }
}

/// Splits a sample line into its series key (`name{labels}`, exactly as written) and its
/// value token; `None` for comments, blank and malformed lines.
fn split_sample(line: &str) -> Option<(&str, &str)> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let b = line.as_bytes();
    let mut i = line.find(['{', ' '])?;
    if b[i] == b'{' {
        let mut quoted = false;
        loop {
            i += 1;
            match (b.get(i)?, quoted) {
                (b'\\', true) => i += 1,
                (b'"', _) => quoted = !quoted,
                (b'}', false) => break,
                _ => {}
            }
        }
        i += 1;
    }
    let value = line[i..].split_whitespace().next()?;
    Some((&line[..i], value))
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        x => x.parse().ok(),
    }
}

/// `name{a="b",…}` → labels (with `__name__`).
fn parse_key(key: &str) -> Option<Labels> {
    let (name, rest) = match key.find('{') {
        Some(i) => (&key[..i], key[i + 1..].strip_suffix('}')?),
        None => (key, ""),
    };
    let mut pairs = vec![(METRIC_NAME.to_string(), name.to_string())];
    let mut chars = rest.char_indices().peekable();
    loop {
        while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
            chars.next();
        }
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let eq = rest[start..].find('=')? + start;
        let label = rest[start..eq].to_string();
        while chars.peek().is_some_and(|(i, _)| *i <= eq) {
            chars.next();
        }
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()?.1 {
                '"' => break,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        }
        pairs.push((label, value));
    }
    Some(Labels::new(pairs))
}

/// How far back each metric name is read by any rule (plus one interval of slack).
fn retention(groups: &[GroupState], slack_ms: i64) -> (HashMap<String, i64>, Option<i64>) {
    let mut r: HashMap<Option<String>, i64> = HashMap::new();
    for g in groups {
        for rule in &g.rules {
            eval::retention(&rule.rule.expr, &mut r);
        }
    }
    let any = r.remove(&None).map(|v| v + slack_ms);
    (
        r.into_iter()
            .filter_map(|(k, v)| k.map(|k| (k, v + slack_ms)))
            .collect(),
        any,
    )
}

/// A reloaded configuration for the engine; `done` receives how many rules kept their state.
pub struct Update {
    pub rules: RulesConfig,
    pub notify: NotifyConfig,
    pub queues: Option<Queues>,
    pub done: tokio::sync::oneshot::Sender<usize>,
}

pub struct Engine {
    groups: SharedGroups,
    storage: Storage,
    /// Series ids by exposition line key (`name{labels}` as our encoder writes it), `None`
    /// for series no rule reads: a known line costs one hash lookup, no label parsing.
    lines: FxHashMap<Arc<str>, Option<u32>>,
    /// The last snapshot's lines in order: a registry encodes its series in the same order
    /// every time, so the key at the same position usually matches (one comparison, no hash).
    order: Vec<(Arc<str>, Option<u32>)>,
    lines_generation: u64,
    /// Sample lines in the last snapshot (read or not): the cache's natural size.
    lines_last: usize,
    /// Ids ingested by the last snapshot (the others are recording-rule output).
    present: Vec<u32>,
    ctx: Context,
    dispatcher: Dispatcher,
    queues: Option<Queues>,
    metrics: RulesMetrics,
    interval: std::time::Duration,
    by_name: HashMap<String, i64>,
    any_name: Option<i64>,
    /// `rules.state_file`, and whether it was read (once, at the first configuration).
    state_file: Option<std::path::PathBuf>,
    state_read: bool,
    state_warned: bool,
}

impl Engine {
    pub fn new(
        cfg: &RulesConfig,
        notify: NotifyConfig,
        groups: SharedGroups,
        queues: Option<Queues>,
        metrics: RulesMetrics,
    ) -> Self {
        let slack = cfg.evaluation_interval.as_millis() as i64;
        let (by_name, any_name) = retention(&groups.lock(), slack);
        for g in groups.lock().iter() {
            metrics.init_rule_group(&format!("{};{}", g.file, g.name));
        }
        Engine {
            groups,
            storage: Storage::new(),
            lines: FxHashMap::default(),
            order: Vec::new(),
            lines_generation: 0,
            lines_last: 0,
            present: Vec::new(),
            ctx: Context {
                external_labels: cfg.external_labels.clone().into(),
                external_url: cfg.external_url.clone().into(),
            },
            dispatcher: Dispatcher::new(
                notify,
                cfg.external_labels.clone(),
                cfg.external_url.clone(),
                cfg.evaluation_interval,
            ),
            queues,
            metrics,
            interval: cfg.evaluation_interval,
            by_name,
            any_name,
            state_file: cfg.state_file.clone(),
            state_read: false,
            state_warned: false,
        }
    }

    /// Write the active alerts to `rules.state_file`; a failure is logged once, never fatal.
    fn save_state(&mut self, now: i64) {
        let Some(path) = &self.state_file else { return };
        match super::state::save(&self.groups.lock(), path, now) {
            Ok(()) => self.state_warned = false,
            Err(e) if !self.state_warned => {
                self.state_warned = true;
                warn!(state_file = %path.display(), error = %e, "cannot write the alert state file; alerts will restart from scratch after a restart");
            }
            Err(_) => {}
        }
    }

    /// Appends one snapshot of exposition text at `now` (ms): only series some rule can read
    /// are kept; series of the last snapshot missing from this one get a stale marker.
    pub fn ingest(&mut self, text: &str, now: i64) {
        let generation = self.storage.generation();
        if generation != self.lines_generation || self.lines.len() > 2 * self.lines_last + 4096 {
            // Ids were reused, or vanished series piled up: rebuild from this snapshot.
            self.lines.clear();
            self.order.clear();
            self.lines_generation = generation;
        }
        let mut seen = Vec::with_capacity(self.present.len());
        self.lines_last = 0;
        for (key, value) in text.lines().filter_map(split_sample) {
            let at = self.lines_last;
            self.lines_last += 1;
            let id = match self.order.get(at) {
                Some((k, id)) if **k == *key => *id,
                _ => {
                    let (k, id) = match self.lines.get_key_value(key) {
                        Some((k, id)) => (k.clone(), *id),
                        None => {
                            let id = parse_key(key).and_then(|l| {
                                let wanted =
                                    self.any_name.is_some() || self.by_name.contains_key(l.name());
                                wanted.then(|| self.storage.id(&l))
                            });
                            let k: Arc<str> = key.into();
                            self.lines.insert(k.clone(), id);
                            (k, id)
                        }
                    };
                    if at < self.order.len() {
                        self.order[at] = (k, id);
                    } else {
                        self.order.push((k, id));
                    }
                    id
                }
            };
            if let (Some(id), Some(v)) = (id, parse_value(value)) {
                self.storage.append_id(id, now, v);
                seen.push(id);
            }
        }
        self.order.truncate(self.lines_last);
        for &id in &self.present {
            if self.storage.newest(id).is_some_and(|t| t < now) {
                self.storage.append_id(id, now, stale_nan());
            }
        }
        self.present = seen;
    }

    /// Bytes of compressed samples held in the history.
    pub fn history_bytes(&self) -> usize {
        self.storage.chunk_bytes()
    }

    /// Samples held in the history.
    pub fn history_samples(&self) -> usize {
        self.storage.sample_count()
    }

    /// Evaluates the due groups at `now` and dispatches notifications.
    pub fn evaluate(&mut self, now: i64) {
        let mut groups = self.groups.lock();
        for g in groups.iter_mut() {
            let due = g
                .last_eval
                .is_none_or(|t| now - t + 50 >= g.interval.as_millis() as i64);
            if !due {
                continue;
            }
            let failures = g.eval(&mut self.storage, now, &self.ctx);
            let l = RuleGroupLabels {
                rule_group: format!("{};{}", g.file, g.name),
            };
            self.metrics
                .evaluations
                .get_or_create(&l)
                .inc_by(g.rules.len() as u64);
            if failures > 0 {
                self.metrics
                    .evaluation_failures
                    .get_or_create(&l)
                    .inc_by(failures as u64);
                for r in g.rules.iter().filter(|r| r.last_error.is_some()) {
                    warn!(group = %g.name, rule = %r.rule.name, error = r.last_error.as_deref().unwrap_or(""), "rule evaluation failed");
                }
            }
            self.metrics
                .evaluation_duration
                .get_or_create(&l)
                .set(g.eval_seconds);
        }
        let alerts: Vec<&super::alert::Alert> = groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .flat_map(|r| r.active.values())
            .collect();
        let out = self.dispatcher.dispatch(&alerts, now);
        drop(groups);
        if let Some(q) = &self.queues {
            for (r, job) in out {
                q.push(r, job);
            }
        }
        let (by_name, any, interval) = (
            &self.by_name,
            self.any_name,
            self.interval.as_millis() as i64,
        );
        self.storage
            .trim(|name| now - by_name.get(name).copied().or(any).unwrap_or(interval));
        self.metrics
            .history_samples
            .set(self.storage.sample_count() as i64);
        self.save_state(now);
    }

    /// Swap in a reloaded configuration. Groups with the same file and name keep the state
    /// (active alerts with their `activeAt`, `for` progress, health, recording-rule series) of
    /// every rule whose definition did not change, as Prometheus does on reload; receivers
    /// with the same name keep what was already notified, so an alert that fires on through
    /// a reload is not announced again. Returns how many rules kept their state.
    pub fn reload(
        &mut self,
        cfg: &RulesConfig,
        notify: NotifyConfig,
        queues: Option<Queues>,
    ) -> usize {
        let mut old = std::mem::take(&mut *self.groups.lock());
        let mut kept = 0;
        let mut new: Vec<GroupState> = cfg
            .groups
            .iter()
            .cloned()
            .map(|g| GroupState::new(g, cfg.evaluation_interval))
            .collect();
        for g in &mut new {
            if let Some(o) = old
                .iter_mut()
                .find(|o| o.file == g.file && o.name == g.name)
            {
                kept += g.inherit(o);
            }
        }
        for o in &old {
            if !new.iter().any(|g| g.file == o.file && g.name == o.name) {
                self.metrics
                    .forget_rule_group(&format!("{};{}", o.file, o.name));
            }
        }
        for g in &new {
            self.metrics
                .init_rule_group(&format!("{};{}", g.file, g.name));
        }
        self.state_file = cfg.state_file.clone();
        if !self.state_read {
            self.state_read = true;
            if let Some(path) = &self.state_file {
                match super::state::restore(&mut new, path, now_ms()) {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(state_file = %path.display(), alerts = n, "restored pending and firing alerts from the last run");
                        kept += n;
                    }
                    Err(e) => warn!(error = %e, "alert state not restored"),
                }
            }
        }
        let slack = cfg.evaluation_interval.as_millis() as i64;
        (self.by_name, self.any_name) = retention(&new, slack);
        *self.groups.lock() = new;
        self.ctx = Context {
            external_labels: cfg.external_labels.clone().into(),
            external_url: cfg.external_url.clone().into(),
        };
        let dispatcher = Dispatcher::new(
            notify,
            cfg.external_labels.clone(),
            cfg.external_url.clone(),
            cfg.evaluation_interval,
        );
        let old = std::mem::replace(&mut self.dispatcher, dispatcher);
        self.dispatcher.inherit(old);
        self.queues = queues;
        self.interval = cfg.evaluation_interval;
        kept
    }

    /// Runs until `shutdown`: snapshot our registry, evaluate, repeat; `updates` brings
    /// reloaded configurations (answered on their channel once applied).
    pub async fn run(
        mut self,
        registry: Arc<Registry>,
        mut updates: tokio::sync::mpsc::Receiver<Update>,
        shutdown: CancellationToken,
    ) {
        let new_tick = |every| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let mut tick = new_tick(self.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(u) = updates.recv() => {
                    let before = self.interval;
                    let kept = self.reload(&u.rules, u.notify, u.queues);
                    if self.interval != before {
                        tick = new_tick(self.interval);
                    }
                    let _ = u.done.send(kept);
                    continue;
                }
                _ = shutdown.cancelled() => {
                    self.save_state(now_ms());
                    return;
                }
            }
            if self.groups.lock().is_empty() {
                continue; // nothing reads the history
            }
            let now = now_ms();
            match exposition::encode(&registry, Format::OpenMetrics) {
                Ok(text) => self.ingest(&text, now),
                Err(e) => warn!(error = %e, "cannot snapshot our own metrics for the rules"),
            }
            self.evaluate(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines() {
        let s: Vec<(Labels, f64)> = "# HELP x y\nmqtt_up{broker=\"a \\\"b\\\"\",x=\"1\"} 1\nfoo_total 3.5 1700000000\nbar{le=\"+Inf\"} +Inf\n# EOF\n"
            .lines()
            .filter_map(split_sample)
            .filter_map(|(k, v)| Some((parse_key(k)?, parse_value(v)?)))
            .collect();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].0.to_string(), r#"mqtt_up{broker="a \"b\"", x="1"}"#);
        assert_eq!(s[1].1, 3.5);
        assert_eq!(s[2].1, f64::INFINITY);
    }

    #[test]
    fn ingest_keeps_read_series_marks_vanished_stale_and_reuses_keys() {
        let groups = super::super::file::parse(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n",
            "t.yml",
        )
        .expect("rules");
        let cfg = RulesConfig {
            groups,
            sources: vec![],
            evaluation_interval: std::time::Duration::from_secs(15),
            state_file: None,
            external_labels: Default::default(),
            external_url: String::new(),
        };
        let shared = SharedGroups::from_config(&cfg);
        let mut reg = Registry::default();
        let m = RulesMetrics::register(&mut reg);
        let mut e = Engine::new(&cfg, NotifyConfig::default(), shared, None, m);
        let up = Labels::from_pairs([("__name__", "up"), ("a", "1")]);
        let unread = "other_metric 5\nother_metric{x=\"}\\\"{\"} 6\n";
        e.ingest(
            &format!("# TYPE up gauge\nup{{a=\"1\"}} 1\n{unread}# EOF\n"),
            1000,
        );
        e.ingest(&format!("up{{a=\"1\"}} 0\n{unread}"), 2000);
        assert_eq!(
            e.history_samples(),
            2,
            "only the series a rule reads is kept"
        );
        assert!(e.storage.is_live(&up));
        assert_eq!(e.lines.len(), 3, "one key per line, read or not");
        e.ingest(unread, 3000);
        assert!(!e.storage.is_live(&up), "vanished: stale marker");
        assert_eq!(e.history_samples(), 3);
        assert_eq!(e.lines.len(), 3, "the key cache survives snapshots");
        // the same lines in another order still land on their own series
        let a = Labels::from_pairs([("__name__", "up"), ("a", "1")]);
        let b = Labels::from_pairs([("__name__", "up"), ("a", "2")]);
        e.ingest("up{a=\"1\"} 10\nup{a=\"2\"} 20\n", 4000);
        e.ingest("up{a=\"2\"} 21\nup{a=\"1\"} 11\n", 5000);
        let newest = |l: &Labels| {
            e.storage
                .candidates(Some("up"))
                .find(|s| s.labels == *l)
                .and_then(|s| s.at_or_before(i64::MAX))
                .map(|(_, v)| v)
        };
        assert_eq!(newest(&a), Some(11.0));
        assert_eq!(newest(&b), Some(21.0));
    }
}
