//! Waiting on conditions with a deadline: the only way tests synchronise.

use std::time::{Duration, Instant};

/// Poll `cond` every 20 ms until it returns `Some`, or panic with `what` after `within`.
///
/// `within` fails a test that would otherwise hang; it is no timing assertion. Make it
/// generous (15–60 s): a loaded 2-core CI machine stretches everything, and a passing test
/// returns as soon as `cond` holds. How soon something happens is a benchmark's figure
/// (`scripts/bench-*`), never a test's.
pub fn wait_until<T>(within: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
