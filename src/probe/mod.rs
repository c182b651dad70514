//! Probes: measure what a device experiences, not what the broker says about itself.
//!
//! * `tracker` pure sequence bookkeeping (loss, duplicates, reordering) with an injected clock;
//! * `runner` scheduled round trips on each broker's watching session;
//! * `fresh` connect and retained probes, each run on fresh clients, and their schedule;
//! * `session` the persistent-session probe and `will` the last-will probe, on fresh clients;
//! * `oneshot` the `/probe` endpoint and `mqtt-sentinel probe`;
//! * `bridge` bridge probes: published on one broker's watching session, received on
//!   another's (not in [`PROBERS`]: a bridge probe spans two brokers, so it has no `/probe`
//!   form).
//!
//! [`PROBERS`] is the table of probe kinds (blackbox_exporter's `Probers` map: kind name →
//! prober): a kind runs either on the watching session or as a [`FreshProber`], one shape for
//! every probe on clients of its own. The transport (sessions, fresh clients) is `mqtt`; the
//! task that runs a broker's session with its probes is `broker`.

pub mod bridge;
pub mod fresh;
pub mod oneshot;
pub mod runner;
pub mod session;
pub mod tracker;
pub mod will;

use crate::config::{BrokerConfig, ProbeKind};
use crate::mqtt::fresh::Failure;
use crate::mqtt::negotiate::Negotiated;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// What one run of a probe on clients of its own gets.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub cfg: &'a BrokerConfig,
    /// What the broker's watching session runs on (fresh clients follow it).
    pub negotiated: &'a Negotiated,
    /// Client id for this probe; a prober that needs several clients suffixes it.
    pub id: &'a str,
    /// `<prefix>/<client-id>/<probe-name>`: the probe's own topic.
    pub topic: &'a str,
    /// Random per probe task, and the number of this run (from 1): together unique values.
    pub nonce: u64,
    pub run_no: u64,
    /// The whole run is bounded by it.
    pub timeout: Duration,
    /// The kind with its settings (the will probe's delay).
    pub kind: ProbeKind,
}

/// The one shape of a probe on clients of its own: one run, `Ok` with the duration the kind
/// measures (the connect probe's connect time, the will probe's delivery time) if any, or the
/// failure with its bounded label.
pub type FreshProber =
    for<'a> fn(
        Run<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Duration>, Failure>> + Send + 'a>>;

/// How a kind of probe runs.
#[derive(Clone, Copy)]
pub enum Prober {
    /// Scheduled on the broker's watching session (`runner::Probes`).
    Session,
    /// A client of its own each run, scheduled by `fresh::run`.
    Fresh(FreshProber),
}

/// Every probe kind by its config name, and how it runs.
pub const PROBERS: &[(&str, Prober)] = &[
    ("roundtrip", Prober::Session),
    ("connect", Prober::Fresh(fresh::connect_once)),
    ("retained", Prober::Fresh(fresh::retained_once)),
    ("session", Prober::Fresh(session::session_once)),
    ("will", Prober::Fresh(will::will_once)),
];

/// The prober of `kind` (looked up in [`PROBERS`] by its config name).
pub fn prober(kind: ProbeKind) -> Prober {
    PROBERS
        .iter()
        .find(|(name, _)| *name == kind.as_str())
        .map(|(_, p)| *p)
        // Every `ProbeKind` has a row; the test below holds the table to it.
        .unwrap_or(Prober::Session)
}

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
    fn every_kind_has_one_prober() {
        use crate::config::Qos;
        let kinds = [
            ProbeKind::Roundtrip {
                qos: Qos::AtLeastOnce,
                payload_bytes: 0,
            },
            ProbeKind::Connect,
            ProbeKind::Retained,
            ProbeKind::Session,
            ProbeKind::Will { delay: None },
        ];
        for k in kinds {
            let rows = PROBERS.iter().filter(|(n, _)| *n == k.as_str()).count();
            assert_eq!(rows, 1, "{}", k.as_str());
        }
        assert_eq!(PROBERS.len(), kinds.len());
        assert!(matches!(prober(kinds[0]), Prober::Session));
        assert!(matches!(prober(ProbeKind::Connect), Prober::Fresh(_)));
        assert!(matches!(prober(ProbeKind::Retained), Prober::Fresh(_)));
        assert!(matches!(prober(ProbeKind::Session), Prober::Fresh(_)));
        assert!(matches!(
            prober(ProbeKind::Will { delay: None }),
            Prober::Fresh(_)
        ));
        let names: Vec<&str> = PROBERS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ProbeKind::NAMES);
    }

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
