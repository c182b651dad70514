//! Probes that need a client of their own each run (`mqtt::fresh`): `connect` (how long a
//! device waits to get in) and `retained` (does a newcomer get exactly the retained value).
//! Both have the one shape of [`super::FreshProber`]; [`run`] schedules any of them.

use super::{FreshProber, Run};
use crate::config::{BrokerConfig, ClientRole, ProbeConfig};
use crate::metrics::{ProbeMetrics, Reason};
use crate::mqtt::fresh::{Failure, connect};
use crate::mqtt::negotiate::Negotiated;
use paho_mqtt as paho;
use prometheus_client::metrics::histogram::Histogram;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Run `probe` with `prober` every interval until shutdown. Runs never overlap: a run is
/// bounded by the probe's timeout and missed ticks are skipped. A run that reports a duration
/// (the connect probe's connect time, the will probe's delivery time) observes it in
/// `duration` when given.
///
/// `shutdown` (SIGTERM, or a reload that stops or changes the broker) ends a run in flight
/// at once, recording nothing: a will or session run can last minutes, and neither the
/// process's stop grace nor a reload should wait for it. Dropping the run closes its clients
/// and deletes a session probe's session (see `session`'s `Session`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cfg: BrokerConfig,
    negotiated: Negotiated,
    probe: ProbeConfig,
    prober: FreshProber,
    client_id: String,
    metrics: ProbeMetrics,
    duration: Option<Histogram>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(probe.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let topic = format!(
        "{}/{}/{}",
        cfg.probe_topic_prefix,
        super::runner::topic_segment(&client_id),
        probe.name
    );
    let mut run_no: u64 = 0;
    let nonce: u64 = rand::random();
    let id = format!("{client_id}-{}", probe.name);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        run_no += 1;
        let run = prober(Run {
            cfg: &cfg,
            negotiated: &negotiated,
            id: &id,
            topic: &topic,
            nonce,
            run_no,
            timeout: probe.timeout,
            kind: probe.kind,
        });
        let outcome = tokio::select! {
            outcome = run => outcome,
            _ = shutdown.cancelled() => {
                tracing::debug!(broker = %cfg.name, probe = %probe.name, "probe run cancelled: stopping");
                return;
            }
        };
        match outcome {
            Ok(measured) => {
                if let (Some(h), Some(d)) = (&duration, measured) {
                    h.observe(d.as_secs_f64());
                }
                metrics.success.set(1);
            }
            Err(f) => {
                tracing::debug!(broker = %cfg.name, probe = %probe.name, reason = f.reason.as_str(), detail = %f.detail, "probe failed");
                metrics.record_failure(f.reason);
            }
        }
    }
}

/// Wait until a message whose payload is `want` arrives on `messages` (others are skipped:
/// an earlier run's, another sender's) and return its callback time; `None` at `until` or
/// when the client is gone.
pub(super) async fn receive(
    messages: &mut tokio::sync::mpsc::Receiver<(paho::Message, Instant)>,
    want: &[u8],
    until: Instant,
) -> Option<Instant> {
    loop {
        match tokio::time::timeout_at(until.into(), messages.recv()).await {
            Ok(Some((m, at))) if m.payload() == want => return Some(at),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// The `connect` prober: connect a fresh client, note the connect time, leave.
pub fn connect_once<'a>(
    r: Run<'a>,
) -> Pin<Box<dyn Future<Output = Result<Option<Duration>, Failure>> + Send + 'a>> {
    Box::pin(async move {
        let c = connect(r.cfg, r.negotiated, &ClientRole::Own.id(r.id), r.timeout).await?;
        let d = c.connect_time;
        c.close().await;
        Ok(Some(d))
    })
}

/// The `retained` prober: a value unique to this run (`mqs-retained <nonce> <run>`), see
/// [`retained_value`].
pub fn retained_once<'a>(
    r: Run<'a>,
) -> Pin<Box<dyn Future<Output = Result<Option<Duration>, Failure>> + Send + 'a>> {
    Box::pin(async move {
        let value = format!("mqs-retained {:016x} {}", r.nonce, r.run_no);
        retained_value(r.cfg, r.negotiated, r.id, r.topic, &value, r.timeout)
            .await
            .map(|()| None)
    })
}

/// Publish `value` retained; a fresh subscriber must get exactly it; then clear it.
async fn retained_value(
    cfg: &BrokerConfig,
    negotiated: &Negotiated,
    id: &str,
    topic: &str,
    value: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let deadline = super::deadline_after(Instant::now(), timeout);
    let left = || deadline.saturating_duration_since(Instant::now());
    let publisher = connect(cfg, negotiated, &ClientRole::Publisher.id(id), left()).await?;
    let result = async {
        publisher
            .publish(paho::Message::new_retained(topic, value, 1), left())
            .await?;
        let mut sub = connect(cfg, negotiated, &ClientRole::Subscriber.id(id), left()).await?;
        let got = async {
            sub.subscribe(topic, 1, left()).await?;
            match tokio::time::timeout(left(), sub.messages.recv()).await {
                Ok(Some((m, _))) if m.retained() && m.payload() == value.as_bytes() => Ok(()),
                Ok(Some((m, _))) => Err(Failure::new(
                    Reason::Mismatch,
                    format!(
                        "got {:?} (retained {}) instead of the value just published",
                        String::from_utf8_lossy(&m.payload()[..m.payload().len().min(64)]),
                        m.retained()
                    ),
                )),
                Ok(None) => Err(Failure::new(Reason::Error, "subscriber closed")),
                Err(_) => Err(Failure::new(
                    Reason::Timeout,
                    "retained message not delivered",
                )),
            }
        }
        .await;
        sub.close().await;
        got
    }
    .await;
    // Clear the retained message whatever happened; it is ours.
    let clear = publisher
        .publish(
            paho::Message::new_retained(topic, Vec::new(), 1),
            Duration::from_secs(1),
        )
        .await;
    publisher.close().await;
    result?;
    clear.map(|_| ())
}
