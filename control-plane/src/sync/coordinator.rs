//! Sync coordination: *when* a conversation's files are synced — right after each
//! execution, debounced after a file-changing tool, on request, before a destroy, on
//! shutdown — and what every result does to the fleet: one telemetry event per sync
//! whatever triggered it (`file_sync_from_container`, the sync metrics), and a
//! monotonic `mark_synced` in the store (it can never roll back a concurrent activity
//! mark). Restores into a new workspace go through here too. The [`Syncer`] below
//! knows *how* to sync and restore; this module must never touch objects itself.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tracing::{info, warn};

use super::syncer::{SyncReport, Syncer};
use crate::{
    agent_client::AgentClient,
    error::{Error, Result},
    store::{ConversationKey, StateStore, WorkspaceRecord},
    telemetry::{FleetEvent, RequestContext, Subject, SyncTrigger, Telemetry},
};

/// A debounced sync waiting for its deadline.
struct Pending {
    deadline: tokio::time::Instant,
    record: WorkspaceRecord,
}

/// Decides when to sync and records every outcome.
pub struct SyncCoordinator {
    syncer: Arc<Syncer>,
    store: Arc<dyn StateStore>,
    telemetry: Telemetry,
    pending: Mutex<HashMap<ConversationKey, Pending>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key_of(rec: &WorkspaceRecord) -> Option<ConversationKey> {
    match (&rec.tenant_id, &rec.conversation_id) {
        (Some(t), Some(c)) => Some(ConversationKey::new(t, c)),
        _ => None,
    }
}

impl SyncCoordinator {
    pub fn new(syncer: Arc<Syncer>, store: Arc<dyn StateStore>, telemetry: Telemetry) -> Self {
        Self {
            syncer,
            store,
            telemetry,
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn syncer(&self) -> &Arc<Syncer> {
        &self.syncer
    }

    /// Syncs a bound workspace now; `None` for an unbound one (nothing to save).
    pub async fn sync(
        &self,
        rec: &WorkspaceRecord,
        trigger: SyncTrigger,
        ctx: &RequestContext,
    ) -> Result<Option<SyncReport>> {
        let Some(key) = key_of(rec) else {
            return Ok(None);
        };
        let subject = Subject::record(rec);
        let client = AgentClient::new(rec.endpoint.clone());
        match self.syncer.sync(&key, &client).await {
            Ok(report) => {
                let ms = (report.synced_at.unix_timestamp_nanos() / 1_000_000) as i64;
                if let Err(e) = self.store.mark_synced(&rec.workspace_id, ms).await {
                    warn!(workspace_id = %rec.workspace_id, error = %e, "recording the sync time failed");
                }
                self.telemetry.emit(
                    &subject,
                    ctx,
                    FleetEvent::Synced {
                        trigger,
                        uploaded: report.uploaded,
                        deleted: report.deleted,
                        bytes: report.bytes_uploaded,
                        duration: report.duration,
                    },
                );
                Ok(Some(report))
            }
            Err(e) => {
                warn!(workspace_id = %rec.workspace_id, trigger = trigger.as_str(), error = %e, "sync failed");
                self.telemetry.emit(
                    &subject,
                    ctx,
                    FleetEvent::SyncFailed {
                        trigger,
                        kind: e.kind(),
                        message: e.to_string(),
                    },
                );
                Err(Error::Sync(e.to_string()))
            }
        }
    }

    /// Syncs in the background (right after an execution).
    pub fn sync_soon(self: &Arc<Self>, rec: WorkspaceRecord, trigger: SyncTrigger) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this
                .sync(&rec, trigger, &RequestContext::system("sync"))
                .await;
        });
    }

    /// Schedules a sync `debounce_ms` from now; requests arriving before it runs push
    /// it back and are coalesced into one (the last record wins).
    pub fn schedule(self: &Arc<Self>, rec: &WorkspaceRecord) {
        let Some(key) = key_of(rec) else { return };
        let deadline = tokio::time::Instant::now() + self.syncer.config().debounce();
        {
            let mut pending = lock(&self.pending);
            if let Some(p) = pending.get_mut(&key) {
                p.deadline = deadline;
                p.record = rec.clone();
                return;
            }
            pending.insert(
                key.clone(),
                Pending {
                    deadline,
                    record: rec.clone(),
                },
            );
        }
        let this = self.clone();
        tokio::spawn(async move {
            let record = loop {
                let deadline = match lock(&this.pending).get(&key) {
                    Some(p) => p.deadline,
                    None => return, // forgotten meanwhile
                };
                tokio::time::sleep_until(deadline).await;
                let mut pending = lock(&this.pending);
                match pending.get(&key) {
                    Some(p) if p.deadline <= tokio::time::Instant::now() => {
                        break pending.remove(&key).map(|p| p.record);
                    }
                    Some(_) => continue,
                    None => return,
                }
            };
            if let Some(record) = record {
                let _ = this
                    .sync(
                        &record,
                        SyncTrigger::Scheduled,
                        &RequestContext::system("sync"),
                    )
                    .await;
            }
        });
    }

    /// Whether a scheduled sync is waiting for its debounce delay.
    pub fn is_scheduled(&self, key: &ConversationKey) -> bool {
        lock(&self.pending).contains_key(key)
    }

    /// Restores the conversation's synced files into a new workspace; returns when
    /// they were synced (`None` when nothing is stored).
    pub async fn restore(
        &self,
        key: &ConversationKey,
        rec: &WorkspaceRecord,
        ctx: &RequestContext,
    ) -> Result<Option<String>> {
        let subject = Subject::conversation(key, Some(&rec.workspace_id));
        let client = AgentClient::new(rec.endpoint.clone());
        match self.syncer.restore(key, &client).await {
            Ok(Some(report)) => {
                info!(workspace_id = %rec.workspace_id, files = report.files, bytes = report.bytes,
                    "restored the conversation's files");
                self.telemetry.emit(
                    &subject,
                    ctx,
                    FleetEvent::Restored {
                        files: report.files,
                        bytes: report.bytes,
                    },
                );
                Ok(report
                    .synced_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok())
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.telemetry.emit(
                    &subject,
                    ctx,
                    FleetEvent::RestoreFailed {
                        kind: e.kind(),
                        message: e.to_string(),
                    },
                );
                Err(Error::Sync(e.to_string()))
            }
        }
    }

    /// Drops what this process remembers of a conversation (its workspace is gone).
    pub fn forget(&self, key: &ConversationKey) {
        lock(&self.pending).remove(key);
        self.syncer.forget(key);
    }
}
