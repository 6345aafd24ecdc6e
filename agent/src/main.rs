//! `workspace-agent`: serves the agent API (default) or prints the sandbox probe.

use std::process::ExitCode;

use agent::config::{Cli, Command, Config, LogFormat};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Probe) => {
            println!("{}", agent::probe::probe());
            ExitCode::SUCCESS
        }
        Some(Command::Serve) | None => serve(cli.config),
    }
}

fn init_logging(config: &Config) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|e| format!("WORKSPACE_AGENT_LOG {:?}: {e}", config.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

fn serve(mut config: Config) -> ExitCode {
    if let Err(e) = init_logging(&config) {
        eprintln!("workspace-agent: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = config.validate() {
        eprintln!("workspace-agent: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("workspace-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let bound = match agent::server::bind(config, shutdown.clone()).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("workspace-agent: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            shutdown.cancel();
        });
        match bound.serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("workspace-agent: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent simply runs until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
