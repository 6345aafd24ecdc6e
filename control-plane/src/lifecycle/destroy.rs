//! The only way a workspace is destroyed, whoever asks (API delete, reaper, pool trim
//! and drain, reconcile, shutdown): optionally sync first, then unbind, leave the pool,
//! release the egress listener, destroy in the runtime, forget the record and the sync
//! state, and emit one `Destroyed` event. A container of this fleet without a record
//! (an orphan, a duplicate found at start) goes through [`Lifecycle::destroy_unrecorded`],
//! which shares the same tail.

use tracing::warn;

use super::Lifecycle;
use crate::{
    agent_client::AgentClient,
    error::Result,
    runtime::RuntimeWorkspace,
    store::{ConversationKey, WorkspaceRecord},
    telemetry::{FleetEvent, RequestContext, Subject, SyncTrigger},
};

/// Whether files are saved before a destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFirst {
    /// Nothing to save (an unbound pool member, a dead or duplicate workspace).
    No,
    /// Save first; if that fails the workspace stays (and the error is returned),
    /// unless its agent is gone, in which case nothing more can be saved and it is
    /// destroyed with `destroyed_without_sync`.
    Required,
    /// Try to save; destroy whatever the outcome (a forced delete, a workspace past
    /// its absolute TTL and grace). A failed save is audited `destroyed_without_sync`;
    /// the last good stored files stay.
    BestEffort,
}

impl Lifecycle {
    /// Destroys one workspace (see the module comment).
    pub async fn destroy(
        &self,
        rec: &WorkspaceRecord,
        reason: &str,
        sync_first: SyncFirst,
        ctx: &RequestContext,
    ) -> Result<()> {
        let fleet = &self.fleet;
        let mut synced = true;
        let wants_sync = matches!(sync_first, SyncFirst::Required | SyncFirst::BestEffort);
        if let (true, Some(sync)) = (wants_sync, &fleet.sync) {
            if let Err(e) = sync.sync(rec, SyncTrigger::BeforeDestroy, ctx).await {
                let agent_alive = AgentClient::new(rec.endpoint.clone())
                    .health()
                    .await
                    .is_ok();
                if sync_first == SyncFirst::Required && agent_alive {
                    return Err(e);
                }
                warn!(workspace_id = %rec.workspace_id, error = %e, "destroying a workspace without a final sync");
                synced = false;
            }
        }
        let key = match (&rec.tenant_id, &rec.conversation_id) {
            (Some(t), Some(c)) => Some(ConversationKey::new(t, c)),
            _ => None,
        };
        if let Some(k) = &key {
            fleet.store.unbind(k, &rec.workspace_id).await?;
        }
        fleet.store.pool_remove(&rec.workspace_id).await?;
        if let Some(egress) = &fleet.egress {
            egress.release(&rec.workspace_id).await;
        }
        fleet.runtime.destroy(&rec.workspace_id).await?;
        fleet.store.delete_record(&rec.workspace_id).await?;
        if let (Some(sync), Some(k)) = (&fleet.sync, &key) {
            sync.forget(k);
        }
        fleet.telemetry.emit(
            &Subject::record(rec),
            ctx,
            FleetEvent::Destroyed {
                reason: reason.to_string(),
                synced,
            },
        );
        Ok(())
    }

    /// A workspace found dead (its container stopped or vanished, or its agent gone):
    /// counted as a crash wherever it is found, then destroyed.
    pub async fn found_dead(
        &self,
        rec: &WorkspaceRecord,
        found_by: &'static str,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<()> {
        self.fleet
            .telemetry
            .emit(&Subject::record(rec), ctx, FleetEvent::Crashed { found_by });
        self.destroy(rec, reason, SyncFirst::No, ctx).await
    }

    /// Destroys a container of this fleet that has no record (and drops the binding
    /// its labels name, if it still points at it).
    pub async fn destroy_unrecorded(
        &self,
        ws: &RuntimeWorkspace,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<()> {
        let fleet = &self.fleet;
        fleet.runtime.destroy(&ws.workspace_id).await?;
        if let (Some(t), Some(c)) = (&ws.tenant_id, &ws.conversation_id) {
            fleet
                .store
                .unbind(&ConversationKey::new(t, c), &ws.workspace_id)
                .await?;
        }
        fleet.telemetry.emit(
            &Subject {
                tenant_id: ws.tenant_id.clone(),
                conversation_id: ws.conversation_id.clone(),
                workspace_id: Some(ws.workspace_id.clone()),
            },
            ctx,
            FleetEvent::Destroyed {
                reason: reason.to_string(),
                synced: true,
            },
        );
        Ok(())
    }

    /// Destroys the conversation's workspace after saving its files (with `force`,
    /// even when saving fails); `false` if it had none.
    pub async fn delete(
        &self,
        key: &ConversationKey,
        force: bool,
        ctx: &RequestContext,
    ) -> Result<bool> {
        let (sync_first, reason) = if force {
            (SyncFirst::BestEffort, "force_deleted")
        } else {
            (SyncFirst::Required, "deleted")
        };
        self.locked(key, || async {
            match self.existing(key).await? {
                Some(rec) => {
                    self.destroy(&rec, reason, sync_first, ctx).await?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await
    }

    /// Destroys every workspace of this fleet (shutdown with clean-up).
    pub async fn destroy_all(&self, ctx: &RequestContext) -> Result<usize> {
        let fleet = &self.fleet;
        let mut n = 0;
        for ws in fleet.runtime.list().await? {
            let done = match fleet.store.record(&ws.workspace_id).await? {
                Some(rec) => self.destroy(&rec, "shutdown", SyncFirst::No, ctx).await,
                None => self.destroy_unrecorded(&ws, "shutdown", ctx).await,
            };
            match done {
                Ok(()) => n += 1,
                Err(e) => warn!(workspace_id = %ws.workspace_id, error = %e, "destroy failed"),
            }
        }
        Ok(n)
    }
}
