//! Probes that need a client of their own each run: `connect` (how long a device waits to get
//! in) and `retained` (does a newcomer get exactly the retained value). The shared
//! [`connect`] helper is also what one-shot probes use.

use crate::config::{BrokerConfig, ProbeConfig, Protocol};
use crate::metrics::{ProbeMetrics, Reason};
use crate::mqtt::negotiate::{Negotiation, Next};
use crate::mqtt::{options, reason};
use paho_mqtt as paho;
use prometheus_client::metrics::histogram::Histogram;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A failed step: a bounded label and a detail for the log.
#[derive(Debug)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
}

impl Failure {
    fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// A connected client with its own message queue (callback timestamps, as in `mqtt`).
/// Dropping it retires the Paho client safely (see `mqtt::options::retire`).
pub struct FreshClient {
    client: Option<paho::AsyncClient>,
    grace: Duration,
    pub messages: mpsc::Receiver<(paho::Message, Instant)>,
    /// TCP (+TLS) + CONNECT/CONNACK.
    pub connect_time: Duration,
}

impl Drop for FreshClient {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            options::retire(c, self.grace);
        }
    }
}

/// Connect a new client within `within`. With `protocol: auto` the version follows
/// `mqtt::negotiate`, as the watching session does: MQTT 5 first (or 3.1.1 while the broker's
/// watching session runs on it after a refusal), 3.1.1 only on evidence that MQTT 5 is refused,
/// all in the time given. A failed attempt's time counts against `within`; `connect_time` is
/// the successful attempt's own.
pub async fn connect(
    cfg: &BrokerConfig,
    client_id: &str,
    within: Duration,
) -> Result<FreshClient, Failure> {
    let started = Instant::now();
    let mut negotiation = Negotiation::new(cfg.protocol);
    if cfg.protocol == Protocol::Auto && cfg.negotiated.v311() {
        negotiation.assume_v311();
    }
    loop {
        let left = within.saturating_sub(started.elapsed());
        let used = negotiation.protocol();
        match connect_as(cfg, used, client_id, left).await {
            Ok(c) if negotiation.is_test() => {
                // The fallback rule's 3.1.1 test connect: leave, ask for MQTT 5 once more.
                c.close().await;
                negotiation.test_passed();
                if started.elapsed() >= within {
                    return Err(Failure::new(
                        Reason::Timeout,
                        "no time left to ask for MQTT 5 after a 3.1.1 test connect",
                    ));
                }
            }
            Ok(c) => return Ok(c),
            Err(f) => match negotiation.failed(f.reason) {
                Next::RetryNow(p) if started.elapsed() < within => {
                    tracing::debug!(broker = %cfg.name, result = f.reason.as_str(), error = %f.detail,
                        protocol = p.as_str(), "connect failed; trying again (protocol: auto)");
                }
                _ => return Err(f),
            },
        }
    }
}

async fn connect_as(
    cfg: &BrokerConfig,
    protocol: Protocol,
    client_id: &str,
    within: Duration,
) -> Result<FreshClient, Failure> {
    // A client that fails to be created has no tokens yet: a plain drop is safe.
    let client = paho::AsyncClient::new(options::create_options(cfg, protocol, client_id))
        .map_err(|e| Failure::new(Reason::Error, e.to_string()))?;
    let (tx, messages) = mpsc::channel(64);
    client.set_message_callback(move |_, m| {
        let at = Instant::now();
        if let Some(m) = m {
            // A one-shot client expects a handful of messages; more are dropped.
            let _ = tx.try_send((m, at));
        }
    });
    let mut cfg = cfg.clone();
    cfg.connect_timeout = cfg.connect_timeout.min(within);
    let opts = options::connect_options(&cfg, protocol)
        .map_err(|e| Failure::new(Reason::Error, e.to_string()))?;
    let started = Instant::now();
    match tokio::time::timeout(within, client.connect(opts)).await {
        Ok(Ok(_)) => Ok(FreshClient {
            client: Some(client),
            grace: options::retire_grace(&cfg),
            messages,
            connect_time: started.elapsed(),
        }),
        Ok(Err(e)) => {
            // Every client leaves through `retire`, even when nothing is pending any more.
            options::retire(client, options::retire_grace(&cfg));
            let d = reason::diagnose(&e, started.elapsed(), &cfg).await;
            Err(Failure::new(d.label, d.message(&e)))
        }
        Err(_) => {
            // Paho's own (whole-second) timeout or a late CONNACK completes the pending
            // connect token, which holds a clone of the client: keep ours until then. Do not
            // disconnect while the connect is pending.
            options::retire(client, options::retire_grace(&cfg));
            Err(Failure::new(
                Reason::Timeout,
                format!("no CONNACK within {within:?}"),
            ))
        }
    }
}

impl FreshClient {
    pub fn client(&self) -> &paho::AsyncClient {
        // Only `Drop` takes the client out, so it is always here before that.
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("client taken before drop"))
    }

    /// Disconnect, bounded; a broker that does not answer is not waited for.
    pub async fn close(self) {
        let opts = paho::DisconnectOptionsBuilder::new()
            .timeout(Duration::from_millis(200))
            .finalize();
        let _ =
            tokio::time::timeout(Duration::from_millis(500), self.client().disconnect(opts)).await;
    }

    /// Subscribe and check the SUBACK.
    pub async fn subscribe(
        &self,
        topic: &str,
        qos: i32,
        within: Duration,
    ) -> Result<Duration, Failure> {
        let t = Instant::now();
        crate::mqtt::subscribe_one(self.client(), topic, qos, within)
            .await
            .map(|_granted| t.elapsed())
            .map_err(|why| Failure::new(why, format!("subscription to {topic} refused")))
    }

    /// Publish and wait for the acknowledgement (written, for QoS 0).
    pub async fn publish(&self, msg: paho::Message, within: Duration) -> Result<Duration, Failure> {
        let t = Instant::now();
        match tokio::time::timeout(within, self.client().publish(msg)).await {
            Ok(Ok(())) => Ok(t.elapsed()),
            Ok(Err(e)) => Err(Failure::new(reason::label(&e), e.to_string())),
            Err(_) => Err(Failure::new(Reason::Timeout, "no acknowledgement")),
        }
    }
}

/// Run `probe` every interval until shutdown. Runs never overlap: a run is bounded by the
/// probe's timeout and missed ticks are skipped.
pub async fn run(
    cfg: BrokerConfig,
    probe: ProbeConfig,
    client_id: String,
    metrics: ProbeMetrics,
    connect_duration: Option<Histogram>,
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
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        run_no += 1;
        let id = format!("{client_id}-{}", probe.name);
        let outcome = match probe.kind {
            crate::config::ProbeKind::Retained => {
                let value = format!("mqs-retained {nonce:016x} {run_no}");
                retained_once(&cfg, &id, &topic, &value, probe.timeout).await
            }
            _ => connect_once(&cfg, &id, probe.timeout).await.map(|d| {
                if let Some(h) = &connect_duration {
                    h.observe(d.as_secs_f64());
                }
            }),
        };
        match outcome {
            Ok(()) => {
                metrics.success.set(1);
            }
            Err(f) => {
                tracing::debug!(broker = %cfg.name, probe = %probe.name, reason = f.reason.as_str(), detail = %f.detail, "probe failed");
                metrics.record_failure(f.reason);
            }
        }
    }
}

async fn connect_once(
    cfg: &BrokerConfig,
    id: &str,
    timeout: Duration,
) -> Result<Duration, Failure> {
    let c = connect(cfg, id, timeout).await?;
    let d = c.connect_time;
    c.close().await;
    Ok(d)
}

/// Publish `value` retained; a fresh subscriber must get exactly it; then clear it.
async fn retained_once(
    cfg: &BrokerConfig,
    id: &str,
    topic: &str,
    value: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let deadline = super::deadline_after(Instant::now(), timeout);
    let left = || deadline.saturating_duration_since(Instant::now());
    let publisher = connect(cfg, &format!("{id}-pub"), left()).await?;
    let result = async {
        publisher
            .publish(paho::Message::new_retained(topic, value, 1), left())
            .await?;
        let mut sub = connect(cfg, &format!("{id}-sub"), left()).await?;
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
