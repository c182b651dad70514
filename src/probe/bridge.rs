//! Bridge probes: publish on broker A to a topic a bridge forwards, receive on broker B, both
//! on the brokers' existing watching sessions (no extra connections).
//!
//! The publishing side is [`Bridges`], owned by A's task: the schedule, the sequence
//! bookkeeping of a round trip ([`Tracker`]: nonce + sequence payload, lost, duplicates, out of
//! order) and the `mqtt_bridge_*` metrics. The receiving side is [`Inbound`], owned by B's
//! task: it subscribes B's session to every remote topic that targets B and hands each arrival,
//! stamped in B's Paho callback, to A's task over a channel. Both stamps are `Instant`s of this
//! process, so the one-way time needs no synchronised clocks.
//!
//! The two meet in [`BridgeRoutes`], one per process: A's routes are added when A's task is
//! made and removed when it stops (`app`), and B's task follows the table (a `watch`
//! channel), so either side can be restarted by a reload without the other.
//!
//! A bridge probe never touches `mqtt_probe_health` of either broker: a failing bridge says
//! nothing about A or B answering their clients (`README` "Bridges").

use super::runner::AckDone;
use super::tracker::{Arrival as Seen, Tracker};
use crate::config::{BrokerConfig, Qos};
use crate::metrics::{BridgeMetrics, Metrics, Reason};
use crate::mqtt::{SUBACK_TIMEOUT, reason, subscribe_one, unsubscribe_one};
use futures_util::stream::FuturesUnordered;
use paho_mqtt as paho;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Arrivals a publishing broker's task may have queued from its remotes before they are
/// dropped (counted in the receiving broker's `mqtt_sentinel_messages_dropped_total`): a
/// handful in flight per probe.
const ARRIVALS: usize = 256;

/// A message on a bridge probe's remote topic, as B's Paho callback stamped it.
#[derive(Debug)]
pub struct Arrival {
    /// Index of the probe in the publishing broker's [`Bridges`].
    probe: usize,
    payload: Vec<u8>,
    at: Instant,
}

/// Whether B's watching session is subscribed to a remote topic, as B tells A: `epoch`
/// changes at every subscription and every end of B's session, so A can tell a run during
/// which B was subscribed throughout.
#[derive(Debug, Default)]
struct RemoteState {
    subscribed: AtomicBool,
    epoch: AtomicU64,
}

impl RemoteState {
    fn set(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
    /// `Some(epoch)` while subscribed.
    fn current(&self) -> Option<u64> {
        self.subscribed
            .load(Ordering::Acquire)
            .then(|| self.epoch.load(Ordering::Acquire))
    }
}

/// One bridge probe as the receiving broker sees it.
#[derive(Debug, Clone)]
pub struct Route {
    /// The publishing broker (whose routes go when its task stops).
    from: String,
    probe: usize,
    /// The remote topic: subscribed on the receiving broker.
    topic: String,
    qos: Qos,
    tx: mpsc::Sender<Arrival>,
    state: Arc<RemoteState>,
}

type Table = BTreeMap<String, Vec<Route>>;

/// Every bridge probe's route, by receiving broker name. One per process; clones share it.
#[derive(Debug, Clone)]
pub struct BridgeRoutes {
    table: watch::Sender<Table>,
}

impl Default for BridgeRoutes {
    fn default() -> Self {
        Self {
            table: watch::Sender::new(Table::new()),
        }
    }
}

impl BridgeRoutes {
    /// Remove every route of bridge probes that publish on `from` (its task stopped).
    pub fn remove_from(&self, from: &str) {
        self.table.send_if_modified(|t| {
            let mut changed = false;
            for routes in t.values_mut() {
                let before = routes.len();
                routes.retain(|r| r.from != from);
                changed |= routes.len() != before;
            }
            t.retain(|_, r| !r.is_empty());
            changed
        });
    }

    fn add(&self, remote: &str, route: Route) {
        self.table.send_modify(|t| {
            t.entry(remote.to_owned()).or_default().push(route);
        });
    }

    /// The receiving side of broker `name`.
    pub fn inbound(&self, name: &str) -> Inbound {
        let mut i = Inbound {
            name: name.to_owned(),
            table: self.table.subscribe(),
            routes: Vec::new(),
            requested: BTreeSet::new(),
            granted: BTreeSet::new(),
            pending: FuturesUnordered::new(),
        };
        i.refresh();
        i
    }
}

/// A SUBSCRIBE or UNSUBSCRIBE of the receiving session, resolving to its answer.
type PendingFuture = Pin<Box<dyn Future<Output = InboundEvent> + Send>>;

/// The receiving side of one broker: subscribes its watching session to the remote topics of
/// the bridge probes that end on it and forwards what arrives there.
pub struct Inbound {
    name: String,
    table: watch::Receiver<Table>,
    /// The routes that end on this broker.
    routes: Vec<Route>,
    /// Topics subscribed (or asked for) in the current session.
    requested: BTreeSet<String>,
    /// Topics whose SUBACK granted the subscription in the current session: a route added
    /// later on one of them (its publishing broker restarted) is subscribed at once.
    granted: BTreeSet<String>,
    /// SUBACKs and UNSUBACKs awaited (each bounded by [`SUBACK_TIMEOUT`]).
    pending: FuturesUnordered<PendingFuture>,
}

impl Inbound {
    /// Take the table as it is now.
    fn refresh(&mut self) {
        let t = self.table.borrow_and_update();
        self.routes = t.get(&self.name).cloned().unwrap_or_default();
    }

    /// Resolves when the table changed. Never resolves once the table is gone (shutdown).
    async fn changed(table: &mut watch::Receiver<Table>) {
        if table.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Take the new table: unsubscribe the session from the remote topics no route wants any
    /// more (their last bridge probe was removed, or its publishing broker's task stopped),
    /// and subscribe it to those it has not asked for yet. Paho sends both in order on the one
    /// session, so a topic dropped and wanted again is subscribed in the end.
    fn table_changed(&mut self, client: &paho::AsyncClient) {
        self.refresh();
        for topic in self.forget_unwanted() {
            let client = client.clone();
            self.pending.push(Box::pin(async move {
                let done = unsubscribe_one(&client, &topic, SUBACK_TIMEOUT).await;
                InboundEvent::Unsuback(topic, done)
            }));
        }
        self.subscribe(client);
    }

    /// Forget the topics subscribed (or asked for) in this session that no route wants any
    /// more, and return them, sorted, for the caller to unsubscribe. Pure bookkeeping: a SUBACK
    /// still to come for one of them no longer counts ([`Self::on_suback`]).
    fn forget_unwanted(&mut self) -> Vec<String> {
        let wanted: BTreeSet<&str> = self.routes.iter().map(|r| r.topic.as_str()).collect();
        let unwanted: Vec<String> = self
            .requested
            .iter()
            .filter(|t| !wanted.contains(t.as_str()))
            .cloned()
            .collect();
        for t in &unwanted {
            self.requested.remove(t);
            self.granted.remove(t);
        }
        unwanted
    }

    /// A new session: ask for every remote topic (the SUBACKs arrive through
    /// [`Self::next_event`]).
    pub fn subscribe(&mut self, client: &paho::AsyncClient) {
        // The table may have changed while the session was down.
        self.refresh();
        for r in &self.routes {
            if self.granted.contains(&r.topic) {
                if r.state.current().is_none() {
                    r.state.set(true);
                }
                continue;
            }
            if self.requested.insert(r.topic.clone()) {
                let (client, topic, qos) = (client.clone(), r.topic.clone(), r.qos.as_i32());
                self.pending.push(Box::pin(async move {
                    let granted = subscribe_one(&client, &topic, qos, SUBACK_TIMEOUT).await;
                    InboundEvent::Suback(topic, granted)
                }));
            }
        }
    }

    /// The next SUBACK, UNSUBACK or change of the route table, for the session loop to wait
    /// on.
    pub async fn next_event(&mut self) -> InboundEvent {
        use futures_util::StreamExt;
        let pending = !self.pending.is_empty();
        tokio::select! {
            Some(e) = self.pending.next(), if pending => e,
            () = Self::changed(&mut self.table) => InboundEvent::Changed,
        }
    }

    /// Apply what [`Self::next_event`] returned (`client`: the session, to subscribe new
    /// remote topics on).
    pub fn on_event(&mut self, e: InboundEvent, client: &paho::AsyncClient) {
        match e {
            InboundEvent::Suback(topic, granted) => self.on_suback(&topic, granted),
            InboundEvent::Unsuback(topic, Err(why)) => {
                tracing::debug!(broker = %self.name, %topic, reason = why.as_str(),
                    "no UNSUBACK for a remote topic no bridge probe wants any more; its messages are not forwarded");
            }
            InboundEvent::Unsuback(_, Ok(())) => {}
            InboundEvent::Changed => self.table_changed(client),
        }
    }

    /// The SUBACK of `topic`: on success the routes on it count as subscribed. A refusal is
    /// logged; their runs fail with `remote_not_connected`. The SUBACK of a topic forgotten
    /// since it was asked for ([`Self::forget_unwanted`]) changes nothing.
    fn on_suback(&mut self, topic: &str, granted: Result<i32, Reason>) {
        if !self.requested.contains(topic) {
            return;
        }
        match granted {
            Ok(_) => {
                self.granted.insert(topic.to_owned());
                for r in self.routes.iter().filter(|r| r.topic == topic) {
                    r.state.set(true);
                }
            }
            Err(why) => {
                self.requested.remove(topic);
                tracing::warn!(broker = %self.name, %topic, reason = why.as_str(),
                    "bridge probe subscription refused on the receiving broker; the bridge probe fails with remote_not_connected until it is allowed");
            }
        }
    }

    /// The session ended: nothing is subscribed any more.
    pub fn session_ended(&mut self) {
        self.pending = FuturesUnordered::new();
        self.requested.clear();
        self.granted.clear();
        for r in &self.routes {
            r.state.set(false);
        }
    }

    /// Forward a message on a remote topic to the publishing broker's task; `false` if the
    /// topic is no route's. A full or closed channel drops the arrival and returns `true`
    /// with `dropped` set.
    pub fn on_message(&self, topic: &str, payload: &[u8], at: Instant, dropped: &mut bool) -> bool {
        let mut ours = false;
        for r in self.routes.iter().filter(|r| r.topic == topic) {
            ours = true;
            let a = Arrival {
                probe: r.probe,
                payload: payload.to_vec(),
                at,
            };
            if r.tx.try_send(a).is_err() {
                *dropped = true;
            }
        }
        ours
    }
}

type AckFuture = Pin<Box<dyn Future<Output = AckDone> + Send>>;

/// What the publishing side waits for: [`Bridges::next_event`].
pub enum Event {
    Ack(AckDone),
    Arrival(Arrival),
}

/// What the receiving side waits for: [`Inbound::next_event`].
pub enum InboundEvent {
    /// The SUBACK of a remote topic.
    Suback(String, Result<i32, Reason>),
    /// The UNSUBACK of a remote topic no route wants any more.
    Unsuback(String, Result<(), Reason>),
    /// The route table changed.
    Changed,
}

#[derive(Debug)]
struct Run {
    seq: u64,
    deadline: Instant,
    /// The remote's subscription epoch at the send, if subscribed.
    remote_epoch: Option<u64>,
    /// The publishing broker acknowledged the publish (always true at QoS 0).
    acked: bool,
}

struct Item {
    name: String,
    remote: String,
    topic: String,
    qos: Qos,
    interval: Duration,
    timeout: Duration,
    tracker: Tracker,
    metrics: BridgeMetrics,
    next_run: Instant,
    in_flight: Option<Run>,
    state: Arc<RemoteState>,
    /// The remote was subscribed at least once: until then runs wait (start-up order), and
    /// fail with `remote_not_connected` once a timeout has passed.
    remote_seen: bool,
    waiting_since: Instant,
}

/// The publishing side of one broker's bridge probes, driven by its session loop like the
/// round trips (`runner::Probes`), and like them never overlapping themselves: a run ends when
/// its message arrives on the remote or its timeout passes; ticks inside a run are skipped.
pub struct Bridges {
    items: Vec<Item>,
    arrivals: mpsc::Receiver<Arrival>,
    acks: FuturesUnordered<AckFuture>,
    connected: bool,
}

impl Bridges {
    /// The bridge probes of `cfg`, their routes added to `routes` (removed by the caller with
    /// [`BridgeRoutes::remove_from`] when this broker's task stops).
    pub fn new(cfg: &BrokerConfig, metrics: &Metrics, routes: &BridgeRoutes) -> Self {
        let (tx, arrivals) = mpsc::channel(ARRIVALS);
        let now = Instant::now();
        let items = cfg
            .bridge_probes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let state = Arc::new(RemoteState::default());
                routes.add(
                    &b.remote,
                    Route {
                        from: cfg.name.clone(),
                        probe: i,
                        topic: b.remote_topic.clone(),
                        qos: b.qos,
                        tx: tx.clone(),
                        state: state.clone(),
                    },
                );
                Item {
                    name: b.name.clone(),
                    remote: b.remote.clone(),
                    topic: b.topic.clone(),
                    qos: b.qos,
                    interval: b.interval,
                    timeout: b.timeout,
                    tracker: Tracker::new(rand::random(), b.payload_bytes),
                    metrics: metrics.bridge(&cfg.name, &b.remote, &b.name),
                    next_run: now,
                    in_flight: None,
                    state,
                    remote_seen: false,
                    waiting_since: now,
                }
            })
            .collect();
        Self {
            items,
            arrivals,
            acks: FuturesUnordered::new(),
            connected: false,
        }
    }

    /// Start the schedule, spread over the interval as the round trips are.
    pub fn session_started(&mut self, now: Instant) {
        self.connected = true;
        let n = self.items.len().max(1) as f64;
        for (i, it) in self.items.iter_mut().enumerate() {
            it.next_run = now + it.interval.mul_f64(i as f64 / n);
            it.waiting_since = now;
        }
    }

    /// The publishing session is gone: no run until the next one. A run in flight stays in
    /// flight (its message may be on its way over the bridge) and is judged at its deadline
    /// in the next session; success is 0 until then.
    pub fn session_ended(&mut self) {
        self.connected = false;
        self.acks = FuturesUnordered::new();
        for it in &mut self.items {
            it.metrics.base.success.set(0);
        }
    }

    /// When [`Self::on_timer`] next has work.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if !self.connected {
            return None;
        }
        self.items
            .iter()
            .map(|it| it.in_flight.as_ref().map_or(it.next_run, |r| r.deadline))
            .min()
    }

    /// Judge runs past their deadline and start due runs on `client`.
    ///
    /// A run whose message is not on the remote by its deadline is lost and fails with
    /// `remote_not_connected` if the remote's session was not subscribed throughout, `timeout`
    /// if the publishing broker never acknowledged it (QoS 1 and 2), and `not_delivered`
    /// otherwise: the broker took it and the bridge did not deliver it (link down, a topic
    /// mapping that does not carry it, a full or stuck queue).
    pub fn on_timer(&mut self, now: Instant, client: &paho::AsyncClient) {
        for i in 0..self.items.len() {
            let it = &mut self.items[i];
            if let Some(r) = &it.in_flight {
                if now < r.deadline {
                    continue;
                }
                for _ in it.tracker.expire(now, it.timeout) {
                    it.metrics.lost.inc();
                }
                let remote_throughout =
                    r.remote_epoch.is_some() && r.remote_epoch == it.state.current();
                let why = if !remote_throughout {
                    Reason::RemoteNotConnected
                } else if !r.acked {
                    Reason::Timeout
                } else {
                    Reason::NotDelivered
                };
                it.metrics.base.record_failure(why);
                it.in_flight = None;
            }
            if now < it.next_run {
                continue;
            }
            while it.next_run <= now {
                it.next_run += it.interval;
            }
            let remote_epoch = it.state.current();
            if remote_epoch.is_some() {
                it.remote_seen = true;
            }
            if !it.remote_seen {
                // Start-up: the remote's session has not subscribed yet. Wait for it, for one
                // timeout; after that the run fails without sending.
                if now.saturating_duration_since(it.waiting_since) >= it.timeout {
                    it.metrics.base.record_failure(Reason::RemoteNotConnected);
                }
                continue;
            }
            let sent = Instant::now();
            let (seq, payload) = it.tracker.send(sent);
            let token = client.publish(paho::Message::new(
                it.topic.as_str(),
                payload,
                it.qos.as_i32(),
            ));
            it.metrics.sent.inc();
            let qos0 = it.qos == Qos::AtMostOnce;
            it.in_flight = Some(Run {
                seq,
                deadline: super::deadline_after(sent, it.timeout),
                remote_epoch,
                acked: qos0,
            });
            self.acks
                .push(Box::pin(AckDone::wait(i, seq, sent, qos0, token)));
        }
    }

    /// The next acknowledgement or arrival, for the session loop to wait on (never resolves
    /// without bridge probes).
    pub async fn next_event(&mut self) -> Event {
        use futures_util::StreamExt;
        if self.items.is_empty() {
            return std::future::pending().await;
        }
        let acks_pending = !self.acks.is_empty();
        tokio::select! {
            Some(done) = self.acks.next(), if acks_pending => Event::Ack(done),
            Some(a) = self.arrivals.recv() => Event::Arrival(a),
            else => std::future::pending().await,
        }
    }

    /// Apply what [`Self::next_event`] returned; an acknowledgement's answer time, for the
    /// session's liveness (`last_rx`).
    pub fn on_event(&mut self, e: Event) -> Option<Instant> {
        match e {
            Event::Ack(done) => {
                let at = done.answered_at();
                self.on_ack(done);
                at
            }
            Event::Arrival(a) => {
                self.on_arrival(a);
                None
            }
        }
    }

    /// A publish's token completed: an answer marks the run acknowledged; a refusal (v5
    /// reason code) ends it with the reason-code name.
    fn on_ack(&mut self, done: AckDone) {
        let Some(it) = self.items.get_mut(done.probe) else {
            return;
        };
        let mine = it.in_flight.as_mut().filter(|r| r.seq == done.seq);
        match done.result {
            Ok(()) => {
                if let Some(r) = mine {
                    r.acked = true;
                }
            }
            Err(paho::Error::ReasonCode(rc, _)) => {
                it.tracker.cancel(done.seq);
                if mine.is_some() {
                    it.in_flight = None;
                }
                it.metrics.base.record_failure(reason::reason_name(rc));
            }
            Err(e) => {
                tracing::debug!(probe = %it.name, error = %e, "bridge probe delivery did not complete");
            }
        }
    }

    /// Account for a message that arrived on a remote.
    fn on_arrival(&mut self, a: Arrival) {
        let Some(it) = self.items.get_mut(a.probe) else {
            return;
        };
        let seen = it.tracker.receive(&a.payload, a.at);
        match seen {
            Seen::Fresh { seq, rtt } | Seen::OutOfOrder { seq, rtt } => {
                if matches!(seen, Seen::OutOfOrder { .. }) {
                    it.metrics.out_of_order.inc();
                }
                if it.in_flight.as_ref().is_some_and(|r| r.seq == seq) {
                    it.in_flight = None;
                }
                it.metrics.received.inc();
                it.metrics.delivery.observe(rtt.as_secs_f64());
                it.metrics.base.success.set(1);
            }
            Seen::Duplicate { .. } => {
                it.metrics.duplicates.inc();
            }
            Seen::Late { .. } => it.metrics.base.record_ignored(Reason::Late),
            Seen::Foreign => it.metrics.base.record_ignored(Reason::Foreign),
        }
        tracing::trace!(probe = %it.name, remote = %it.remote, ?seen, "bridge probe arrival");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(from: &str, topic: &str, tx: &mpsc::Sender<Arrival>) -> Route {
        Route {
            from: from.to_owned(),
            probe: 0,
            topic: topic.to_owned(),
            qos: Qos::AtLeastOnce,
            tx: tx.clone(),
            state: Arc::default(),
        }
    }

    fn set(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn a_remote_topic_is_forgotten_when_its_last_route_goes_and_not_before() {
        let routes = BridgeRoutes::default();
        let (tx, _rx) = mpsc::channel(1);
        routes.add("b", route("a1", "x/1", &tx));
        routes.add("b", route("a2", "x/1", &tx));
        routes.add("b", route("a2", "x/2", &tx));
        routes.add("c", route("a1", "x/3", &tx));
        let mut i = routes.inbound("b");
        assert_eq!(i.routes.len(), 3);
        // as `subscribe` and `on_suback` leave them: both asked, x/1 granted
        i.requested = set(&["x/1", "x/2"]);
        i.granted = set(&["x/1"]);

        // a1 stops: x/1 is still a2's, x/3 ends on another broker
        routes.remove_from("a1");
        i.refresh();
        assert!(i.forget_unwanted().is_empty());
        assert_eq!(i.requested, set(&["x/1", "x/2"]));

        // a2 stops: both topics go, sorted, and nothing is left to unsubscribe twice
        routes.remove_from("a2");
        i.refresh();
        assert!(i.routes.is_empty());
        assert_eq!(i.forget_unwanted(), ["x/1", "x/2"]);
        assert!(i.requested.is_empty() && i.granted.is_empty());
        assert!(i.forget_unwanted().is_empty());

        // the SUBACK of x/2, still on its way, counts no more
        i.on_suback("x/2", Ok(1));
        assert!(i.granted.is_empty());

        // wanted again: asked for again (it is no longer in `requested`)
        routes.add("b", route("a2", "x/2", &tx));
        i.refresh();
        assert!(i.forget_unwanted().is_empty());
        assert!(i.routes.iter().all(|r| !i.requested.contains(&r.topic)));
    }

    #[test]
    fn the_suback_of_a_topic_asked_for_marks_its_routes_subscribed() {
        let routes = BridgeRoutes::default();
        let (tx, _rx) = mpsc::channel(1);
        routes.add("b", route("a", "x/1", &tx));
        let mut i = routes.inbound("b");
        i.requested = set(&["x/1"]);
        i.on_suback("x/1", Ok(1));
        assert_eq!(i.granted, set(&["x/1"]));
        assert!(i.routes[0].state.current().is_some());
        i.session_ended();
        assert!(i.routes[0].state.current().is_none() && i.requested.is_empty());
    }
}
