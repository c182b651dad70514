//! One task per broker: connect with Paho, keep the session, feed `$SYS` to the collector.
//!
//! Paho runs every callback of every client on ONE C thread, so callbacks here only take a
//! timestamp and `try_send` into tokio channels; a full queue drops the message and counts it.
//! Paho's automatic reconnect does not restore subscriptions, so it stays off and this task
//! owns the reconnect loop (exponential backoff with full jitter) and re-subscribes on every
//! connect. `mqtt_up` is 1 exactly between a successful CONNACK and the loss of that session.

mod backoff;
pub mod options;
pub mod reason;

use crate::config::BrokerConfig;
use crate::metrics::BrokerMetrics;
use crate::sys::Ingest;
use backoff::Backoff;
use paho_mqtt as paho;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Messages the callback may queue before it starts dropping. `$SYS` of a Mosquitto broker is
/// ~55 messages a second; this absorbs bursts (retained replay on subscribe) with room to spare.
const QUEUE: usize = 1024;
/// A session shorter than this does not reset the backoff, so a broker that accepts and then
/// drops us (session taken over, ACL kick) is retried with growing delays, not in a tight loop.
const STABLE_SESSION: Duration = Duration::from_secs(5);

/// A message as received in the Paho callback, stamped before any channel hop.
struct Received {
    msg: paho::Message,
    #[allow(dead_code)] // read by the probe runner (round-trip times)
    at: Instant,
}

/// Session-level events from Paho callbacks.
#[derive(Debug)]
enum Control {
    /// The connection dropped; for a v5 server DISCONNECT, with its reason.
    Lost(Option<paho::ReasonCode>),
}

enum End {
    Shutdown,
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

pub struct Connection {
    cfg: BrokerConfig,
    client_id: String,
    metrics: BrokerMetrics,
    ingest: Option<Ingest>,
}

impl Connection {
    pub fn new(cfg: BrokerConfig, metrics: BrokerMetrics, ingest: Option<Ingest>) -> Self {
        let client_id = cfg.client_id.clone().unwrap_or_else(generated_client_id);
        Self {
            cfg,
            client_id,
            metrics,
            ingest,
        }
    }

    /// Run until `shutdown`; then disconnect cleanly (bounded) and return.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let broker = self.cfg.name.clone();
        let client = match paho::AsyncClient::new(options::create_options(
            &self.cfg,
            &self.client_id,
        )) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%broker, error = %e, "cannot create MQTT client; this broker is not watched");
                return;
            }
        };
        let opts = match options::connect_options(&self.cfg) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(%broker, error = %e, "invalid MQTT options; this broker is not watched");
                return;
            }
        };
        let (msg_tx, mut msg_rx) = mpsc::channel::<Received>(QUEUE);
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<Control>();
        install_callbacks(
            &client,
            msg_tx,
            ctl_tx,
            self.metrics.messages_dropped.clone(),
        );

        let mut backoff = Backoff::new(self.cfg.reconnect);
        let mut failures: u64 = 0;
        // Our deadline is Paho's plus a margin: Paho should always answer first.
        let deadline = self.cfg.connect_timeout + Duration::from_secs(2);
        loop {
            // Events of an earlier session must not end the next one.
            while ctl_rx.try_recv().is_ok() {}
            let started = Instant::now();
            let attempt = tokio::select! {
                r = tokio::time::timeout(deadline, client.connect(opts.clone())) => r,
                _ = shutdown.cancelled() => break,
            };
            let result = match attempt {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err((self.diagnose(&e, started.elapsed()).await, e.to_string())),
                Err(_) => {
                    // Abandon the attempt so the next connect is not ignored as a duplicate.
                    drop(client.disconnect(None));
                    Err((reason::TIMEOUT, format!("no CONNACK within {deadline:?}")))
                }
            };
            match result {
                Ok(()) => {
                    self.metrics.record_connect(reason::SUCCESS);
                    self.metrics.up.set(1);
                    info!(%broker, url = %self.cfg.url, client_id = %self.client_id,
                          protocol = self.cfg.protocol.as_str(), after_failures = failures,
                          "connected");
                    failures = 0;
                    let session_start = Instant::now();
                    self.subscribe(&client).await;
                    let end = self
                        .session(&client, &mut msg_rx, &mut ctl_rx, &shutdown)
                        .await;
                    self.metrics.up.set(0);
                    if let Some(ing) = &mut self.ingest {
                        ing.session_ended();
                    }
                    match end {
                        End::Shutdown => break,
                        End::Lost(rc) => {
                            let why = rc.map(reason::reason_name).unwrap_or("connection lost");
                            warn!(%broker, reason = why, "disconnected from broker");
                        }
                    }
                    if session_start.elapsed() >= STABLE_SESSION {
                        backoff.reset();
                    }
                }
                Err((label, detail)) => {
                    self.metrics.record_connect(label);
                    failures += 1;
                    // One warning per outage; every later attempt at debug level.
                    if failures == 1 {
                        warn!(%broker, url = %self.cfg.url, result = label, error = %detail, "cannot connect; retrying with backoff");
                    } else {
                        debug!(%broker, result = label, error = %detail, attempt = failures, "connect failed");
                    }
                }
            }
            let delay = backoff.next();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.metrics.up.set(0);
        if client.is_connected() {
            let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect(None)).await;
        }
        info!(%broker, "stopped");
    }

    async fn subscribe(&self, client: &paho::AsyncClient) {
        let Some(ing) = &self.ingest else { return };
        let topic = self.cfg.sys.topic.clone();
        let r = tokio::time::timeout(Duration::from_secs(10), client.subscribe(&topic, 0)).await;
        let refused = match &r {
            Ok(Ok(rsp)) => {
                rsp.reason_code().is_err() || rsp.subscribe_response().is_some_and(|q| q >= 0x80)
            }
            _ => true,
        };
        if refused {
            let detail = match r {
                Ok(Ok(rsp)) => reason::reason_name(rsp.reason_code()).to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no SUBACK within 10s".to_owned(),
            };
            warn!(broker = %ing.store().broker, %topic, error = %detail,
                  "$SYS subscription refused; broker statistics will be missing");
        } else {
            debug!(broker = %ing.store().broker, %topic, "subscribed");
        }
    }

    async fn session(
        &mut self,
        client: &paho::AsyncClient,
        msg_rx: &mut mpsc::Receiver<Received>,
        ctl_rx: &mut mpsc::UnboundedReceiver<Control>,
        shutdown: &CancellationToken,
    ) -> End {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Shutdown,
                c = ctl_rx.recv() => match c {
                    Some(Control::Lost(rc)) => {
                        if !client.is_connected() {
                            return End::Lost(rc);
                        }
                    }
                    None => return End::Lost(None),
                },
                m = msg_rx.recv() => match m {
                    Some(r) => self.dispatch(r),
                    None => return End::Lost(None),
                },
            }
        }
    }

    fn dispatch(&mut self, r: Received) {
        let topic = r.msg.topic();
        if let Some(ing) = self.ingest.as_mut().filter(|i| i.wants(topic)) {
            ing.handle(topic, r.msg.payload(), SystemTime::now());
        }
    }

    /// Name a failure Paho reports only as "TCP/TLS connect failure": look at the transport
    /// ourselves (once per failed attempt, bounded by 2 s each step).
    async fn diagnose(&self, err: &paho::Error, elapsed: Duration) -> &'static str {
        if let Some(label) = reason::from_error(err) {
            return label;
        }
        if elapsed + Duration::from_millis(100) >= self.cfg.connect_timeout {
            return reason::TIMEOUT;
        }
        let step = Duration::from_secs(2);
        let host = self.cfg.url.host.as_str();
        let port = self.cfg.url.port;
        let addrs = match tokio::time::timeout(step, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(a)) => a.collect::<Vec<_>>(),
            Ok(Err(_)) => return reason::DNS,
            Err(_) => return reason::TIMEOUT,
        };
        let Some(addr) = addrs.first() else {
            return reason::DNS;
        };
        match tokio::time::timeout(step, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) if self.cfg.url.is_tls() => reason::TLS,
            Ok(Ok(_)) => reason::ERROR,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => reason::REFUSED,
            Ok(Err(_)) => reason::ERROR,
            Err(_) => reason::TIMEOUT,
        }
    }
}

fn install_callbacks(
    client: &paho::AsyncClient,
    msg_tx: mpsc::Sender<Received>,
    ctl_tx: mpsc::UnboundedSender<Control>,
    dropped: prometheus_client::metrics::counter::Counter,
) {
    client.set_message_callback(move |_, msg| {
        let at = Instant::now();
        let Some(msg) = msg else { return };
        if let Err(mpsc::error::TrySendError::Full(_)) = msg_tx.try_send(Received { msg, at }) {
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
