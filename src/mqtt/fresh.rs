//! A client of its own for one run: connect (with `protocol: auto` negotiated as the watching
//! session does), subscribe, publish, close. Used by the connect and retained probes and by
//! one-shot probes; dropping a [`FreshClient`] retires its Paho client safely.

use super::negotiate::{Negotiated, Negotiation, Next};
use super::{options, reason};
use crate::config::{BrokerConfig, Protocol};
use crate::metrics::Reason;
use paho_mqtt as paho;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A failed step: a bounded label and a detail for the log.
#[derive(Debug)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
}

impl Failure {
    /// A failure labelled `reason`, with `detail` for the log.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// A connected client with its own message queue (callback timestamps, as for the watching session).
/// Dropping it retires the Paho client safely (see `options::retire`).
pub struct FreshClient {
    client: Option<paho::AsyncClient>,
    grace: Duration,
    pub messages: mpsc::Receiver<(paho::Message, Instant)>,
    /// TCP (+TLS) + CONNECT/CONNACK.
    pub connect_time: Duration,
    /// The CONNACK's Session Present flag (MQTT 5.0 §3.2.2.1.1, 3.1.1 §3.2.2.2).
    pub session_present: bool,
    /// The version this client speaks (never `Auto`).
    pub protocol: Protocol,
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
    negotiated: &Negotiated,
    client_id: &str,
    within: Duration,
) -> Result<FreshClient, Failure> {
    connect_with(cfg, negotiated, client_id, within, None).await
}

/// [`connect`] asking for a session that outlives the connection (see [`options::Persist`]).
pub async fn connect_persistent(
    cfg: &BrokerConfig,
    negotiated: &Negotiated,
    client_id: &str,
    within: Duration,
    persist: options::Persist,
) -> Result<FreshClient, Failure> {
    connect_with(cfg, negotiated, client_id, within, Some(persist)).await
}

async fn connect_with(
    cfg: &BrokerConfig,
    negotiated: &Negotiated,
    client_id: &str,
    within: Duration,
    persist: Option<options::Persist>,
) -> Result<FreshClient, Failure> {
    let started = Instant::now();
    let mut negotiation = Negotiation::new(cfg.protocol);
    if cfg.protocol == Protocol::Auto && negotiated.v311() {
        negotiation.assume_v311();
    }
    loop {
        let left = within.saturating_sub(started.elapsed());
        let used = negotiation.protocol();
        match connect_as(cfg, used, client_id, left, persist).await {
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
    persist: Option<options::Persist>,
) -> Result<FreshClient, Failure> {
    // A client that fails to be created has no tokens yet: a plain drop is safe.
    let client = paho::AsyncClient::new(options::create_options(cfg, protocol, client_id))
        .map_err(|e| Failure::new(Reason::Error, e.to_string()))?;
    super::wakeup::unblock();
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
    let opts = match persist {
        None => options::connect_options(&cfg, protocol),
        Some(p) => options::persistent_session_options(&cfg, protocol, p),
    }
    .map_err(|e| Failure::new(Reason::Error, e.to_string()))?;
    let started = Instant::now();
    match tokio::time::timeout(within, client.connect(opts)).await {
        Ok(Ok(rsp)) => Ok(FreshClient {
            client: Some(client),
            grace: options::retire_grace(&cfg),
            messages,
            connect_time: started.elapsed(),
            session_present: rsp.connect_response().is_some_and(|c| c.session_present),
            protocol: match protocol {
                Protocol::V311 => Protocol::V311,
                Protocol::V5 | Protocol::Auto => Protocol::V5,
            },
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

    /// The client to publish on and the queue of what it receives, borrowed together (a
    /// round trip publishes and receives on one client; a bridge run publishes on one and
    /// receives on another's queue).
    pub fn parts(
        &mut self,
    ) -> (
        &paho::AsyncClient,
        &mut mpsc::Receiver<(paho::Message, Instant)>,
    ) {
        let client = self
            .client
            .as_ref()
            .unwrap_or_else(|| unreachable!("client taken before drop"));
        (client, &mut self.messages)
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
        super::subscribe_one(self.client(), topic, qos, within)
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
