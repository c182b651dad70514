//! Wiring only: build the registry and metric handles, start one task per broker and the HTTP
//! server on one `TaskTracker`, and stop them in order when `shutdown` fires.
//!
//! Takes its listener and shutdown token as arguments (mini-redis style), so tests bind
//! `127.0.0.1:0` and stop the service cleanly.

use crate::config::{Config, ProbeKind};
use crate::http::{self, BrokerView, HttpState};
use crate::metrics::{Metrics, RulesMetrics};
use crate::mqtt::Connection;
use crate::notify;
use crate::probe::fresh;
use crate::probe::runner::Probes;
use crate::rules::engine::{AlertsCollector, Engine, SharedGroups};
use crate::sys::{Ingest, SysCollector, SysStore};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long broker tasks and the HTTP server get to stop after shutdown begins.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let tracker = TaskTracker::new();

    let mut stores = Vec::with_capacity(config.brokers.len());
    let mut views = Vec::with_capacity(config.brokers.len());
    for b in &config.brokers {
        let bm = metrics.broker(&b.name, &b.capacity);
        let store = SysStore::new(&b.name);
        let ingest = b
            .sys
            .enabled
            .then(|| Ingest::new(&b.sys, store.clone(), bm.ingest.clone()));
        if b.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
            warn!(broker = %b.name, "TLS certificate verification is OFF for this broker");
        }
        views.push(BrokerView {
            name: b.name.clone(),
            url: b.url.to_string(),
            up: bm.up.clone(),
            store: store.clone(),
        });
        stores.push(store);
        let health = bm.health.clone();
        let conn = Connection::new(b.clone(), bm, ingest, |cfg, client_id| {
            Probes::new(cfg, client_id, &metrics, health)
        });
        for p in &b.probes {
            if matches!(p.kind, ProbeKind::Connect | ProbeKind::Retained) {
                tracker.spawn(fresh::run(
                    b.clone(),
                    p.clone(),
                    conn.client_id().to_owned(),
                    metrics.probe(&b.name, &p.name),
                    (p.kind == ProbeKind::Connect).then(|| metrics.connect_duration(&b.name)),
                    shutdown.clone(),
                ));
            }
        }
        tracker.spawn(conn.run(shutdown.clone()));
    }
    if config.brokers.is_empty() {
        warn!("no brokers configured: only the exporter's own metrics will be served");
    }
    registry.register_collector(Box::new(SysCollector::new(stores)));

    // Rules and notifications: the engine reads the registry it is itself part of.
    let rules_metrics = RulesMetrics::register(&mut registry);
    let groups = SharedGroups::from_config(&config.rules);
    registry.register_collector(Box::new(AlertsCollector(groups.clone())));
    let queues = if config.notify.receivers.is_empty() {
        None
    } else {
        let client = notify::queue::client()?;
        let (queues, workers) = notify::queue::start(
            &config.notify.receivers,
            config.notify.queue_capacity,
            rules_metrics.clone(),
            client,
            shutdown.clone(),
        );
        for w in workers {
            tracker.spawn(w);
        }
        Some(queues)
    };
    let registry = Arc::new(registry);
    let rule_count: usize = config.rules.groups.iter().map(|g| g.rules.len()).sum();
    if rule_count > 0 {
        let engine = Engine::new(
            &config.rules,
            config.notify.clone(),
            groups.clone(),
            queues,
            rules_metrics,
        );
        tracker.spawn(engine.run(registry.clone(), shutdown.clone()));
    }

    info!(listen = %listener.local_addr()?, brokers = config.brokers.len(), "serving /metrics");
    let state = Arc::new(HttpState {
        registry,
        brokers: views,
        probe_modules: config.probe_modules.clone(),
        probe_allowed_targets: config.probe_allowed_targets.clone(),
        rules: groups,
        shutdown: shutdown.clone(),
    });
    tracker.spawn(http::serve(listener, state));
    tracker.close();

    shutdown.cancelled().await;
    info!("shutting down");
    if tokio::time::timeout(STOP_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("some tasks did not stop within {STOP_GRACE:?}; exiting anyway");
    }
    Ok(())
}
