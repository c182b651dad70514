//! Probes: measure what a device experiences, not what the broker says about itself.
//!
//! * `tracker` pure sequence bookkeeping (loss, duplicates, reordering) with an injected clock;
//! * `runner` scheduled round trips on each broker's watching session;
//! * `fresh` connect and retained probes, each run on fresh clients;
//! * `oneshot` the `/probe` endpoint and `mqtt-sentinel probe`.

pub mod fresh;
pub mod oneshot;
pub mod runner;
pub mod tracker;

use std::time::{Duration, Instant};

/// Longest wait a probe deadline is given: 30 years, i.e. "no deadline". Configured timeouts
/// are only bounded below (> 0), and `Instant + Duration` panics on overflow (e.g. `timeout:
/// 100000000000years`, or `mqtt-sentinel probe` multiplying a large module timeout by the count).
const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `at + d` for a probe deadline, with `d` capped at 30 years so it never overflows.
pub(crate) fn deadline_after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FOREVER)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(deadline_after(now, Duration::MAX), now + FOREVER);
    }
}
