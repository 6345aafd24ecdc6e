//! Benchmarks of the workspace lifecycle on the real Docker engine, printed as
//! Markdown tables (recorded in docs/benchmarks.md):
//!
//! 1. create-to-first-output of a new conversation: cold (runc), cold (runsc), and
//!    warm (claimed from the pool), p50/p99;
//! 2. the API relay's added latency: `true` executed through the control plane vs
//!    directly on the agent's socket, in the same workspace.
//!
//! Run: `cargo run --release -p control-plane --example bench_lifecycle -- [--runs N]`
//! (needs dockerd and the offline image: `scripts/setup.sh` and
//! `deployment/images/build-offline.sh`).

use std::time::{Duration, Instant};

use control_plane::{
    agent_client::AgentClient,
    config::{Config, TokenConfig},
    server::{build_runtime, build_store, Server},
    store::ConversationKey,
};
use futures::StreamExt;
use wire::{CommandSpec, Event, ExecuteRequest};

#[path = "support/timing.rs"]
mod timing;
use timing::{pct, time_events};

const TOKEN: &str = "bench-token-0123456789abcdef";

fn config(fleet: &str, runtime: &str, pool: usize) -> Config {
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        fleet: fleet.into(),
        tokens: vec![TokenConfig {
            tenant: "bench".into(),
            token: TOKEN.into(),
            admin: true,
        }],
        max_workspaces: 400,
        ..Config::default()
    };
    cfg.docker.socket_root = format!("/tmp/cpbench/{fleet}").into();
    cfg.docker.oci_runtime = runtime.into();
    cfg.pool.min = pool;
    cfg.pool.max = pool;
    cfg.pool.poll_interval_ms = 50;
    cfg.gc.enabled = false;
    cfg.cleanup_on_shutdown = true;
    cfg
}

fn echo() -> ExecuteRequest {
    ExecuteRequest::Command(CommandSpec {
        argv: vec!["echo".into(), "x".into()],
        ..Default::default()
    })
}

/// Sends an execute and returns (time to the first stdout, time to the result).
async fn timed_execute(
    http: &reqwest::Client,
    base: &str,
    conv: &str,
    req: &ExecuteRequest,
) -> (Duration, Duration) {
    let t0 = Instant::now();
    let resp = http
        .post(format!("{base}/v1/conversations/{conv}/execute"))
        .bearer_auth(TOKEN)
        .json(req)
        .send()
        .await
        .expect("execute");
    let (first, total, _) = time_events(t0, resp, |e| matches!(e, Event::Stdout { .. })).await;
    (first.unwrap_or(total), total)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Row {
    name: String,
    samples: Vec<Duration>,
}

impl Row {
    fn line(&mut self) -> String {
        self.samples.sort();
        format!(
            "| {} | {} | {} | {} | {} |",
            self.name,
            self.samples.len(),
            ms(pct(&self.samples, 0.5)),
            ms(pct(&self.samples, 0.99)),
            ms(*self.samples.last().unwrap())
        )
    }
}

async fn start(cfg: Config) -> Server {
    let runtime = build_runtime(&cfg).await.expect("docker");
    let store = build_store(&cfg).await.expect("store");
    Server::start_with(cfg, runtime, store)
        .await
        .expect("server")
}

async fn cold(runtime: &str, runs: usize) -> Row {
    let fleet = format!(
        "bench-cold-{}",
        if runtime.is_empty() { "runc" } else { runtime }
    );
    let server = start(config(&fleet, runtime, 0)).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let mut samples = Vec::new();
    for i in 0..runs {
        let conv = format!("cold-{i}");
        let (first, _) = timed_execute(&http, &base, &conv, &echo()).await;
        samples.push(first);
        let _ = http
            .delete(format!("{base}/v1/conversations/{conv}/workspace"))
            .bearer_auth(TOKEN)
            .send()
            .await;
    }
    server.shutdown().await;
    Row {
        name: format!(
            "cold, {}",
            if runtime.is_empty() { "runc" } else { runtime }
        ),
        samples,
    }
}

async fn warm(runs: usize) -> Row {
    let server = start(config("bench-warm", "", 4)).await;
    let fleet = server.services.fleet.clone();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let mut samples = Vec::new();
    for i in 0..runs {
        // Measure the claim path: wait until the pool has a member.
        for _ in 0..400 {
            if !fleet.store.pool_members().await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let conv = format!("warm-{i}");
        let (first, _) = timed_execute(&http, &base, &conv, &echo()).await;
        samples.push(first);
        let (h, b, c) = (http.clone(), base.clone(), conv.clone());
        tokio::spawn(async move {
            let _ = h
                .delete(format!("{b}/v1/conversations/{c}/workspace"))
                .bearer_auth(TOKEN)
                .send()
                .await;
        });
    }
    server.shutdown().await;
    Row {
        name: "warm (pool claim), runc".into(),
        samples,
    }
}

async fn relay(runs: usize) -> (Row, Row) {
    let server = start(config("bench-relay", "", 0)).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let req = ExecuteRequest::Command(CommandSpec {
        argv: vec!["true".into()],
        ..Default::default()
    });
    timed_execute(&http, &base, "relay", &req).await;
    let rec = server
        .services
        .lifecycle
        .existing(&ConversationKey::new("bench", "relay"))
        .await
        .unwrap()
        .unwrap();
    let agent = AgentClient::new(rec.endpoint.clone());
    let (mut api, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (_, total) = timed_execute(&http, &base, "relay", &req).await;
        api.push(total);
        let t0 = Instant::now();
        let mut events = agent.execute(&req).await.expect("direct execute");
        while let Some(ev) = events.next().await {
            if ev.expect("event").is_terminal() {
                break;
            }
        }
        direct.push(t0.elapsed());
    }
    server.shutdown().await;
    (
        Row {
            name: "`true` through the API (bearer auth, lookup, relay)".into(),
            samples: api,
        },
        Row {
            name: "`true` on the agent socket directly".into(),
            samples: direct,
        },
    )
}

#[tokio::main]
async fn main() {
    let mut runs = 20usize;
    let mut warm_runs = 100usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--runs") {
        runs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(runs);
    }
    if let Some(i) = args.iter().position(|a| a == "--warm-runs") {
        warm_runs = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(warm_runs);
    }
    eprintln!("cold runc x{runs}...");
    let mut c1 = cold("", runs).await;
    eprintln!("cold runsc x{runs}...");
    let mut c2 = cold("runsc", runs).await;
    eprintln!("warm x{warm_runs}...");
    let mut w = warm(warm_runs).await;
    eprintln!("relay x{}...", runs * 10);
    let (mut a, mut d) = relay(runs * 10).await;

    println!("### Create-to-first-output of a new conversation (ms)\n");
    println!("| path | runs | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    println!("{}", w.line());
    println!("{}", c1.line());
    println!("{}", c2.line());
    println!("\n### API relay overhead, execute `true` to `result` (ms)\n");
    println!("| path | runs | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let (al, dl) = (a.line(), d.line());
    println!("{al}\n{dl}");
    println!(
        "\nadded by the control plane: p50 {} ms, p99 {} ms",
        ms(pct(&a.samples, 0.5).saturating_sub(pct(&d.samples, 0.5))),
        ms(pct(&a.samples, 0.99).saturating_sub(pct(&d.samples, 0.99)))
    );
}
