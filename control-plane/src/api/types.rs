//! Bodies of the API's own routes (the execute request, events and file metadata are
//! in `wire`, shared with the agent).

use serde::{Deserialize, Serialize};

use crate::{store::WorkspaceRecord, time_util::rfc3339};

/// A workspace as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    pub workspace_id: String,
    pub tenant_id: String,
    pub conversation_id: String,
    /// How its binding came to be: `cold`, `warm` or `recovered`.
    pub source: String,
    pub created_at: String,
    pub last_active_at: String,
    pub last_synced_at: Option<String>,
    pub running_executions: usize,
}

impl WorkspaceInfo {
    pub fn from_record(r: &WorkspaceRecord, running_executions: usize) -> Self {
        Self {
            workspace_id: r.workspace_id.clone(),
            tenant_id: r.tenant_id.clone().unwrap_or_default(),
            conversation_id: r.conversation_id.clone().unwrap_or_default(),
            source: r.source.as_str().to_string(),
            created_at: rfc3339(r.created_at_ms),
            last_active_at: rfc3339(r.last_active_ms),
            last_synced_at: r.last_synced_ms.map(rfc3339),
            running_executions,
        }
    }
}

/// Answer of `GET /v1/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceList {
    pub workspaces: Vec<WorkspaceInfo>,
}

/// Answer of a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: bool,
}

pub use crate::pool::PoolStatus;

/// Answer of `POST /v1/conversations/{id}/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    /// File objects uploaded (changed or new files).
    pub uploaded: u64,
    /// Objects deleted (files that disappeared).
    pub deleted: u64,
    pub bytes_uploaded: u64,
    /// Entries in the workspace (files, directories, symlinks).
    pub entries: u64,
    pub total_bytes: u64,
    pub duration_ms: u64,
    pub synced_at: String,
}
