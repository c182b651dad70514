//! Command line (clap). `run` is the default when no subcommand is given.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "mqtt-sentinel",
    version,
    about = "Watches MQTT brokers and exports their health as Prometheus metrics.",
    long_about = "Watches MQTT brokers and exports their health as Prometheus metrics.\n\nWithout --config the embedded default is used: watch mqtt://localhost:1883 and serve http://0.0.0.0:10883/metrics."
)]
pub struct Cli {
    /// YAML configuration file; without it the embedded default config is used.
    #[arg(long, short = 'c', env = "MQTT_SENTINEL_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Run the exporter (the default).
    Run,
    /// Validate the configuration; exit 0 if valid, 1 if not. Secrets print as <secret>.
    Check,
}
