//! Exponential backoff with full jitter (AWS architecture blog): the n-th delay is uniform in
//! `[0, min(max, initial * 2^n)]`, so many sidecars restarting together do not reconnect in
//! lock-step. Pure: the random draw is a parameter.

use crate::config;
use std::time::Duration;

/// Never retry sooner than this, even when the draw is 0: keeps a failing broker from
/// turning into a busy loop.
const FLOOR: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: config::Backoff,
    attempt: u32,
}

impl Backoff {
    pub fn new(cfg: config::Backoff) -> Self {
        Self { cfg, attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay for a uniform draw `u` in `[0, 1)`.
    pub fn next_with(&mut self, u: f64) -> Duration {
        let ceiling = self
            .cfg
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cfg.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(u.clamp(0.0, 1.0)).max(FLOOR)
    }

    #[cfg(test)]
    pub fn next(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }

    /// A delay in `[max/2, max]`, and the schedule stays at its cap: for a broker that told us
    /// to go away (another client took our session over), where retrying soon only starts a
    /// tug of war.
    pub fn next_at_cap_with(&mut self, u: f64) -> Duration {
        self.attempt = self.attempt.max(20);
        self.cfg
            .max
            .mul_f64(0.5 + 0.5 * u.clamp(0.0, 1.0))
            .max(FLOOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_cap_stays_high() {
        let mut b = Backoff::new(config::Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        });
        assert_eq!(b.next_at_cap_with(0.0), Duration::from_secs(15));
        assert_eq!(b.next_at_cap_with(1.0), Duration::from_secs(30));
        // and the ordinary schedule continues from its ceiling
        assert_eq!(b.next_with(1.0), Duration::from_secs(30));
    }

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(config::Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        });
        let ceilings: Vec<u64> = (0..10)
            .map(|_| b.next_with(1.0).as_millis() as u64)
            .collect();
        assert_eq!(
            ceilings,
            [
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
        b.reset();
        assert_eq!(b.next_with(0.5), Duration::from_millis(250));
        assert_eq!(b.next_with(0.0), FLOOR);
        for _ in 0..100 {
            assert!(b.next() <= Duration::from_secs(30));
        }
    }
}
