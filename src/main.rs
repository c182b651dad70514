//! Thin entry point: parse the command line, load the config, set up logging, run `app`.
//! Exit codes: 0 ok, 1 configuration or start-up error, 2 usage error (clap).

use clap::Parser;
use mqtt_sentinel::app::Loaded;
use mqtt_sentinel::cli::{Cli, Command, RulesAction};
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
        Command::Probe {
            url,
            kind,
            qos,
            count,
            module,
            json,
        } => match loaded {
            Ok(cfg) => probe(&cfg, &url, kind.as_deref(), qos, count, &module, json),
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
            let mut ok = true;
            for f in &files {
                match rules::file::load(f) {
                    Ok(groups) => {
                        let n = rules::file::rule_count(&groups);
                        println!("{}: SUCCESS: {n} rules found", f.display());
                    }
                    Err(e) => {
                        eprintln!("{}", rules::file::check_line(&e));
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
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
fn probe(
    cfg: &Config,
    url: &str,
    kind: Option<&str>,
    qos: Option<u8>,
    count: u32,
    module: &str,
    json: bool,
) -> ExitCode {
    use mqtt_sentinel::config::Qos;
    use mqtt_sentinel::metrics::Health;
    let target = match config::parse_broker_url(url) {
        Ok(u) => u,
        Err(m) => {
            eprintln!("error: {m}");
            return ExitCode::from(2);
        }
    };
    let Some(mut m) = cfg.probe_modules.get(module).cloned() else {
        eprintln!("error: unknown probe module {module:?}");
        return ExitCode::from(2);
    };
    if let Some(q) = qos.and_then(Qos::from_u8) {
        m.qos = q;
    }
    // The module's kind, or --kind, with the module's (and --qos's) settings.
    let kind = kind.unwrap_or(m.kind.as_str());
    let Some(k) = m.kind_named(kind) else {
        eprintln!("error: unknown probe kind {kind:?}");
        return ExitCode::from(2);
    };
    m.kind = k;
    let roundtrip = matches!(k, config::ProbeKind::Roundtrip { .. });
    let rt = match runtime(2) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // Each round trip is bounded by the module timeout; connect and subscribe get one each.
    // Any other kind is one run, bounded by the timeout.
    let within = if roundtrip {
        m.timeout.saturating_mul(count + 2)
    } else {
        m.timeout
    };
    let report = rt.block_on(mqtt_sentinel::probe::oneshot::run(
        target,
        &m,
        count as usize,
        within,
    ));
    let health = report.health(m.degraded_rtt);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let p50_max = report.rtt_p50_max();
    if json {
        let v = serde_json::json!({
            "target": report.target,
            "kind": report.kind,
            "state": health.as_str(),
            "qos": report.qos,
            "sent": report.sent,
            "received": report.rtts.len(),
            "rtt_p50_seconds": p50_max.map(|(p, _)| p.as_secs_f64()),
            "rtt_max_seconds": p50_max.map(|(_, x)| x.as_secs_f64()),
            "rtt_min_seconds": report.rtt_quantile(0.0).map(|d| d.as_secs_f64()),
            "rtt_p90_seconds": report.rtt_quantile(0.9).map(|d| d.as_secs_f64()),
            "rtt_p99_seconds": report.rtt_quantile(0.99).map(|d| d.as_secs_f64()),
            "connect_seconds": report.connect.map(|d| d.as_secs_f64()),
            "reason": report.reason,
            "detail": (!report.detail.is_empty()).then_some(&report.detail),
        });
        println!("{v}");
    } else {
        let rtt = match p50_max {
            Some((p, x)) => format!("rtt p50 {:.3} ms max {:.3} ms", ms(p), ms(x)),
            None => "no round trip".to_owned(),
        };
        let detail = if report.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.detail)
        };
        let connect = report
            .connect
            .map(|d| format!(", connect {:.3} ms", ms(d)))
            .unwrap_or_default();
        if !roundtrip {
            println!(
                "{} {}: {} probe{connect}, reason {}{detail}",
                report.target,
                health.as_str(),
                report.kind,
                report.reason,
            );
        } else {
            println!(
                "{} {}: {}/{} round trips at QoS {}, {rtt}{connect}, reason {}{detail}",
                report.target,
                health.as_str(),
                report.rtts.len(),
                report.sent,
                report.qos,
                report.reason,
            );
        }
    }
    ExitCode::from(match health {
        Health::Healthy => 0,
        Health::Degraded => 1,
        Health::Down => 2,
    })
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
