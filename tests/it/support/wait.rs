//! Waiting on conditions with a deadline: the only way tests synchronise.

use std::time::{Duration, Instant};

/// Poll `cond` every 20 ms until it returns `Some`, or panic with `what` after `within`.
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
