//! The reconnect policy of a watching session, as a pure function of what happened: how
//! long to wait before the next connect. Exponential backoff with full jitter ([`Backoff`])
//! after failed connects; after a session, the schedule resets only if the session was stable,
//! and a session taken over by another client or a broker that keeps ending sessions right
//! after they start (flapping) waits at the maximum backoff. The random draw is a parameter.

use super::backoff::Backoff;
use crate::config;
use std::time::Duration;

/// A session shorter than this does not reset the backoff, so a broker that accepts and then
/// drops us (session taken over, ACL kick) is retried with growing delays, not in a tight loop.
pub const STABLE_SESSION: Duration = Duration::from_secs(5);
/// This many short sessions in a row count as flapping: reconnect at the maximum backoff.
pub const FLAPPING: u32 = 3;

/// How a session ended, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEnd {
    /// From the CONNACK to the loss of the session.
    pub lasted: Duration,
    /// The broker said another client took the session over (v5 reason 0x8E).
    pub taken_over: bool,
}

/// What the policy decided after a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterSession {
    /// Wait this long before the next connect.
    pub delay: Duration,
    /// Sessions taken over so far in this task's life (1 on the first: worth an error log).
    pub takeovers: u64,
    /// This session made the run of short sessions reach [`FLAPPING`] (worth one warning).
    pub started_flapping: bool,
}

/// The reconnect state of one watching session (one per broker task).
#[derive(Debug, Clone)]
pub struct Reconnect {
    backoff: Backoff,
    takeovers: u64,
    short_sessions: u32,
}

impl Reconnect {
    /// A fresh policy over the broker's `reconnect` settings.
    pub fn new(cfg: config::Backoff) -> Self {
        Self {
            backoff: Backoff::new(cfg),
            takeovers: 0,
            short_sessions: 0,
        }
    }

    /// The delay after a connect attempt that failed, for a uniform draw `u` in `[0, 1)`.
    pub fn after_failure(&mut self, u: f64) -> Duration {
        self.backoff.next_with(u)
    }

    /// The delay after a session that ended (not by shutdown), for a uniform draw `u` in
    /// `[0, 1)`: at the cap (in `[max/2, max]`) after a takeover or while flapping; otherwise
    /// the backoff schedule, reset first when the session lasted [`STABLE_SESSION`].
    pub fn after_session(&mut self, end: SessionEnd, u: f64) -> AfterSession {
        if end.taken_over {
            self.takeovers += 1;
        }
        // Sessions the broker keeps ending right after they start: another client with our
        // client id (mosquitto 2.0 just closes the socket, without the v5 "session taken
        // over" reason), an ACL kick, a connection limit.
        let stable = end.lasted >= STABLE_SESSION;
        if stable {
            self.short_sessions = 0;
        } else {
            self.short_sessions += 1;
        }
        let started_flapping = self.short_sessions == FLAPPING;
        let delay = if end.taken_over || self.short_sessions >= FLAPPING {
            self.backoff.next_at_cap_with(u)
        } else {
            if stable {
                self.backoff.reset();
            }
            self.backoff.next_with(u)
        };
        AfterSession {
            delay,
            takeovers: self.takeovers,
            started_flapping,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Reconnect {
        Reconnect::new(config::Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        })
    }

    const SHORT: SessionEnd = SessionEnd {
        lasted: Duration::from_secs(1),
        taken_over: false,
    };
    const LONG: SessionEnd = SessionEnd {
        lasted: Duration::from_secs(60),
        taken_over: false,
    };

    #[test]
    fn a_stable_session_resets_the_schedule() {
        let mut p = policy();
        for _ in 0..5 {
            p.after_failure(1.0);
        }
        let a = p.after_session(LONG, 1.0);
        assert_eq!(a.delay, Duration::from_millis(500));
        assert!(!a.started_flapping);
        assert_eq!(p.after_failure(1.0), Duration::from_secs(1));
    }

    #[test]
    fn short_sessions_grow_then_flap_at_the_cap() {
        let mut p = policy();
        let a = p.after_session(SHORT, 1.0);
        assert_eq!(
            (a.delay, a.started_flapping),
            (Duration::from_millis(500), false)
        );
        let a = p.after_session(SHORT, 1.0);
        assert_eq!(
            (a.delay, a.started_flapping),
            (Duration::from_secs(1), false)
        );
        let a = p.after_session(SHORT, 0.0);
        assert_eq!(
            (a.delay, a.started_flapping),
            (Duration::from_secs(15), true)
        );
        // still flapping: at the cap, warned once
        let a = p.after_session(SHORT, 1.0);
        assert_eq!(
            (a.delay, a.started_flapping),
            (Duration::from_secs(30), false)
        );
        // a stable session ends it
        let a = p.after_session(LONG, 1.0);
        assert_eq!(a.delay, Duration::from_millis(500));
    }

    #[test]
    fn a_takeover_waits_at_the_cap_and_is_counted() {
        let mut p = policy();
        let end = SessionEnd {
            lasted: Duration::from_secs(60),
            taken_over: true,
        };
        let a = p.after_session(end, 0.0);
        assert_eq!((a.delay, a.takeovers), (Duration::from_secs(15), 1));
        let a = p.after_session(end, 1.0);
        assert_eq!((a.delay, a.takeovers), (Duration::from_secs(30), 2));
    }
}
