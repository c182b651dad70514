//! The `session` prober: does the broker keep a persistent session and the QoS 1 message
//! published to it while its client is offline, as sleeping devices rely on?
//!
//! One run, all within the probe's timeout, with one client id per broker and probe (the
//! watching session's id + `-<probe>-session`, the same every run):
//! 1. connect with a session that outlives the connection (MQTT 5: Clean Start 1 with a
//!    Session Expiry Interval of the timeout + 1 s, so a session we fail to delete expires
//!    soon; 3.1.1: Clean Session 0), subscribe at QoS 1 to the probe's topic, DISCONNECT;
//! 2. a fresh publisher publishes one QoS 1 message unique to the run and gets its PUBACK;
//! 3. reconnect to the session (MQTT 5 Clean Start 0): the CONNACK must say session present
//!    (`session_not_present` otherwise), and the message must arrive (`not_delivered` by the
//!    deadline). Then the client publishes a marker to the same topic; a second copy of the
//!    message before the marker is `duplicate` (bounded observation: a copy after the marker
//!    or the deadline goes unseen);
//! 4. whatever happened, connect clean with the same id and leave, which deletes the
//!    session (MQTT 5.0 §3.1.2.4, 3.1.1 §3.1.2.4): brokers do not accumulate our sessions.

use super::Run;
use super::fresh::receive;
use crate::config::{BrokerConfig, ClientRole};
use crate::metrics::Reason;
use crate::mqtt::fresh::{Failure, connect, connect_persistent};
use crate::mqtt::negotiate::Negotiated;
use crate::mqtt::options::Persist;
use paho_mqtt as paho;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// The `session` prober (see the module docs). Reports no duration.
pub fn session_once<'a>(
    r: Run<'a>,
) -> Pin<Box<dyn Future<Output = Result<Option<Duration>, Failure>> + Send + 'a>> {
    Box::pin(async move {
        let session = Session {
            cfg: r.cfg.clone(),
            negotiated: r.negotiated.clone(),
            id: ClientRole::Session.id(r.id),
        };
        let result = queued_once(&r, &session.id).await;
        session.delete().await;
        result
    })
}

/// The run's session on the broker, deleted at the end of the run whatever happened; a run
/// cut short (the `/probe` request's client went away, SIGTERM or a reload, which drop the
/// run) deletes it from a task of its own when dropped, on [`CLEANUPS`], which shutdown
/// waits for. A 3.1.1 session has no expiry, and one-shot client ids are random: nothing
/// else would ever delete it.
struct Session {
    cfg: BrokerConfig,
    negotiated: Negotiated,
    id: String,
}

impl Session {
    async fn delete(mut self) {
        let id = std::mem::take(&mut self.id);
        delete(&self.cfg, &self.negotiated, &id).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        let (cfg, negotiated, id) = (
            self.cfg.clone(),
            self.negotiated.clone(),
            std::mem::take(&mut self.id),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(CLEANUPS.track_future(async move { delete(&cfg, &negotiated, &id).await }));
        }
    }
}

/// Deletions of sessions whose run was dropped. The process waits for them (within its stop
/// grace) before it exits: a run cancelled by SIGTERM drops its `Session` just before the
/// probe task ends, and a deletion the runtime dropped unstarted would leave a 3.1.1 session,
/// subscribed and holding the run's message, on the broker for good.
pub static CLEANUPS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// Connect clean with the session's id and leave: Clean Start 1 / Clean Session 1 discards
/// the session (MQTT 5.0 §3.1.2.4, 3.1.1 §3.1.2.4).
async fn delete(cfg: &BrokerConfig, negotiated: &Negotiated, id: &str) {
    if let Ok(c) = connect(cfg, negotiated, id, Duration::from_secs(1)).await {
        c.close().await;
    }
}

async fn queued_once(r: &Run<'_>, id: &str) -> Result<Option<Duration>, Failure> {
    let deadline = super::deadline_after(Instant::now(), r.timeout);
    let left = || deadline.saturating_duration_since(Instant::now());
    let expiry = r.timeout.saturating_add(Duration::from_secs(1));
    let payload = format!("mqs-session {:016x} {}", r.nonce, r.run_no);

    let c = connect_persistent(r.cfg, r.negotiated, id, left(), Persist::Start { expiry }).await?;
    let subscribed = c.subscribe(r.topic, 1, left()).await;
    c.close().await;
    subscribed?;

    let publisher = connect(r.cfg, r.negotiated, &ClientRole::Publisher.id(r.id), left()).await?;
    let published = publisher
        .publish(paho::Message::new(r.topic, payload.as_bytes(), 1), left())
        .await;
    publisher.close().await;
    published?;

    let mut c =
        connect_persistent(r.cfg, r.negotiated, id, left(), Persist::Resume { expiry }).await?;
    let got = async {
        if !c.session_present {
            return Err(Failure::new(
                Reason::SessionNotPresent,
                "the broker did not keep the session (CONNACK session present 0)",
            ));
        }
        if receive(&mut c.messages, payload.as_bytes(), deadline)
            .await
            .is_none()
        {
            return Err(Failure::new(
                Reason::NotDelivered,
                "the message published while the client was offline was not delivered",
            ));
        }
        let marker = format!("{payload} end");
        if c.publish(paho::Message::new(r.topic, marker.as_bytes(), 1), left())
            .await
            .is_err()
        {
            // Delivered once; a duplicate cannot be looked for without the marker.
            return Ok(None);
        }
        loop {
            let m = tokio::time::timeout(left(), c.messages.recv()).await;
            match m {
                Ok(Some((m, _))) if m.payload() == payload.as_bytes() => {
                    return Err(Failure::new(
                        Reason::Duplicate,
                        "the message queued for the session was delivered twice",
                    ));
                }
                Ok(Some((m, _))) if m.payload() == marker.as_bytes() => return Ok(None),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Ok(None),
            }
        }
    }
    .await;
    c.close().await;
    got
}
