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
