//! `protocol: auto`: which MQTT version the next CONNECT uses. Pure: no I/O, no clock.
//!
//! MQTT 5 is the default because its reason codes are what our `result`/`reason` labels are
//! made of. We fall back to 3.1.1 only on evidence that MQTT 5 itself is refused:
//! - a CONNACK that says so: v5 reason 0x84 *Unsupported Protocol Version* (MQTT 5.0 §3.2.2.2)
//!   or the 3.1.1 return code 0x01 *unacceptable protocol version* that a 3.1.1-only broker
//!   sends in reply to a v5 CONNECT (MQTT 3.1.1 §3.2.2.3), which the labels map to
//!   `unsupported_protocol_version`;
//! - or the connection closed (or garbled) before any CONNACK on an MQTT 5 attempt, then a
//!   3.1.1 *test* connect succeeding, then MQTT 5 closed again right after it. amqtt, NATS and
//!   RabbitMQ 3.10 just close the socket. The test connect is what tells a refusal from an
//!   outage: a restarting broker or a load balancer with no backend closes every connection
//!   until it is back, and once a 3.1.1 connect gets through, the MQTT 5 one asked right after
//!   it gets through as well. Without it, two closed MQTT 5 attempts and a 3.1.1 attempt that
//!   happened to land as the broker came back would pin 3.1.1.
//!
//! Everything else is not a refusal of MQTT 5 and never changes the version: a refused port,
//! a timeout, a TLS failure, a WebSocket upgrade error, a full broker.
//!
//! A fallback lasts one session. Every new connect sequence, after a session ended, starts with
//! MQTT 5 again, so no fallback outlives its cause (a broker upgraded to MQTT 5 is used as one
//! from its first restart on).

use crate::config::Protocol;
use crate::metrics::Reason;

/// What a failed CONNECT says about the broker's MQTT 5 support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The broker answered that it does not speak this protocol version.
    Refused,
    /// No CONNACK: the connection was closed, or what came back was not a v5 CONNACK.
    Closed,
    /// A failure that says nothing about the protocol version (DNS, refused port, timeout,
    /// TLS, authentication, a busy broker...).
    Unrelated,
}

impl Evidence {
    /// Classify a connect result (see `mqtt::reason`).
    pub fn of(result: Reason) -> Self {
        match result {
            Reason::UnsupportedProtocolVersion => Evidence::Refused,
            // `connection_closed` is what `reason::diagnose` says when the transport came up
            // and the broker closed it with no CONNACK (`error` is no connect result any
            // more; kept for safety); a v5 CONNACK parsed as garbage gives the others.
            Reason::ConnectionClosed
            | Reason::Error
            | Reason::MalformedPacket
            | Reason::ProtocolError => Evidence::Closed,
            _ => Evidence::Unrelated,
        }
    }
}

/// After a failed attempt: what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at once with this version (a protocol question, not an outage: no backoff).
    RetryNow(Protocol),
    /// An ordinary failure: wait the backoff, then try [`Negotiation::protocol`].
    Backoff,
}

/// Where a connect sequence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A pinned version (`v5` or `v3.1.1`): never changes.
    Pinned(Protocol),
    /// `auto`, asking for MQTT 5.
    V5,
    /// MQTT 5 was closed without a CONNACK: does the broker take 3.1.1 at all? A success is a
    /// test, not a session: the client disconnects and asks for MQTT 5 once more.
    V311Test,
    /// 3.1.1 just worked: MQTT 5 once more. Closed again means MQTT 5 is refused.
    V5Confirm,
    /// MQTT 5 refused, with evidence: 3.1.1 for this session.
    V311,
}

/// The version state of one client's connect sequence.
#[derive(Debug, Clone)]
pub struct Negotiation {
    configured: Protocol,
    stage: Stage,
    /// Why the current attempt is 3.1.1 (for the log), when it is a fallback.
    evidence: Option<&'static str>,
}

/// Shared by the tasks of one broker (the watching connection, fresh probe clients): set while the watching session runs on MQTT 3.1.1 because the broker refused
/// MQTT 5 (see [`Negotiation`]), so fresh clients start with 3.1.1 instead of repeating the
/// refused attempts. Cleared when that session ends or a MQTT 5 connect succeeds: it never
/// outlives the session whose evidence set it.
#[derive(Debug, Clone, Default)]
pub struct Negotiated(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Negotiated {
    /// Whether the broker's watching session currently runs on 3.1.1 after a refusal of 5.
    pub fn v311(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Record what the watching session runs on.
    pub fn set_v311(&self, v311: bool) {
        self.0.store(v311, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Negotiation {
    /// A new connect sequence: the configured version, or MQTT 5 for `auto`.
    pub fn new(configured: Protocol) -> Self {
        Self {
            configured,
            stage: start(configured),
            evidence: None,
        }
    }

    /// Start with 3.1.1: the broker's watching session runs on it after a refusal of MQTT 5
    /// (see [`Negotiated`]). A failure of that attempt goes back to MQTT 5.
    pub fn assume_v311(&mut self) {
        if self.configured == Protocol::Auto {
            self.stage = Stage::V311;
            self.evidence = Some("the broker's watching session runs on MQTT 3.1.1");
        }
    }

    /// The version the next attempt uses: never `Auto`.
    pub fn protocol(&self) -> Protocol {
        match self.stage {
            Stage::Pinned(p) => p,
            Stage::V5 | Stage::V5Confirm => Protocol::V5,
            Stage::V311Test | Stage::V311 => Protocol::V311,
        }
    }

    /// Whether a successful next attempt is only the 3.1.1 test connect: the caller
    /// disconnects it and calls [`Self::test_passed`].
    pub fn is_test(&self) -> bool {
        self.stage == Stage::V311Test
    }

    /// Why the next attempt falls back to 3.1.1, in words for the log; `None` when it does not.
    pub fn evidence(&self) -> Option<&'static str> {
        self.evidence
    }

    /// An attempt with [`Self::protocol`] failed with `result`.
    pub fn failed(&mut self, result: Reason) -> Next {
        match (self.stage, Evidence::of(result)) {
            (Stage::Pinned(_), _) => Next::Backoff,
            (Stage::V5 | Stage::V5Confirm, Evidence::Refused) => self.fall_back(
                "the broker answered the MQTT 5 CONNECT with 'unsupported protocol version'",
            ),
            (Stage::V5, Evidence::Closed) => {
                self.stage = Stage::V311Test;
                Next::RetryNow(Protocol::V311)
            }
            (Stage::V5Confirm, Evidence::Closed) => self.fall_back(
                "the broker closed MQTT 5 connections before a CONNACK, before and right after accepting a 3.1.1 connection",
            ),
            // 3.1.1 failed too, or a failure that says nothing about the version: an outage,
            // not a refusal. Back to MQTT 5, with backoff.
            _ => {
                self.reset();
                Next::Backoff
            }
        }
    }

    /// The 3.1.1 test connect succeeded and was closed: ask for MQTT 5 once more, now.
    pub fn test_passed(&mut self) -> Next {
        self.stage = Stage::V5Confirm;
        Next::RetryNow(Protocol::V5)
    }

    /// A session ended: the next connect starts with MQTT 5 again (for `auto`).
    pub fn reset(&mut self) {
        self.stage = start(self.configured);
        self.evidence = None;
    }

    fn fall_back(&mut self, why: &'static str) -> Next {
        self.stage = Stage::V311;
        self.evidence = Some(why);
        Next::RetryNow(Protocol::V311)
    }
}

fn start(configured: Protocol) -> Stage {
    match configured {
        Protocol::Auto => Stage::V5,
        p => Stage::Pinned(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Protocol::*;

    /// What a sequence of attempt results leads to: each attempt's version and the step after it.
    /// `"ok"` is a successful connect (a test connect passes; a real one ends the sequence).
    fn run(configured: Protocol, results: &[&str]) -> Vec<(Protocol, Next)> {
        let mut n = Negotiation::new(configured);
        let mut out = Vec::new();
        for r in results {
            let used = n.protocol();
            if *r == "ok" {
                assert!(n.is_test(), "a real session after {out:?}");
                out.push((used, n.test_passed()));
            } else {
                let r = Reason::ALL.iter().find(|x| *x == r);
                out.push((used, n.failed(*r.expect("a result label"))));
            }
        }
        out
    }

    #[test]
    fn a_refusal_falls_back_at_once() {
        assert_eq!(
            run(Auto, &["unsupported_protocol_version"]),
            [(V5, Next::RetryNow(V311))]
        );
    }

    #[test]
    fn one_closed_connection_is_not_evidence() {
        // A proxy that drops exactly one connection: 3.1.1 gets through as a test, then MQTT 5
        // is asked again and gets through too.
        let mut n = Negotiation::new(Auto);
        assert_eq!(n.failed(Reason::ConnectionClosed), Next::RetryNow(V311));
        assert!(n.is_test());
        assert_eq!(n.test_passed(), Next::RetryNow(V5));
        assert!(!n.is_test());
        assert_eq!(n.protocol(), V5);
        assert_eq!(n.evidence(), None);
    }

    #[test]
    fn closed_before_and_after_a_311_success_is_a_refusal() {
        let r = run(Auto, &["connection_closed", "ok", "connection_closed"]);
        assert_eq!(
            r,
            [
                (V5, Next::RetryNow(V311)),
                (V311, Next::RetryNow(V5)),
                (V5, Next::RetryNow(V311)),
            ]
        );
    }

    #[test]
    fn closed_on_311_too_is_an_outage_not_a_refusal() {
        // A load balancer with no backend, a restarting broker: every attempt is closed.
        let closed = Reason::ConnectionClosed.as_str();
        let r = run(Auto, &[closed, closed, closed, closed]);
        assert_eq!(
            r,
            [
                (V5, Next::RetryNow(V311)),
                (V311, Next::Backoff),
                (V5, Next::RetryNow(V311)),
                (V311, Next::Backoff),
            ]
        );
    }

    #[test]
    fn a_broker_coming_back_during_the_test_is_not_a_refusal() {
        // The race a reviewer hit: MQTT 5 closed while the broker restarts, the 3.1.1 attempt
        // lands as it is back. The confirmation asks MQTT 5 once more, and it gets through.
        let mut n = Negotiation::new(Auto);
        n.failed(Reason::ConnectionClosed);
        n.test_passed();
        assert_eq!(n.protocol(), V5);
        assert_eq!(n.evidence(), None);
    }

    #[test]
    fn failures_that_say_nothing_about_the_version_never_change_it() {
        for label in [
            Reason::Refused,
            Reason::Timeout,
            Reason::TlsHandshake,
            Reason::TlsCertificate,
            Reason::Dns,
            Reason::Unreachable,
            Reason::WebsocketUpgrade,
            Reason::WebsocketHttp404,
            Reason::ServerBusy,
            Reason::ServerUnavailable,
            Reason::QuotaExceeded,
            Reason::NotAuthorized,
            Reason::BadUsernameOrPassword,
            Reason::ConnectionRateExceeded,
            Reason::ServerShuttingDown,
        ] {
            let mut n = Negotiation::new(Auto);
            assert_eq!(n.failed(label), Next::Backoff, "{label}");
            assert_eq!(n.protocol(), V5, "{label}");
            // nor in the confirmation step
            let mut n = Negotiation::new(Auto);
            n.failed(Reason::ConnectionClosed);
            n.test_passed();
            assert_eq!(n.failed(label), Next::Backoff, "{label}");
            assert_eq!(n.protocol(), V5, "{label}");
        }
    }

    #[test]
    fn a_fallback_lasts_one_session() {
        let mut n = Negotiation::new(Auto);
        n.failed(Reason::UnsupportedProtocolVersion);
        assert_eq!(n.protocol(), V311);
        assert!(!n.is_test(), "a refusal by CONNACK needs no test");
        assert!(n.evidence().is_some());
        n.reset();
        assert_eq!(n.protocol(), V5, "the next session asks for MQTT 5 again");
        assert_eq!(n.evidence(), None);
    }

    #[test]
    fn a_failed_fallback_goes_back_to_mqtt_5() {
        let mut n = Negotiation::new(Auto);
        n.failed(Reason::UnsupportedProtocolVersion);
        assert_eq!(n.failed(Reason::ConnectionClosed), Next::Backoff);
        assert_eq!(n.protocol(), V5);
        let mut n = Negotiation::new(Auto);
        n.assume_v311();
        assert_eq!(n.protocol(), V311);
        assert_eq!(n.failed(Reason::Timeout), Next::Backoff);
        assert_eq!(n.protocol(), V5);
    }

    #[test]
    fn a_pinned_version_never_changes() {
        for p in [V5, V311] {
            for label in [
                Reason::UnsupportedProtocolVersion,
                Reason::ConnectionClosed,
                Reason::Timeout,
            ] {
                let mut n = Negotiation::new(p);
                assert_eq!(n.failed(label), Next::Backoff);
                assert_eq!(n.protocol(), p);
                assert!(!n.is_test());
            }
            let mut n = Negotiation::new(p);
            n.assume_v311();
            assert_eq!(n.protocol(), p);
        }
    }
}
