//! Wiring only: build the registry and metric handles, start one task per broker, the rule
//! engine and the HTTP server on one `TaskTracker`, apply configuration reloads, and stop
//! everything in order when `shutdown` fires.
//!
//! Takes its listener and shutdown token as arguments (mini-redis style), so tests bind
//! `127.0.0.1:0` and stop the service cleanly.
//!
//! A reload (SIGHUP or `POST /-/reload`) reads the file again. A file that does not load
//! changes nothing: the error is logged and answered, and
//! `mqtt_sentinel_config_last_reload_successful` turns 0. A good one is applied in place:
//! brokers whose settings are unchanged keep their session and counters; removed ones stop
//! and lose their series; changed ones restart; rules keep the state of every unchanged rule
//! (see `Engine::reload`); probe modules and `/probe` targets are replaced. `listen` and `log`
//! need a restart and are reported as such.

use crate::broker::Connection;
use crate::config::{self, BrokerConfig, Config, ProbeKind};
use crate::http::{self, BrokerView, HttpState, Live, ReloadRequest};
use crate::metrics::{Metrics, RulesMetrics};
use crate::mqtt::negotiate::Negotiated;
use crate::notify;
use crate::probe::bridge::{BridgeRoutes, Bridges};
use crate::probe::runner::Probes;
use crate::probe::{Prober, fresh};
use crate::rules::manager::{AlertsCollector, Engine, SharedGroups, Update};
use crate::sys::{Ingest, SharedStores, SysCollector, SysStore};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// How long broker tasks and the HTTP server get to stop after shutdown begins.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One running broker: its settings, its tasks' token and what the HTTP side shows.
struct BrokerTask {
    cfg: BrokerConfig,
    stop: CancellationToken,
    store: Arc<SysStore>,
    up: prometheus_client::metrics::gauge::Gauge,
}

/// Everything a reload can change, and the handles needed to change it.
struct World {
    /// `None` until the first configuration is applied.
    config: Option<Config>,
    metrics: Metrics,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    brokers: BTreeMap<String, BrokerTask>,
    stores: SharedStores,
    live: Arc<RwLock<Arc<Live>>>,
    rules_metrics: RulesMetrics,
    http_client: Option<reqwest::Client>,
    /// Cancels the current generation of notification workers (they flush, bounded).
    notify_stop: CancellationToken,
    engine: mpsc::Sender<Update>,
    /// Where bridge probes that publish on one broker are received on another.
    bridge_routes: BridgeRoutes,
}

/// A configuration and the rule groups it names, both read and checked: what start-up and
/// every reload apply, and what `check` validates. Nothing is applied unless both load.
pub struct Loaded {
    pub config: Config,
    pub groups: Vec<crate::rules::file::Group>,
}

impl Loaded {
    /// Reads the config file at `path` (the embedded default when `None`) and its rule files.
    /// Errors name the file (config or rule file), line and field.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, config::ConfigError> {
        let config = match path {
            Some(p) => config::load(p)?,
            None => config::embedded_default()?,
        };
        Self::with_rules(config)
    }

    /// Loads the rule files an already-read `config` names.
    pub fn with_rules(config: Config) -> Result<Self, config::ConfigError> {
        let groups = crate::rules::file::load_configured(&config.rules)?;
        Ok(Loaded { config, groups })
    }
}

pub async fn run(
    loaded: Loaded,
    config_path: Option<PathBuf>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    metrics.reload_success_time.set(unix_now());
    let tracker = TaskTracker::new();
    let stores: SharedStores = Arc::default();
    registry.register_collector(Box::new(SysCollector::shared(stores.clone())));
    // Secrets, certificates and keys the config names, re-read when they change.
    registry.register_collector(Box::new(config::watched::FilesCollector));

    // Rules and notifications: the engine reads the registry it is itself part of.
    let rules_metrics = RulesMetrics::register(&mut registry);
    // Groups, receivers and queues arrive with the first `apply`, as with every reload.
    let groups = SharedGroups::default();
    registry.register_collector(Box::new(AlertsCollector(groups.clone())));
    let registry = Arc::new(registry);
    let (engine_tx, engine_rx) = mpsc::channel(1);
    let engine = Engine::new(
        &loaded.config.rules,
        Default::default(),
        groups.clone(),
        None,
        rules_metrics.clone(),
    );
    tracker.spawn(engine.run(registry.clone(), engine_rx, shutdown.clone()));

    let mut world = World {
        config: None,
        metrics,
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
        brokers: BTreeMap::new(),
        stores,
        live: Arc::default(),
        rules_metrics,
        http_client: None,
        notify_stop: shutdown.child_token(),
        engine: engine_tx,
        bridge_routes: BridgeRoutes::default(),
    };
    world.apply(loaded).await?;

    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    info!(listen = %listener.local_addr()?, brokers = world.brokers.len(), "serving /metrics");
    let web_settings = &world.config.as_ref().map(|c| c.web.clone());
    let web = match web_settings {
        Some(config::WebSettings {
            config_file: Some(path),
            config: Some(w),
            ..
        }) => {
            info!(web_config = %path.display(), settings = %w.describe(), "web config loaded");
            crate::web::Web::new(
                Some(path.clone()),
                w.clone(),
                world.metrics.web_reload_successful.clone(),
            )
        }
        _ => crate::web::Web::open(world.metrics.web_reload_successful.clone()),
    };
    let max_connections = web_settings.as_ref().map_or(1024, |w| w.max_connections);
    let state = Arc::new(HttpState {
        registry,
        live: world.live.clone(),
        rules: groups,
        reload: reload_tx.clone(),
        shutdown: shutdown.clone(),
        web,
        max_connections,
    });
    tracker.spawn(http::serve(listener, state));
    tracker.spawn(reload_on_sighup(reload_tx, shutdown.clone()));
    tracker.close();

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(reply) = reload_rx.recv() => {
                let result = world.reload(config_path.as_deref()).await;
                let _ = reply.send(result);
            }
        }
    }
    info!("shutting down");
    let cleanups = &crate::probe::session::CLEANUPS;
    cleanups.close();
    let stopped = async {
        tracker.wait().await;
        cleanups.wait().await;
    };
    if tokio::time::timeout(STOP_GRACE, stopped).await.is_err() {
        warn!("some tasks did not stop within {STOP_GRACE:?}; exiting anyway");
    } else {
        info!("all tasks stopped");
    }
    Ok(())
}

/// SIGHUP asks for a reload, as it does of Prometheus.
async fn reload_on_sighup(tx: mpsc::Sender<ReloadRequest>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot install the SIGHUP handler; reload with POST /-/reload");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {}
            _ = shutdown.cancelled() => return,
        }
        info!("SIGHUP received; reloading the configuration");
        let (reply, rx) = oneshot::channel();
        if tx.send(reply).await.is_err() {
            return;
        }
        let _ = rx.await;
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl World {
    /// Read the file again and apply it; the answer for `/-/reload` in words.
    async fn reload(&mut self, path: Option<&std::path::Path>) -> Result<String, String> {
        let Some(path) = path else {
            let msg = "running on the embedded default configuration: nothing to reload";
            info!("{msg}");
            return Ok(msg.into());
        };
        let loaded = Loaded::load(Some(path)).map_err(|e| e.to_string());
        let result = match loaded {
            Ok(c) => self.apply(c).await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(e),
        };
        match &result {
            Ok(what) => {
                self.metrics.reload_successful.set(1);
                self.metrics.reload_success_time.set(unix_now());
                info!("{what}");
            }
            Err(e) => {
                self.metrics.reload_successful.set(0);
                error!(error = %e, "configuration reload failed; still running the previous configuration");
            }
        }
        result
    }

    /// Make the running service match `new`; returns a summary of what changed.
    async fn apply(
        &mut self,
        Loaded {
            config: new,
            groups,
        }: Loaded,
    ) -> anyhow::Result<String> {
        let rule_count = crate::rules::file::rule_count(&groups);
        let old = self.config.replace(new);
        let Some(new) = &self.config else {
            anyhow::bail!("no configuration"); // just set
        };
        let first = old.is_none();
        let mut changes: Vec<String> = Vec::new();
        if let Some(old) = &old {
            if new.listen != old.listen {
                warn!(old = %old.listen, new = %new.listen, "listen changed: takes effect after a restart");
                changes.push("listen (needs a restart)".into());
            }
            if new.log != old.log {
                warn!("log settings changed: take effect after a restart");
                changes.push("log (needs a restart)".into());
            }
            if new.web.config_file != old.web.config_file
                || new.web.max_connections != old.web.max_connections
            {
                warn!(
                    "web settings changed: take effect after a restart (the web config file itself is re-read when it changes)"
                );
                changes.push("web (needs a restart)".into());
            }
        }
        if new.brokers.is_empty() {
            warn!("no brokers configured: only the exporter's own metrics will be served");
        }

        // Brokers: keep the unchanged, stop the removed and changed, start the new.
        let mut removed = Vec::new();
        self.brokers.retain(|name, t| {
            let keep = new.brokers.iter().any(|b| b.name == *name && *b == t.cfg);
            if !keep {
                removed.push((name.clone(), t.stop.clone()));
            }
            keep
        });
        for (name, stop) in &removed {
            stop.cancel();
            self.bridge_routes.remove_from(name);
            self.metrics.forget_broker(name);
            let still = new.brokers.iter().any(|b| &b.name == name);
            changes.push(format!(
                "{} broker {name}",
                if still { "restarted" } else { "removed" }
            ));
        }
        for b in &new.brokers {
            if !self.brokers.contains_key(&b.name) {
                let existed = old
                    .as_ref()
                    .is_some_and(|o| o.brokers.iter().any(|o| o.name == b.name));
                if !first && !existed {
                    changes.push(format!("added broker {}", b.name));
                }
                let task = start_broker(
                    b,
                    &self.metrics,
                    &self.tracker,
                    &self.shutdown,
                    &self.bridge_routes,
                );
                self.brokers.insert(b.name.clone(), task);
            }
        }
        // Config order, as the landing page and the scrape show them.
        let ordered: Vec<&BrokerTask> = new
            .brokers
            .iter()
            .filter_map(|b| self.brokers.get(&b.name))
            .collect();
        *self.stores.write().unwrap_or_else(|p| p.into_inner()) =
            ordered.iter().map(|t| t.store.clone()).collect();
        let views = ordered
            .iter()
            .map(|t| BrokerView {
                name: t.cfg.name.clone(),
                url: t.cfg.url.to_string(),
                up: t.up.clone(),
                store: t.store.clone(),
            })
            .collect();
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Live {
            brokers: views,
            probe_modules: new.probe_modules.clone(),
            probe_allowed_targets: new.probe_allowed_targets.clone(),
        });

        // Rules and notifications: a new generation of receiver workers, then the engine.
        let queues = if new.notify.receivers.is_empty() {
            None
        } else {
            let client = match &self.http_client {
                Some(c) => c.clone(),
                None => {
                    let c = notify::queue::client()?;
                    self.http_client = Some(c.clone());
                    c
                }
            };
            let stop = self.shutdown.child_token();
            let (queues, workers) = notify::queue::start(
                &new.notify.receivers,
                new.notify.queue_capacity,
                self.rules_metrics.clone(),
                client,
                stop.clone(),
            );
            for w in workers {
                self.tracker.spawn(w);
            }
            std::mem::replace(&mut self.notify_stop, stop).cancel();
            Some(queues)
        };
        if queues.is_none() {
            std::mem::replace(&mut self.notify_stop, self.shutdown.child_token()).cancel();
        }
        let (done, kept) = oneshot::channel();
        let update = Update {
            rules: new.rules.clone(),
            groups,
            notify: new.notify.clone(),
            queues,
            done,
        };
        if self.engine.send(update).await.is_ok()
            && let Ok(kept) = kept.await
            && !first
        {
            changes.push(format!("{rule_count} rules ({kept} kept their state)"));
        }
        Ok(if changes.is_empty() {
            "configuration reloaded; nothing changed".into()
        } else {
            format!("configuration reloaded: {}", changes.join(", "))
        })
    }
}

/// Start the watching connection and the fresh-client probes of one broker.
fn start_broker(
    b: &BrokerConfig,
    metrics: &Metrics,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    bridge_routes: &BridgeRoutes,
) -> BrokerTask {
    let stop = shutdown.child_token();
    let bm = metrics.broker(&b.name, &b.capacity);
    let up = bm.up.clone();
    let store = SysStore::new(&b.name);
    let ingest = b
        .sys
        .enabled
        .then(|| Ingest::new(&b.sys, store.clone(), bm.ingest.clone()));
    if b.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
        warn!(broker = %b.name, "TLS certificate verification is OFF for this broker");
    }
    let health = bm.health.clone();
    let negotiated = Negotiated::default();
    let conn = Connection::new(
        b.clone(),
        negotiated.clone(),
        bm,
        ingest,
        |cfg, client_id| Probes::new(cfg, client_id, metrics, health),
        (
            Bridges::new(b, metrics, bridge_routes),
            bridge_routes.inbound(&b.name),
        ),
    );
    for p in &b.probes {
        if let Prober::Fresh(prober) = crate::probe::prober(p.kind) {
            tracker.spawn(fresh::run(
                b.clone(),
                negotiated.clone(),
                p.clone(),
                prober,
                conn.client_id().to_owned(),
                metrics.probe(&b.name, &p.name),
                match p.kind {
                    ProbeKind::Connect => Some(metrics.connect_duration(&b.name)),
                    ProbeKind::Will { .. } => Some(metrics.will_delivery(&b.name, &p.name)),
                    _ => None,
                },
                stop.clone(),
            ));
        }
    }
    tracker.spawn(conn.run(stop.clone()));
    BrokerTask {
        cfg: b.clone(),
        stop,
        store,
        up,
    }
}
