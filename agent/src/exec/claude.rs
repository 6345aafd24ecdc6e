//! Agent mode: one headless Claude Code turn. Builds the CLI's arguments and
//! environment, reads its NDJSON stdout through [`StreamJsonMapper`] and its stderr as
//! `stderr` events, and ends with one `result` (or `error` `agent_exited` when the CLI
//! exited without a result line).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::command::shutdown_event;
use super::elapsed_ms;
use super::process::{
    status_parts, supervise, Line, LineReader, Outcome, Spawned, Tail, DRAIN_GRACE,
};
use super::stream_json::StreamJsonMapper;
use crate::wire::{AgentSpec, Event, ExecResult};

/// Longest stdout/stderr line of the CLI accepted (a longer one is reported and
/// skipped).
pub const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

/// Variables the CLI gets unless the agent's own environment sets them: Bedrock
/// through the egress proxy (which signs the requests; the sandbox holds no key).
pub const CLI_ENV_DEFAULTS: [(&str, &str); 3] = [
    ("CLAUDE_CODE_USE_BEDROCK", "1"),
    ("CLAUDE_CODE_SKIP_BEDROCK_AUTH", "1"),
    ("ANTHROPIC_BEDROCK_BASE_URL", "http://127.0.0.1:8080"),
];

/// `-p <prompt> --output-format stream-json --verbose [--resume id] [--model m]
/// [--max-turns n] <extra>`. A prompt starting with `-` is put after `--` at the end
/// instead, so the CLI cannot take it for an option.
pub fn args(spec: &AgentSpec, extra: &[String]) -> Vec<String> {
    let dash_prompt = spec.prompt.starts_with('-');
    let mut a = vec!["-p".to_string()];
    if !dash_prompt {
        a.push(spec.prompt.clone());
    }
    a.extend(["--output-format", "stream-json", "--verbose"].map(String::from));
    if let Some(id) = &spec.resume_session_id {
        a.extend(["--resume".to_string(), id.clone()]);
    }
    if let Some(m) = &spec.model {
        a.extend(["--model".to_string(), m.clone()]);
    }
    if let Some(n) = spec.max_turns {
        a.extend(["--max-turns".to_string(), n.to_string()]);
    }
    a.extend(extra.iter().cloned());
    if dash_prompt {
        a.extend(["--".to_string(), spec.prompt.clone()]);
    }
    a
}

/// The CLI's extra environment: [`CLI_ENV_DEFAULTS`] not already set for the agent.
pub fn env() -> Vec<(OsString, OsString)> {
    CLI_ENV_DEFAULTS
        .iter()
        .filter(|(k, _)| std::env::var_os(k).is_none())
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

/// Runs a spawned CLI to its end; see the module docs.
pub async fn run(
    mut spawned: Spawned,
    timeout: Duration,
    tx: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    started: Instant,
) {
    let pid = spawned.pid;
    let stop = CancellationToken::new();
    let out = {
        let (tx, stop) = (tx.clone(), stop.clone());
        let mut lines = LineReader::new(spawned.stdout, MAX_LINE_BYTES);
        tokio::spawn(async move {
            let mut mapper = StreamJsonMapper::new();
            loop {
                let line = tokio::select! {
                    biased;
                    l = lines.next_line() => l,
                    _ = stop.cancelled() => break,
                };
                let events = match line {
                    Ok(Some(Line::Text(bytes))) => mapper.map_line(&String::from_utf8_lossy(&bytes)),
                    Ok(Some(Line::TooLong(n))) => vec![Event::Stderr {
                        data: format!("[workspace-agent] skipped a {n}-byte output line of the CLI (limit {MAX_LINE_BYTES})"),
                    }],
                    Ok(None) | Err(_) => break,
                };
                for ev in events {
                    if tx.send(ev).await.is_err() {
                        return mapper;
                    }
                }
            }
            mapper
        })
    };
    let err = {
        let (tx, stop) = (tx.clone(), stop.clone());
        let mut lines = LineReader::new(spawned.stderr, MAX_LINE_BYTES);
        tokio::spawn(async move {
            let mut tail = Tail::default();
            loop {
                let line = tokio::select! {
                    biased;
                    l = lines.next_line() => l,
                    _ = stop.cancelled() => break,
                };
                let data = match line {
                    Ok(Some(Line::Text(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                    Ok(Some(Line::TooLong(n))) => {
                        format!("[workspace-agent] skipped a {n}-byte stderr line")
                    }
                    Ok(None) | Err(_) => break,
                };
                tail.push(&data);
                if tx.send(Event::Stderr { data }).await.is_err() {
                    break;
                }
            }
            tail
        })
    };
    let outcome = supervise(&mut spawned.child, pid, timeout, &tx, &shutdown).await;
    if matches!(outcome, Outcome::Disconnected) {
        stop.cancel();
        tracing::info!(pid, "client disconnected; agent turn killed");
        return;
    }
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DRAIN_GRACE).await;
            stop.cancel();
        })
    };
    let mapper = out.await.unwrap_or_default();
    let tail = err.await.unwrap_or_default();
    stopper.abort();
    let duration_ms = elapsed_ms(started);
    let event = match outcome {
        Outcome::Disconnected => return,
        Outcome::Shutdown(_) => shutdown_event(),
        Outcome::TimedOut(st) => {
            let (exit_code, signal) = status_parts(st);
            Event::Result(ExecResult {
                exit_code,
                signal,
                timed_out: true,
                duration_ms,
                is_error: true,
                session_id: mapper.session_id().map(str::to_string),
                ..Default::default()
            })
        }
        Outcome::Exited(st) => {
            let (exit_code, signal) = status_parts(st);
            match mapper.result() {
                Some(r) => Event::Result(ExecResult {
                    exit_code,
                    signal,
                    timed_out: false,
                    duration_ms,
                    is_error: r.is_error,
                    session_id: r
                        .session_id
                        .clone()
                        .or_else(|| mapper.session_id().map(str::to_string)),
                    text: r.text.clone(),
                    usage: r.usage.clone(),
                }),
                None => {
                    let status = match (exit_code, signal) {
                        (Some(c), _) => format!("exit code {c}"),
                        (None, Some(s)) => format!("signal {s}"),
                        (None, None) => "an unknown status".to_string(),
                    };
                    let stderr = tail.joined();
                    Event::Error {
                        code: "agent_exited".into(),
                        message: if stderr.is_empty() {
                            format!("the Claude Code CLI exited with {status} without a result (no stderr output)")
                        } else {
                            format!("the Claude Code CLI exited with {status} without a result; stderr tail:\n{stderr}")
                        },
                    }
                }
            }
        }
    };
    tracing::info!(
        pid,
        duration_ms,
        terminal = event.name(),
        "agent turn ended"
    );
    let _ = tx.send(event).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_cli_arguments() {
        let spec = AgentSpec {
            prompt: "fix it".into(),
            resume_session_id: Some("abc-1".into()),
            model: Some("m1".into()),
            max_turns: Some(3),
            timeout_secs: None,
        };
        assert_eq!(
            args(&spec, &["--permission-mode".into(), "acceptEdits".into()]),
            [
                "-p",
                "fix it",
                "--output-format",
                "stream-json",
                "--verbose",
                "--resume",
                "abc-1",
                "--model",
                "m1",
                "--max-turns",
                "3",
                "--permission-mode",
                "acceptEdits"
            ]
        );
        let dash = AgentSpec {
            prompt: "-rf".into(),
            ..Default::default()
        };
        assert_eq!(
            args(&dash, &[]),
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--",
                "-rf"
            ]
        );
    }
}
