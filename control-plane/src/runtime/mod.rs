//! Where workspaces run, behind one trait: create a hardened workspace, destroy it,
//! list the ones this fleet owns, inspect one. [`docker::DockerRuntime`] runs them on
//! a Docker engine; the ECS runtime implements the same trait.

pub mod agent_env;
pub mod docker;

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How the control plane reaches a workspace's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "address", rename_all = "snake_case")]
pub enum Endpoint {
    /// The agent's Unix socket on this host (local Docker runtime).
    Unix(PathBuf),
    /// `host:port` of the agent over TCP (ECS: the task's ENI address, port 9000).
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSpec {
    pub workspace_id: String,
    /// Owner at creation; `None` for an unbound warm-pool member.
    pub tenant_id: Option<String>,
    pub conversation_id: Option<String>,
}

/// A workspace as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeWorkspace {
    pub workspace_id: String,
    /// The runtime's own id (container id, task ARN).
    pub runtime_id: String,
    pub tenant_id: Option<String>,
    pub conversation_id: Option<String>,
    pub created_at_ms: i64,
    pub running: bool,
    pub endpoint: Endpoint,
    /// Per-workspace host directory holding the agent and proxy sockets, if any.
    pub socket_dir: Option<PathBuf>,
    /// Where the control plane serves this workspace's egress proxy (local runtime);
    /// `None` when the workspace brings its own (the ECS sidecar).
    pub egress_socket: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime unavailable: {0}")]
    Unavailable(String),
    #[error("creating workspace {workspace_id}: {message}")]
    Create {
        workspace_id: String,
        message: String,
    },
    #[error("destroying workspace {workspace_id}: {message}")]
    Destroy {
        workspace_id: String,
        message: String,
    },
    #[error("runtime: {0}")]
    Other(String),
}

#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `docker` or `ecs`.
    fn name(&self) -> &'static str;

    /// Checks the runtime answers (for `/health/ready`).
    async fn ping(&self) -> Result<(), RuntimeError>;

    /// Creates and starts a workspace; returns once it is started (its agent may still
    /// be starting: callers wait for the agent's health).
    async fn create(&self, spec: &WorkspaceSpec) -> Result<RuntimeWorkspace, RuntimeError>;

    /// Called once the workspace's agent answers: takes back from the sandbox whatever
    /// the agent needed writable to start (locally, the directory of its socket), so
    /// the sandbox can no longer replace the socket the control plane connects to or
    /// write files outside its own limits. A no-op where there is nothing to take.
    async fn seal(&self, _workspace_id: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Destroys a workspace and everything the runtime made for it. Destroying one
    /// that does not exist succeeds.
    async fn destroy(&self, workspace_id: &str) -> Result<(), RuntimeError>;

    /// Every workspace of this fleet, running or not.
    async fn list(&self) -> Result<Vec<RuntimeWorkspace>, RuntimeError>;

    /// One workspace, if it exists.
    async fn inspect(&self, workspace_id: &str) -> Result<Option<RuntimeWorkspace>, RuntimeError>;
}
