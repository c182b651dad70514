//! One task per broker: the watching MQTT session (`mqtt`), with `$SYS` ingest (`sys`) and
//! the round-trip probes (`probe::runner`) on it. This module composes them; `mqtt` is the
//! transport and knows neither.
//!
//! The task owns the reconnect loop (`mqtt::reconnect` decides the delays) and re-subscribes
//! on every connect. `mqtt_up` is 1 exactly between a successful CONNACK and the loss of that
//! session.
//!
//! The liveness rule: a session is declared unresponsive only when the broker answers
//! nothing. Every inbound packet we can see (a message, `$SYS`, a PUBACK/PUBCOMP, an UNSUBACK)
//! updates `last_rx`; a probe run that expires after that is a lost message
//! (`not_delivered`), not a dead broker. A run that has heard nothing at all 100 ms after its
//! send makes the session ask an UNSUBSCRIBE (see [`mqtt::ask_liveness`]); the session is
//! dropped only if nothing at all arrived by the run's deadline + [`LIVENESS_GRACE`].
//! `protocol: auto` picks the MQTT version per connect sequence ([`mqtt::negotiate`]).

use crate::config::BrokerConfig;
use crate::metrics::{BrokerMetrics, Reason};
use crate::mqtt::negotiate::{self, Negotiated};
use crate::mqtt::reconnect::{Reconnect, SessionEnd};
use crate::mqtt::{
    self, Control, Inbox, Queues, Received, SUBACK_TIMEOUT, generated_client_id, options, reason,
    session_version, subscribe_one,
};
use crate::probe::bridge::{Bridges, Inbound};
use crate::probe::runner::{LIVENESS_GRACE, Probes};
use crate::sys::Ingest;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use paho_mqtt as paho;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// With no `$SYS` message this long after subscribing, say once that the broker has none.
/// Longer than EMQX's default one-minute `sys_interval`.
const SYS_SILENCE: Duration = Duration::from_secs(90);

enum End {
    Shutdown,
    Lost(Option<paho::ReasonCode>),
    /// The connection is open but the broker stopped answering: a probe timed out and nothing
    /// at all arrived since it was sent, the liveness question's UNSUBACK included, by its
    /// deadline + [`LIVENESS_GRACE`]. Frozen, overloaded or half-open.
    Unresponsive,
}

/// The watching session of one broker with what runs on it; [`Connection::run`] is its task.
pub struct Connection {
    cfg: BrokerConfig,
    client_id: String,
    /// What `protocol: auto` settled on, shared with the broker's fresh-client probes.
    negotiated: Negotiated,
    metrics: BrokerMetrics,
    ingest: Option<Ingest>,
    probes: Probes,
    /// Bridge probes that publish here, and the receiving side of those that end here.
    bridges: Bridges,
    inbound: Inbound,
    /// Callback time of the last message of any kind in this session.
    last_rx: Instant,
    /// A `$SYS` message arrived in this session / ever.
    sys_seen: (bool, bool),
    /// "This broker has no `$SYS`" was logged.
    sys_silence_noted: bool,
    /// The filter the liveness question unsubscribes from: `<prefix>/<client-id>/liveness`,
    /// never subscribed to.
    liveness_topic: String,
}

impl Connection {
    /// `make_probes` builds the round-trip probes for the client id chosen here (explicit, or
    /// generated once per process: see [`generated_client_id`]).
    pub fn new(
        cfg: BrokerConfig,
        negotiated: Negotiated,
        metrics: BrokerMetrics,
        ingest: Option<Ingest>,
        make_probes: impl FnOnce(&BrokerConfig, &str) -> Probes,
        (bridges, inbound): (Bridges, Inbound),
    ) -> Self {
        let client_id = cfg.client_id.clone().unwrap_or_else(generated_client_id);
        let probes = make_probes(&cfg, &client_id);
        let liveness_topic = format!(
            "{}/{}/liveness",
            cfg.probe_topic_prefix,
            crate::probe::runner::topic_segment(&client_id)
        );
        Self {
            client_id,
            negotiated,
            metrics,
            ingest,
            probes,
            bridges,
            inbound,
            last_rx: Instant::now(),
            sys_seen: (false, false),
            sys_silence_noted: false,
            liveness_topic,
            cfg,
        }
    }

    /// The client id of the watching session; fresh-client probes derive theirs from it.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Run until `shutdown`; then disconnect cleanly (bounded) and return.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let broker = self.cfg.name.clone();
        let (inbox, mut rx) = Inbox::new(&self.cfg.probe_topic_prefix);
        let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<Control>();
        let mut negotiation = negotiate::Negotiation::new(self.cfg.protocol);
        let mut client_protocol = negotiation.protocol();
        let Some((mut client, mut opts)) = self.new_client(client_protocol, &inbox, &ctl_tx) else {
            return;
        };

        let mut reconnect = Reconnect::new(self.cfg.reconnect);
        let mut failures: u64 = 0;
        // Our deadline is Paho's plus a margin: Paho should always answer first.
        let deadline = self.cfg.connect_timeout + Duration::from_secs(2);
        loop {
            if negotiation.protocol() != client_protocol {
                // `protocol: auto` switched versions; Paho fixes it per client.
                client_protocol = negotiation.protocol();
                let Some((c, o)) = self.new_client(client_protocol, &inbox, &ctl_tx) else {
                    break;
                };
                options::retire(
                    std::mem::replace(&mut client, c),
                    options::retire_grace(&self.cfg),
                );
                opts = o;
            }
            // Every attempt uses the files the config names as they are now (a rotated
            // password_file); options that no longer build keep the previous ones.
            if let Ok(o) = options::connect_options(&self.cfg, client_protocol) {
                opts = o;
            }
            // Events of an earlier session must not end the next one.
            while ctl_rx.try_recv().is_ok() {}
            let started = Instant::now();
            let attempt = tokio::select! {
                r = tokio::time::timeout(deadline, client.connect(opts.clone())) => r,
                _ = shutdown.cancelled() => break,
            };
            let result = match attempt {
                Ok(Ok(rsp)) => {
                    // MQTT 5 brokers announce a Maximum QoS below 2 in the CONNACK.
                    if let Some(q) = rsp.properties().get_int(paho::PropertyCode::MaximumQos) {
                        self.probes.set_max_qos(q);
                    }
                    Ok(())
                }
                Ok(Err(e)) => {
                    let d = reason::diagnose(&e, started.elapsed(), &self.cfg).await;
                    Err((d.label, d.message(&e)))
                }
                Err(_) => {
                    // Paho's own timeout (shorter than ours) normally ends the attempt first.
                    // Never disconnect while a connect is pending: Paho frees the connect
                    // token's context and later completes the connect with it.
                    Err((Reason::Timeout, format!("no CONNACK within {deadline:?}")))
                }
            };
            match result {
                Ok(()) if negotiation.is_test() => {
                    // The fallback rule's 3.1.1 test connect: the broker takes 3.1.1 now.
                    // Leave cleanly and ask for MQTT 5 once more (see `negotiate`).
                    self.metrics.record_connect(Reason::Success);
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), client.disconnect(None)).await;
                    negotiation.test_passed();
                    info!(%broker, "MQTT 5 was closed without a CONNACK and a 3.1.1 test connect succeeded; asking for MQTT 5 once more to tell a refusal from an outage (protocol: auto)");
                    continue;
                }
                Ok(()) => {
                    self.metrics.record_connect(Reason::Success);
                    self.metrics.up.set(1);
                    self.metrics.set_protocol(session_version(client_protocol));
                    let fell_back = negotiation.evidence();
                    self.negotiated.set_v311(fell_back.is_some());
                    if let Some(evidence) = fell_back {
                        info!(%broker, %evidence,
                              "MQTT 5 refused: this session uses MQTT 3.1.1; the next connect asks for MQTT 5 again (protocol: auto)");
                    }
                    info!(%broker, url = %self.cfg.url, client_id = %self.client_id,
                          protocol = client_protocol.as_str(), after_failures = failures,
                          "connected");
                    failures = 0;
                    let session_start = Instant::now();
                    self.last_rx = session_start;
                    self.sys_seen.0 = false;
                    self.subscribe(&client).await;
                    self.probes.session_started(Instant::now());
                    self.bridges.session_started(Instant::now());
                    self.inbound.subscribe(&client);
                    let end = self.session(&client, &mut rx, &mut ctl_rx, &shutdown).await;
                    self.metrics.up.set(0);
                    // No fallback outlives its session.
                    negotiation.reset();
                    self.negotiated.set_v311(false);
                    self.probes.session_ended();
                    self.bridges.session_ended();
                    self.inbound.session_ended();
                    if let Some(ing) = &mut self.ingest {
                        ing.session_ended();
                    }
                    let mut taken_over = false;
                    match end {
                        End::Shutdown => break,
                        End::Lost(rc) => {
                            if rc == Some(paho::ReasonCode::QosNotSupported) {
                                self.probes.qos_refused();
                            }
                            let why = rc
                                .map(reason::reason_name)
                                .unwrap_or(Reason::ConnectionLost);
                            self.metrics.record_disconnect(why);
                            taken_over = rc == Some(paho::ReasonCode::SessionTakenOver);
                            if !taken_over {
                                warn!(%broker, reason = why.as_str(), "disconnected from broker");
                            }
                        }
                        End::Unresponsive => {
                            self.metrics.record_disconnect(Reason::Unresponsive);
                            // Do not wait for a frozen broker to acknowledge DISCONNECT.
                            let opts = paho::DisconnectOptionsBuilder::new()
                                .timeout(Duration::ZERO)
                                .finalize();
                            let _ = tokio::time::timeout(
                                Duration::from_millis(500),
                                client.disconnect(opts),
                            )
                            .await;
                        }
                    }
                    let next = reconnect.after_session(
                        SessionEnd {
                            lasted: session_start.elapsed(),
                            taken_over,
                        },
                        rand::random::<f64>(),
                    );
                    if taken_over {
                        if next.takeovers == 1 {
                            tracing::error!(%broker, client_id = %self.client_id, reason = Reason::SessionTakenOver.as_str(), max_backoff = ?self.cfg.reconnect.max,
                                "another client connected with our client id and took the session over (two replicas with the same explicit client_id?); reconnecting only after the maximum backoff to avoid a tug of war");
                        } else {
                            debug!(%broker, reason = Reason::SessionTakenOver.as_str(), takeovers = next.takeovers, "session taken over again");
                        }
                    }
                    if next.started_flapping {
                        warn!(%broker, client_id = %self.client_id, sessions = mqtt::reconnect::FLAPPING, max_backoff = ?self.cfg.reconnect.max,
                              "the broker ended our last sessions within seconds of connecting (another client with the same client id? an ACL or connection limit?); reconnecting at the maximum backoff until a session lasts");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(next.delay) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    continue;
                }
                Err((label, detail)) => {
                    self.metrics.record_connect(label);
                    if let negotiate::Next::RetryNow(next) = negotiation.failed(label) {
                        info!(%broker, result = label.as_str(), error = %detail, tried = client_protocol.as_str(),
                              next = next.as_str(), evidence = negotiation.evidence().unwrap_or("none yet"),
                              "connect failed without a CONNACK; trying again at once (protocol: auto)");
                        continue;
                    }
                    failures += 1;
                    // One warning per outage; every later attempt at debug level.
                    if failures == 1 {
                        warn!(%broker, url = %self.cfg.url, result = label.as_str(), error = %detail, "cannot connect; retrying with backoff");
                    } else {
                        debug!(%broker, result = label.as_str(), error = %detail, attempt = failures, "connect failed");
                    }
                }
            }
            let delay = reconnect.after_failure(rand::random::<f64>());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        self.metrics.up.set(0);
        if client.is_connected() {
            let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect(None)).await;
        }
        options::retire(client, options::retire_grace(&self.cfg));
        info!(%broker, "stopped");
    }

    /// A Paho client speaking `protocol`, with our callbacks (see [`mqtt::new_client`]).
    fn new_client(
        &self,
        protocol: crate::config::Protocol,
        inbox: &Inbox,
        ctl_tx: &mpsc::UnboundedSender<Control>,
    ) -> Option<(paho::AsyncClient, paho::ConnectOptions)> {
        mqtt::new_client(
            &self.cfg,
            protocol,
            &self.client_id,
            inbox,
            ctl_tx,
            &self.metrics.messages_dropped,
        )
    }

    async fn subscribe(&mut self, client: &paho::AsyncClient) {
        let broker = self.cfg.name.clone();
        if self.ingest.is_some() {
            let topic = self.cfg.sys.topic.clone();
            if let Err(why) = subscribe_one(client, &topic, 0, SUBACK_TIMEOUT).await {
                warn!(%broker, %topic, error = %why,
                      "$SYS subscription refused; broker statistics will be missing");
            }
        }
        for (i, topic, qos) in self.probes.subscriptions() {
            if !self.probes.qos_allowed(qos) {
                self.probes.qos_not_supported(i, &broker);
                continue;
            }
            let granted = subscribe_one(client, &topic, qos.as_i32(), SUBACK_TIMEOUT).await;
            if let Err(why) = granted {
                warn!(%broker, %topic, reason = why.as_str(), "probe subscription refused; the probe fails until it is allowed");
            }
            self.probes.subscribed(i, granted, &broker);
        }
    }

    async fn session(
        &mut self,
        client: &paho::AsyncClient,
        rx: &mut Queues,
        ctl_rx: &mut mpsc::UnboundedReceiver<Control>,
        shutdown: &CancellationToken,
    ) -> End {
        let silence_deadline = Instant::now() + SYS_SILENCE;
        // The liveness question (see `ask_liveness`): pending answers, and the send time of the
        // oldest probe run that expired with nothing received since, with when to judge it.
        let mut answers: FuturesUnordered<Pin<Box<dyn Future<Output = Option<Instant>> + Send>>> =
            FuturesUnordered::new();
        let mut suspect: Option<(Instant, Instant)> = None;
        let far = Duration::from_secs(3600);
        loop {
            let watch_silence =
                self.ingest.is_some() && !self.sys_seen.0 && !self.sys_silence_noted;
            // A far-away instant stands in for "no probe work scheduled".
            let wake = [self.probes.next_wakeup(), self.bridges.next_wakeup()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + far);
            let acks_pending = !self.probes.acks().is_empty();
            let answers_pending = !answers.is_empty();
            let (since, verdict_at) =
                suspect.unwrap_or_else(|| (Instant::now(), Instant::now() + far));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Shutdown,
                c = ctl_rx.recv() => match c {
                    Some(Control::Lost(rc)) => {
                        if !client.is_connected() {
                            if rc.is_some() {
                                return End::Lost(rc);
                            }
                            // Paho reports the lost connection first and the server's
                            // DISCONNECT (with its reason) right after: wait briefly for it.
                            let reason = tokio::time::timeout(Duration::from_millis(200), ctl_rx.recv()).await;
                            return End::Lost(match reason {
                                Ok(Some(Control::Lost(Some(rc)))) => Some(rc),
                                _ => None,
                            });
                        }
                    }
                    None => return End::Lost(None),
                },
                m = rx.probes.recv() => match m {
                    Some(r) => self.dispatch(r),
                    None => return End::Lost(None),
                },
                m = rx.messages.recv() => match m {
                    Some(r) => self.dispatch(r),
                    None => return End::Lost(None),
                },
                Some(done) = self.probes.acks().next(), if acks_pending => {
                    if let Some(at) = done.answered_at() {
                        self.last_rx = self.last_rx.max(at);
                    }
                    self.probes.on_ack(done);
                }
                e = self.bridges.next_event() => {
                    if let Some(at) = self.bridges.on_event(e) {
                        self.last_rx = self.last_rx.max(at);
                    }
                }
                e = self.inbound.next_event() => self.inbound.on_event(e, client),
                Some(answer) = answers.next(), if answers_pending => {
                    if let Some(at) = answer {
                        self.last_rx = self.last_rx.max(at);
                    }
                }
                _ = tokio::time::sleep_until(verdict_at.into()), if suspect.is_some() => {
                    suspect = None;
                    if self.last_rx < since {
                        warn!(broker = %self.cfg.name, silent_s = since.elapsed().as_secs_f64(),
                              grace_s = LIVENESS_GRACE.as_secs_f64(),
                              "broker stopped answering: nothing received since a probe was sent, not even the UNSUBACK to a liveness question; reconnecting");
                        return End::Unresponsive;
                    }
                }
                _ = tokio::time::sleep_until(silence_deadline.into()), if watch_silence => {
                    self.sys_silence_noted = true;
                    info!(broker = %self.cfg.name, topic = %self.cfg.sys.topic, waited_s = SYS_SILENCE.as_secs(),
                          "no $SYS message since subscribing: this broker publishes no $SYS tree (HiveMQ, RabbitMQ and NATS do not) or does not let this client read it; only probes run for it");
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    self.bridges.on_timer(now, client);
                    let t = self.probes.on_timer(now, self.last_rx, client);
                    if let Some((sent, judge)) = t.silent {
                        suspect = Some(suspect.map_or((sent, judge), |(s, j)| (s.min(sent), j.min(judge))));
                    }
                    // One question at a time: an unanswered one is still a question.
                    if (t.ask || t.silent.is_some()) && answers.is_empty() {
                        answers.push(mqtt::ask_liveness(client, &self.liveness_topic));
                    }
                }
            }
        }
    }

    fn dispatch(&mut self, r: Received) {
        self.last_rx = self.last_rx.max(r.at);
        let topic = r.msg.topic();
        if self.probes.on_message(topic, r.msg.payload(), r.at) {
            return;
        }
        let mut dropped = false;
        if self
            .inbound
            .on_message(topic, r.msg.payload(), r.at, &mut dropped)
        {
            if dropped {
                self.metrics.messages_dropped.inc();
            }
            return;
        }
        if let Some(ing) = self.ingest.as_mut().filter(|i| i.wants(topic)) {
            if !self.sys_seen.1 && self.sys_silence_noted {
                info!(broker = %self.cfg.name, "$SYS messages arrived after all; collecting them");
            }
            self.sys_seen = (true, true);
            ing.handle_message(topic, r.msg.payload(), r.msg.retained(), SystemTime::now());
        }
    }
}
