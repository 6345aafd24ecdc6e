//! State of the fleet behind one trait: conversation → workspace bindings, workspace
//! records, the warm-pool list and short-lived locks. The embedded default is
//! [`memory::MemoryStore`]; several control-plane replicas share a Redis store.
//!
//! Every operation that must be atomic across replicas is one trait method (bind if
//! absent, claim a pool member and bind it, compare-and-delete), so implementations
//! can make it atomic (a mutex in memory, a Lua script or `SET NX` in Redis).

#[cfg(test)]
pub(crate) mod conformance;
pub mod lease;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::runtime::Endpoint;

/// A workspace as the control plane knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    pub workspace_id: String,
    /// Owner; `None` while the workspace waits unbound in the warm pool.
    pub tenant_id: Option<String>,
    pub conversation_id: Option<String>,
    pub endpoint: Endpoint,
    pub created_at_ms: i64,
    pub last_active_ms: i64,
    pub last_synced_ms: Option<i64>,
    /// How the current binding came to be (`cold`, `warm`, `recovered`).
    pub source: wire::WorkspaceSource,
    #[serde(default)]
    pub state: WorkspaceState,
    /// The control-plane instance that created it (drains its own pool members).
    #[serde(default)]
    pub created_by: String,
    /// Host path of the Unix socket on which the control plane serves this
    /// workspace's egress proxy (local runtime); `None` when a sidecar does (ECS).
    #[serde(default)]
    pub egress_socket: Option<std::path::PathBuf>,
}

/// Where a workspace is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceState {
    /// Reserved: its container is being created.
    Starting,
    /// Healthy and unbound, waiting in the warm pool.
    Pooled,
    /// Bound to a conversation.
    #[default]
    Bound,
}

/// Warm-pool sizing, shared by every replica through the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSizing {
    pub min: usize,
    pub max: usize,
}

/// Result of claiming a pool member for a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The conversation was already bound (to this workspace).
    AlreadyBound(String),
    /// A pool member was taken and bound to the conversation.
    Claimed(String),
    /// The pool is empty.
    Empty,
}

/// Key of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationKey {
    pub tenant_id: String,
    pub conversation_id: String,
}

impl ConversationKey {
    pub fn new(tenant_id: impl Into<String>, conversation_id: impl Into<String>) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            conversation_id: conversation_id.into(),
        }
    }
}

impl std::fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant_id, self.conversation_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt state for {key}: {message}")]
    Corrupt { key: String, message: String },
}

#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// A short name for logs and `/health/ready` (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// Checks the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The workspace bound to a conversation, if any.
    async fn binding(&self, key: &ConversationKey) -> Result<Option<String>, StoreError>;

    /// Binds `workspace_id` to the conversation unless it is already bound; returns
    /// the workspace bound afterwards (the given one, or the one that was there).
    async fn bind_if_absent(
        &self,
        key: &ConversationKey,
        workspace_id: &str,
    ) -> Result<String, StoreError>;

    /// Removes the binding only if it still points at `workspace_id`.
    async fn unbind(&self, key: &ConversationKey, workspace_id: &str) -> Result<bool, StoreError>;

    /// All bindings (for reconciliation and listing).
    async fn bindings(&self) -> Result<Vec<(ConversationKey, String)>, StoreError>;

    async fn put_record(&self, record: &WorkspaceRecord) -> Result<(), StoreError>;
    async fn record(&self, workspace_id: &str) -> Result<Option<WorkspaceRecord>, StoreError>;
    async fn delete_record(&self, workspace_id: &str) -> Result<(), StoreError>;
    async fn records(&self) -> Result<Vec<WorkspaceRecord>, StoreError>;

    /// Marks activity on a workspace (any API call). Monotonic: never moves back.
    async fn touch(&self, workspace_id: &str, now_ms: i64) -> Result<(), StoreError>;

    /// Records that the workspace's files were synced at `at_ms`. Monotonic and
    /// independent of [`StateStore::touch`]: neither can roll the other back, and a
    /// [`StateStore::put_record`] never moves either back. A no-op for a record that
    /// no longer exists.
    async fn mark_synced(&self, workspace_id: &str, at_ms: i64) -> Result<(), StoreError>;

    /// Inserts `record` only if fewer than `cap` records exist; atomic, so a fleet-wide
    /// workspace cap holds across replicas (records of starting workspaces count).
    async fn reserve(&self, record: &WorkspaceRecord, cap: usize) -> Result<bool, StoreError>;

    /// Appends a healthy, unbound workspace to the warm pool.
    async fn pool_push(&self, workspace_id: &str) -> Result<(), StoreError>;

    /// Atomically: if the conversation is bound, says so; otherwise pops a pool member
    /// and binds it to the conversation. A member is never handed out twice.
    async fn pool_claim(&self, key: &ConversationKey) -> Result<Claim, StoreError>;

    /// Removes a member from the pool; `false` if it was not there.
    async fn pool_remove(&self, workspace_id: &str) -> Result<bool, StoreError>;

    /// The pool's members, oldest first.
    async fn pool_members(&self) -> Result<Vec<String>, StoreError>;

    /// The sizing set at run time, if any (overrides the configured one).
    async fn pool_sizing(&self) -> Result<Option<PoolSizing>, StoreError>;
    async fn set_pool_sizing(&self, sizing: PoolSizing) -> Result<(), StoreError>;

    /// The egress policy set for a conversation at run time (JSON of
    /// `proxy_sidecar::PolicyConfig`), if any.
    async fn conversation_policy(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<String>, StoreError>;
    /// Sets (or, with `None`, clears) a conversation's egress policy.
    async fn set_conversation_policy(
        &self,
        key: &ConversationKey,
        policy: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Takes a lock for `ttl_ms` if free (or already held by `owner`).
    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool, StoreError>;
    /// Releases a lock held by `owner`.
    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError>;
}
