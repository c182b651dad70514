//! mqtt-sentinel: watches MQTT brokers and exports their health as Prometheus metrics.
//!
//! The binary (`main.rs`) is thin; everything lives here so integration tests can start the
//! service in-process on an ephemeral port. The picture, the data flow of a `$SYS` message and
//! of an alert, the Paho rules and the metric naming rules are in `ARCHITECTURE.md` at the
//! root of the repository.
//!
//! # Layout
//!
//! One process, one tokio runtime thread; every task is spawned by [`app`] on one
//! `TaskTracker` and stops on one `CancellationToken`.
//!
//! * [`cli`]: the command line (clap): `run`, `check`, `probe`, `healthcheck`, `rules`.
//! * [`config`]: two-stage configuration, YAML as written (`raw`) into checked types; every
//!   error names file, line, column and field path. Also the exporter-toolkit web config and
//!   files re-read when they change.
//! * [`app`]: wiring: the registry, one task per broker, the rule engine, the HTTP server;
//!   applies reloads and stops everything in order.
//! * [`broker`]: one task per broker: the watching session with `$SYS` ingest and the
//!   round-trip probes on it, and the reconnect loop.
//! * [`mqtt`]: the MQTT transport over Paho: callbacks that only timestamp and `try_send`,
//!   the only place config becomes Paho options, `protocol: auto`, the reconnect policy (pure),
//!   fresh clients; it knows nothing of `$SYS` or probes.
//! * [`sys`]: `$SYS` topics into samples: broker profiles as data, pure payload parsing,
//!   the per-broker store and the scrape-time collector.
//! * [`probe`]: what a device experiences: the table of probe kinds, scheduled round trips on
//!   the watching session, connect and retained probes on fresh clients, one-shot probes
//!   (`/probe`, `probe`).
//! * [`metrics`]: every metric handle the process owns, registered in one place.
//! * [`exposition`]: OpenMetrics and the Prometheus text format 0.0.4 for `/metrics`.
//! * [`http`]: the hyper server: `/metrics`, `/probe`, `/healthz`, `/readyz`, `/api/v1/*`,
//!   `/-/reload`, TLS, basic auth, limits.
//! * [`web`]: the web config at run time: re-read on change, bcrypt checks off the runtime
//!   thread.
//! * [`rules`]: Prometheus rule files evaluated in-process (recording and alerting rules, a
//!   PromQL subset, templates, promtool unit tests); see its module docs.
//! * [`notify`]: its own alert type, which alert goes to which receiver and when, payloads
//!   per format, and delivery through one bounded queue per receiver. Never imports `rules`.
//! * [`labels`]: label sets (Prometheus' `model/labels`), shared by `rules` and `notify`.
//!
//! Dependencies point one way (`scripts/module-graph.py`, kept cycle-free by a test).
//! * [`healthcheck`]: the client of `mqtt-sentinel healthcheck` (the container's
//!   `HEALTHCHECK`).
#![deny(unsafe_code)]

pub mod app;
pub mod broker;
pub mod cli;
pub mod config;
pub mod exposition;
pub mod healthcheck;
pub mod http;
pub mod labels;
pub mod metrics;
pub mod mqtt;
pub mod notify;
pub mod probe;
pub mod rules;
pub mod sys;
pub mod web;
