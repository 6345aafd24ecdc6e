//! Executions: validating an [`ExecuteRequest`], starting the command or the Claude Code
//! CLI, and producing its events on a channel that the HTTP layer turns into SSE.
//! Exactly one terminal event (`result` or `error`) ends every channel, unless the
//! client left (then the process is killed and nothing more is sent).

pub mod claude;
pub mod command;
pub mod process;
pub mod stream_json;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::confine::{FsError, RelPath, Root};
use crate::error::ApiError;
use crate::wire::{AgentSpec, CommandSpec, Event, ExecuteRequest};

use process::SpawnSpec;

/// Capacity of an execution's event channel (back-pressure on a slow client).
pub const EVENT_CHANNEL: usize = 64;

/// Starts executions; one per agent, shared by the handlers.
#[derive(Debug)]
pub struct Executor {
    root: Arc<Root>,
    default_timeout: Duration,
    max_timeout_secs: u64,
    claude_path: String,
    claude_args: Vec<String>,
    tmp_dir: std::path::PathBuf,
    sessions: claude::Sessions,
    shutdown: CancellationToken,
}

/// A validated request, ready to spawn.
#[derive(Debug)]
struct Prepared {
    spec: SpawnSpec,
    timeout: Duration,
    /// Agent mode: what the turn holds until it ends.
    turn: Option<claude::Turn>,
}

impl Executor {
    pub fn new(config: &Config, root: Arc<Root>, shutdown: CancellationToken) -> Self {
        Executor {
            root,
            default_timeout: Duration::from_secs(config.default_timeout_secs),
            max_timeout_secs: config.max_timeout_secs,
            claude_path: config.claude_path.clone(),
            claude_args: config.claude_args.0.clone(),
            tmp_dir: config.tmp_dir(),
            sessions: claude::Sessions::default(),
            shutdown,
        }
    }

    /// Validates `req` (client mistakes are 400), starts it and returns its events. A
    /// program that cannot be started yields a stream holding one `error` event with
    /// code `spawn_failed`.
    pub async fn start(&self, req: ExecuteRequest) -> Result<mpsc::Receiver<Event>, ApiError> {
        req.validate()
            .map_err(|e| ApiError::bad_request(e.code, e.message))?;
        let timeout = self.timeout(req.timeout_secs())?;
        let prepared = match req {
            ExecuteRequest::Command(c) => self.prepare_command(c, timeout).await?,
            ExecuteRequest::Agent(a) => self.prepare_agent(a, timeout)?,
        };
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL);
        let program = prepared.spec.program.to_string_lossy().into_owned();
        let spawned = match process::spawn(prepared.spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(program = %program, error = %e, "spawn failed");
                let _ = tx.try_send(Event::Error {
                    code: "spawn_failed".into(),
                    message: format!("cannot start {program:?}: {e}"),
                });
                return Ok(rx);
            }
        };
        tracing::info!(
            pid = spawned.pid,
            program = %program,
            mode = if prepared.turn.is_some() { "agent" } else { "command" },
            timeout_secs = prepared.timeout.as_secs(),
            "execution started"
        );
        let shutdown = self.shutdown.clone();
        let started = Instant::now();
        if let Some(turn) = prepared.turn {
            tokio::spawn(claude::run(
                spawned,
                prepared.timeout,
                tx,
                shutdown,
                started,
                turn,
            ));
        } else {
            tokio::spawn(command::run(
                spawned,
                prepared.timeout,
                tx,
                shutdown,
                started,
            ));
        }
        Ok(rx)
    }

    fn timeout(&self, requested: Option<u64>) -> Result<Duration, ApiError> {
        match requested {
            None => Ok(self.default_timeout),
            Some(t) if t > self.max_timeout_secs => Err(ApiError::bad_request(
                "invalid_timeout",
                format!(
                    "timeout_secs {t} exceeds the maximum of {} seconds",
                    self.max_timeout_secs
                ),
            )),
            Some(t) => Ok(Duration::from_secs(t)),
        }
    }

    async fn prepare_command(
        &self,
        c: CommandSpec,
        timeout: Duration,
    ) -> Result<Prepared, ApiError> {
        let env = c
            .env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let cwd = match c.cwd.as_deref() {
            None | Some("") => self.root.path().to_path_buf(),
            Some(cwd) => {
                let root = self.root.clone();
                let cwd_s = cwd.to_string();
                let resolved = tokio::task::spawn_blocking(move || {
                    let rel = RelPath::parse(&cwd_s)?;
                    root.open_dir(&rel).map(|(_, canon)| root.absolute(&canon))
                })
                .await
                .map_err(|e| ApiError::Internal(format!("cwd resolution panicked: {e}")))?;
                resolved.map_err(|e| {
                    let why = match e {
                        FsError::NotFound { .. } => "does not exist".to_string(),
                        FsError::NotDir { .. } => "is not a directory".to_string(),
                        other => other.to_string(),
                    };
                    ApiError::bad_request("invalid_cwd", format!("cwd {cwd:?}: {why}"))
                })?
            }
        };
        let (program, args): (OsString, Vec<OsString>) = if c.shell {
            (
                "/bin/sh".into(),
                vec!["-c".into(), c.argv[0].clone().into()],
            )
        } else {
            (
                c.argv[0].clone().into(),
                c.argv[1..].iter().map(OsString::from).collect(),
            )
        };
        Ok(Prepared {
            spec: SpawnSpec {
                program,
                args,
                env,
                cwd,
                stdin: c.stdin.map(String::into_bytes),
            },
            timeout,
            turn: None,
        })
    }

    /// A turn resuming a session that another turn is running is 409 `session_busy`;
    /// the MCP servers go to a private temporary file the CLI reads (`--mcp-config`).
    fn prepare_agent(&self, a: AgentSpec, timeout: Duration) -> Result<Prepared, ApiError> {
        // Everything else was checked by `ExecuteRequest::validate` in `start`.
        let claim = match &a.resume_session_id {
            None => None,
            Some(id) => Some(self.sessions.claim(id).ok_or_else(|| {
                ApiError::SessionBusy(format!(
                    "session {id} has a turn running in this workspace; resume it when that turn has ended"
                ))
            })?),
        };
        let mcp_config = if a.mcp_servers.is_empty() {
            None
        } else {
            Some(self.write_mcp_config(&a)?)
        };
        Ok(Prepared {
            spec: SpawnSpec {
                program: self.claude_path.clone().into(),
                args: claude::args(&a, &self.claude_args, mcp_config.as_ref().map(|f| f.path()))
                    .into_iter()
                    .map(OsString::from)
                    .collect(),
                env: claude::env(&a),
                cwd: self.root.path().to_path_buf(),
                stdin: None,
            },
            timeout,
            turn: Some(claude::Turn {
                sessions: self.sessions.clone(),
                claim,
                mcp_config,
            }),
        })
    }

    fn write_mcp_config(&self, a: &AgentSpec) -> Result<tempfile::NamedTempFile, ApiError> {
        use std::io::Write;
        let mut f = tempfile::Builder::new()
            .prefix("workspace-agent-mcp-")
            .suffix(".json")
            .tempfile_in(&self.tmp_dir)
            .map_err(|e| ApiError::Internal(format!("MCP config file: {e}")))?;
        f.write_all(claude::mcp_config(&a.mcp_servers).to_string().as_bytes())
            .and_then(|()| f.flush())
            .map_err(|e| ApiError::Internal(format!("MCP config file: {e}")))?;
        Ok(f)
    }
}

/// Milliseconds since `started`.
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
