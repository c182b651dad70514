//! Thin entry point: parse the command line, load the config, set up logging, run `app`.
//! Exit codes: 0 ok, 1 configuration or start-up error, 2 usage error (clap).

use clap::Parser;
use mqtt_sentinel::cli::{Cli, Command};
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
        Command::Check => check(&source, loaded),
        Command::Run => match loaded {
            Ok(cfg) => run(cfg),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
    }
}

fn check(source: &str, loaded: Result<Config, ConfigError>) -> ExitCode {
    match loaded {
        Ok(cfg) => {
            println!("{source}: configuration is valid\n{}", cfg.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn run(cfg: Config) -> ExitCode {
    init_tracing(&cfg.log);
    // One thread serves everything; Paho brings its own threads for the sockets. Startup
    // invariant: building a runtime only fails if the OS refuses basic resources.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %cfg.listen, error = %e, "cannot listen");
                return ExitCode::from(1);
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        match mqtt_sentinel::app::run(cfg, listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "fatal");
                ExitCode::from(1)
            }
        }
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
