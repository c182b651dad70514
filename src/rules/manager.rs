//! The live rule engine, Prometheus' `rules.Manager`: every `evaluation_interval` it
//! snapshots our own registry into the history ([`super::snapshot`]), evaluates the groups
//! that are due ([`super::group`]; read-only groups side by side), hands firing/resolved
//! alerts to the notification dispatcher (which only enqueues), trims the history to what the
//! rules can read back, and swaps in reloaded rule files keeping the state of unchanged rules.
//!
//! None of this runs on the runtime thread: [`Engine::run`] is a task that only waits for
//! ticks and reloads and hands each cycle (snapshot, evaluation, state file) and each reload
//! to tokio's blocking pool, so `$SYS` ingestion, probes and `/metrics` go on meanwhile. The
//! engine owns its groups; readers (the HTTP API, [`AlertsCollector`]) see a copy,
//! [`SharedGroups`], into which the engine copies each group as soon as it is evaluated,
//! under a std `Mutex` held only for that copy and never across an `.await`.

use super::alerting::{Alert, AlertState};
use super::file::Group;
use super::group::{Context, GroupState};
use super::promql;
use super::snapshot::Scraper;
use super::storage::Storage;
use crate::config::{NotifyConfig, RulesConfig};
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
use tracing::{error, warn};

/// Rule groups and their alerts as of the last evaluation, for the HTTP API and the
/// collector: the engine's published copy ([`GroupState::published`]). Only the engine
/// writes it, so it always holds the engine's groups, in the same order.
#[derive(Clone, Debug, Default)]
pub struct SharedGroups(Arc<Mutex<Vec<GroupState>>>);

impl SharedGroups {
    /// Shares `groups`.
    pub fn new(groups: Vec<GroupState>) -> Self {
        SharedGroups(Arc::new(Mutex::new(groups)))
    }

    /// Fresh state (no alerts yet) for `groups`, evaluated every `interval` unless a group
    /// sets its own.
    pub fn fresh(groups: Vec<Group>, interval: std::time::Duration) -> Self {
        Self::new(
            groups
                .into_iter()
                .map(|g| GroupState::new(g, interval))
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
    /// The groups `rules` names, already loaded (`super::file::load_configured`).
    pub groups: Vec<Group>,
    pub notify: NotifyConfig,
    pub queues: Option<Queues>,
    pub done: tokio::sync::oneshot::Sender<usize>,
}

/// The live rule engine (Prometheus' `rules.Manager`): the history, the groups' schedule,
/// the notification dispatcher and the state file. Driven by [`Engine::run`].
pub struct Engine {
    /// The groups being evaluated; readers see [`Engine::published`].
    pub(super) groups: Vec<GroupState>,
    pub(super) published: SharedGroups,
    pub(super) storage: Storage,
    /// Reads our own registry into `storage` each cycle.
    pub(super) scraper: Scraper,
    pub(super) ctx: Context,
    pub(super) dispatcher: Dispatcher,
    pub(super) queues: Option<Queues>,
    pub(super) metrics: RulesMetrics,
    pub(super) interval: std::time::Duration,
    pub(super) by_name: HashMap<String, i64>,
    pub(super) any_name: Option<i64>,
    /// `rules.state_file`, and whether it was read (once, at the first configuration).
    pub(super) state_file: Option<std::path::PathBuf>,
    pub(super) state_read: bool,
    pub(super) state_warned: bool,
    /// Threads for evaluating groups side by side: the CPUs this process may use.
    pub(super) workers: usize,
    /// When the history was last trimmed.
    pub(super) trimmed_at: i64,
}

/// How often the history is trimmed.
const TRIM_EVERY_MS: i64 = 60_000;

/// Evaluates read-only groups on up to `workers` threads, each taking groups largest first
/// onto the least loaded thread (by rule count); the calling thread is one of them.
/// A group to evaluate: its index in the engine's groups (and in the readers' copy), its
/// state, and where its failure count goes.
type Due<'a> = (usize, &'a mut GroupState, &'a mut usize);

fn evaluate_side_by_side(
    mut groups: Vec<Due<'_>>,
    workers: usize,
    storage: &Storage,
    now: i64,
    ctx: &Context,
    published: &Publish<'_>,
) {
    let workers = workers.clamp(1, groups.len().max(1));
    let run = |share: Vec<Due<'_>>| {
        for (i, g, f) in share {
            *f = g.eval_alerts(storage, now, ctx);
            published.group(i, g);
        }
    };
    if workers == 1 {
        run(groups);
        return;
    }
    groups.sort_by_key(|(_, g, _)| std::cmp::Reverse(g.rules.len()));
    let mut shares: Vec<(usize, Vec<Due<'_>>)> = (0..workers).map(|_| (0, Vec::new())).collect();
    for (i, g, f) in groups {
        if let Some(least) = shares.iter_mut().min_by_key(|(load, _)| *load) {
            least.0 += g.rules.len();
            least.1.push((i, g, f));
        }
    }
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

/// Publishes one evaluated group into the readers' copy ([`SharedGroups`]), holding that
/// copy's one lock only while this group is copied.
struct Publish<'a> {
    readers: &'a SharedGroups,
    /// How many groups the engine has: the readers' copy holds the same ones in the same
    /// order (the engine replaces it wholesale on reload, before evaluating).
    groups: usize,
}

impl Publish<'_> {
    fn group(&self, i: usize, g: &GroupState) {
        let mut readers = self.readers.lock();
        let len = readers.len();
        match readers.get_mut(i) {
            Some(r) if len == self.groups => g.publish_into(r),
            _ => error!(
                group = %g.name,
                "the readers' copy of the rule groups does not match the engine's; the API shows the last evaluation that did"
            ),
        }
    }
}

impl Engine {
    /// An engine for `cfg` over the groups in `published` (from then on written only by the
    /// engine, read by the HTTP API and the collector); notifications go to `queues` (none:
    /// they are built and dropped).
    pub fn new(
        cfg: &RulesConfig,
        notify: NotifyConfig,
        published: SharedGroups,
        queues: Option<Queues>,
        metrics: RulesMetrics,
    ) -> Self {
        let slack = cfg.evaluation_interval.as_millis() as i64;
        let groups: Vec<GroupState> = published.lock().iter().map(|g| g.published()).collect();
        let (by_name, any_name) = retention(&groups, slack);
        for g in &groups {
            metrics.init_rule_group(&format!("{};{}", g.file, g.name));
        }
        Engine {
            groups,
            published,
            storage: Storage::new(),
            scraper: Scraper::default(),
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
        match super::state::save(&self.groups, self.dispatcher.sent(), path, now) {
            Ok(()) => self.state_warned = false,
            Err(e) if !self.state_warned => {
                self.state_warned = true;
                warn!(state_file = %path.display(), error = %e, "cannot write the alert state file; alerts will restart from scratch after a restart");
            }
            Err(_) => {}
        }
    }

    /// Bytes of compressed samples held in the history.
    pub fn history_bytes(&self) -> usize {
        self.storage.chunk_bytes()
    }

    /// Samples held in the history.
    /// Appends one snapshot of exposition text at `now` (ms): [`Scraper::ingest`], keeping
    /// the series some rule can read.
    pub fn ingest(&mut self, text: &str, now: i64) {
        let (scraper, storage, wanted) = self.scrape_parts();
        scraper.ingest(storage, &wanted, text, now);
    }

    /// Snapshots `registry` into the history: [`Scraper::snapshot`] on this engine's threads.
    pub fn snapshot(&mut self, registry: &Registry, now: i64) -> Result<(), std::fmt::Error> {
        let workers = self.workers;
        let (scraper, storage, wanted) = self.scrape_parts();
        scraper.snapshot(storage, &wanted, registry, now, workers)
    }

    /// The scraper, the history it writes, and which metric names some rule reads.
    fn scrape_parts(&mut self) -> (&mut Scraper, &mut Storage, impl Fn(&str) -> bool + '_) {
        let Engine {
            scraper,
            storage,
            by_name,
            any_name,
            ..
        } = self;
        let (by_name, any) = (&*by_name, any_name.is_some());
        (scraper, storage, move |name: &str| {
            any || by_name.contains_key(name)
        })
    }

    pub fn history_samples(&self) -> usize {
        self.storage.sample_count()
    }

    /// Readers' copy of the groups, replaced wholesale (after a reload).
    fn publish(&self) {
        *self.published.lock() = self.groups.iter().map(GroupState::published).collect();
    }

    /// Evaluates the due groups at `now`, publishes them to readers and dispatches
    /// notifications. Blocking: seconds with a heavy rule set; [`Engine::run`] calls it on
    /// the blocking pool.
    pub fn evaluate(&mut self, now: i64) {
        let groups = &mut self.groups;
        let due: Vec<bool> = groups
            .iter()
            .map(|g| {
                g.last_eval
                    .is_none_or(|t| now - t + 50 >= g.interval.as_millis() as i64)
            })
            .collect();
        let mut failures = vec![0; groups.len()];
        // Each group is published as soon as it is evaluated, so readers see this
        // evaluation before its counts (a scrape that shows them shows it), and the alerts'
        // previous annotations (re-rendered every evaluation) are freed group by group
        // rather than all living beside the new ones until the cycle ends.
        let published = Publish {
            readers: &self.published,
            groups: groups.len(),
        };
        // Groups that record write the history: one after the other, first, so this cycle's
        // alerts see this cycle's recorded series. The others only read it and run side by
        // side (Prometheus too evaluates groups concurrently, with no order between them).
        let mut readers = Vec::new();
        for (i, ((g, f), due)) in groups
            .iter_mut()
            .zip(failures.iter_mut())
            .zip(&due)
            .enumerate()
        {
            match (*due, g.writes()) {
                (false, _) => {}
                (true, true) => {
                    *f = g.eval(&mut self.storage, now, &self.ctx);
                    published.group(i, g);
                }
                (true, false) => readers.push((i, g, f)),
            }
        }
        evaluate_side_by_side(
            readers,
            self.workers,
            &self.storage,
            now,
            &self.ctx,
            &published,
        );
        let groups = &self.groups;
        for ((g, failures), due) in groups.iter().zip(failures).zip(&due) {
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
        let alerts: Vec<crate::notify::Alert<'_>> = groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .flat_map(|r| r.active.values())
            .filter_map(Alert::to_notify)
            .collect();
        let out = self.dispatcher.dispatch(&alerts, now);
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
        groups: Vec<Group>,
        notify: NotifyConfig,
        queues: Option<Queues>,
    ) -> usize {
        let mut old = std::mem::take(&mut self.groups);
        let mut kept = 0;
        let mut new: Vec<GroupState> = groups
            .into_iter()
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
        self.scraper.forget_lines();
        self.groups = new;
        self.publish();
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

    /// Runs `work` on this engine on tokio's blocking pool, never on the runtime thread, and
    /// gives the engine back; `None` if `work` panicked (logged: the engine is gone).
    async fn off_thread<T: Send + 'static>(
        mut self,
        work: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> Option<(Self, T)> {
        match tokio::task::spawn_blocking(move || {
            let t = work(&mut self);
            (self, t)
        })
        .await
        {
            Ok(done) => Some(done),
            Err(e) => {
                error!(error = %e, "the rule engine failed; rules are no longer evaluated");
                None
            }
        }
    }

    /// Runs until `shutdown`: snapshot our registry, evaluate, repeat; `updates` brings
    /// reloaded configurations (answered on their channel once applied). The task only
    /// waits: each cycle and each reload runs on the blocking pool ([`Engine::off_thread`]),
    /// one at a time. A cycle under way when `shutdown` comes is finished (its state file
    /// written) before the engine stops, as before the engine left the runtime thread; it
    /// then writes the state file once more and returns.
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
                    let Some((engine, kept)) = self
                        .off_thread(move |e| e.reload(&u.rules, u.groups, u.notify, u.queues))
                        .await
                    else {
                        return;
                    };
                    self = engine;
                    if self.interval != before {
                        tick = new_tick(self.interval);
                    }
                    let _ = u.done.send(kept);
                    continue;
                }
                _ = shutdown.cancelled() => {
                    let _ = self.off_thread(|e| e.save_state(now_ms())).await;
                    return;
                }
            }
            if self.groups.is_empty() {
                continue; // nothing reads the history
            }
            let registry = registry.clone();
            let cycle = self.off_thread(move |e| {
                let now = now_ms();
                if let Err(err) = e.snapshot(&registry, now) {
                    warn!(error = %err, "cannot snapshot our own metrics for the rules");
                }
                e.evaluate(now);
            });
            let Some((engine, ())) = cycle.await else {
                return;
            };
            self = engine;
        }
    }
}
