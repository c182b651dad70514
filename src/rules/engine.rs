//! The live rule engine: every `evaluation_interval` it snapshots our own registry into the
//! history (a stale marker for each series that vanished, as a Prometheus scrape would write),
//! evaluates the groups that are due, hands firing/resolved alerts to the notification
//! dispatcher (which only enqueues), and trims the history to what the rules can read back.
//!
//! Group state sits behind a std `Mutex` that is never held across an `.await`; the HTTP API
//! and [`AlertsCollector`] read it.

use super::alert::{AlertState, Context, GroupState};
use super::labels::{Labels, METRIC_NAME};
use super::promql;
use super::storage::{Storage, stale_nan};
use crate::config::{NotifyConfig, RulesConfig};
use crate::exposition::{self, Format};
use crate::metrics::{RuleGroupLabels, RulesMetrics};
use crate::notify::queue::Queues;
use crate::notify::{Dispatcher, now_ms};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
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
            promql::retention(&rule.rule.expr, &mut r);
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
    /// The last snapshot's sample lines: their keys and series ids.
    lines: LineCache,
    lines_generation: u64,
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
    /// Threads for evaluating groups side by side: the CPUs this process may use.
    workers: usize,
    /// When the history was last trimmed.
    trimmed_at: i64,
}

/// How many lines of the last snapshot a line may be found ahead of where the previous one
/// was (series that vanished in between) before it counts as new.
const LOOK_AHEAD: usize = 8;

/// How often the history is trimmed.
const TRIM_EVERY_MS: i64 = 60_000;

/// Text blocks handed from the encoding thread to the parsing one.
const BLOCK: usize = 64 * 1024;

/// The sample lines of the last snapshot, in order: every key in one buffer (compared in
/// sequence, so the next one is already in cache) and the series id of each (`None` for
/// series no rule reads).
#[derive(Debug, Default)]
struct LineCache {
    keys: String,
    /// Where each key ends in `keys`, and its series.
    lines: Vec<(u32, Option<u32>)>,
}

impl LineCache {
    fn key(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.lines[i - 1].0 as usize,
        };
        &self.keys[start..self.lines[i].0 as usize]
    }

    fn push(&mut self, key: &str, id: Option<u32>) {
        self.keys.push_str(key);
        self.lines.push((self.keys.len() as u32, id));
    }
}

/// One snapshot being ingested.
struct Feed {
    old: LineCache,
    /// The cache for the next snapshot. While every line so far is the one at the same
    /// position of `old` (`in_step`), it is not written: it would be a copy of `old`'s start.
    new: LineCache,
    in_step: Option<usize>,
    /// The line of `old` the next line most likely matches.
    next: usize,
    seen: Vec<u32>,
}

impl Feed {
    /// Records that this snapshot's next line has `key` (line `j` of the last snapshot, when
    /// known) and series `id`.
    fn record(&mut self, j: Option<usize>, key: &str, id: Option<u32>) {
        if let Some(n) = self.in_step {
            if j == Some(n) {
                self.in_step = Some(n + 1);
                return;
            }
            self.in_step = None;
            let end = n.checked_sub(1).map_or(0, |i| self.old.lines[i].0 as usize);
            // About as many lines as last time: room for them at once.
            self.new
                .keys
                .reserve_exact(self.old.keys.len() + self.old.keys.len() / 16);
            self.new
                .lines
                .reserve_exact(self.old.lines.len() + self.old.lines.len() / 16);
            self.new.keys.push_str(&self.old.keys[..end]);
            self.new.lines.extend_from_slice(&self.old.lines[..n]);
        }
        self.new.push(key, id);
    }

    /// The cache for the next snapshot.
    fn into_cache(mut self) -> LineCache {
        match self.in_step {
            None => {
                let mut new = self.new;
                if new.keys.capacity() > new.keys.len() + new.keys.len() / 8 {
                    new.keys.shrink_to_fit();
                    new.lines.shrink_to_fit();
                }
                new
            }
            Some(n) => {
                // The same lines as last time, perhaps fewer at the end.
                let end = n.checked_sub(1).map_or(0, |i| self.old.lines[i].0 as usize);
                self.old.keys.truncate(end);
                self.old.lines.truncate(n);
                self.old
            }
        }
    }
}

/// A `fmt::Write` that sends what is written in blocks of about [`BLOCK`] bytes.
struct Blocks {
    tx: std::sync::mpsc::SyncSender<String>,
    buf: String,
}

impl Blocks {
    fn send(&mut self) -> std::fmt::Result {
        let block = std::mem::replace(&mut self.buf, String::with_capacity(BLOCK));
        self.tx.send(block).map_err(|_| std::fmt::Error)
    }
}

impl std::fmt::Write for Blocks {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= BLOCK {
            self.send()?;
        }
        Ok(())
    }
}

/// Evaluates read-only groups on up to `workers` threads, each taking groups largest first
/// onto the least loaded thread (by rule count); the calling thread is one of them.
fn evaluate_side_by_side(
    mut groups: Vec<(&mut GroupState, &mut usize)>,
    workers: usize,
    storage: &Storage,
    now: i64,
    ctx: &Context,
) {
    let workers = workers.clamp(1, groups.len().max(1));
    if workers == 1 {
        for (g, f) in groups {
            *f = g.eval_alerts(storage, now, ctx);
        }
        return;
    }
    groups.sort_by_key(|(g, _)| std::cmp::Reverse(g.rules.len()));
    let mut shares: Vec<(usize, Vec<(&mut GroupState, &mut usize)>)> =
        (0..workers).map(|_| (0, Vec::new())).collect();
    for (g, f) in groups {
        if let Some(least) = shares.iter_mut().min_by_key(|(load, _)| *load) {
            least.0 += g.rules.len();
            least.1.push((g, f));
        }
    }
    let run = |share: Vec<(&mut GroupState, &mut usize)>| {
        for (g, f) in share {
            *f = g.eval_alerts(storage, now, ctx);
        }
    };
    std::thread::scope(|scope| {
        let mut shares = shares.into_iter().map(|(_, share)| share);
        let mine = shares.next();
        for share in shares {
            scope.spawn(move || run(share));
        }
        if let Some(share) = mine {
            run(share);
        }
    });
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
            lines: LineCache::default(),
            lines_generation: 0,
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
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            trimmed_at: i64::MIN,
        }
    }

    /// Write the active alerts to `rules.state_file`; a failure is logged once, never fatal.
    fn save_state(&mut self, now: i64) {
        let Some(path) = &self.state_file else { return };
        match super::state::save(&self.groups.lock(), self.dispatcher.sent(), path, now) {
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
        let mut feed = self.feed();
        for line in text.lines() {
            self.ingest_line(&mut feed, line, now);
        }
        self.finish(feed, now);
    }

    /// Snapshots `registry` into the history: [`Engine::ingest`] of its OpenMetrics text, but
    /// with two CPUs the text is parsed on this thread while another still encodes it, in
    /// blocks, so the cycle pays for about the slower of the two rather than both.
    pub fn snapshot(&mut self, registry: &Registry, now: i64) -> Result<(), std::fmt::Error> {
        if self.workers < 2 {
            let text = exposition::encode(registry, Format::OpenMetrics)?;
            self.ingest(&text, now);
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(8);
        std::thread::scope(|scope| {
            let encoder = scope.spawn(move || {
                let mut w = Blocks {
                    tx,
                    buf: String::with_capacity(BLOCK),
                };
                prometheus_client::encoding::text::encode(&mut w, registry)?;
                w.send()
            });
            let mut feed = self.feed();
            let mut carry = String::new();
            for block in rx {
                let mut rest = block.as_str();
                if !carry.is_empty() {
                    let Some(nl) = rest.find('\n') else {
                        carry.push_str(rest);
                        continue;
                    };
                    carry.push_str(&rest[..nl]);
                    self.ingest_line(&mut feed, &carry, now);
                    carry.clear();
                    rest = &rest[nl + 1..];
                }
                let complete = rest.rfind('\n').map_or(0, |i| i + 1);
                for line in rest[..complete].lines() {
                    self.ingest_line(&mut feed, line, now);
                }
                carry.push_str(&rest[complete..]);
            }
            // A registry's text ends with "# EOF\n"; anything left is a last line.
            if !carry.is_empty() {
                self.ingest_line(&mut feed, &carry, now);
            }
            let encoded = encoder.join().unwrap_or(Err(std::fmt::Error));
            // Only a whole snapshot may mark vanished series stale.
            if encoded.is_ok() {
                self.finish(feed, now);
            } else {
                self.lines = feed.into_cache();
            }
            encoded
        })
    }

    fn feed(&mut self) -> Feed {
        let generation = self.storage.generation();
        let mut old = std::mem::take(&mut self.lines);
        if generation != self.lines_generation {
            // Ids were reused: what the cache says about them may be wrong.
            old = LineCache::default();
            self.lines_generation = generation;
        }
        Feed {
            new: LineCache::default(),
            old,
            in_step: Some(0),
            next: 0,
            seen: Vec::with_capacity(self.present.len()),
        }
    }

    fn ingest_line(&mut self, feed: &mut Feed, line: &str, now: i64) {
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        // A registry encodes its series in the same order every time: the key is almost
        // always the next one of the last snapshot, followed by one space and the value (no
        // scan through quoted label values, no parsing). A few lines further on means series
        // vanished in between; not found at all, a new series (the old position stays).
        let known =
            (feed.next..(feed.next + LOOK_AHEAD + 1).min(feed.old.lines.len())).find_map(|j| {
                let key = feed.old.key(j);
                let rest = line.strip_prefix(key)?.strip_prefix(' ')?;
                Some((j, key.len(), rest))
            });
        let (j, key, id, value) = match known {
            Some((j, len, rest)) => {
                feed.next = j + 1;
                if let Some(&(_, Some(ahead))) = feed.old.lines.get(j + LOOK_AHEAD) {
                    self.storage.prefetch_append(ahead);
                }
                let value = rest.split(' ').next().unwrap_or("");
                (Some(j), &line[..len], feed.old.lines[j].1, value)
            }
            None => {
                let Some((key, value)) = split_sample(line) else {
                    return;
                };
                let id = parse_key(key).and_then(|l| {
                    let wanted = self.any_name.is_some() || self.by_name.contains_key(l.name());
                    wanted.then(|| self.storage.id(&l))
                });
                (None, key, id, value)
            }
        };
        feed.record(j, key, id);
        if let (Some(id), Some(v)) = (id, parse_value(value)) {
            self.storage.append_id(id, now, v);
            feed.seen.push(id);
        }
    }

    /// Marks the series the last snapshot had and this one lacks stale, as a scrape does.
    fn finish(&mut self, mut feed: Feed, now: i64) {
        for &id in &self.present {
            if self.storage.newest(id).is_some_and(|t| t < now) {
                self.storage.append_id(id, now, stale_nan());
            }
        }
        self.present = std::mem::take(&mut feed.seen);
        self.lines = feed.into_cache();
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
        let due: Vec<bool> = groups
            .iter()
            .map(|g| {
                g.last_eval
                    .is_none_or(|t| now - t + 50 >= g.interval.as_millis() as i64)
            })
            .collect();
        let mut failures = vec![0; groups.len()];
        // Groups that record write the history: one after the other, first, so this cycle's
        // alerts see this cycle's recorded series. The others only read it and run side by
        // side (Prometheus too evaluates groups concurrently, with no order between them).
        let mut readers = Vec::new();
        for ((g, f), due) in groups.iter_mut().zip(failures.iter_mut()).zip(&due) {
            match (*due, g.writes()) {
                (false, _) => {}
                (true, true) => *f = g.eval(&mut self.storage, now, &self.ctx),
                (true, false) => readers.push((g, f)),
            }
        }
        evaluate_side_by_side(readers, self.workers, &self.storage, now, &self.ctx);
        for ((g, failures), due) in groups.iter().zip(failures).zip(due) {
            if !due {
                continue;
            }
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
        // Chunks hold 30 min: looking for ones to drop (a walk over every series) once a
        // minute is plenty; until then readers select by time anyway.
        if now.saturating_sub(self.trimmed_at) >= TRIM_EVERY_MS {
            self.trimmed_at = now;
            self.storage
                .trim(|name| now - by_name.get(name).copied().or(any).unwrap_or(interval));
        }
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
        let mut sent = Vec::new();
        if !self.state_read {
            self.state_read = true;
            if let Some(path) = &self.state_file {
                match super::state::restore(&mut new, path, now_ms()) {
                    Ok(r) => {
                        if r.alerts > 0 {
                            tracing::info!(state_file = %path.display(), alerts = r.alerts, "restored pending and firing alerts from the last run");
                        }
                        kept += r.alerts;
                        sent = r.receivers;
                    }
                    Err(e) => warn!(error = %e, "alert state not restored"),
                }
            }
        }
        let slack = cfg.evaluation_interval.as_millis() as i64;
        (self.by_name, self.any_name) = retention(&new, slack);
        // The line cache says which lines no rule reads: after a reload some may be read.
        self.lines = LineCache::default();
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
        if !sent.is_empty() {
            let n = self.dispatcher.restore_sent(sent);
            tracing::info!(
                receivers = n,
                "restored what the receivers were already sent"
            );
        }
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
            if let Err(e) = self.snapshot(&registry, now) {
                warn!(error = %e, "cannot snapshot our own metrics for the rules");
            }
            self.evaluate(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::storage::is_stale;

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

    /// An engine with one alerting rule over `expr`, no receivers.
    fn engine_reading(expr: &str) -> Engine {
        let groups = super::super::file::parse(
            &format!("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: {expr}\n"),
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
        let mut reg = Registry::default();
        let m = RulesMetrics::register(&mut reg);
        Engine::new(
            &cfg,
            NotifyConfig::default(),
            SharedGroups::from_config(&cfg),
            None,
            m,
        )
    }

    /// The pipelined snapshot (encoder thread, text in 64 KiB blocks, lines cut across
    /// blocks) stores exactly what ingesting the whole text does.
    #[test]
    fn snapshot_in_blocks_equals_ingest_of_the_text() {
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::Gauge;
        let engine = || engine_reading("big > 1e9");
        let (mut piped, mut whole) = (engine(), engine());
        piped.workers = 2;
        let mut reg = Registry::default();
        let big =
            Family::<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        reg.register("big", "wide", big.clone());
        for i in 0..3000 {
            let l = vec![(
                "series".to_string(),
                format!("{i:05}-{}", "x".repeat(i % 37)),
            )];
            big.get_or_create(&l).set(i as f64 + 0.5);
        }
        let text = exposition::encode(&reg, Format::OpenMetrics).expect("encode");
        assert!(text.len() > 2 * BLOCK, "the text spans several blocks");
        for t in [1000, 2000] {
            piped.snapshot(&reg, t).expect("snapshot");
            whole.ingest(&text, t);
        }
        assert_eq!(piped.history_samples(), 6000);
        assert_eq!(whole.history_samples(), 6000);
        let values = |e: &Engine| -> Vec<(String, u64)> {
            let mut v: Vec<(String, u64)> = e
                .storage
                .candidates(Some("big"))
                .flat_map(|s| {
                    s.range(0, 3000)
                        .map(|(t, v)| (format!("{}@{t}", s.labels), v.to_bits()))
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(values(&piped), values(&whole));
        assert_eq!(piped.lines.lines.len(), 3000);
    }

    #[test]
    fn ingest_keeps_read_series_marks_vanished_stale_and_reuses_keys() {
        let mut e = engine_reading("up == 0");
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
        assert_eq!(e.lines.lines.len(), 3, "one key per line, read or not");
        e.ingest(unread, 3000);
        assert!(!e.storage.is_live(&up), "vanished: stale marker");
        assert_eq!(e.history_samples(), 3);
        assert_eq!(
            e.lines.lines.len(),
            2,
            "the key cache holds the last snapshot"
        );
        // the same lines in another order still land on their own series
        let a = Labels::from_pairs([("__name__", "up"), ("a", "1")]);
        let b = Labels::from_pairs([("__name__", "up"), ("a", "2")]);
        e.ingest("up{a=\"1\"} 10\nup{a=\"2\"} 20\n", 4000);
        e.ingest("up{a=\"2\"} 21\nup{a=\"1\"} 11\n", 5000);
        let newest = |e: &Engine, l: &Labels| {
            e.storage
                .candidates(Some("up"))
                .find(|s| s.labels == *l)
                .and_then(|s| s.at_or_before(i64::MAX))
                .map(|(_, v)| v)
        };
        assert_eq!(newest(&e, &a), Some(11.0));
        assert_eq!(newest(&e, &b), Some(21.0));

        // Series appear, vanish and the snapshot shortens: each value still lands on its own
        // series, and the cache always holds exactly the last snapshot's lines.
        let snap = |ids: &[u32], base: u32| -> String {
            ids.iter()
                .map(|i| format!("up{{a=\"{i}\"}} {}\n", base + i))
                .collect()
        };
        for (t, ids) in [
            (6000, vec![1, 2, 3, 4]),
            (7000, vec![1, 9, 2, 4]),
            (8000, vec![1, 9, 2, 4]),
            (9000, vec![1, 9]),
            (10000, vec![5, 1, 9, 2, 4, 3]),
        ] {
            let base = t as u32;
            e.ingest(&snap(&ids, base), t);
            for i in &ids {
                let l = Labels::from_pairs([("__name__", "up"), ("a", &i.to_string())]);
                assert_eq!(newest(&e, &l), Some((base + i) as f64), "t={t} a={i}");
            }
            let keys: Vec<String> = (0..e.lines.lines.len())
                .map(|j| e.lines.key(j).to_string())
                .collect();
            let want: Vec<String> = ids.iter().map(|i| format!("up{{a=\"{i}\"}}")).collect();
            assert_eq!(keys, want, "t={t}");
        }
        let gone = Labels::from_pairs([("__name__", "up"), ("a", "3")]);
        let series = e.storage.candidates(Some("up")).find(|s| s.labels == gone);
        let marks = series.map(|s| s.range(7000, 9000).filter(|(_, v)| is_stale(*v)).count());
        assert_eq!(marks, Some(1), "a vanished series gets one stale marker");
    }
}
