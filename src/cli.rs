//! Command line (clap). `run` is the default when no subcommand is given.

use clap::{Args, Parser, Subcommand};
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

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the exporter (the default).
    Run,
    /// Validate the configuration; exit 0 if valid, 1 if not. Secrets print as <secret>.
    Check,
    /// Ask a running mqtt-sentinel whether it is alive (GET /healthz); exit 0 if it answers
    /// 200 within 2 s, 1 otherwise. For container HEALTHCHECKs: the image has no shell or curl.
    /// With TLS in the web config (or an https:// --url), a listening socket counts as alive.
    Healthcheck {
        /// URL to check [default: http://127.0.0.1:<port of `listen`>/healthz]
        #[arg(long)]
        url: Option<String>,
    },
    /// Probe one broker now: publish-to-self round trips on a fresh connection, or one run
    /// of another probe kind (--kind). Exit 0 healthy, 1 degraded (some lost, or median round
    /// trip above the module's degraded_rtt), 2 down (for other kinds: the run failed).
    /// `--kind bridge URL --to URL2` publishes on URL and receives on URL2 through a bridge
    /// between them (one-way times, lost, duplicates, out of order; exit codes as roundtrip).
    /// Usable as a Kubernetes exec probe or from cron.
    Probe(ProbeArgs),
    /// Prometheus rule files: check them, or run promtool-format unit tests on our engine.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RulesAction {
    /// Check rule files (strict parsing, PromQL subset, templates); exit 0 if all are valid.
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Run promtool unit-test files (`promtool test rules` format); exit 0 if all pass.
    Test {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

/// `mqtt-sentinel probe`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Broker URL, e.g. mqtt://127.0.0.1:1883 or mqtts://broker:8883 (for bridge: the
    /// broker published on)
    pub url: String,
    /// Probe kind [default: the module's, roundtrip]; --qos and --count apply to
    /// roundtrip and bridge
    #[arg(long, value_parser = ["roundtrip", "connect", "retained", "session", "will", "bridge"])]
    pub kind: Option<String>,
    /// bridge: URL of the broker the bridge forwards to (subscribed on)
    #[arg(long)]
    pub to: Option<String>,
    /// bridge: topic published on URL [default: mqtt-sentinel/oneshot-<random>/bridge]
    #[arg(long)]
    pub topic: Option<String>,
    /// bridge: the topic as the bridge maps it on --to [default: --topic]
    #[arg(long)]
    pub remote_topic: Option<String>,
    /// QoS of the round trips [default: the module's, 1]
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: Option<u8>,
    /// Number of round trips
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// Probe module from the config file (credentials, TLS, timeout, degraded_rtt)
    #[arg(long, default_value = "default")]
    pub module: String,
    /// Print one JSON object instead of a line of text
    #[arg(long)]
    pub json: bool,
}
