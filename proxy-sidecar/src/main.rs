//! `proxy-sidecar`: the egress proxy as the ECS sidecar (TCP 127.0.0.1:8080).
//!
//! Configuration comes from an optional TOML file (`--config` / `PROXY_CONFIG`) and
//! environment variables; it is validated as a whole before anything listens, and an
//! invalid entry stops the process with exit code 2 and a list of every problem.
//! `/health` and `/metrics` are served on `admin_listen`. SIGTERM or SIGINT drains:
//! no new connections, in-flight requests and tunnels get `timeouts.drain_ms`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use prometheus_client::registry::Registry;
use proxy_sidecar::sidecar::{serve_admin, LogFormat, SidecarConfig};
use proxy_sidecar::{AuditSink, Proxy};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "proxy-sidecar",
    version,
    about = "Egress proxy sidecar for agent workspaces"
)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "PROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Exit 0 if the running sidecar's `GET /health` answers 200 (the ECS container
    /// health check; needs no curl in the image).
    Healthcheck {
        /// Address of the sidecar's admin listener.
        #[arg(long, env = "PROXY_ADMIN_LISTEN", default_value = "127.0.0.1:9901")]
        addr: std::net::SocketAddr,
    },
}

/// `GET /health` on `addr` with a 2-second budget.
fn healthcheck(addr: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let result = (|| -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("proxy-sidecar healthcheck: {addr} did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("proxy-sidecar healthcheck: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn audit_sink(spec: &str) -> Result<AuditSink, String> {
    Ok(match spec {
        "stdout" => AuditSink::writer(std::io::stdout()),
        "tracing" => AuditSink::Tracing,
        "off" => AuditSink::Disabled,
        path => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("opening audit log {path}: {e}"))?;
            AuditSink::writer(file)
        }
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Healthcheck { addr }) = args.command {
        return healthcheck(addr);
    }
    let validated =
        match SidecarConfig::load(args.config.as_deref(), &env).and_then(|c| c.validate(&env)) {
            Ok(v) => v,
            Err(e) => {
                eprint!("proxy-sidecar: {e}");
                return ExitCode::from(2);
            }
        };
    if args.check {
        println!("proxy-sidecar: configuration is valid");
        return ExitCode::SUCCESS;
    }
    init_tracing(validated.config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("proxy-sidecar: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(validated)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "proxy-sidecar failed");
            eprintln!("proxy-sidecar: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(v: proxy_sidecar::sidecar::Validated) -> Result<(), String> {
    let cfg = v.config;
    let sink = audit_sink(&cfg.audit)?;
    let proxy = Proxy::builder(cfg.proxy.clone())
        .audit_sink(sink.clone())
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))?;
    let mut registry = Registry::default();
    proxy.register_metrics(&mut registry);
    let registry = Arc::new(registry);

    let admin = TcpListener::bind(cfg.admin_listen)
        .await
        .map_err(|e| format!("binding admin address {}: {e}", cfg.admin_listen))?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
    proxy.add_own_address(admin_addr);
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", cfg.listen))?;
    let listen_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let policy = v.policy;
    let inject_hosts: Vec<String> = policy.inject_hosts().map(|h| h.to_string()).collect();
    tracing::info!(
        listen = %listen_addr,
        admin = %admin_addr,
        workspace_id = %cfg.context.workspace_id,
        conversation_id = %cfg.context.conversation_id,
        tenant_id = %cfg.context.tenant_id,
        allow_entries = policy.allowlist().allow_entries().len(),
        deny_entries = policy.allowlist().deny_entries().len(),
        inject_hosts = ?inject_hosts,
        bedrock = policy.bedrock().map(|b| b.host.to_string()).unwrap_or_default(),
        "proxy-sidecar listening"
    );
    let handle = proxy
        .serve_tcp_listener(listener, cfg.context.clone(), policy)
        .map_err(|e| e.to_string())?;
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(serve_admin(admin, registry, admin_stop.clone()));

    wait_for_signal().await?;
    tracing::info!("signal received; draining");
    handle.shutdown().await;
    admin_stop.cancel();
    let _ = admin_task.await;
    let _ = tokio::task::spawn_blocking(move || sink.close()).await;
    tracing::info!("drained; exiting");
    Ok(())
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
