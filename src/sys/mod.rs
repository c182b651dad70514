//! `$SYS` collection: turns broker statistics into samples held per broker, and encodes them
//! at scrape time.
//!
//! * [`Ingest`] (one per broker, owned by its connection task) maps a topic through the
//!   [`profile`], parses the payload with [`parse`] and writes the [`SysStore`].
//! * [`SysStore`] holds the latest value of every series for the life of one MQTT session.
//!   The connection task clears it when the session ends, so a dead broker exports no frozen
//!   values; only the last-update timestamp survives.
//! * [`SysConfig`] the checked settings of one broker's `$SYS` (built by `config`; this module
//!   imports nothing of `config`).
//! * [`SysCollector`] is a prometheus-client `Collector` that encodes all stores on each
//!   scrape. The store's mutex is held only to copy or write a few values, never across I/O.

pub mod parse;
pub mod profile;

mod collector;
mod ingest;
mod settings;
mod store;

pub use collector::{SharedStores, SysCollector};
pub use ingest::{
    FANOUT_LIMIT, INSTANCE_SILENCE, Ingest, IngestCounters, Outcome, UNKNOWN_STALE_AFTER,
};
pub use settings::SysConfig;
pub use store::{BrokerInfo, Labels, SysSnapshot, SysStore};

#[cfg(test)]
mod captures;
#[cfg(test)]
mod tests;
