//! The `will` prober: does the broker publish a client's will when the client drops without
//! DISCONNECT, and only then (MQTT 5.0 §3.1.2.5, 3.1.1 §3.1.2.5)?
//!
//! One run, all within the probe's timeout:
//! 1. a fresh watcher subscribes at QoS 1 to the probe's topic;
//! 2. a client of [`crate::mqtt::will`] connects with a QoS 1 will on that topic (a payload
//!    unique to the run; the MQTT 5 Will Delay Interval when `will_delay` is set) and its
//!    socket is closed without DISCONNECT: the watcher must receive the will
//!    (`not_delivered` when it does not by the deadline: the broker answered the watcher's
//!    SUBSCRIBE, so a missing will is the broker dropping it, e.g. an ACL on its topic);
//! 3. a second client connects with another unique will and leaves with DISCONNECT: no
//!    will may arrive (`unexpected_will`). This step is a bounded observation, not a proof:
//!    the watcher waits [`CLEAN_WATCH`] plus the will delay (at most the time left of the
//!    run) and a will published later than that goes unseen.
//!
//! The watcher is a fresh client rather than the broker's watching session: that session
//! subscribes to the round-trip probes' topics only, and `/probe` has no session at all.

use super::Run;
use super::fresh::receive;
use crate::config::{ClientRole, ProbeKind};
use crate::metrics::Reason;
use crate::mqtt::fresh::{Failure, connect};
use crate::mqtt::will::{self, Will};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// How long the watcher waits for a will that must not come after a clean DISCONNECT, on top
/// of the will delay (config checks that a run has room for it).
pub use crate::config::WILL_CLEAN_WATCH as CLEAN_WATCH;

/// The `will` prober (see the module docs). Reports the delivery time: from closing the
/// socket to the will's arrival in the watcher's Paho callback (the will delay included).
pub fn will_once<'a>(
    r: Run<'a>,
) -> Pin<Box<dyn Future<Output = Result<Option<Duration>, Failure>> + Send + 'a>> {
    Box::pin(async move {
        let deadline = super::deadline_after(Instant::now(), r.timeout);
        let left = || deadline.saturating_duration_since(Instant::now());
        let delay = match r.kind {
            ProbeKind::Will { delay } => delay,
            _ => None,
        };
        let mut watcher =
            connect(r.cfg, r.negotiated, &ClientRole::Watcher.id(r.id), left()).await?;
        let result = async {
            watcher.subscribe(r.topic, 1, left()).await?;
            // The will clients speak what the watcher negotiated.
            let protocol = watcher.protocol;
            let payload = |how: &str| format!("mqs-will {:016x} {} {how}", r.nonce, r.run_no);
            let client = |role: ClientRole, payload: String| {
                let id = role.id(r.id);
                async move {
                    let will = Will {
                        topic: r.topic,
                        payload: payload.as_bytes(),
                        delay,
                    };
                    will::connect(r.cfg, protocol, &id, will, left()).await
                }
            };
            let dropped = payload("dropped");
            let c = client(ClientRole::Will, dropped.clone()).await?;
            drop(c);
            let closed = Instant::now();
            let Some(at) = receive(&mut watcher.messages, dropped.as_bytes(), deadline).await
            else {
                // The broker answered the watcher's SUBSCRIBE, so this is `not_delivered`
                // as for a round trip the broker dropped, not `timeout` (a silent broker):
                // a will the broker's ACL denies (mosquitto drops it at publish time) or
                // never publishes looks exactly like this.
                return Err(Failure::new(
                    Reason::NotDelivered,
                    "the will of a client dropped without DISCONNECT was not delivered (broker down, will not published, or its topic denied by an ACL)",
                ));
            };
            let delivery = at.saturating_duration_since(closed);
            let clean = payload("clean");
            let c = client(ClientRole::Clean, clean.clone()).await?;
            c.disconnect().await?;
            let watch = (CLEAN_WATCH + delay.unwrap_or_default()).min(left());
            let until = super::deadline_after(Instant::now(), watch);
            if receive(&mut watcher.messages, clean.as_bytes(), until)
                .await
                .is_some()
            {
                return Err(Failure::new(
                    Reason::UnexpectedWill,
                    "the will of a client that sent DISCONNECT was published",
                ));
            }
            Ok(Some(delivery))
        }
        .await;
        watcher.close().await;
        result
    })
}
