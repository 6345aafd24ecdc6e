//! `control-plane`: the API service. Configuration from `--config <file>` (or
//! `CP_CONFIG`) and `CP_*` variables; see `docs/api.md` and `control-plane/README.md`.

use std::path::PathBuf;

use clap::Parser;
use control_plane::{
    config::{Config, LogFormat},
    server::Server,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "control-plane",
    version,
    about = "Isolated agent workspaces: control plane"
)]
struct Args {
    /// TOML configuration file (values from CP_* variables override it).
    #[arg(long, env = "CP_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let cfg = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("control-plane: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_tracing(cfg.log_format);
    if args.check_config {
        println!("configuration is valid");
        return std::process::ExitCode::SUCCESS;
    }
    let server = match Server::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("control-plane: cannot start: {e:#}");
            return std::process::ExitCode::from(1);
        }
    };
    let token = server.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
    server.wait().await;
    tracing::info!("stopped");
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
