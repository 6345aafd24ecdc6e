//! Start-up reconciliation between the state store and the runtime: workspaces that
//! run with this fleet's labels are adopted (their bindings restored from labels when
//! the store has none, e.g. with the in-memory store after a restart); records whose
//! workspace is gone are dropped; stopped containers and unbound orphans are removed.

use tracing::{info, warn};

use wire::WorkspaceSource;

use crate::{
    agent_client::AgentClient,
    error::Result,
    runtime::Runtime,
    store::{ConversationKey, StateStore, WorkspaceRecord},
    time_util::now_ms,
};

/// What reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub adopted: usize,
    pub kept: usize,
    pub removed_containers: usize,
    pub dropped_records: usize,
}

/// Reconciles once.
pub async fn reconcile(runtime: &dyn Runtime, store: &dyn StateStore) -> Result<Report> {
    let mut report = Report::default();
    let live = runtime.list().await?;
    let live_ids: std::collections::HashSet<_> =
        live.iter().map(|w| w.workspace_id.clone()).collect();

    for ws in &live {
        let record = store.record(&ws.workspace_id).await?;
        if !ws.running {
            info!(workspace_id = %ws.workspace_id, "removing a stopped workspace container");
            remove(runtime, store, &ws.workspace_id, record.as_ref()).await;
            report.removed_containers += 1;
            continue;
        }
        if record.is_some() {
            report.kept += 1;
            continue;
        }
        match (&ws.tenant_id, &ws.conversation_id) {
            (Some(t), Some(c)) => {
                let key = ConversationKey::new(t, c);
                let healthy = AgentClient::new(ws.endpoint.clone()).health().await.is_ok();
                let bound = store.bind_if_absent(&key, &ws.workspace_id).await?;
                if bound != ws.workspace_id || !healthy {
                    info!(workspace_id = %ws.workspace_id, healthy, "removing a duplicate or unhealthy workspace");
                    remove(runtime, store, &ws.workspace_id, None).await;
                    if bound == ws.workspace_id {
                        store.unbind(&key, &ws.workspace_id).await?;
                    }
                    report.removed_containers += 1;
                    continue;
                }
                let now = now_ms();
                store
                    .put_record(&WorkspaceRecord {
                        workspace_id: ws.workspace_id.clone(),
                        tenant_id: Some(t.clone()),
                        conversation_id: Some(c.clone()),
                        endpoint: ws.endpoint.clone(),
                        created_at_ms: ws.created_at_ms,
                        last_active_ms: now,
                        last_synced_ms: None,
                        source: WorkspaceSource::Cold,
                        state: crate::store::WorkspaceState::Bound,
                        created_by: String::new(),
                        egress_socket: ws.egress_socket.clone(),
                    })
                    .await?;
                info!(
                    workspace_id = %ws.workspace_id,
                    tenant_id = %t,
                    conversation_id = %c,
                    "adopted a running workspace"
                );
                report.adopted += 1;
            }
            _ => {
                info!(workspace_id = %ws.workspace_id, "removing an unbound orphan workspace");
                remove(runtime, store, &ws.workspace_id, None).await;
                report.removed_containers += 1;
            }
        }
    }

    for rec in store.records().await? {
        // A reservation may belong to a creation in flight on another replica; the
        // reaper removes stale ones after a grace period.
        if rec.state == crate::store::WorkspaceState::Starting {
            continue;
        }
        if !live_ids.contains(&rec.workspace_id) {
            info!(workspace_id = %rec.workspace_id, "dropping the record of a vanished workspace");
            if let (Some(t), Some(c)) = (&rec.tenant_id, &rec.conversation_id) {
                store
                    .unbind(&ConversationKey::new(t, c), &rec.workspace_id)
                    .await?;
            }
            store.delete_record(&rec.workspace_id).await?;
            report.dropped_records += 1;
        }
    }
    Ok(report)
}

async fn remove(
    runtime: &dyn Runtime,
    store: &dyn StateStore,
    workspace_id: &str,
    record: Option<&WorkspaceRecord>,
) {
    if let Err(e) = runtime.destroy(workspace_id).await {
        warn!(workspace_id, error = %e, "destroy during reconciliation failed");
    }
    if let Some(rec) = record {
        if let (Some(t), Some(c)) = (&rec.tenant_id, &rec.conversation_id) {
            let _ = store
                .unbind(&ConversationKey::new(t, c), workspace_id)
                .await;
        }
        let _ = store.delete_record(workspace_id).await;
    }
}
