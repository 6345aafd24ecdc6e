//! The contract's data types: the execute request, the event vocabulary, file
//! metadata, manifests, error bodies and the agent's route names. Plain data: no I/O,
//! no validation beyond the JSON shape (that is `validate`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Agent routes (relative to the agent's socket or `http://<ip>:9000`).
pub mod routes {
    /// `GET`: liveness of the agent, [`super::AgentHealth`].
    pub const HEALTH: &str = "/health";
    /// `POST` an [`super::ExecuteRequest`]; answers an SSE stream of [`super::Event`]s.
    pub const EXECUTE: &str = "/execute";
    /// `GET` (read), `PUT` (atomic write, raw body), `DELETE` a file: `?path=<relative>`.
    pub const FILES: &str = "/files";
    /// `GET ?path=<dir>&recursive=<bool>`: a [`super::FileList`].
    pub const FILES_LIST: &str = "/files/list";
    /// `GET`: a tar of the whole workspace; `PUT`: extract a tar into it
    /// ([`super::ArchiveImportQuery`]: `?links=preserve` is the control plane's restore).
    pub const ARCHIVE: &str = "/archive";
    /// `GET ?max_entries=&max_bytes=` ([`super::ManifestQuery`]): a
    /// [`super::Manifest`] of the whole workspace (file sync).
    pub const MANIFEST: &str = "/manifest";
    /// `POST` an [`super::ExportRequest`]: a tar of exactly the listed entries.
    pub const ARCHIVE_EXPORT: &str = "/archive/export";
}

/// Upper bound of a conversation id's length.
pub const CONVERSATION_ID_MAX_LEN: usize = 128;

/// True when `id` matches `^[A-Za-z0-9._-]{1,128}$` (and is not `.` or `..`, which
/// would be unsafe as path segments or object-key components).
pub fn is_valid_conversation_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= CONVERSATION_ID_MAX_LEN
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What to run in a workspace: a command, or one agent (Claude Code) turn.
///
/// JSON: `{"mode": "command", "argv": ["ls", "-la"]}` or
/// `{"mode": "agent", "prompt": "fix the tests"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecuteRequest {
    Command(CommandSpec),
    Agent(AgentSpec),
}

impl ExecuteRequest {
    /// The requested timeout, if any.
    pub fn timeout_secs(&self) -> Option<u64> {
        match self {
            ExecuteRequest::Command(c) => c.timeout_secs,
            ExecuteRequest::Agent(a) => a.timeout_secs,
        }
    }
}

/// A command run directly (no shell) unless `shell` is set, in which case `argv`
/// must hold exactly one string, run as `/bin/sh -c <string>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    #[serde(default)]
    pub shell: bool,
    /// Extra environment variables, set on top of the agent's own environment (from
    /// which the agent's `WORKSPACE_AGENT_*` settings are removed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory relative to the workspace root (default: the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Bytes written to the process's stdin, which is then closed (default: empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Kill the whole process group after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// One headless Claude Code turn (`claude -p --output-format stream-json --verbose
/// ... -- <prompt>`); the CLI path and extra flags are agent configuration, not request
/// data. Every option becomes its own argv element (never a shell string).
///
/// JSON: `{"mode": "agent", "prompt": "fix the tests", "allowed_tools": ["Bash(cargo *)",
/// "Edit"], "permission_mode": "acceptEdits", "append_system_prompt": "Be brief.",
/// "mcp_servers": {"docs": {"url": "http://mcp.example.com/mcp"}}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub prompt: String,
    /// Resume an earlier Claude Code session (`--resume <id>`). Two turns resuming the
    /// same session at once are refused (409 `session_busy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_session_id: Option<String>,
    /// Model id passed as `--model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `--max-turns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Tools (or tool patterns such as `Bash(git *)`) allowed without asking:
    /// `--allowedTools`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tools: Vec<String>,
    /// Tools (or patterns) refused: `--disallowedTools`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disallowed_tools: Vec<String>,
    /// `--permission-mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<PermissionMode>,
    /// Text added to the end of the default system prompt: `--append-system-prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_system_prompt: Option<String>,
    /// MCP servers for this turn, by name: written to a file passed as `--mcp-config`.
    /// Reached through the egress proxy, which adds their credentials; a request never
    /// carries one (no `headers` field exists).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_servers: BTreeMap<String, McpServer>,
}

/// Claude Code's permission modes (the `--permission-mode` choices of the pinned CLI,
/// `deployment/images/claude-code.version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PermissionMode {
    AcceptEdits,
    Auto,
    BypassPermissions,
    Manual,
    DontAsk,
    Plan,
}

impl PermissionMode {
    /// The CLI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::AcceptEdits => "acceptEdits",
            PermissionMode::Auto => "auto",
            PermissionMode::BypassPermissions => "bypassPermissions",
            PermissionMode::Manual => "manual",
            PermissionMode::DontAsk => "dontAsk",
            PermissionMode::Plan => "plan",
        }
    }
}

/// One MCP server of a turn: a plain `http://` URL, which the CLI reaches through the
/// egress proxy (`HTTP_PROXY`); the proxy connects to the server with TLS and adds the
/// headers configured for that host (see `docs/proxy.md`, inject mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    pub url: String,
    /// `http` (streamable HTTP, the default) or `sse`.
    #[serde(default, rename = "type")]
    pub transport: McpTransport,
}

/// An MCP server's transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    #[default]
    Http,
    Sse,
}

/// Where the workspace serving a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceSource {
    /// The conversation's workspace was already running.
    Existing,
    /// Claimed from the warm pool.
    Warm,
    /// Created for this request.
    Cold,
    /// Re-created after the previous container died, restored from the last sync.
    Recovered,
}

impl WorkspaceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceSource::Existing => "existing",
            WorkspaceSource::Warm => "warm",
            WorkspaceSource::Cold => "cold",
            WorkspaceSource::Recovered => "recovered",
        }
    }
}

/// The event vocabulary shared by the agent's stream and the control plane's stream.
///
/// JSON: internally tagged by `type`, e.g. `{"type":"stdout","data":"hi\n"}`. On the
/// SSE wire the same name is the `event:` field and the JSON is the `data:` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// First event of a control-plane stream: which workspace serves the request.
    Workspace {
        workspace_id: String,
        source: WorkspaceSource,
        /// The API request's id (`X-Request-Id`, given or minted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// A fragment of the assistant's text.
    TextDelta { text: String },
    /// The assistant asked for a tool.
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: serde_json::Value,
    },
    /// A tool's answer.
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: serde_json::Value,
        #[serde(default)]
        is_error: bool,
    },
    /// Output of a command (UTF-8, lossily decoded), or a passed-through line in agent
    /// mode whose type the agent does not map.
    Stdout { data: String },
    /// Error output of a command, or an unparseable line from the agent CLI.
    Stderr { data: String },
    /// The end of an execution.
    Result(ExecResult),
    /// A failure that ends the execution (or, from the control plane, the stream).
    Error { code: String, message: String },
    /// The conversation's previous container died; this one was restored from the
    /// last sync.
    ContainerRecovered {
        workspace_id: String,
        previous_workspace_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_synced_at: Option<String>,
    },
}

impl Event {
    /// The SSE `event:` name (equal to the JSON `type`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Workspace { .. } => "workspace",
            Event::TextDelta { .. } => "text_delta",
            Event::ToolUse { .. } => "tool_use",
            Event::ToolResult { .. } => "tool_result",
            Event::Stdout { .. } => "stdout",
            Event::Stderr { .. } => "stderr",
            Event::Result(_) => "result",
            Event::Error { .. } => "error",
            Event::ContainerRecovered { .. } => "container_recovered",
        }
    }

    /// True for the events after which nothing more follows in an execution.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::Result(_) | Event::Error { .. })
    }
}

/// The final outcome of an execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Process exit code (command mode, or the CLI's exit code in agent mode);
    /// `None` when the process was killed by a signal.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended the process, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default)]
    pub timed_out: bool,
    pub duration_ms: u64,
    /// Agent mode: true when the CLI reported an error result.
    #[serde(default)]
    pub is_error: bool,
    /// Agent mode: the CLI's session id (for `resume_session_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Agent mode: the final text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Agent mode: usage and cost as reported by the CLI, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<serde_json::Value>,
    /// Agent mode: the turn's token counts, normalised from the CLI's `usage` (absent
    /// counts are 0). The control plane counts them per tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenUsage>,
}

/// Token counts of an agent turn (every model call of the turn summed by the CLI).
///
/// JSON: `{"input_tokens": 1200, "output_tokens": 80, "cache_creation_input_tokens": 0,
/// "cache_read_input_tokens": 0}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl TokenUsage {
    /// The counts of an Anthropic-style `usage` object (`None` when it holds none).
    pub fn from_usage(usage: &serde_json::Value) -> Option<TokenUsage> {
        let n = |k: &str| usage.get(k).and_then(serde_json::Value::as_u64);
        let keys = [
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ];
        if keys.iter().all(|k| n(k).is_none()) {
            return None;
        }
        Some(TokenUsage {
            input_tokens: n(keys[0]).unwrap_or(0),
            output_tokens: n(keys[1]).unwrap_or(0),
            cache_creation_input_tokens: n(keys[2]).unwrap_or(0),
            cache_read_input_tokens: n(keys[3]).unwrap_or(0),
        })
    }
}

/// Kind of a workspace file-system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Metadata of one workspace entry; `path` is relative to the workspace root, `/`
/// separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime_ms: i64,
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
}

/// Answer of a list request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileList {
    pub entries: Vec<FileEntry>,
}

/// Query of the file routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileQuery {
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
}

/// Answer of a successful write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    pub path: String,
    pub size: u64,
}

/// Answer of a successful `PUT /archive` (archive import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    /// Entries extracted (files, directories, links).
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}

/// Answer of `GET /health` on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHealth {
    pub status: String,
    pub version: String,
    pub wire_version: u32,
}

/// Error body used by the agent and the control plane: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// Kind of a [`ManifestEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestKind {
    File,
    Dir,
    Symlink,
}

/// One entry of a workspace [`Manifest`]: a regular file (with its content hash), a
/// directory or a symlink (with its target, never followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Relative to the workspace root, `/`-separated, canonical (no `.`, `..` or empty
    /// components).
    pub path: String,
    pub kind: ManifestKind,
    /// Bytes of a file; 0 for directories and symlinks.
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime_ms: i64,
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    /// Lower-case hex SHA-256 of a file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symlink's target, as stored (may be absolute or leave the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// An entry the manifest leaves out, and why (a name that is not UTF-8, an unreadable
/// file, a FIFO/socket/device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSkip {
    /// The path, lossily decoded.
    pub path: String,
    pub reason: String,
}

/// Answer of `GET /manifest`: every file, directory and symlink of the workspace,
/// sorted by `path` (so a directory comes before its contents).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
    /// Entries counted in the whole workspace (also past a limit).
    #[serde(default)]
    pub total_entries: u64,
    /// Bytes of all regular files (also past a limit).
    #[serde(default)]
    pub total_file_bytes: u64,
    /// True when the caller's `max_entries` or `max_bytes` was exceeded: `entries` is
    /// then empty and only the totals are meaningful.
    #[serde(default)]
    pub over_limit: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<ManifestSkip>,
}

/// Query of `GET /manifest`: limits beyond which the agent stops listing and hashing
/// and answers only the totals (`over_limit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// Body of `POST /archive/export`: the entries to put in the tar, each a relative
/// path confined like every file route. A directory is exported as the directory entry
/// alone (not its contents); entries that no longer exist are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub paths: Vec<String>,
}

/// What `PUT /archive` does with symlink entries whose target is absolute or leaves
/// the root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPolicy {
    /// Refuse the archive (the public import).
    #[default]
    Confine,
    /// Create them as plain symlinks (the control plane's restore of a synced
    /// workspace, e.g. a venv's `bin/python -> /usr/bin/python3`). Nothing is ever
    /// written through any symlink.
    Preserve,
}

/// Query of `PUT /archive`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveImportQuery {
    #[serde(default)]
    pub links: LinkPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids() {
        for ok in ["a", "A-b_c.d", "x".repeat(128).as_str()] {
            assert!(is_valid_conversation_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(129), "a\0"] {
            assert!(!is_valid_conversation_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn execute_request_json() {
        let r: ExecuteRequest =
            serde_json::from_str(r#"{"mode":"command","argv":["ls","-la"],"timeout_secs":5}"#)
                .unwrap();
        assert_eq!(
            r,
            ExecuteRequest::Command(CommandSpec {
                argv: vec!["ls".into(), "-la".into()],
                timeout_secs: Some(5),
                ..Default::default()
            })
        );
        let r: ExecuteRequest = serde_json::from_str(r#"{"mode":"agent","prompt":"hi"}"#).unwrap();
        assert!(matches!(r, ExecuteRequest::Agent(AgentSpec { ref prompt, .. }) if prompt == "hi"));
        assert!(serde_json::from_str::<ExecuteRequest>(r#"{"mode":"shell"}"#).is_err());
        assert!(
            serde_json::from_str::<ExecuteRequest>(r#"{"mode":"command","argv":[],"x":1}"#)
                .is_err()
        );
    }
}
