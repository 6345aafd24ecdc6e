//! Command mode: stream a process's stdout and stderr as they come, then its exit.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::elapsed_ms;
use super::process::{pump_chunks, status_parts, supervise, Outcome, Spawned, DRAIN_GRACE};
use crate::wire::{Event, ExecResult};

/// Runs a spawned command to its end and sends its events, ending with one `result`
/// (or `error` on shutdown; nothing if the client left).
pub async fn run(
    mut spawned: Spawned,
    timeout: Duration,
    tx: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    started: Instant,
) {
    let pid = spawned.pid;
    let stop = CancellationToken::new();
    let out = tokio::spawn(pump_chunks(
        spawned.stdout,
        |data| Event::Stdout { data },
        tx.clone(),
        stop.clone(),
    ));
    let err = tokio::spawn(pump_chunks(
        spawned.stderr,
        |data| Event::Stderr { data },
        tx.clone(),
        stop.clone(),
    ));
    let outcome = supervise(&mut spawned.child, pid, timeout, &tx, &shutdown).await;
    if matches!(outcome, Outcome::Disconnected) {
        stop.cancel();
        tracing::info!(pid, "client disconnected; execution killed");
        return;
    }
    // All output written before the end is still in the pipes: read it to EOF (bounded,
    // in case a process that left the session keeps a pipe open).
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DRAIN_GRACE).await;
            stop.cancel();
        })
    };
    let _ = out.await;
    let _ = err.await;
    stopper.abort();
    let duration_ms = elapsed_ms(started);
    let event = match outcome {
        Outcome::Exited(st) | Outcome::TimedOut(st) => {
            let timed_out = matches!(outcome, Outcome::TimedOut(_));
            let (exit_code, signal) = status_parts(st);
            tracing::info!(
                pid,
                ?exit_code,
                ?signal,
                timed_out,
                duration_ms,
                "execution ended"
            );
            Event::Result(ExecResult {
                exit_code,
                signal,
                timed_out,
                duration_ms,
                ..Default::default()
            })
        }
        Outcome::Shutdown(_) => shutdown_event(),
        Outcome::Disconnected => return,
    };
    let _ = tx.send(event).await;
}

pub(crate) fn shutdown_event() -> Event {
    Event::Error {
        code: "shutting_down".into(),
        message: "the workspace agent is shutting down; the execution was killed".into(),
    }
}
