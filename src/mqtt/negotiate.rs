//! `protocol: auto`: which MQTT version the next CONNECT uses. Pure: no I/O, no clock.
//!
//! MQTT 5 is the default because its reason codes are what our `result`/`reason` labels are
//! made of. We fall back to 3.1.1 only on evidence that MQTT 5 itself is refused:
//! - a CONNACK that says so: v5 reason 0x84 *Unsupported Protocol Version* (MQTT 5.0 §3.2.2.2)
//!   or the 3.1.1 return code 0x01 *unacceptable protocol version* that a 3.1.1-only broker
//!   sends in reply to a v5 CONNECT (MQTT 3.1.1 §3.2.2.3; amqtt and NATS do this), which the
//!   labels map to `unsupported_protocol_version`;
//! - or the connection closed (or garbled) before any CONNACK on [`CLOSED_V5_ATTEMPTS`] MQTT 5
//!   attempts in a row (RabbitMQ 3.10 just closes the socket), *and then* a 3.1.1 attempt
//!   succeeding.
//!
//! Everything else is not a refusal of MQTT 5 and never changes the version: a refused port,
//! a timeout, a TLS failure, a WebSocket upgrade error, a full broker, a load balancer with no
//! backend (it accepts and closes, but then 3.1.1 fails as well, so nothing changes).
//!
//! A fallback lasts one session. Every new connect sequence, after a session ended, starts with
//! MQTT 5 again, so no fallback outlives its cause (a broker upgraded to MQTT 5 is used as one
//! from its first restart on).

use crate::config::Protocol;
use crate::mqtt::reason;

/// MQTT 5 attempts in a row closed before a CONNACK before 3.1.1 is tried: one closed
/// connection (a restarting broker, a proxy dropping one connection) is not evidence.
pub const CLOSED_V5_ATTEMPTS: u32 = 2;

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
    /// Classify a connect result label (see [`reason`]).
    pub fn of(label: &str) -> Self {
        match label {
            "unsupported_protocol_version" => Evidence::Refused,
            // `connection_closed` is what `reason::diagnose` says when the transport came up
            // and the broker closed it with no CONNACK (`error` is no connect result any
            // more; kept for safety); a v5 CONNACK parsed as garbage gives the others.
            reason::CONNECTION_CLOSED | reason::ERROR | "malformed_packet" | "protocol_error" => {
                Evidence::Closed
            }
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

/// The version state of one client's connect sequence.
#[derive(Debug, Clone)]
pub struct Negotiation {
    configured: Protocol,
    next: Protocol,
    /// MQTT 5 attempts in a row that ended with [`Evidence::Closed`].
    closed_v5: u32,
    /// Why the current attempt is 3.1.1 (for the log), when it is a fallback.
    evidence: Option<&'static str>,
}

impl Negotiation {
    /// A new connect sequence: the configured version, or MQTT 5 for `auto`.
    pub fn new(configured: Protocol) -> Self {
        Self {
            configured,
            next: start(configured),
            closed_v5: 0,
            evidence: None,
        }
    }

    /// Start with 3.1.1: the broker's watching session runs on it after a refusal of MQTT 5
    /// (see `config::Negotiated`). A failure of that attempt goes back to MQTT 5.
    pub fn assume_v311(&mut self) {
        if self.configured == Protocol::Auto {
            self.next = Protocol::V311;
            self.evidence = Some("the broker's watching session runs on MQTT 3.1.1");
        }
    }

    /// The version the next attempt uses: never `Auto`.
    pub fn protocol(&self) -> Protocol {
        self.next
    }

    /// Why the next attempt falls back to 3.1.1, in words for the log; `None` when it does not.
    pub fn evidence(&self) -> Option<&'static str> {
        self.evidence
    }

    /// An attempt with [`Self::protocol`] failed with result `label`.
    pub fn failed(&mut self, label: &str) -> Next {
        if self.configured != Protocol::Auto {
            return Next::Backoff;
        }
        match (self.next, Evidence::of(label)) {
            (Protocol::V5, Evidence::Refused) => self.fall_back(
                "the broker answered the MQTT 5 CONNECT with 'unsupported protocol version'",
            ),
            (Protocol::V5, Evidence::Closed) => {
                self.closed_v5 += 1;
                if self.closed_v5 >= CLOSED_V5_ATTEMPTS {
                    self.fall_back("the broker closed the connection before a CONNACK on 2 MQTT 5 attempts in a row")
                } else {
                    Next::RetryNow(Protocol::V5)
                }
            }
            // 3.1.1 failed too: nothing says MQTT 5 is the problem. Back to 5, with backoff.
            _ => {
                self.reset();
                Next::Backoff
            }
        }
    }

    /// An attempt succeeded: the sequence is over. The next sequence starts from scratch.
    pub fn connected(&mut self) {
        self.closed_v5 = 0;
    }

    /// A session ended: the next connect starts with MQTT 5 again (for `auto`).
    pub fn reset(&mut self) {
        self.next = start(self.configured);
        self.closed_v5 = 0;
        self.evidence = None;
    }

    fn fall_back(&mut self, why: &'static str) -> Next {
        self.next = Protocol::V311;
        self.closed_v5 = 0;
        self.evidence = Some(why);
        Next::RetryNow(Protocol::V311)
    }
}

fn start(configured: Protocol) -> Protocol {
    match configured {
        Protocol::Auto => Protocol::V5,
        p => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Protocol::*;

    fn run(configured: Protocol, results: &[&str]) -> Vec<(Protocol, Next)> {
        let mut n = Negotiation::new(configured);
        results
            .iter()
            .map(|r| {
                let used = n.protocol();
                (used, n.failed(r))
            })
            .collect()
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
        // A proxy that drops exactly one connection: the retry is MQTT 5 again.
        let mut n = Negotiation::new(Auto);
        assert_eq!(n.failed(reason::ERROR), Next::RetryNow(V5));
        assert_eq!(n.protocol(), V5);
        n.connected();
        assert_eq!(n.protocol(), V5);
        assert_eq!(n.evidence(), None);
    }

    #[test]
    fn closed_on_every_v5_attempt_tries_311() {
        assert_eq!(
            run(
                Auto,
                &[reason::CONNECTION_CLOSED, reason::CONNECTION_CLOSED]
            ),
            [(V5, Next::RetryNow(V5)), (V5, Next::RetryNow(V311))]
        );
    }

    #[test]
    fn closed_on_311_too_is_an_outage_not_a_refusal() {
        // A load balancer with no backend: every attempt is closed, whatever the version.
        let r = run(
            Auto,
            &["error", "error", "error", "error", "error", "error"],
        );
        assert_eq!(
            r,
            [
                (V5, Next::RetryNow(V5)),
                (V5, Next::RetryNow(V311)),
                (V311, Next::Backoff),
                (V5, Next::RetryNow(V5)),
                (V5, Next::RetryNow(V311)),
                (V311, Next::Backoff),
            ]
        );
    }

    #[test]
    fn failures_that_say_nothing_about_the_version_never_change_it() {
        for label in [
            reason::REFUSED,
            reason::TIMEOUT,
            reason::TLS_HANDSHAKE,
            reason::TLS_CERTIFICATE,
            reason::DNS,
            reason::UNREACHABLE,
            reason::WEBSOCKET_UPGRADE,
            "websocket_http_404",
            "server_busy",
            "server_unavailable",
            "quota_exceeded",
            "not_authorized",
            "bad_username_or_password",
            "connection_rate_exceeded",
            "server_shutting_down",
        ] {
            let mut n = Negotiation::new(Auto);
            assert_eq!(n.failed(label), Next::Backoff, "{label}");
            assert_eq!(n.protocol(), V5, "{label}");
        }
    }

    #[test]
    fn an_unrelated_failure_between_two_closes_starts_the_count_again() {
        assert_eq!(
            run(Auto, &["error", "timeout", "error"]),
            [
                (V5, Next::RetryNow(V5)),
                (V5, Next::Backoff),
                (V5, Next::RetryNow(V5)),
            ]
        );
    }

    #[test]
    fn a_fallback_lasts_one_session() {
        let mut n = Negotiation::new(Auto);
        n.failed("unsupported_protocol_version");
        assert_eq!(n.protocol(), V311);
        assert!(n.evidence().is_some());
        n.connected();
        assert_eq!(
            n.protocol(),
            V311,
            "the session that fell back runs on 3.1.1"
        );
        n.reset();
        assert_eq!(n.protocol(), V5, "the next session asks for MQTT 5 again");
        assert_eq!(n.evidence(), None);
    }

    #[test]
    fn a_pinned_version_never_changes() {
        for p in [V5, V311] {
            for label in ["unsupported_protocol_version", "error", "timeout"] {
                let mut n = Negotiation::new(p);
                assert_eq!(n.failed(label), Next::Backoff);
                assert_eq!(n.protocol(), p);
            }
        }
    }
}
