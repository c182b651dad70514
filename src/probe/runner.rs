//! Scheduled round-trip probes on a broker's watching session.
//!
//! Each probe publishes to `<prefix>/<client-id>/<probe-name>`, which the session subscribes
//! to at the probe's QoS, and waits for its own message to come back. The send time is taken
//! just before Paho's `publish`, the receive time in the Paho callback. A probe never overlaps
//! itself: a run ends when its message is back or its timeout passes, and ticks that fall
//! inside a run are skipped. Acknowledgements (PUBACK/PUBCOMP) are Paho delivery tokens polled
//! by the session loop, so their times include one wake-up of the runtime thread.

use super::tracker::{Arrival, Tracker};
use crate::config::{BrokerConfig, ProbeKind, Qos};
use crate::metrics::{Health, HealthHandle, Metrics, Reason, RoundtripMetrics};
use crate::mqtt::reason;
use futures_util::stream::FuturesUnordered;
use paho_mqtt as paho;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// The outcome of one publish's delivery token (round-trip and bridge probes).
pub struct AckDone {
    /// The probe's index in its table.
    pub(super) probe: usize,
    pub(super) seq: u64,
    pub(super) sent: Instant,
    pub(super) at: Instant,
    /// QoS 0 tokens complete when Paho has written the PUBLISH: no answer from the broker.
    qos0: bool,
    pub(super) result: Result<(), paho::Error>,
}

impl AckDone {
    /// Waits for the delivery `token` of the publish `seq` of probe `probe`, sent at `sent`
    /// at QoS 0 or not, and notes when it ended.
    pub(super) async fn wait(
        probe: usize,
        seq: u64,
        sent: Instant,
        qos0: bool,
        token: paho::DeliveryToken,
    ) -> AckDone {
        let result = token.await;
        AckDone {
            probe,
            seq,
            sent,
            at: Instant::now(),
            qos0,
            result,
        }
    }

    /// When the broker answered this publish (PUBACK or PUBCOMP, with any reason code);
    /// `None` when the token ended without an answer (connection lost, not sent) or the
    /// publish was at QoS 0, whose token Paho completes once the packet is written.
    pub fn answered_at(&self) -> Option<Instant> {
        match &self.result {
            _ if self.qos0 => None,
            Ok(()) | Err(paho::Error::ReasonCode(..)) => Some(self.at),
            Err(_) => None,
        }
    }
}

type AckFuture = Pin<Box<dyn Future<Output = AckDone> + Send>>;

#[derive(Debug)]
struct InFlight {
    seq: u64,
    sent: Instant,
    deadline: Instant,
    /// When to ask the broker something it must answer if nothing at all came back since
    /// `sent`: [`LIVENESS_ASK_AFTER`] (at most half the timeout) after it. `None` once that
    /// point has passed.
    ask_at: Option<Instant>,
}

/// A run that has heard nothing at all from the broker this long after it was sent (at most
/// half its timeout) asks the liveness question: an UNSUBSCRIBE, which MQTT requires an
/// UNSUBACK for (3.1.1 §3.10.4, 5.0 §3.10.4). A healthy broker returns the probe within
/// milliseconds, so the question is rare; asking early gives a slow but live broker the most
/// time to answer before the verdict.
pub const LIVENESS_ASK_AFTER: Duration = Duration::from_millis(100);

/// How long after a silent run's deadline the session waits for any answer (to the liveness
/// question or anything else) before declaring the broker unresponsive. Under 1 s, so a
/// frozen broker is declared unresponsive within `timeout + 1 s` of the probe's send, and a
/// broker that answers anything within `timeout + 0.9 s` is never declared dead.
pub const LIVENESS_GRACE: Duration = Duration::from_millis(900);

/// What [`Probes::on_timer`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Timer {
    /// A run in flight has heard nothing from the broker [`LIVENESS_ASK_AFTER`] after it was
    /// sent: ask the broker something it must answer.
    pub ask: bool,
    /// The send time of the oldest run that expired with nothing at all received from the
    /// broker since it was sent, and when to judge it (its deadline + [`LIVENESS_GRACE`]):
    /// the session is unresponsive unless the broker answers anything before then.
    pub silent: Option<(Instant, Instant)>,
}

#[derive(Debug)]
struct Roundtrip {
    name: String,
    qos: Qos,
    interval: Duration,
    timeout: Duration,
    topic: String,
    tracker: Tracker,
    metrics: RoundtripMetrics,
    next_run: Instant,
    in_flight: Option<InFlight>,
    /// Subscribed in the current session.
    usable: bool,
    /// Last run: `Some(rtt)` if it came back in time, `None` if it failed.
    last: Option<Option<Duration>>,
}

/// Probe topics hold no `.`, `+`, `#` or spaces: RabbitMQ and NATS rewrite dots.
pub fn topic_segment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub struct Probes {
    items: Vec<Roundtrip>,
    /// Highest QoS the broker takes: from a v5 CONNACK's Maximum QoS, a SUBACK that granted
    /// less than asked, or a DISCONNECT "QoS not supported". Kept across sessions: a broker
    /// that cannot do QoS 2 is not asked again after every reconnect.
    max_qos: i32,
    /// "QoS not supported" was logged (once per process and probe).
    qos_warned: Vec<bool>,
    degraded_rtt: Duration,
    health: HealthHandle,
    acks: FuturesUnordered<AckFuture>,
}

impl Probes {
    pub fn new(
        cfg: &BrokerConfig,
        client_id: &str,
        metrics: &Metrics,
        health: HealthHandle,
    ) -> Self {
        let now = Instant::now();
        let items: Vec<Roundtrip> = cfg
            .probes
            .iter()
            .filter_map(|p| match p.kind {
                ProbeKind::Roundtrip { qos, payload_bytes } => Some(Roundtrip {
                    name: p.name.clone(),
                    qos,
                    interval: p.interval,
                    timeout: p.timeout,
                    topic: format!(
                        "{}/{}/{}",
                        cfg.probe_topic_prefix,
                        topic_segment(client_id),
                        p.name
                    ),
                    tracker: Tracker::new(rand::random(), payload_bytes),
                    metrics: metrics.roundtrip(&cfg.name, &p.name, qos),
                    next_run: now,
                    in_flight: None,
                    usable: false,
                    last: None,
                }),
                _ => None,
            })
            .collect();
        let p = Self {
            qos_warned: vec![false; items.len()],
            max_qos: 2,
            items,
            degraded_rtt: cfg.degraded_rtt,
            health,
            acks: FuturesUnordered::new(),
        };
        p.update_health(false);
        p
    }

    /// `(index, topic, qos)` of every probe to subscribe on a new session.
    pub fn subscriptions(&self) -> Vec<(usize, String, Qos)> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.topic.clone(), r.qos))
            .collect()
    }

    /// Record the SUBACK of probe `i`: refused probes fail with `reason` and do not run; a
    /// grant below the probe's QoS means the broker cannot do that QoS (RabbitMQ grants 1 for
    /// 2, then answers a QoS 2 PUBLISH with a PUBACK, which makes Paho drop the connection).
    pub fn subscribed(&mut self, i: usize, granted: Result<i32, Reason>, broker: &str) {
        let Some(r) = self.items.get_mut(i) else {
            return;
        };
        match granted {
            Ok(q) if q < r.qos.as_i32() => {
                self.max_qos = self.max_qos.min(q);
                self.qos_not_supported(i, broker);
            }
            Ok(_) => r.usable = true,
            Err(reason) => {
                r.usable = false;
                r.metrics.base.record_failure(reason);
                r.last = Some(None);
            }
        }
    }

    /// The broker's CONNACK says it takes QoS up to `q` (MQTT 5 Maximum QoS).
    pub fn set_max_qos(&mut self, q: i32) {
        self.max_qos = self.max_qos.min(q);
    }

    /// Whether probes at `qos` can run on this broker, as far as we know.
    pub fn qos_allowed(&self, qos: Qos) -> bool {
        qos.as_i32() <= self.max_qos
    }

    /// The broker ended the session with "QoS not supported": QoS 2 is what it refuses.
    pub fn qos_refused(&mut self) {
        if self.items.iter().any(|r| r.qos == Qos::ExactlyOnce) {
            self.max_qos = self.max_qos.min(1);
        }
    }

    /// Probe `i` asks for a QoS the broker does not offer: it does not run. Its failure is
    /// counted once per session under `qos_not_supported` and logged once per process; it
    /// does not make the broker's health `down` (the broker is fine, the probe is not
    /// possible there).
    pub fn qos_not_supported(&mut self, i: usize, broker: &str) {
        let max = self.max_qos;
        let Some(r) = self.items.get_mut(i) else {
            return;
        };
        r.usable = false;
        r.last = None;
        r.metrics.base.record_failure(Reason::QosNotSupported);
        if !std::mem::replace(&mut self.qos_warned[i], true) {
            tracing::warn!(%broker, probe = %r.name, qos = r.qos.as_i32(), broker_max_qos = max,
                "the broker does not support this probe's QoS; the probe does not run (reason=\"qos_not_supported\")");
        }
    }

    /// Start the schedule. Probes are spread over their interval (the i-th of n starts
    /// i/n of an interval later) so several probes of one broker never fire in lockstep and
    /// queue behind each other.
    pub fn session_started(&mut self, now: Instant) {
        let n = self.items.len().max(1) as f64;
        for (i, r) in self.items.iter_mut().enumerate() {
            r.next_run = now + r.interval.mul_f64(i as f64 / n);
        }
        self.update_health(true);
    }

    /// The session is gone: runs in flight are lost, every probe fails until the next one.
    pub fn session_ended(&mut self) {
        self.acks = FuturesUnordered::new();
        for r in &mut self.items {
            let lost = r.tracker.abandon();
            r.metrics.lost.inc_by(lost.len() as u64);
            r.in_flight = None;
            r.usable = false;
            r.metrics.base.success.set(0);
            r.last = None;
        }
        self.update_health(false);
    }

    /// When `on_timer` next has work: a run to start or a deadline to enforce.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.items
            .iter()
            .filter(|r| r.usable)
            .map(|r| match &r.in_flight {
                Some(f) => f.ask_at.unwrap_or(f.deadline),
                None => r.next_run,
            })
            .min()
    }

    /// Enforce deadlines and start due runs. `last_rx` is when the broker last sent us
    /// anything at all (a message, an acknowledgement, an answer): a run that expires after
    /// the broker answered something since it was sent failed with `not_delivered` (the
    /// broker is alive and dropped the message: an ACL, a size or queue limit that MQTT 3.1.1
    /// and QoS 0 cannot report); one that heard nothing at all before its deadline failed with
    /// `timeout` (frozen, or slower than the timeout) and is reported in [`Timer::silent`] for
    /// the session's verdict.
    pub fn on_timer(
        &mut self,
        now: Instant,
        last_rx: Instant,
        client: &paho::AsyncClient,
    ) -> Timer {
        let mut t = Timer::default();
        let mut expired = false;
        for i in 0..self.items.len() {
            let r = &mut self.items[i];
            if !r.usable {
                continue;
            }
            if let Some(f) = &mut r.in_flight {
                if now < f.deadline {
                    if f.ask_at.is_some_and(|a| now >= a) {
                        f.ask_at = None;
                        t.ask |= last_rx < f.sent;
                    }
                    continue;
                }
                let (sent, deadline) = (f.sent, f.deadline);
                for _ in r.tracker.expire(now, r.timeout) {
                    r.metrics.lost.inc();
                }
                r.in_flight = None;
                if last_rx < sent {
                    // Nothing at all from the broker before the deadline: frozen, or slower
                    // than the timeout. The session judges which at `judge`.
                    r.metrics.base.record_failure(Reason::Timeout);
                    let judge = deadline + LIVENESS_GRACE;
                    t.silent = Some(
                        t.silent
                            .map_or((sent, judge), |(s, j): (Instant, Instant)| {
                                (s.min(sent), j.min(judge))
                            }),
                    );
                } else {
                    // The broker answered (an ack, the liveness question, `$SYS`) in time but
                    // never delivered the message.
                    r.metrics.base.record_failure(Reason::NotDelivered);
                }
                r.last = Some(None);
                expired = true;
            }
            if now >= r.next_run {
                // Keep the schedule on its grid; after a stall, skip missed ticks.
                while r.next_run <= now {
                    r.next_run += r.interval;
                }
                let sent = Instant::now();
                let (seq, payload) = r.tracker.send(sent);
                let msg = paho::Message::new(r.topic.as_str(), payload, r.qos.as_i32());
                let token = client.publish(msg);
                r.metrics.sent.inc();
                let deadline = super::deadline_after(sent, r.timeout);
                let qos0 = r.qos.as_i32() == 0;
                r.in_flight = Some(InFlight {
                    seq,
                    sent,
                    deadline,
                    ask_at: Some(sent + LIVENESS_ASK_AFTER.min(r.timeout / 2)),
                });
                self.acks
                    .push(Box::pin(AckDone::wait(i, seq, sent, qos0, token)));
            }
        }
        if expired {
            self.update_health(true);
        }
        t
    }

    /// Pending acknowledgements, for the session loop to poll.
    pub fn acks(&mut self) -> &mut FuturesUnordered<AckFuture> {
        &mut self.acks
    }

    pub fn on_ack(&mut self, done: AckDone) {
        let Some(r) = self.items.get_mut(done.probe) else {
            return;
        };
        match done.result {
            Ok(()) => {
                if let Some(h) = &r.metrics.ack {
                    h.observe(done.at.saturating_duration_since(done.sent).as_secs_f64());
                }
            }
            Err(paho::Error::ReasonCode(rc, _)) => {
                // Refused by the broker (v5 PUBACK/PUBREC reason): it will not come back.
                r.tracker.cancel(done.seq);
                if r.in_flight.as_ref().is_some_and(|f| f.seq == done.seq) {
                    r.in_flight = None;
                }
                r.metrics.base.record_failure(reason::reason_name(rc));
                r.last = Some(None);
                self.update_health(true);
            }
            Err(e) => {
                // Cut off (connection lost) or not sent: the message may have reached the
                // broker, so it stays in flight; its timeout or the session's end counts it lost.
                tracing::debug!(probe = %r.name, error = %e, "probe delivery did not complete");
            }
        }
    }

    /// Route a message; `false` if it is not on a probe topic.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], at: Instant) -> bool {
        let Some(r) = self.items.iter_mut().find(|r| r.topic == topic) else {
            return false;
        };
        let arrival = r.tracker.receive(payload, at);
        match arrival {
            Arrival::Fresh { seq, rtt } | Arrival::OutOfOrder { seq, rtt } => {
                if matches!(arrival, Arrival::OutOfOrder { .. }) {
                    r.metrics.out_of_order.inc();
                }
                if r.in_flight.as_ref().is_some_and(|f| f.seq == seq) {
                    r.in_flight = None;
                }
                r.metrics.received.inc();
                r.metrics.rtt.observe(rtt.as_secs_f64());
                r.metrics.base.success.set(1);
                r.last = Some(Some(rtt));
            }
            Arrival::Duplicate { .. } => {
                r.metrics.duplicates.inc();
            }
            Arrival::Late { .. } => r.metrics.base.record_ignored(Reason::Late),
            Arrival::Foreign => r.metrics.base.record_ignored(Reason::Foreign),
        }
        self.update_health(true);
        true
    }

    fn update_health(&self, up: bool) {
        // Down: no session, or a probe whose last run failed (refused subscriptions included).
        let failing = self.items.iter().any(|r| r.last == Some(None));
        let h = if !up || failing {
            Health::Down
        } else if self
            .items
            .iter()
            .any(|r| matches!(r.last, Some(Some(rtt)) if rtt > self.degraded_rtt))
        {
            Health::Degraded
        } else {
            Health::Healthy
        };
        self.health.set(h);
    }
}
