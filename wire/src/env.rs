//! Names of the agent's environment variables: the agent reads them (its `config`),
//! the runtimes set them (Docker container env, ECS task definition), and the agent
//! strips every name with [`PREFIX`] from the environment of what it runs.

/// Every agent setting starts with this; such names are removed from executions' env.
pub const PREFIX: &str = "WORKSPACE_AGENT_";

/// `unix:<path>` or `<ip>:<port>` the agent's API listens on.
pub const LISTEN: &str = "WORKSPACE_AGENT_LISTEN";
/// Permission bits of the Unix socket (octal).
pub const SOCKET_MODE: &str = "WORKSPACE_AGENT_SOCKET_MODE";
/// The workspace root.
pub const ROOT: &str = "WORKSPACE_AGENT_ROOT";
/// Loopback address of the relay to the egress proxy (`HTTP_PROXY` of the sandbox).
pub const RELAY_LISTEN: &str = "WORKSPACE_AGENT_RELAY_LISTEN";
/// The egress proxy's Unix socket the relay forwards to.
pub const PROXY_SOCKET: &str = "WORKSPACE_AGENT_PROXY_SOCKET";
/// The Claude Code CLI.
pub const CLAUDE_PATH: &str = "WORKSPACE_AGENT_CLAUDE_PATH";
/// Extra CLI arguments (shell-words).
pub const CLAUDE_ARGS: &str = "WORKSPACE_AGENT_CLAUDE_ARGS";
pub const DEFAULT_TIMEOUT_SECS: &str = "WORKSPACE_AGENT_DEFAULT_TIMEOUT_SECS";
pub const MAX_TIMEOUT_SECS: &str = "WORKSPACE_AGENT_MAX_TIMEOUT_SECS";
pub const KEEPALIVE_SECS: &str = "WORKSPACE_AGENT_KEEPALIVE_SECS";
pub const MAX_FILE_BYTES: &str = "WORKSPACE_AGENT_MAX_FILE_BYTES";
pub const MAX_ARCHIVE_BYTES: &str = "WORKSPACE_AGENT_MAX_ARCHIVE_BYTES";
pub const MAX_REQUEST_BYTES: &str = "WORKSPACE_AGENT_MAX_REQUEST_BYTES";
pub const MAX_MANIFEST_ENTRIES: &str = "WORKSPACE_AGENT_MAX_MANIFEST_ENTRIES";
pub const TMP_DIR: &str = "WORKSPACE_AGENT_TMP_DIR";
pub const SHUTDOWN_GRACE_SECS: &str = "WORKSPACE_AGENT_SHUTDOWN_GRACE_SECS";
pub const LOG: &str = "WORKSPACE_AGENT_LOG";
pub const LOG_FORMAT: &str = "WORKSPACE_AGENT_LOG_FORMAT";

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_has_the_prefix() {
        for n in [
            super::LISTEN,
            super::SOCKET_MODE,
            super::ROOT,
            super::RELAY_LISTEN,
            super::PROXY_SOCKET,
            super::CLAUDE_PATH,
            super::CLAUDE_ARGS,
            super::DEFAULT_TIMEOUT_SECS,
            super::MAX_TIMEOUT_SECS,
            super::KEEPALIVE_SECS,
            super::MAX_FILE_BYTES,
            super::MAX_ARCHIVE_BYTES,
            super::MAX_REQUEST_BYTES,
            super::MAX_MANIFEST_ENTRIES,
            super::TMP_DIR,
            super::SHUTDOWN_GRACE_SECS,
            super::LOG,
            super::LOG_FORMAT,
        ] {
            assert!(n.starts_with(super::PREFIX), "{n}");
        }
    }
}
