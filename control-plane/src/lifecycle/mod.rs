//! Workspace lifecycle: finding or making the one workspace of a (tenant,
//! conversation) — warm claim, cold create, restore from the last sync, replacement of
//! a dead one — and destroying workspaces through one path (`destroy`) with one set of
//! side effects, whoever asks (API delete, reaper, pool, reconcile, shutdown).
//!
//! Concurrent first requests for a conversation create exactly one workspace: the
//! conversation lock ([`locks`]) plus bind-if-absent as the final arbiter. This
//! module never runs an execution (that is `execution`) and never decides when to
//! sync (that is `sync::coordinator`).

mod create;
mod destroy;
pub mod locks;

use std::{sync::Arc, time::Duration};

use tracing::warn;
use wire::WorkspaceSource;

pub use destroy::SyncFirst;

use crate::{
    agent_client::AgentClient,
    error::{Error, Result},
    fleet::Fleet,
    store::{ConversationKey, WorkspaceRecord},
    telemetry::RequestContext,
    time_util::now_ms,
};

/// A workspace ready to serve, and how it came to serve this request.
#[derive(Debug, Clone)]
pub struct Acquired {
    pub record: WorkspaceRecord,
    pub source: WorkspaceSource,
    /// Set when the conversation's previous workspace was found dead and replaced.
    pub replaced: Option<String>,
    /// When the files restored into a new workspace were synced.
    pub restored_from: Option<String>,
}

impl Acquired {
    pub(crate) fn existing(record: WorkspaceRecord) -> Self {
        Self {
            record,
            source: WorkspaceSource::Existing,
            replaced: None,
            restored_from: None,
        }
    }
}

/// The lifecycle service.
pub struct Lifecycle {
    fleet: Arc<Fleet>,
    locks: locks::ConversationLocks,
}

impl Lifecycle {
    pub fn new(fleet: Arc<Fleet>) -> Self {
        Self {
            fleet,
            locks: locks::ConversationLocks::default(),
        }
    }

    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Runs `f` holding the conversation's lock.
    async fn locked<T, F, Fut>(&self, key: &ConversationKey, f: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let wait = Duration::from_secs(self.fleet.cfg.agent_ready_timeout_secs + 30);
        self.locks
            .with(&self.fleet.store, &self.fleet.instance_id, key, wait, f)
            .await
    }

    /// The conversation's live workspace, if one is bound (without creating one).
    pub async fn existing(&self, key: &ConversationKey) -> Result<Option<WorkspaceRecord>> {
        let Some(ws) = self.fleet.store.binding(key).await? else {
            return Ok(None);
        };
        Ok(self.fleet.store.record(&ws).await?)
    }

    /// Finds the conversation's workspace or creates it, and waits until its agent is
    /// healthy. A bound workspace whose agent does not answer and whose container is
    /// gone is replaced (source `recovered`).
    pub async fn acquire(&self, key: &ConversationKey, ctx: &RequestContext) -> Result<Acquired> {
        if let Some(rec) = self.existing(key).await? {
            if AgentClient::new(rec.endpoint.clone())
                .health()
                .await
                .is_ok()
            {
                return Ok(Acquired::existing(rec));
            }
        }
        self.locked(key, || self.acquire_locked(key, None, ctx))
            .await
    }

    /// The locked path, for a caller that already knows the fast path cannot serve:
    /// no workspace was bound, or a call to `failed` (the bound one) could not reach
    /// its agent. Under the lock, a workspace that is still starting or already
    /// replaced by another request is used; a dead one is replaced; none is made.
    pub async fn settle(
        &self,
        key: &ConversationKey,
        failed: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Acquired> {
        self.locked(key, || self.acquire_locked(key, failed, ctx))
            .await
    }

    async fn acquire_locked(
        &self,
        key: &ConversationKey,
        failed: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Acquired> {
        let mut replaced = None;
        if let Some(rec) = self.existing(key).await? {
            let client = AgentClient::new(rec.endpoint.clone());
            let suspect = failed == Some(rec.workspace_id.as_str());
            if !suspect && client.health().await.is_ok() {
                return Ok(Acquired::existing(rec));
            }
            // Not answering: still starting, or dead?
            let alive = self
                .fleet
                .runtime
                .inspect(&rec.workspace_id)
                .await?
                .map(|w| w.running)
                .unwrap_or(false);
            let wait = Duration::from_secs(self.fleet.cfg.agent_ready_timeout_secs);
            if alive && client.wait_healthy(wait).await.is_ok() {
                return Ok(Acquired::existing(rec));
            }
            warn!(
                tenant_id = %key.tenant_id,
                conversation_id = %key.conversation_id,
                workspace_id = %rec.workspace_id,
                "workspace is dead; replacing it"
            );
            self.found_dead(&rec, "request", "crashed", ctx).await?;
            replaced = Some(rec.workspace_id);
        }
        let record = match self.claim_warm(key, ctx).await? {
            Some(rec) => rec,
            None => self.create_bound(key, ctx).await?,
        };
        let source = if replaced.is_some() {
            WorkspaceSource::Recovered
        } else {
            record.source
        };
        // A new workspace starts from the conversation's last sync. If that fails it
        // is not used: syncing an empty workspace would overwrite the stored files.
        let restored_from = match &self.fleet.sync {
            Some(sync) => match sync.restore(key, &record, ctx).await {
                Ok(at) => at,
                Err(e) => {
                    warn!(workspace_id = %record.workspace_id, error = %e, "restore failed; discarding the workspace");
                    let _ = self
                        .destroy(&record, "restore_failed", SyncFirst::No, ctx)
                        .await;
                    return Err(e);
                }
            },
            None => None,
        };
        Ok(Acquired {
            record,
            source,
            replaced,
            restored_from,
        })
    }

    /// The client of the conversation's existing workspace (file requests), recording
    /// activity.
    pub async fn client_for_existing(
        &self,
        key: &ConversationKey,
    ) -> Result<(WorkspaceRecord, AgentClient)> {
        let rec = self.existing(key).await?.ok_or(Error::WorkspaceNotFound)?;
        self.fleet.store.touch(&rec.workspace_id, now_ms()).await?;
        let client = AgentClient::new(rec.endpoint.clone());
        Ok((rec, client))
    }

    /// The client of the conversation's workspace, creating it if needed.
    pub async fn client_for(
        &self,
        key: &ConversationKey,
        ctx: &RequestContext,
    ) -> Result<(WorkspaceRecord, AgentClient)> {
        let acquired = self.acquire(key, ctx).await?;
        self.fleet
            .store
            .touch(&acquired.record.workspace_id, now_ms())
            .await?;
        let client = AgentClient::new(acquired.record.endpoint.clone());
        Ok((acquired.record, client))
    }

    /// Workspaces of one tenant.
    pub async fn list(&self, tenant_id: &str) -> Result<Vec<WorkspaceRecord>> {
        Ok(self
            .fleet
            .store
            .records()
            .await?
            .into_iter()
            .filter(|r| r.tenant_id.as_deref() == Some(tenant_id))
            .collect())
    }

    /// One workspace of a tenant by id (another tenant's is "not found").
    pub async fn get_by_id(&self, tenant_id: &str, workspace_id: &str) -> Result<WorkspaceRecord> {
        match self.fleet.store.record(workspace_id).await? {
            Some(r) if r.tenant_id.as_deref() == Some(tenant_id) => Ok(r),
            _ => Err(Error::WorkspaceNotFound),
        }
    }
}
