//! The MQTT transport: Paho clients, their options, the session's queues, the connect
//! negotiation and the reconnect policy. Nothing here knows what the session is used for
//! (`$SYS`, probes): the per-broker task that composes them is [`crate::broker`].
//!
//! Paho runs every callback of every client on ONE C thread, so callbacks here only take a
//! timestamp and `try_send` into tokio channels; a full queue drops the message and counts it.
//! Paho's automatic reconnect does not restore subscriptions, so it stays off and the broker
//! task owns the reconnect loop ([`reconnect`]: exponential backoff with full jitter, a pure
//! policy) and re-subscribes on every connect.
//!
//! * `options` the only place config becomes Paho options, and the safe drop of a client;
//! * `negotiate` `protocol: auto` per connect sequence, and [`negotiate::Negotiated`], what
//!   the watching session runs on now (runtime state, not configuration);
//! * `reconnect` the delay before the next connect, pure (the random draw is a parameter);
//! * `reason` bounded labels for connect results and reason codes;
//! * `fresh` a client of its own for one run (connect and retained probes, one-shot probes);
//! * `will` a client that speaks CONNECT with a will itself, to leave without DISCONNECT;
//! * `wakeup` Paho C's internal wake-up pair made non-blocking (a process-wide hang otherwise).

mod backoff;
pub mod fresh;
pub mod negotiate;
pub mod options;
pub mod reason;
pub mod reconnect;
pub mod wakeup;
pub mod will;

use crate::config::{BrokerConfig, Protocol};
use crate::metrics::{MqttVersion, Reason};
use paho_mqtt as paho;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::debug;

/// Messages the callback may queue before it starts dropping. `$SYS` of a Mosquitto broker is
/// ~55 messages a second; this absorbs bursts (retained replay on subscribe) with room to spare.
const QUEUE: usize = 1024;
/// Probe replies: a handful in flight per probe.
const PROBE_QUEUE: usize = 256;

/// A message as received in the Paho callback, stamped before any channel hop.
pub struct Received {
    pub msg: paho::Message,
    /// Callback time: the receive time of round-trip probes.
    pub at: Instant,
}

/// Session-level events from Paho callbacks.
#[derive(Debug)]
pub enum Control {
    /// The connection dropped; for a v5 server DISCONNECT, with its reason.
    Lost(Option<paho::ReasonCode>),
}

/// A unique client id for this process: `mqtt-sentinel-<host>-<random>`, so two replicas
/// never take over each other's session.
pub fn generated_client_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    format!("mqtt-sentinel-{host}-{:08x}", rand::random::<u32>())
}

/// The receiving ends of an [`Inbox`]: everything else, and messages under the probe prefix.
pub struct Queues {
    pub messages: mpsc::Receiver<Received>,
    pub probes: mpsc::Receiver<Received>,
}

/// A Paho client speaking `protocol` for `cfg` under `client_id`, with the callbacks that feed
/// `inbox` and `ctl_tx` (a full queue counts in `dropped`), and its connect options. `None`
/// (logged) when Paho refuses the options: the broker is not watched.
pub fn new_client(
    cfg: &BrokerConfig,
    protocol: Protocol,
    client_id: &str,
    inbox: &Inbox,
    ctl_tx: &mpsc::UnboundedSender<Control>,
    dropped: &prometheus_client::metrics::counter::Counter,
) -> Option<(paho::AsyncClient, paho::ConnectOptions)> {
    let broker = &cfg.name;
    let client = match paho::AsyncClient::new(options::create_options(cfg, protocol, client_id)) {
        Ok(c) => {
            wakeup::unblock();
            c
        }
        Err(e) => {
            tracing::error!(%broker, error = %e, "cannot create MQTT client; this broker is not watched");
            return None;
        }
    };
    let opts = match options::connect_options(cfg, protocol) {
        Ok(o) => o,
        Err(e) => {
            // No token exists yet, so dropping the client here is safe.
            tracing::error!(%broker, error = %e, "invalid MQTT options; this broker is not watched");
            return None;
        }
    };
    install_callbacks(&client, inbox.clone(), ctl_tx.clone(), dropped.clone());
    Some((client, opts))
}

/// Ask the broker something MQTT requires it to answer: an UNSUBSCRIBE of a filter we never
/// subscribe to, which gets an UNSUBACK in every case (MQTT 3.1.1 §3.10.4, 5.0 §3.10.4; a
/// v5 reason code such as 0x11 *No subscription existed* or 0x87 is still an answer). It
/// changes nothing on the broker and, unlike a PUBLISH, no ACL or size limit can silently
/// drop it. Resolves to the time of the answer, or `None` when the token ended without one.
pub fn ask_liveness(
    client: &paho::AsyncClient,
    topic: &str,
) -> Pin<Box<dyn Future<Output = Option<Instant>> + Send>> {
    let token = client.unsubscribe(topic);
    Box::pin(async move {
        match token.await {
            Ok(_) | Err(paho::Error::ReasonCode(..)) => Some(Instant::now()),
            Err(e) => {
                debug!(error = %e, "liveness question got no answer");
                None
            }
        }
    })
}

/// The `protocol` label of a session connected with `p` (never `Auto`: a connect asks for the
/// version `Negotiation::protocol` chose).
pub fn session_version(p: Protocol) -> MqttVersion {
    match p {
        Protocol::V311 => MqttVersion::V311,
        Protocol::V5 | Protocol::Auto => MqttVersion::V5,
    }
}

/// How long the watching session waits for a SUBACK.
pub const SUBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Subscribe and check the SUBACK within `within`: `Ok` carries the QoS the broker granted
/// (it may be lower than asked: RabbitMQ grants 1 for 2), `Err` a bounded reason label.
/// Shared by the watching session and fresh probe clients.
pub async fn subscribe_one(
    client: &paho::AsyncClient,
    topic: &str,
    qos: i32,
    within: Duration,
) -> Result<i32, Reason> {
    match tokio::time::timeout(within, client.subscribe(topic, qos)).await {
        Ok(Ok(rsp)) => {
            if rsp.reason_code().is_err() {
                Err(reason::reason_name(rsp.reason_code()))
            } else {
                match rsp.subscribe_response() {
                    // v3.1.1 SUBACK failure (0x80) carries no reason.
                    Some(q) if q >= 0x80 => Err(Reason::NotAuthorized),
                    Some(q) => Ok(q),
                    // v5: the reason code is the granted QoS (0, 1, 2).
                    None => Ok(rsp.reason_code() as i32),
                }
            }
        }
        Ok(Err(e)) => Err(reason::label(&e)),
        Err(_) => Err(Reason::Timeout),
    }
}

/// Unsubscribe from `topic` and wait for the UNSUBACK within `within`: `Err` carries a bounded
/// reason label (a v5 reason code such as 0x11 *No subscription existed* is an answer, and
/// `Ok`: the session has no subscription on `topic` either way).
pub async fn unsubscribe_one(
    client: &paho::AsyncClient,
    topic: &str,
    within: Duration,
) -> Result<(), Reason> {
    match tokio::time::timeout(within, client.unsubscribe(topic)).await {
        Ok(Ok(_) | Err(paho::Error::ReasonCode(..))) => Ok(()),
        Ok(Err(e)) => Err(reason::label(&e)),
        Err(_) => Err(Reason::Timeout),
    }
}

/// The queues from the Paho thread to the broker task: probe replies have their own, so a
/// flood on `$SYS` (or anything else we subscribe to) cannot crowd them out.
#[derive(Clone)]
pub struct Inbox {
    messages: mpsc::Sender<Received>,
    probes: mpsc::Sender<Received>,
    /// `<probe_topic_prefix>/`
    probe_prefix: String,
}

impl Inbox {
    /// The queues of one broker task: messages on topics under `<probe_prefix>/` go to
    /// [`Queues::probes`] (256), everything else to [`Queues::messages`] (1024).
    pub fn new(probe_prefix: &str) -> (Self, Queues) {
        let (msg_tx, messages) = mpsc::channel::<Received>(QUEUE);
        let (probe_tx, probes) = mpsc::channel::<Received>(PROBE_QUEUE);
        let inbox = Inbox {
            messages: msg_tx,
            probes: probe_tx,
            probe_prefix: format!("{probe_prefix}/"),
        };
        (inbox, Queues { messages, probes })
    }
}

fn install_callbacks(
    client: &paho::AsyncClient,
    inbox: Inbox,
    ctl_tx: mpsc::UnboundedSender<Control>,
    dropped: prometheus_client::metrics::counter::Counter,
) {
    client.set_message_callback(move |_, msg| {
        let at = Instant::now();
        let Some(msg) = msg else { return };
        let queue = if msg.topic().starts_with(&inbox.probe_prefix) {
            &inbox.probes
        } else {
            &inbox.messages
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(Received { msg, at }) {
            dropped.inc();
        }
    });
    let lost_tx = ctl_tx.clone();
    client.set_connection_lost_callback(move |_| {
        let _ = lost_tx.send(Control::Lost(None));
    });
    client.set_disconnected_callback(move |_, _props, rc| {
        let _ = ctl_tx.send(Control::Lost(Some(rc)));
    });
}
