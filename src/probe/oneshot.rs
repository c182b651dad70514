//! One-shot probes of any broker: `GET /probe?target=&module=` (blackbox-exporter pattern,
//! fresh registry per request) and `mqtt-sentinel probe URL`. For the `roundtrip` kind a
//! fresh client connects, subscribes to a private topic and does `count` publish-to-self
//! round trips, all under one deadline; any other kind (the module's `kind`, or `--kind`)
//! runs its prober from [`super::PROBERS`] once within the deadline. `mqtt-sentinel probe
//! --kind bridge A --to B` ([`run_bridge`]) does the round trip's `count` trips across a
//! bridge: published on a fresh client of A, received on a fresh client of B (no `/probe`
//! form: it needs two targets).

use super::tracker::{Arrival, Tracker};
use super::{Prober, Run};
use crate::config::{BrokerConfig, BrokerUrl, ProbeKind, ProbeModule, Qos};
use crate::metrics::{Health, Reason};
use crate::mqtt::fresh::{self, Failure};
use crate::mqtt::negotiate::Negotiated;
use crate::mqtt::reason;
use futures_util::future::OptionFuture;
use paho_mqtt as paho;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The far side of a `--kind bridge` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePath {
    /// The receiving broker (B); `Report::target` is the publishing one (A).
    pub to: String,
    /// Published on A.
    pub topic: String,
    /// Subscribed on B: `topic` as the bridge maps it.
    pub remote_topic: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// The probed broker; for `bridge`, the one published on.
    pub target: String,
    /// `bridge` only: where the messages must arrive.
    pub bridge: Option<BridgePath>,
    /// The probe kind's config name.
    pub kind: &'static str,
    pub qos: i32,
    /// Every round trip came back in time.
    pub success: bool,
    /// `success`, or the first failure's label.
    pub reason: Reason,
    /// What exactly failed, for people (an OS or TLS error, an HTTP status line); never a
    /// label. Empty on success.
    pub detail: String,
    pub duration: Duration,
    pub connect: Option<Duration>,
    pub subscribe: Option<Duration>,
    pub sent: usize,
    /// Round trips that came back, in order; for `bridge`, one-way times (publish on A →
    /// arrival on B, both instants of this process).
    pub rtts: Vec<Duration>,
    /// Publish → PUBACK/PUBCOMP (QoS 1 and 2 only).
    pub acks: Vec<Duration>,
    /// Copies of a message already received (a bridge replaying QoS > 0 messages).
    pub duplicates: usize,
    /// Messages that arrived after a later one had.
    pub out_of_order: usize,
}

impl Report {
    fn failed(target: &BrokerUrl, qos: Qos, started: Instant, f: &Failure) -> Report {
        Report {
            target: target.to_string(),
            bridge: None,
            kind: "roundtrip",
            qos: qos.as_i32(),
            success: false,
            reason: f.reason,
            detail: f.detail.clone(),
            duration: started.elapsed(),
            connect: None,
            subscribe: None,
            sent: 0,
            rtts: Vec::new(),
            acks: Vec::new(),
            duplicates: 0,
            out_of_order: 0,
        }
    }

    /// Whether the kind does `count` trips (`roundtrip`, `bridge`): its health and exit code
    /// follow what came back, not just success.
    pub fn counted(&self) -> bool {
        matches!(self.kind, "roundtrip" | "bridge")
    }

    /// Messages sent that never came back in time.
    pub fn lost(&self) -> usize {
        self.sent.saturating_sub(self.rtts.len())
    }

    /// Median and maximum round trip.
    pub fn rtt_p50_max(&self) -> Option<(Duration, Duration)> {
        Some((self.rtt_quantile(0.5)?, self.rtt_quantile(1.0)?))
    }

    /// The `q` quantile (0..=1) of the round trips that came back (nearest rank).
    pub fn rtt_quantile(&self, q: f64) -> Option<Duration> {
        let mut v = self.rtts.clone();
        v.sort();
        let rank = ((q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize).max(1);
        v.get(rank - 1).copied()
    }

    /// down: nothing came back; degraded: some lost or the median above `degraded_rtt`.
    /// Kinds other than `roundtrip` and `bridge`: healthy on success, else down.
    pub fn health(&self, degraded_rtt: Duration) -> Health {
        if !self.counted() {
            return if self.success {
                Health::Healthy
            } else {
                Health::Down
            };
        }
        match self.rtt_p50_max() {
            None => Health::Down,
            Some((p50, _)) if p50 > degraded_rtt || self.rtts.len() < self.sent => Health::Degraded,
            Some(_) => Health::Healthy,
        }
    }

    /// The `/probe` answer: a fresh registry holding only this probe's result.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::default();
        let g = |v: f64| {
            let g: Gauge<f64, AtomicU64> = Gauge::default();
            g.set(v);
            g
        };
        r.register(
            "probe_success",
            "1 if the probe succeeded: every round trip came back in time, or the kind's run passed",
            g(if self.success { 1.0 } else { 0.0 }),
        );
        r.register(
            "probe_duration_seconds",
            "How long the whole probe took",
            g(self.duration.as_secs_f64()),
        );
        let parts = [
            (
                "probe_mqtt_connect_seconds",
                "TCP (+TLS) + CONNECT/CONNACK",
                self.connect,
            ),
            (
                "probe_mqtt_subscribe_seconds",
                "SUBSCRIBE/SUBACK",
                self.subscribe,
            ),
            (
                "probe_mqtt_rtt_seconds",
                "Publish-to-self round trip (first)",
                self.rtts.first().copied(),
            ),
            (
                "probe_mqtt_ack_seconds",
                "Publish to PUBACK/PUBCOMP (first)",
                self.acks.first().copied(),
            ),
        ];
        for (name, help, v) in parts {
            if let Some(d) = v {
                r.register(name, help, g(d.as_secs_f64()));
            }
        }
        r.register(
            "probe_mqtt_reason",
            "Outcome: success or the failure's reason label",
            Info::new(vec![("reason", self.reason)]),
        );
        r
    }
}

/// Probe `target` with `module`: `count` round trips, all within `within`.
pub async fn run(
    target: BrokerUrl,
    module: &ProbeModule,
    count: usize,
    within: Duration,
) -> Report {
    let started = Instant::now();
    let deadline = super::deadline_after(started, within);
    let left = || deadline.saturating_duration_since(Instant::now());
    let cfg = BrokerConfig::for_oneshot(target.clone(), module);
    let tag = format!("{:08x}", rand::random::<u32>());
    if let Prober::Fresh(prober) = super::prober(module.kind) {
        let id = format!("mqtt-sentinel-probe-{tag}");
        let topic = format!("mqtt-sentinel/oneshot-{tag}/{}", module.kind.as_str());
        let outcome = prober(Run {
            cfg: &cfg,
            negotiated: &Negotiated::default(),
            id: &id,
            topic: &topic,
            nonce: rand::random(),
            run_no: 1,
            timeout: within,
            kind: module.kind,
        })
        .await;
        let failure = match &outcome {
            Ok(_) => Failure::new(Reason::Success, ""),
            Err(f) => Failure::new(f.reason, f.detail.clone()),
        };
        return Report {
            kind: module.kind.as_str(),
            success: outcome.is_ok(),
            // Only the connect kind's duration is a connect time.
            connect: outcome
                .ok()
                .flatten()
                .filter(|_| module.kind == ProbeKind::Connect),
            ..Report::failed(&target, module.qos, started, &failure)
        };
    }
    let connect_within = module.timeout.min(within);
    let client = match fresh::connect(
        &cfg,
        &Negotiated::default(),
        &format!("mqtt-sentinel-probe-{tag}"),
        connect_within,
    )
    .await
    {
        Ok(c) => c,
        Err(f) => return Report::failed(&target, module.qos, started, &f),
    };
    let topic = format!("mqtt-sentinel/oneshot-{tag}/probe");
    let mut report = Report {
        connect: Some(client.connect_time),
        ..Report::failed(
            &target,
            module.qos,
            started,
            &Failure {
                reason: Reason::Success,
                detail: String::new(),
            },
        )
    };
    match client.subscribe(&topic, module.qos.as_i32(), left()).await {
        Ok(d) => report.subscribe = Some(d),
        Err(f) => {
            report.reason = f.reason;
            report.detail = f.detail;
            report.duration = started.elapsed();
            client.close().await;
            return report;
        }
    }
    let mut client = client;
    let (publisher, messages) = client.parts();
    trips(
        publisher,
        messages,
        &topic,
        module,
        count,
        deadline,
        &mut report,
    )
    .await;
    report.duration = started.elapsed();
    client.close().await;
    report
}

/// `mqtt-sentinel probe --kind bridge from --to to`: a fresh client of `to` (B) subscribes
/// to `remote_topic` (default: `topic`), then a fresh client of `from` (A) publishes `count`
/// messages to `topic` (default `mqtt-sentinel/oneshot-<random>/bridge`), one at a time,
/// each waiting for its arrival on B and its acknowledgement by A, all within `within`. The
/// payload and accounting are the round trip's and the scheduled bridge probe's
/// ([`Tracker`]); `rtts` are one-way times, from the instant before the publish to the
/// instant B's Paho callback stamped the arrival. A message A acknowledged that does not
/// arrive by the module's `timeout` is `not_delivered`, as for the scheduled bridge probe.
/// Both clients use `module`'s credentials, TLS and protocol.
pub async fn run_bridge(
    from: BrokerUrl,
    to: BrokerUrl,
    module: &ProbeModule,
    topic: Option<&str>,
    remote_topic: Option<&str>,
    count: usize,
    within: Duration,
) -> Report {
    let started = Instant::now();
    let deadline = super::deadline_after(started, within);
    let left = || deadline.saturating_duration_since(Instant::now());
    let tag = format!("{:08x}", rand::random::<u32>());
    let topic = topic.map_or_else(
        || format!("mqtt-sentinel/oneshot-{tag}/bridge"),
        str::to_owned,
    );
    let path = BridgePath {
        to: to.to_string(),
        remote_topic: remote_topic.map_or_else(|| topic.clone(), str::to_owned),
        topic,
    };
    let mut report = Report {
        kind: "bridge",
        bridge: Some(path.clone()),
        ..Report::failed(
            &from,
            module.qos,
            started,
            &Failure::new(Reason::Success, ""),
        )
    };
    let fail = |mut report: Report, f: Failure, side: &str| {
        report.reason = f.reason;
        report.detail = if f.detail.is_empty() {
            side.to_owned()
        } else {
            format!("{side}: {}", f.detail)
        };
        report.duration = started.elapsed();
        report
    };
    let connect = |url: &BrokerUrl, id: String| {
        let cfg = BrokerConfig::for_oneshot(url.clone(), module);
        let within = module.timeout.min(left());
        async move { fresh::connect(&cfg, &Negotiated::default(), &id, within).await }
    };
    let id = format!("mqtt-sentinel-probe-{tag}");
    let mut b = match connect(&to, format!("{id}-to")).await {
        Ok(c) => c,
        Err(f) => return fail(report, f, &format!("to {to}")),
    };
    match b
        .subscribe(&path.remote_topic, module.qos.as_i32(), left())
        .await
    {
        Ok(d) => report.subscribe = Some(d),
        Err(f) => {
            b.close().await;
            return fail(report, f, &format!("to {to}"));
        }
    }
    let mut a = match connect(&from, id).await {
        Ok(c) => c,
        Err(f) => {
            b.close().await;
            return fail(report, f, &format!("from {from}"));
        }
    };
    report.connect = Some(a.connect_time);
    let (publisher, _) = a.parts();
    let (_, messages) = b.parts();
    trips(
        publisher,
        messages,
        &path.topic,
        module,
        count,
        deadline,
        &mut report,
    )
    .await;
    report.duration = started.elapsed();
    a.close().await;
    b.close().await;
    report
}

/// `count` trips one after another (at least one), each bounded by the module's `timeout`
/// and all by `deadline`: publish on `publisher` to `topic`, wait for the message on
/// `messages` (and, at QoS 1 and 2, its acknowledgement). The first failure's reason is
/// kept. A failure other than `timeout` ends the run (the next would fail the same way), and
/// so does a `timeout` before any message came back: the path carries nothing (an ACL that
/// drops QoS 0, a bridge that does not map the topic), and waiting the module's `timeout`
/// for each of `count` messages would keep `mqtt-sentinel probe` busy for `count` ×
/// `timeout` to say the same thing. A timeout after earlier messages came back is loss and
/// the run goes on, so `--count` still measures intermittent loss. Sets `success` when every
/// message came back.
async fn trips(
    publisher: &paho::AsyncClient,
    messages: &mut mpsc::Receiver<(paho::Message, Instant)>,
    topic: &str,
    module: &ProbeModule,
    count: usize,
    deadline: Instant,
    report: &mut Report,
) {
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut tracker = Tracker::new(rand::random(), module.payload_bytes);
    for _ in 0..count.max(1) {
        if left().is_zero() {
            report.reason = Reason::Timeout;
            break;
        }
        report.sent += 1;
        let until = super::deadline_after(Instant::now(), module.timeout.min(left()));
        if let Err(why) = one_trip(
            publisher,
            messages,
            topic,
            module.qos,
            &mut tracker,
            until,
            report,
        )
        .await
        {
            if report.reason == Reason::Success {
                report.reason = why;
            }
            // After a refusal, or a silence from the start, the next attempt would fail the
            // same way.
            if why != Reason::Timeout || report.rtts.is_empty() {
                break;
            }
        }
    }
    // Copies already queued behind the last message count too.
    while let Ok((m, at)) = messages.try_recv() {
        tally(report, tracker.receive(m.payload(), at));
    }
    report.success = report.sent > 0 && report.rtts.len() == report.sent;
}

/// Count a duplicate or a reordering in `report`.
fn tally(report: &mut Report, seen: Arrival) {
    match seen {
        Arrival::Duplicate { .. } => report.duplicates += 1,
        Arrival::OutOfOrder { .. } => report.out_of_order += 1,
        Arrival::Fresh { .. } | Arrival::Late { .. } | Arrival::Foreign => {}
    }
}

async fn one_trip(
    publisher: &paho::AsyncClient,
    messages: &mut mpsc::Receiver<(paho::Message, Instant)>,
    topic: &str,
    qos: Qos,
    tracker: &mut Tracker,
    until: Instant,
    report: &mut Report,
) -> Result<(), Reason> {
    let sent = Instant::now();
    let (seq, payload) = tracker.send(sent);
    let mut token = Some(publisher.publish(paho::Message::new(topic, payload, qos.as_i32())));
    let mut rtt = None;
    let need_ack = qos != Qos::AtMostOnce;
    while rtt.is_none() || (need_ack && token.is_some()) {
        tokio::select! {
            Some(r) = OptionFuture::from(token.as_mut()), if token.is_some() => {
                token = None;
                match r {
                    Ok(()) if need_ack => report.acks.push(sent.elapsed()),
                    Ok(()) => {}
                    Err(e) => {
                        tracker.cancel(seq);
                        return Err(reason::label(&e));
                    }
                }
            }
            m = messages.recv() => match m {
                Some((m, at)) => {
                    let seen = tracker.receive(m.payload(), at);
                    tally(report, seen);
                    if let Arrival::Fresh { seq: s, rtt: d } | Arrival::OutOfOrder { seq: s, rtt: d } = seen
                        && s == seq {
                            rtt = Some(d);
                            report.rtts.push(d);
                        }
                }
                None => return Err(Reason::Error),
            },
            _ = tokio::time::sleep_until(until.into()) => {
                tracker.expire(Instant::now(), Duration::ZERO);
                // The broker acknowledged the message and never delivered it (an ACL or size
                // limit MQTT 3.1.1 cannot report): alive, but the message is lost.
                let acknowledged = need_ack && token.is_none();
                return Err(if acknowledged { Reason::NotDelivered } else { Reason::Timeout });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_health() {
        let ms = Duration::from_millis;
        let mut r = Report::failed(
            &crate::config::parse_broker_url("mqtt://h").unwrap(),
            Qos::AtLeastOnce,
            Instant::now(),
            &Failure {
                reason: Reason::Success,
                detail: String::new(),
            },
        );
        assert_eq!(r.health(ms(100)), Health::Down);
        r.sent = 4;
        r.rtts = vec![ms(4), ms(1), ms(3), ms(2)];
        assert_eq!(r.rtt_p50_max(), Some((ms(2), ms(4))));
        assert_eq!(r.rtt_quantile(0.0), Some(ms(1)));
        assert_eq!(r.rtt_quantile(0.99), Some(ms(4)));
        assert_eq!(r.health(ms(100)), Health::Healthy);
        assert_eq!(r.health(ms(1)), Health::Degraded);
        r.sent = 5; // one lost
        assert_eq!(r.health(ms(100)), Health::Degraded);
        assert_eq!(r.lost(), 1);
        // a bridge run is judged as a round trip: by what arrived
        r.kind = "bridge";
        assert!(r.counted());
        assert_eq!(r.health(ms(100)), Health::Degraded);
        r.rtts.clear();
        assert_eq!(r.health(ms(100)), Health::Down);
        r.kind = "session";
        r.success = true;
        assert!(!r.counted());
        assert_eq!(r.health(ms(100)), Health::Healthy);
    }

    #[test]
    fn duplicates_and_reordering_are_tallied() {
        let mut r = Report::failed(
            &crate::config::parse_broker_url("mqtt://h").unwrap(),
            Qos::AtLeastOnce,
            Instant::now(),
            &Failure::new(Reason::Success, ""),
        );
        let rtt = Duration::from_millis(1);
        for seen in [
            Arrival::Fresh { seq: 1, rtt },
            Arrival::OutOfOrder { seq: 0, rtt },
            Arrival::Duplicate { seq: 1 },
            Arrival::Duplicate { seq: 0 },
            Arrival::Late { seq: 2 },
            Arrival::Foreign,
        ] {
            tally(&mut r, seen);
        }
        assert_eq!((r.duplicates, r.out_of_order), (2, 1));
    }
}
