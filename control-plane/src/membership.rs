//! Membership: which control-plane instances are alive (a liveness mark each renews in
//! the store), settling what dead instances left behind (workspaces reserved
//! mid-create), and reconciling the store with the runtime at start (adopting running
//! workspaces, dropping records of vanished ones, removing stopped containers and
//! unbound orphans). Every removal goes through the lifecycle's destroy path.

use std::{collections::HashSet, sync::Arc};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wire::WorkspaceSource;

use crate::{
    agent_client::AgentClient,
    error::Result,
    fleet::{Fleet, INSTANCE_HEARTBEAT, INSTANCE_TTL_MS},
    lifecycle::{Lifecycle, SyncFirst},
    store::{ConversationKey, WorkspaceRecord, WorkspaceState},
    telemetry::RequestContext,
    time_util::now_ms,
};

/// What start-up reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub adopted: usize,
    pub kept: usize,
    pub removed_containers: usize,
    pub dropped_records: usize,
}

/// The membership service.
pub struct Membership {
    lifecycle: Arc<Lifecycle>,
}

impl Membership {
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        Self { lifecycle }
    }

    fn fleet(&self) -> &Arc<Fleet> {
        self.lifecycle.fleet()
    }

    /// Marks this instance alive in the store (renewed every [`INSTANCE_HEARTBEAT`]).
    pub async fn heartbeat(&self) -> Result<()> {
        let f = self.fleet();
        let name = format!("instance:{}", f.instance_id);
        f.store
            .try_lock(&name, &f.instance_id, INSTANCE_TTL_MS)
            .await?;
        Ok(())
    }

    /// Renews this instance's liveness mark until `stop`.
    pub fn spawn_heartbeat(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            crate::periodic::every(INSTANCE_HEARTBEAT, &stop, || async {
                if let Err(e) = self.heartbeat().await {
                    warn!(error = %e, "instance heartbeat failed");
                }
            })
            .await
        })
    }

    /// Whether the instance `id` renewed its liveness mark recently.
    pub async fn instance_alive(&self, id: &str) -> Result<bool> {
        let f = self.fleet();
        if id == f.instance_id {
            return Ok(true);
        }
        if id.is_empty() {
            return Ok(false);
        }
        let name = format!("instance:{id}");
        let probe = format!("probe:{}", f.instance_id);
        // Taking the mark succeeds only when nobody holds it.
        if f.store.try_lock(&name, &probe, 1).await? {
            f.store.unlock(&name, &probe).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Settles reservations left by dead instances (killed mid-create): a workspace
    /// that came up healthy is adopted (into the pool, or bound to its conversation);
    /// anything else is removed. Returns how many were settled.
    pub async fn resolve_abandoned_starts(&self) -> Result<usize> {
        let f = self.fleet();
        let ctx = RequestContext::system("membership");
        let mut n = 0;
        for mut rec in f.store.records().await? {
            if rec.state != WorkspaceState::Starting || self.instance_alive(&rec.created_by).await?
            {
                continue;
            }
            n += 1;
            let live = f.runtime.inspect(&rec.workspace_id).await?;
            let healthy = match &live {
                Some(w) if w.running => AgentClient::new(w.endpoint.clone()).health().await.is_ok(),
                _ => false,
            };
            let Some(w) = live.filter(|_| healthy) else {
                info!(workspace_id = %rec.workspace_id, "removing a workspace abandoned mid-create");
                self.lifecycle
                    .destroy(&rec, "abandoned", SyncFirst::No, &ctx)
                    .await?;
                continue;
            };
            rec.endpoint = w.endpoint;
            rec.egress_socket = w.egress_socket;
            rec.created_at_ms = w.created_at_ms;
            match (&rec.tenant_id, &rec.conversation_id) {
                (Some(t), Some(c)) => {
                    let key = ConversationKey::new(t, c);
                    rec.state = WorkspaceState::Bound;
                    f.store.put_record(&rec).await?;
                    if f.store.bind_if_absent(&key, &rec.workspace_id).await? != rec.workspace_id {
                        self.lifecycle
                            .destroy(&rec, "duplicate", SyncFirst::No, &ctx)
                            .await?;
                    }
                }
                _ => {
                    rec.state = WorkspaceState::Pooled;
                    f.store.put_record(&rec).await?;
                    f.store.pool_push(&rec.workspace_id).await?;
                }
            }
            info!(workspace_id = %rec.workspace_id, "adopted a workspace abandoned mid-create");
        }
        Ok(n)
    }

    /// Reconciles the store with the runtime once (at start): workspaces that run
    /// with this fleet's labels are adopted (their bindings restored from labels when
    /// the store has none, e.g. with the in-memory store after a restart); records
    /// whose workspace is gone are dropped; stopped containers and unbound orphans
    /// are removed.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let f = self.fleet();
        let ctx = RequestContext::system("reconcile");
        let mut report = ReconcileReport::default();
        // Records first, then containers: a record that is not Starting now has its
        // container already, so it is in the list below unless it vanished (another
        // replica may be creating workspaces meanwhile).
        let records = f.store.records().await?;
        let live = f.runtime.list().await?;
        let live_ids: HashSet<_> = live.iter().map(|w| w.workspace_id.clone()).collect();

        for ws in &live {
            let record = f.store.record(&ws.workspace_id).await?;
            // A creation in flight on another replica (its container may not run yet);
            // the reaper settles reservations whose creator died.
            if record
                .as_ref()
                .is_some_and(|r| r.state == WorkspaceState::Starting)
            {
                report.kept += 1;
                continue;
            }
            if !ws.running {
                info!(workspace_id = %ws.workspace_id, "removing a stopped workspace container");
                let done = match &record {
                    Some(rec) => {
                        self.lifecycle
                            .found_dead(rec, "reconcile", "stopped", &ctx)
                            .await
                    }
                    None => self.lifecycle.destroy_unrecorded(ws, "stopped", &ctx).await,
                };
                if let Err(e) = done {
                    warn!(workspace_id = %ws.workspace_id, error = %e, "removal during reconciliation failed");
                }
                report.removed_containers += 1;
                continue;
            }
            if record.is_some() {
                report.kept += 1;
                continue;
            }
            let (Some(t), Some(c)) = (&ws.tenant_id, &ws.conversation_id) else {
                info!(workspace_id = %ws.workspace_id, "removing an unbound orphan workspace");
                if let Err(e) = self.lifecycle.destroy_unrecorded(ws, "orphan", &ctx).await {
                    warn!(workspace_id = %ws.workspace_id, error = %e, "removal during reconciliation failed");
                }
                report.removed_containers += 1;
                continue;
            };
            let key = ConversationKey::new(t, c);
            let healthy = AgentClient::new(ws.endpoint.clone()).health().await.is_ok();
            let bound = f.store.bind_if_absent(&key, &ws.workspace_id).await?;
            if bound != ws.workspace_id || !healthy {
                info!(workspace_id = %ws.workspace_id, healthy, "removing a duplicate or unhealthy workspace");
                // Unbinds it too, but only where the binding still names it.
                if let Err(e) = self
                    .lifecycle
                    .destroy_unrecorded(ws, "duplicate", &ctx)
                    .await
                {
                    warn!(workspace_id = %ws.workspace_id, error = %e, "removal during reconciliation failed");
                }
                report.removed_containers += 1;
                continue;
            }
            f.store
                .put_record(&WorkspaceRecord {
                    workspace_id: ws.workspace_id.clone(),
                    tenant_id: Some(t.clone()),
                    conversation_id: Some(c.clone()),
                    endpoint: ws.endpoint.clone(),
                    created_at_ms: ws.created_at_ms,
                    last_active_ms: now_ms(),
                    last_synced_ms: None,
                    source: WorkspaceSource::Cold,
                    state: WorkspaceState::Bound,
                    created_by: String::new(),
                    egress_socket: ws.egress_socket.clone(),
                })
                .await?;
            info!(workspace_id = %ws.workspace_id, tenant_id = %t, conversation_id = %c,
                "adopted a running workspace");
            report.adopted += 1;
        }

        for rec in records {
            // A reservation may belong to a creation in flight on another replica; the
            // reaper removes stale ones after a grace period.
            if rec.state == WorkspaceState::Starting || live_ids.contains(&rec.workspace_id) {
                continue;
            }
            if f.store.record(&rec.workspace_id).await?.is_none() {
                continue; // removed meanwhile
            }
            info!(workspace_id = %rec.workspace_id, "dropping the record of a vanished workspace");
            self.lifecycle
                .found_dead(&rec, "reconcile", "vanished", &ctx)
                .await?;
            report.dropped_records += 1;
        }
        Ok(report)
    }
}
