//! Benchmark of agent mode with the real Claude Code CLI (the `workspace-claude`
//! image) against the Bedrock stand-in, printed as a Markdown table (recorded in
//! docs/benchmarks.md): time from the execute request to the first `text_delta`, and
//! to the `result`, for a turn in
//!
//! 1. a cold workspace (created for the request),
//! 2. a warm one (claimed from the pool),
//! 3. the conversation's existing workspace (a second turn).
//!
//! The stand-in answers at once, so the figures are the platform's and the CLI's own
//! overhead (container, agent, CLI start, gateway signing, TLS to the stand-in), not a
//! model's latency.
//!
//! Run: `cargo run --release -p control-plane --example bench_agent_mode -- [--runs N]`
//! (needs dockerd and `deployment/images/build-offline.sh --claude`).

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "support/timing.rs"]
mod timing;

use std::time::{Duration, Instant};

use bedrock_standin::{Script, ToolCall};
use support::{claude::*, Plane, TOKEN_ACME};
use timing::{pct, time_events};
use wire::Event;

/// (time to the first `text_delta`, time to the `result`) of one turn.
async fn timed_turn(plane: &Plane, conv: &str) -> (Duration, Duration) {
    let req = turn("Run the scripted command.", |a| {
        a.allowed_tools = vec!["Bash".into()]
    });
    let t0 = Instant::now();
    let resp = plane
        .post(&format!("/v1/conversations/{conv}/execute"), TOKEN_ACME)
        .json(&req)
        .send()
        .await
        .expect("execute");
    let (first, total, r) = time_events(t0, resp, |e| matches!(e, Event::TextDelta { .. })).await;
    assert!(!r.is_error, "{r:?}");
    (first.expect("a text_delta before the result"), total)
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn row(name: &str, samples: &mut [(Duration, Duration)]) -> String {
    let mut first: Vec<Duration> = samples.iter().map(|s| s.0).collect();
    let mut total: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    first.sort();
    total.sort();
    format!(
        "| {name} | {} | {} | {} | {} | {} |",
        samples.len(),
        ms(pct(&first, 0.5)),
        ms(*first.last().unwrap_or(&Duration::ZERO)),
        ms(pct(&total, 0.5)),
        ms(*total.last().unwrap_or(&Duration::ZERO)),
    )
}

fn script() -> Script {
    Script {
        before: "Running it now.".into(),
        tool: Some(ToolCall::Bash {
            command: "echo benchmark > bench.txt".into(),
        }),
        after: "Done.".into(),
        ..Default::default()
    }
}

async fn remove(plane: &Plane, conv: &str) {
    let _ = plane
        .delete(&format!("/v1/conversations/{conv}/workspace"), TOKEN_ACME)
        .send()
        .await;
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 5usize;
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(runs);
        }
    }

    let mut cold = Vec::new();
    let mut existing = Vec::new();
    {
        let r = rig("bench-agent-cold", script()).await;
        for i in 0..runs {
            let conv = format!("cold-{i}");
            cold.push(timed_turn(&r.plane, &conv).await);
            existing.push(timed_turn(&r.plane, &conv).await);
            remove(&r.plane, &conv).await;
        }
    }
    let mut warm = Vec::new();
    {
        let r = rig_with("bench-agent-warm", script(), |c| {
            c.pool.min = 1;
            c.pool.max = 1;
            c.pool.poll_interval_ms = 50;
        })
        .await;
        let fleet = r
            .plane
            .server
            .as_ref()
            .expect("server")
            .services
            .fleet
            .clone();
        for i in 0..runs {
            // Measure the claim path: wait until the pool has a member.
            for _ in 0..600 {
                if !fleet
                    .store
                    .pool_members()
                    .await
                    .unwrap_or_default()
                    .is_empty()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // And let the new member's agent settle, as a pool member would have.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let conv = format!("warm-{i}");
            warm.push(timed_turn(&r.plane, &conv).await);
            remove(&r.plane, &conv).await;
        }
    }

    println!("| agent-mode turn (real Claude Code CLI, Bedrock stand-in) | runs | first text_delta p50 ms | max | result p50 ms | max |");
    println!("|---|---|---|---|---|---|");
    println!("{}", row("cold workspace (created), runc", &mut cold));
    println!("{}", row("warm workspace (pool claim), runc", &mut warm));
    println!("{}", row("existing workspace (second turn)", &mut existing));
}
