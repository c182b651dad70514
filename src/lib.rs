//! mqtt-sentinel: watches MQTT brokers and exports their health as Prometheus metrics.
//!
//! The binary (`main.rs`) is thin; everything lives here so integration tests can start the
//! service in-process on an ephemeral port. See `../shared/DESIGN.md` for the picture.

pub mod config;
pub mod sys;
