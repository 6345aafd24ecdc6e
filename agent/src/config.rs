//! The agent's one typed configuration: command-line flags with environment fallbacks
//! (`WORKSPACE_AGENT_*`, set by the control plane), parsed by clap and validated once at
//! start with a clear message.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default Unix socket of the agent inside a local (Docker) workspace.
pub const DEFAULT_LISTEN: &str = "unix:/run/workspace/agent.sock";
/// Default workspace root.
pub const DEFAULT_ROOT: &str = "/workspace";
/// Default address of the TCP relay to the egress proxy.
pub const DEFAULT_RELAY_LISTEN: &str = "127.0.0.1:8080";
/// Default egress proxy socket (host side, bind-mounted).
pub const DEFAULT_PROXY_SOCKET: &str = "/run/workspace/proxy.sock";
const MIB: u64 = 1024 * 1024;
/// Upper bound of `WORKSPACE_AGENT_MAX_TIMEOUT_SECS` (30 days).
pub const MAX_TIMEOUT_CAP_SECS: u64 = 30 * 24 * 3600;

/// Command line of `workspace-agent`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "workspace-agent",
    version,
    about = "Workspace agent: runs inside each sandbox; executes commands and agent turns, streams events, serves files"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the agent API (the default).
    Serve,
    /// Print one JSON object describing the sandbox as seen from inside, then exit 0.
    Probe,
}

/// Where the agent's API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket path (`unix:/path`).
    Unix(PathBuf),
    /// A TCP address (`tcp:host:port`).
    Tcp(SocketAddr),
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() || !path.starts_with('/') {
                return Err(format!(
                    "unix socket path must be absolute, got {path:?} (e.g. unix:/run/workspace/agent.sock)"
                ));
            }
            Ok(ListenAddr::Unix(PathBuf::from(path)))
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            addr.parse()
                .map(ListenAddr::Tcp)
                .map_err(|e| format!("invalid TCP address {addr:?}: {e} (e.g. tcp:0.0.0.0:9000)"))
        } else {
            Err(format!(
                "expected unix:<path> or tcp:<ip>:<port>, got {s:?}"
            ))
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Address of the TCP relay, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayListen {
    Off,
    On(SocketAddr),
}

impl FromStr for RelayListen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(RelayListen::Off);
        }
        s.parse()
            .map(RelayListen::On)
            .map_err(|e| format!("expected <ip>:<port> or off, got {s:?}: {e}"))
    }
}

/// Extra CLI arguments, given as one shell-words string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellArgs(pub Vec<String>);

impl FromStr for ShellArgs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        shell_words::split(s)
            .map(ShellArgs)
            .map_err(|e| format!("cannot split {s:?} into arguments: {e}"))
    }
}

/// Octal permission bits of the Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketMode(pub u32);

impl FromStr for SocketMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.trim_start_matches("0o");
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o777 => Ok(SocketMode(m)),
            _ => Err(format!(
                "expected octal permission bits like 660, got {s:?}"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the agent needs to run. Every field has a flag and an environment
/// variable; see `agent/README.md`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Where the API listens: `unix:<path>` or `tcp:<ip>:<port>`.
    #[arg(long, env = wire::env::LISTEN, default_value = DEFAULT_LISTEN)]
    pub listen: ListenAddr,

    /// Permission bits of the Unix socket (octal).
    #[arg(long, env = wire::env::SOCKET_MODE, default_value = "660")]
    pub socket_mode: SocketMode,

    /// Workspace root; every file path and working directory is confined to it.
    #[arg(long, env = wire::env::ROOT, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,

    /// TCP relay to the egress proxy socket: `<ip>:<port>` or `off`.
    #[arg(long, env = wire::env::RELAY_LISTEN, default_value = DEFAULT_RELAY_LISTEN)]
    pub relay_listen: RelayListen,

    /// Unix socket of the egress proxy the relay forwards to.
    #[arg(long, env = wire::env::PROXY_SOCKET, default_value = DEFAULT_PROXY_SOCKET)]
    pub proxy_socket: PathBuf,

    /// Claude Code CLI used in agent mode.
    #[arg(long, env = wire::env::CLAUDE_PATH, default_value = "claude")]
    pub claude_path: String,

    /// Extra CLI flags appended in agent mode (one string, shell-words split).
    #[arg(long, env = wire::env::CLAUDE_ARGS, default_value = "")]
    pub claude_args: ShellArgs,

    /// Timeout of an execution that asks for none.
    #[arg(
        long,
        env = wire::env::DEFAULT_TIMEOUT_SECS,
        default_value_t = 600
    )]
    pub default_timeout_secs: u64,

    /// Largest timeout a request may ask for (above it: 400).
    #[arg(long, env = wire::env::MAX_TIMEOUT_SECS, default_value_t = 3600)]
    pub max_timeout_secs: u64,

    /// Seconds of silence after which an SSE keep-alive comment is sent.
    #[arg(long, env = wire::env::KEEPALIVE_SECS, default_value_t = 10)]
    pub keepalive_secs: u64,

    /// Largest body of `PUT /files` (bytes).
    #[arg(long, env = wire::env::MAX_FILE_BYTES, default_value_t = 64 * MIB)]
    pub max_file_bytes: u64,

    /// Largest body of `PUT /archive` (bytes).
    #[arg(long, env = wire::env::MAX_ARCHIVE_BYTES, default_value_t = 512 * MIB)]
    pub max_archive_bytes: u64,

    /// Largest body of `POST /execute` (bytes; includes `stdin`).
    #[arg(long, env = wire::env::MAX_REQUEST_BYTES, default_value_t = 16 * MIB)]
    pub max_request_bytes: u64,

    /// Most entries `GET /manifest` walks (above it: 413).
    #[arg(
        long,
        env = wire::env::MAX_MANIFEST_ENTRIES,
        default_value_t = 1_000_000
    )]
    pub max_manifest_entries: u64,

    /// Directory for buffering uploaded archives (default: the system temp dir).
    #[arg(long, env = wire::env::TMP_DIR)]
    pub tmp_dir: Option<PathBuf>,

    /// Seconds in-flight requests get to finish on SIGTERM before the agent exits.
    #[arg(
        long,
        env = wire::env::SHUTDOWN_GRACE_SECS,
        default_value_t = 10
    )]
    pub shutdown_grace_secs: u64,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `agent=debug`.
    #[arg(long, env = wire::env::LOG, default_value = "info")]
    pub log: String,

    /// Log format on stderr.
    #[arg(
        long,
        env = wire::env::LOG_FORMAT,
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// A configuration that cannot work, found at start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("WORKSPACE_AGENT_ROOT {path}: {reason}")]
    Root { path: PathBuf, reason: String },
    #[error("WORKSPACE_AGENT_TMP_DIR {path}: {reason}")]
    TmpDir { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// The defaults, with `root` as the workspace root (used by tests and embedders;
    /// the binary parses flags and environment instead).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Config {
            listen: ListenAddr::Unix(PathBuf::from("/run/workspace/agent.sock")),
            socket_mode: SocketMode(0o660),
            root: root.into(),
            relay_listen: RelayListen::Off,
            proxy_socket: PathBuf::from(DEFAULT_PROXY_SOCKET),
            claude_path: "claude".into(),
            claude_args: ShellArgs::default(),
            default_timeout_secs: 600,
            max_timeout_secs: 3600,
            keepalive_secs: 10,
            max_file_bytes: 64 * MIB,
            max_archive_bytes: 512 * MIB,
            max_request_bytes: 16 * MIB,
            max_manifest_entries: 1_000_000,
            tmp_dir: None,
            shutdown_grace_secs: 10,
            log: "info".into(),
            log_format: LogFormat::Text,
        }
    }

    /// Checks the configuration and canonicalises `root`. Call once at start.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let root = std::fs::canonicalize(&self.root).map_err(|e| ConfigError::Root {
            path: self.root.clone(),
            reason: e.to_string(),
        })?;
        if !root.is_dir() {
            return Err(ConfigError::Root {
                path: self.root.clone(),
                reason: "not a directory".into(),
            });
        }
        self.root = root;
        if let Some(tmp) = &self.tmp_dir {
            if !tmp.is_dir() {
                return Err(ConfigError::TmpDir {
                    path: tmp.clone(),
                    reason: "not an existing directory".into(),
                });
            }
        }
        let positive = [
            (
                "WORKSPACE_AGENT_DEFAULT_TIMEOUT_SECS",
                self.default_timeout_secs,
            ),
            ("WORKSPACE_AGENT_MAX_TIMEOUT_SECS", self.max_timeout_secs),
            ("WORKSPACE_AGENT_KEEPALIVE_SECS", self.keepalive_secs),
            ("WORKSPACE_AGENT_MAX_FILE_BYTES", self.max_file_bytes),
            ("WORKSPACE_AGENT_MAX_ARCHIVE_BYTES", self.max_archive_bytes),
            ("WORKSPACE_AGENT_MAX_REQUEST_BYTES", self.max_request_bytes),
            (
                "WORKSPACE_AGENT_MAX_MANIFEST_ENTRIES",
                self.max_manifest_entries,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be greater than 0"
                )));
            }
        }
        if self.max_timeout_secs > MAX_TIMEOUT_CAP_SECS {
            return Err(ConfigError::Invalid(format!(
                "WORKSPACE_AGENT_MAX_TIMEOUT_SECS must be at most {MAX_TIMEOUT_CAP_SECS}"
            )));
        }
        if self.default_timeout_secs > self.max_timeout_secs {
            return Err(ConfigError::Invalid(format!(
                "WORKSPACE_AGENT_DEFAULT_TIMEOUT_SECS ({}) exceeds WORKSPACE_AGENT_MAX_TIMEOUT_SECS ({})",
                self.default_timeout_secs, self.max_timeout_secs
            )));
        }
        if self.claude_path.is_empty() {
            return Err(ConfigError::Invalid(
                "WORKSPACE_AGENT_CLAUDE_PATH must not be empty".into(),
            ));
        }
        if let ListenAddr::Unix(p) = &self.listen {
            if p.starts_with(&self.root) {
                return Err(ConfigError::Invalid(format!(
                    "the API socket {} must not live inside the workspace root {}",
                    p.display(),
                    self.root.display()
                )));
            }
        }
        Ok(())
    }

    /// Directory for temporary upload buffers.
    pub fn tmp_dir(&self) -> PathBuf {
        self.tmp_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_and_relay() {
        assert_eq!(
            "unix:/run/x.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/run/x.sock".into())
        );
        assert_eq!(
            "tcp:0.0.0.0:9000".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("0.0.0.0:9000".parse().unwrap())
        );
        assert!("unix:rel.sock".parse::<ListenAddr>().is_err());
        assert!("9000".parse::<ListenAddr>().is_err());
        assert_eq!("off".parse::<RelayListen>().unwrap(), RelayListen::Off);
        assert!("127.0.0.1".parse::<RelayListen>().is_err());
        assert_eq!(
            "--a 'b c'".parse::<ShellArgs>().unwrap(),
            ShellArgs(vec!["--a".into(), "b c".into()])
        );
        assert!("'open".parse::<ShellArgs>().is_err());
        assert_eq!("660".parse::<SocketMode>().unwrap(), SocketMode(0o660));
        assert!("999".parse::<SocketMode>().is_err());
    }

    #[test]
    fn validation_catches_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::with_root(dir.path());
        c.validate().unwrap();
        let mut c = Config::with_root(dir.path().join("missing"));
        assert!(matches!(c.validate(), Err(ConfigError::Root { .. })));
        let mut c = Config::with_root(dir.path());
        c.default_timeout_secs = 10_000;
        assert!(c.validate().unwrap_err().to_string().contains("exceeds"));
        let mut c = Config::with_root(dir.path());
        c.max_file_bytes = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn env_names_are_the_documented_ones() {
        let cli = Cli::try_parse_from(["workspace-agent", "probe"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Probe)));
        let cmd = <Cli as clap::CommandFactory>::command();
        let envs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        for name in [
            "WORKSPACE_AGENT_LISTEN",
            "WORKSPACE_AGENT_ROOT",
            "WORKSPACE_AGENT_RELAY_LISTEN",
            "WORKSPACE_AGENT_PROXY_SOCKET",
            "WORKSPACE_AGENT_CLAUDE_PATH",
            "WORKSPACE_AGENT_CLAUDE_ARGS",
            "WORKSPACE_AGENT_DEFAULT_TIMEOUT_SECS",
            "WORKSPACE_AGENT_MAX_TIMEOUT_SECS",
            "WORKSPACE_AGENT_LOG",
        ] {
            assert!(envs.iter().any(|e| e == name), "{name} missing");
        }
    }
}
