//! Thin entry point: parse the command line, load the config, set up logging, run `app`.
//! Exit codes: 0 ok, 1 configuration or start-up error, 2 usage error (clap).

use clap::Parser;
use mqtt_sentinel::app::Loaded;
use mqtt_sentinel::cli::{Cli, Command, ProbeArgs, RulesAction};
use mqtt_sentinel::config::{self, Config, ConfigError, LogConfig, LogFormat};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match &cli.config {
        Some(path) => config::load(path),
        None => config::embedded_default(),
    };
    let source = cli
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| config::DEFAULT_SOURCE.to_owned());
    match cli.command.unwrap_or(Command::Run) {
        // Rule files stand alone: no config is needed to check or test them.
        Command::Rules { action } => rules(action),
        Command::Check => check(&source, loaded.and_then(Loaded::with_rules)),
        Command::Healthcheck { url } => match loaded {
            Ok(cfg) => healthcheck(&cfg, url.as_deref()),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Probe(args) => match loaded {
            Ok(cfg) => probe(&cfg, &args),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run => match loaded.and_then(Loaded::with_rules) {
            Ok(l) => run(l, cli.config.clone()),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
    }
}

fn rules(action: RulesAction) -> ExitCode {
    use mqtt_sentinel::rules;
    match action {
        RulesAction::Check { files } => {
            // promtool 2.42's `check rules`: a missing path stops everything before any file
            // is checked (kingpin's words, with our name).
            if let Some(f) = files.iter().find(|f| !f.exists()) {
                eprintln!(
                    "mqtt-sentinel: error: path '{}' does not exist, try --help",
                    f.display()
                );
                return ExitCode::from(1);
            }
            // Every file in turn, each followed by a blank line; stdout and stderr as promtool
            // writes them. Duplicate rules are a lint warning: `FAILED:` but exit 0.
            let mut hard = false;
            for f in &files {
                println!("Checking {}", f.display());
                match rules::file::check_file(f) {
                    Ok(groups) => match rules::file::duplicate_warning(&groups) {
                        Some(w) => eprintln!("  FAILED:\n{w}"),
                        None => {
                            let n = rules::file::rule_count(&groups);
                            println!("  SUCCESS: {n} rules found");
                        }
                    },
                    Err(errs) => {
                        eprintln!("  FAILED:");
                        for e in errs {
                            eprintln!("{}", e.promtool);
                        }
                        hard = true;
                    }
                }
                println!();
            }
            if hard {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        RulesAction::Test { files } => {
            let (mut out, mut err) = (String::new(), String::new());
            let ok = rules::unittest::run_files(&files, &mut out, &mut err);
            print!("{out}");
            eprint!("{err}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn check(source: &str, loaded: Result<Loaded, ConfigError>) -> ExitCode {
    match loaded {
        Ok(Loaded { config, groups }) => {
            let rules = mqtt_sentinel::rules::file::rule_count(&groups);
            println!(
                "{source}: configuration is valid\n{}rules loaded: {rules} in {} groups",
                config.summary(),
                groups.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `mqtt-sentinel healthcheck`: 0 when `/healthz` answers 200 (see `healthcheck::check`).
fn healthcheck(cfg: &Config, url: Option<&str>) -> ExitCode {
    use mqtt_sentinel::healthcheck::{HealthError, check};
    match check(cfg, url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ HealthError::BadUrl) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::from(1)
        }
    }
}

/// `mqtt-sentinel probe`: 0 healthy, 1 degraded, 2 down (or cannot probe).
fn probe(cfg: &Config, args: &ProbeArgs) -> ExitCode {
    use mqtt_sentinel::config::Qos;
    use mqtt_sentinel::metrics::Health;
    let usage = |m: &str| {
        eprintln!("error: {m}");
        ExitCode::from(2)
    };
    let target = match config::parse_broker_url(&args.url) {
        Ok(u) => u,
        Err(m) => return usage(&m),
    };
    let Some(mut m) = cfg.probe_modules.get(&args.module).cloned() else {
        return usage(&format!("unknown probe module {:?}", args.module));
    };
    if let Some(q) = args.qos.and_then(Qos::from_u8) {
        m.qos = q;
    }
    // The module's kind, or --kind, with the module's (and --qos's) settings.
    let kind = args.kind.as_deref().unwrap_or(m.kind.as_str());
    let bridge = kind == "bridge";
    let to = match (bridge, &args.to) {
        (true, Some(to)) => match config::parse_broker_url(to) {
            Ok(u) => Some(u),
            Err(e) => return usage(&format!("--to: {e}")),
        },
        (true, None) => return usage("--kind bridge needs --to <URL of the receiving broker>"),
        (false, _) if args.to.is_some() || args.topic.is_some() || args.remote_topic.is_some() => {
            return usage("--to, --topic and --remote-topic go with --kind bridge");
        }
        (false, _) => None,
    };
    // As for the scheduled bridge probe: both are topic names, not filters.
    for (flag, t) in [
        ("--topic", &args.topic),
        ("--remote-topic", &args.remote_topic),
    ] {
        if let Some(t) = t
            && (t.is_empty() || t.contains(['+', '#', '\0']))
        {
            return usage(&format!("{flag} {t:?} must be a topic name (no + or #)"));
        }
    }
    if !bridge {
        let Some(k) = m.kind_named(kind) else {
            return usage(&format!("unknown probe kind {kind:?}"));
        };
        m.kind = k;
    }
    let counted = bridge || matches!(m.kind, config::ProbeKind::Roundtrip { .. });
    let rt = match runtime(2) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // Each round trip is bounded by the module timeout; connect and subscribe get one each
    // (a bridge run connects twice). Any other kind is one run, bounded by the timeout.
    let within = if counted {
        m.timeout
            .saturating_mul(args.count + if bridge { 3 } else { 2 })
    } else {
        m.timeout
    };
    let count = args.count as usize;
    let report = rt.block_on(async {
        use mqtt_sentinel::probe::oneshot;
        match to {
            Some(to) => {
                let (topic, remote) = (args.topic.as_deref(), args.remote_topic.as_deref());
                oneshot::run_bridge(target, to, &m, topic, remote, count, within).await
            }
            None => oneshot::run(target, &m, count, within).await,
        }
    });
    let health = report.health(m.degraded_rtt);
    if args.json {
        println!("{}", probe_json(&report, health));
    } else {
        println!("{}", probe_line(&report, health));
    }
    ExitCode::from(match health {
        Health::Healthy => 0,
        Health::Degraded => 1,
        Health::Down => 2,
    })
}

/// `mqtt-sentinel probe --json`: one object. For `roundtrip` and `bridge` it has every
/// sample (`rtt_samples_seconds`, in order; for `bridge` one-way times) and the accounting;
/// for `bridge` also `to`, `topic` and `remote_topic`.
fn probe_json(
    report: &mqtt_sentinel::probe::oneshot::Report,
    health: mqtt_sentinel::metrics::Health,
) -> serde_json::Value {
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    let mut v = serde_json::json!({
        "target": report.target,
        "kind": report.kind,
        "state": health.as_str(),
        "qos": report.qos,
        "sent": report.sent,
        "received": report.rtts.len(),
        "rtt_p50_seconds": secs(report.rtt_quantile(0.5)),
        "rtt_max_seconds": secs(report.rtt_quantile(1.0)),
        "rtt_min_seconds": secs(report.rtt_quantile(0.0)),
        "rtt_p90_seconds": secs(report.rtt_quantile(0.9)),
        "rtt_p99_seconds": secs(report.rtt_quantile(0.99)),
        "connect_seconds": secs(report.connect),
        "reason": report.reason,
        "detail": (!report.detail.is_empty()).then_some(&report.detail),
    });
    if report.counted() {
        v["lost"] = report.lost().into();
        v["duplicates"] = report.duplicates.into();
        v["out_of_order"] = report.out_of_order.into();
        v["rtt_samples_seconds"] = report.rtts.iter().map(|d| d.as_secs_f64()).collect();
    }
    if let Some(b) = &report.bridge {
        v["to"] = b.to.clone().into();
        v["topic"] = b.topic.clone().into();
        v["remote_topic"] = b.remote_topic.clone().into();
    }
    v
}

/// `mqtt-sentinel probe`'s line of text.
fn probe_line(
    report: &mqtt_sentinel::probe::oneshot::Report,
    health: mqtt_sentinel::metrics::Health,
) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let detail = if report.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", report.detail)
    };
    let connect = report
        .connect
        .map(|d| format!(", connect {:.3} ms", ms(d)))
        .unwrap_or_default();
    let (target, state, reason) = (&report.target, health.as_str(), report.reason);
    let p50_max = report.rtt_p50_max();
    if let Some(b) = &report.bridge {
        let one_way = match (p50_max, report.rtt_quantile(0.99)) {
            (Some((p, _)), Some(p99)) => {
                format!("one-way p50 {:.3} ms p99 {:.3} ms", ms(p), ms(p99))
            }
            _ => "nothing arrived".to_owned(),
        };
        return format!(
            "{target} -> {} {state}: {}/{} messages across at QoS {}, {one_way}, lost {}, duplicates {}, out of order {}{connect}, reason {reason}{detail}",
            b.to,
            report.rtts.len(),
            report.sent,
            report.qos,
            report.lost(),
            report.duplicates,
            report.out_of_order,
        );
    }
    if !report.counted() {
        return format!(
            "{target} {state}: {} probe{connect}, reason {reason}{detail}",
            report.kind
        );
    }
    let rtt = match p50_max {
        Some((p, x)) => format!("rtt p50 {:.3} ms max {:.3} ms", ms(p), ms(x)),
        None => "no round trip".to_owned(),
    };
    format!(
        "{target} {state}: {}/{} round trips at QoS {}, {rtt}{connect}, reason {reason}{detail}",
        report.rtts.len(),
        report.sent,
        report.qos,
    )
}

fn run(loaded: Loaded, path: Option<std::path::PathBuf>) -> ExitCode {
    init_tracing(&loaded.config.log);
    let listen = loaded.config.listen;
    let rt = match runtime(1) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %listen, error = %e, "cannot listen");
                return ExitCode::from(1);
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        match mqtt_sentinel::app::run(loaded, path, listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "fatal");
                ExitCode::from(1)
            }
        }
    })
}

/// One thread serves everything; Paho brings its own threads for the sockets. Building it
/// fails only if the OS refuses basic resources: that is reported with `exit_code`.
fn runtime(exit_code: u8) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(exit_code)
        })
}

/// First SIGTERM/SIGINT starts a graceful shutdown; a second one exits at once.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the process with SIGKILL");
        return;
    };
    for n in 0..2 {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if n == 0 {
            tracing::info!("signal received; stopping (send again to exit immediately)");
            shutdown.cancel();
        }
    }
    std::process::exit(130);
}

fn init_tracing(log: &LogConfig) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // RUST_LOG wins when set. Paho's own debug logs are noisy and print connection details,
    // so they stay at warn unless RUST_LOG asks for them.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},paho_mqtt=warn", log.level.as_str())));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
