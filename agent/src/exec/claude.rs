//! Agent mode: one headless Claude Code turn. Builds the CLI's arguments and
//! environment, reads its NDJSON stdout through [`StreamJsonMapper`] and its stderr as
//! `stderr` events, and ends with one `result` (or `error` `agent_exited` when the CLI
//! exited without a result line).

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::command::shutdown_event;
use super::elapsed_ms;
use super::process::{
    status_parts, supervise, Line, LineReader, Outcome, Spawned, Tail, DRAIN_GRACE,
};
use super::stream_json::StreamJsonMapper;
use crate::wire::{AgentSpec, Event, ExecResult, McpServer, McpTransport, TokenUsage};

/// Longest stdout/stderr line of the CLI accepted (a longer one is reported and
/// skipped).
pub const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

/// Variables the CLI gets unless the agent's own environment sets them: Bedrock
/// through the egress proxy (which signs the requests; the sandbox holds no key), and
/// no self-update or telemetry traffic (the proxy would refuse it anyway). The runtime
/// sets `AWS_REGION` and the proxy variables (`HTTP_PROXY`, `NO_PROXY`).
pub const CLI_ENV_DEFAULTS: [(&str, &str); 5] = [
    ("CLAUDE_CODE_USE_BEDROCK", "1"),
    ("CLAUDE_CODE_SKIP_BEDROCK_AUTH", "1"),
    ("ANTHROPIC_BEDROCK_BASE_URL", "http://127.0.0.1:8080"),
    ("DISABLE_AUTOUPDATER", "1"),
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
];

/// `-p --output-format stream-json --verbose --include-partial-messages [--resume=id]
/// [--model=m]
/// [--max-turns=n] [--permission-mode=p] [--append-system-prompt=s]
/// [--allowedTools t...] [--disallowedTools t...] [--mcp-config=file] <extra> --
/// <prompt>`. Values go in the `--flag=value` form, so none can be read as an option
/// whatever it starts with; the tool lists (variadic in the CLI) are separate
/// elements that `validate` keeps from starting with `-`; the prompt comes last, after
/// `--`.
pub fn args(spec: &AgentSpec, extra: &[String], mcp_config: Option<&Path>) -> Vec<String> {
    // Partial messages: text reaches the caller as the model streams it, not once
    // per finished message.
    let mut a: Vec<String> = [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]
    .map(String::from)
    .to_vec();
    let mut opt = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            a.push(format!("--{flag}={v}"));
        }
    };
    opt("resume", spec.resume_session_id.clone());
    opt("model", spec.model.clone());
    opt("max-turns", spec.max_turns.map(|n| n.to_string()));
    opt(
        "permission-mode",
        spec.permission_mode.map(|m| m.as_str().to_string()),
    );
    opt("append-system-prompt", spec.append_system_prompt.clone());
    opt(
        "mcp-config",
        mcp_config.map(|p| p.to_string_lossy().into_owned()),
    );
    for (flag, tools) in [
        ("--allowedTools", &spec.allowed_tools),
        ("--disallowedTools", &spec.disallowed_tools),
    ] {
        if !tools.is_empty() {
            a.push(flag.to_string());
            a.extend(tools.iter().cloned());
        }
    }
    a.extend(extra.iter().cloned());
    a.extend(["--".to_string(), spec.prompt.clone()]);
    a
}

/// The `--mcp-config` file's content: `{"mcpServers": {name: {"type", "url"}}}`.
pub fn mcp_config(servers: &BTreeMap<String, McpServer>) -> serde_json::Value {
    let servers: serde_json::Map<String, serde_json::Value> = servers
        .iter()
        .map(|(name, s)| {
            let transport = match s.transport {
                McpTransport::Http => "http",
                McpTransport::Sse => "sse",
            };
            (
                name.clone(),
                serde_json::json!({ "type": transport, "url": s.url }),
            )
        })
        .collect();
    serde_json::json!({ "mcpServers": servers })
}

/// The CLI's extra environment: [`CLI_ENV_DEFAULTS`] not already set for the agent,
/// and, for a turn with MCP servers, `MCP_CONNECTION_NONBLOCKING=false`: the CLI
/// (2.1.332) otherwise connects to them in the background, and its first model request
/// can go out before their tools are known (seen when the first connection attempt
/// failed and was retried).
pub fn env(spec: &AgentSpec) -> Vec<(OsString, OsString)> {
    let mcp = (!spec.mcp_servers.is_empty()).then_some(("MCP_CONNECTION_NONBLOCKING", "false"));
    CLI_ENV_DEFAULTS
        .iter()
        .copied()
        .chain(mcp)
        .filter(|(k, _)| std::env::var_os(k).is_none())
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

/// The Claude Code sessions with a turn running in this workspace. A turn that
/// resumes one of them is refused (two CLIs appending to one transcript corrupt it);
/// a new turn's session joins the set when the CLI announces it (`system`/`init`).
/// The announced id is the sandbox's word, hostile input like all CLI output: at
/// worst a process in the workspace blocks resuming that workspace's own sessions.
#[derive(Debug, Default, Clone)]
pub struct Sessions(Arc<Mutex<HashSet<String>>>);

impl Sessions {
    /// Marks `id` as running; `None` when a turn already runs it.
    pub fn claim(&self, id: &str) -> Option<SessionClaim> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(id.to_string()).then(|| SessionClaim {
            sessions: self.clone(),
            id: id.to_string(),
        })
    }
}

/// A running session; released when the turn ends.
#[derive(Debug)]
pub struct SessionClaim {
    sessions: Sessions,
    id: String,
}

impl Drop for SessionClaim {
    fn drop(&mut self) {
        let mut set = self.sessions.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.id);
    }
}

/// What a turn holds until it ends: its session claim and its MCP config file.
#[derive(Debug)]
pub struct Turn {
    pub sessions: Sessions,
    pub claim: Option<SessionClaim>,
    pub mcp_config: Option<tempfile::NamedTempFile>,
}

/// Runs a spawned CLI to its end; see the module docs.
pub async fn run(
    mut spawned: Spawned,
    timeout: Duration,
    tx: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    started: Instant,
    turn: Turn,
) {
    let pid = spawned.pid;
    let stop = CancellationToken::new();
    let out = {
        let (tx, stop) = (tx.clone(), stop.clone());
        let mut lines = LineReader::new(spawned.stdout, MAX_LINE_BYTES);
        let Turn {
            sessions,
            mut claim,
            mcp_config,
        } = turn;
        tokio::spawn(async move {
            // Held until the CLI's output ends (the file is removed on drop).
            let _mcp_config = mcp_config;
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
                if claim.is_none() {
                    claim = mapper.session_id().and_then(|id| sessions.claim(id));
                }
                for ev in events {
                    if tx.send(ev).await.is_err() {
                        return (mapper, claim);
                    }
                }
            }
            (mapper, claim)
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
    // The session stays claimed until the result is sent.
    let (mapper, _claim) = out.await.unwrap_or_default();
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
                    tokens: r
                        .usage
                        .as_ref()
                        .and_then(|u| u.get("usage"))
                        .and_then(TokenUsage::from_usage),
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
    use crate::wire::PermissionMode;

    #[test]
    fn builds_cli_arguments() {
        let spec = AgentSpec {
            prompt: "fix it".into(),
            resume_session_id: Some("abc-1".into()),
            model: Some("m1".into()),
            max_turns: Some(3),
            permission_mode: Some(PermissionMode::AcceptEdits),
            append_system_prompt: Some("-- be brief".into()),
            allowed_tools: vec!["Bash(git *)".into(), "Edit".into()],
            disallowed_tools: vec!["WebFetch".into()],
            ..Default::default()
        };
        assert_eq!(
            args(&spec, &["--x".into()], Some(Path::new("/tmp/m.json"))),
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--resume=abc-1",
                "--model=m1",
                "--max-turns=3",
                "--permission-mode=acceptEdits",
                "--append-system-prompt=-- be brief",
                "--mcp-config=/tmp/m.json",
                "--allowedTools",
                "Bash(git *)",
                "Edit",
                "--disallowedTools",
                "WebFetch",
                "--x",
                "--",
                "fix it"
            ]
        );
        let dash = AgentSpec {
            prompt: "-rf".into(),
            ..Default::default()
        };
        assert_eq!(
            args(&dash, &[], None),
            [
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--",
                "-rf"
            ]
        );
    }

    #[test]
    fn mcp_config_names_each_server_without_credentials() {
        let servers = BTreeMap::from([(
            "docs".to_string(),
            McpServer {
                url: "http://mcp.test/mcp".into(),
                transport: McpTransport::Http,
            },
        )]);
        assert_eq!(
            mcp_config(&servers),
            serde_json::json!({"mcpServers": {"docs": {"type": "http", "url": "http://mcp.test/mcp"}}})
        );
    }

    #[test]
    fn a_running_session_cannot_be_claimed_twice() {
        let sessions = Sessions::default();
        let first = sessions.claim("s1").expect("free");
        assert!(sessions.claim("s1").is_none());
        assert!(sessions.claim("s2").is_some());
        drop(first);
        assert!(sessions.claim("s1").is_some());
    }
}
