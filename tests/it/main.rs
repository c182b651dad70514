//! mqtt-sentinel integration tests: one binary, real mosquitto / promtool / openssl, the real
//! `mqtt-sentinel` executable. Only loopback addresses; every wait has a deadline.

mod addresses;
mod alerts;
mod bridge;
mod brokers;
mod cli;
mod collector;
mod conformance;
mod connection;
mod container;
mod dashboards;
mod docs;
mod examples;
mod faults;
mod fleet;
mod http;
mod liveness;
mod offthread;
mod probes;
mod properties;
mod reload;
mod rotation;
mod rules;
mod secrets;
mod session_will;
mod stopwatch;
mod support;
mod web;
