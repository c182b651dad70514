//! mqtt-sentinel: watches MQTT brokers and exports their health as Prometheus metrics.
//!
//! The binary (`main.rs`) is thin; everything lives here so integration tests can start the
//! service in-process on an ephemeral port. Module map and data flow: `../shared/DESIGN.md`.

pub mod app;
pub mod cli;
pub mod config;
pub mod exposition;
pub mod http;
pub mod metrics;
pub mod mqtt;
pub mod notify;
pub mod probe;
pub mod rules;
pub mod sys;
pub mod web;
