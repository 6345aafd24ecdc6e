//! The control plane's domain error, shared by the services and their parts; the
//! API maps it once to a status code and an error body (`api::error`).

use crate::{agent_client::AgentError, runtime::RuntimeError, store::StoreError};

/// Everything that can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid conversation id: must match ^[A-Za-z0-9._-]{{1,128}}$")]
    InvalidConversationId,
    #[error("{0}")]
    BadRequest(String),
    /// An execute request refused by the contract's one validator.
    #[error("{0}")]
    InvalidRequest(#[from] wire::Invalid),
    #[error("no workspace for this conversation")]
    WorkspaceNotFound,
    #[error("the workspace limit ({0}) is reached; try again later")]
    CapacityExhausted(usize),
    #[error("the workspace did not become ready within {0} s")]
    AgentNotReady(u64),
    #[error("{0}")]
    IncompatibleAgent(wire::VersionMismatch),
    #[error("the control plane is shutting down")]
    ShuttingDown,
    #[error("workspace runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    #[error("workspace agent: {0}")]
    Agent(#[from] AgentError),
    #[error("file sync: {0}")]
    Sync(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
