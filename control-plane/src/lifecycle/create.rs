//! Making workspaces: claiming a warm-pool member for a conversation (its tenant and
//! egress policy attached at claim time) and creating one under the fleet cap, for a
//! conversation or for the pool. On any failure nothing is left behind.

use std::time::{Duration, Instant};

use tracing::{info, warn, Instrument};
use wire::WorkspaceSource;

use super::{Lifecycle, SyncFirst};
use crate::{
    agent_client::AgentClient,
    error::{Error, Result},
    fleet::new_workspace_id,
    runtime::{Endpoint, WorkspaceSpec},
    store::{Claim, ConversationKey, WorkspaceRecord, WorkspaceState},
    telemetry::{FleetEvent, RequestContext, Subject},
    time_util::now_ms,
};

impl Lifecycle {
    /// Takes a healthy member of the warm pool and binds it to `key`. Unhealthy or
    /// incompatible members are destroyed and skipped. `None` when the pool is empty.
    pub(super) async fn claim_warm(
        &self,
        key: &ConversationKey,
        ctx: &RequestContext,
    ) -> Result<Option<WorkspaceRecord>> {
        let fleet = &self.fleet;
        let started = Instant::now();
        loop {
            match fleet.store.pool_claim(key).await? {
                Claim::Empty => {
                    if fleet.pool_sizing().await.max > 0 {
                        fleet.telemetry.emit(
                            &Subject::conversation(key, None),
                            ctx,
                            FleetEvent::PoolExhausted,
                        );
                    }
                    fleet.pool_notify.notify_one();
                    return Ok(None);
                }
                Claim::AlreadyBound(ws) => {
                    // Bound meanwhile by another replica: use that one.
                    return Ok(fleet.store.record(&ws).await?);
                }
                Claim::Claimed(ws) => {
                    fleet.pool_notify.notify_one();
                    let Some(mut rec) = fleet.store.record(&ws).await? else {
                        fleet.store.unbind(key, &ws).await?;
                        continue;
                    };
                    let healthy = AgentClient::new(rec.endpoint.clone())
                        .health()
                        .await
                        .is_ok_and(|h| wire::version::check(&h).is_ok());
                    if !healthy {
                        warn!(workspace_id = %ws, "unhealthy or incompatible pool member; destroying it");
                        fleet.store.unbind(key, &ws).await?;
                        self.destroy(&rec, "unhealthy", SyncFirst::No, ctx).await?;
                        continue;
                    }
                    rec.tenant_id = Some(key.tenant_id.clone());
                    rec.conversation_id = Some(key.conversation_id.clone());
                    rec.state = WorkspaceState::Bound;
                    rec.source = WorkspaceSource::Warm;
                    rec.last_active_ms = now_ms();
                    fleet.store.put_record(&rec).await?;
                    // The conversation's egress policy (and audit context) from now on.
                    if let Some(egress) = &fleet.egress {
                        if let Err(e) = egress.ensure(&rec).await {
                            warn!(workspace_id = %ws, error = %e, "egress listener not updated");
                        }
                    }
                    fleet.telemetry.emit(
                        &Subject::record(&rec),
                        ctx,
                        FleetEvent::Claimed {
                            wait: started.elapsed(),
                        },
                    );
                    return Ok(Some(rec));
                }
            }
        }
    }

    /// Creates a workspace, bound to `owner` or (with `None`) unbound for the warm
    /// pool: reserves its record under the fleet cap (so workspaces still starting
    /// count, across replicas), starts it, waits for its agent and checks that it
    /// speaks this build's wire version.
    pub async fn create_workspace(
        &self,
        owner: Option<&ConversationKey>,
        ctx: &RequestContext,
    ) -> Result<WorkspaceRecord> {
        let fleet = &self.fleet;
        let started = Instant::now();
        let workspace_id = new_workspace_id();
        let now = now_ms();
        let mut record = WorkspaceRecord {
            workspace_id: workspace_id.clone(),
            tenant_id: owner.map(|k| k.tenant_id.clone()),
            conversation_id: owner.map(|k| k.conversation_id.clone()),
            // Unknown until the runtime has created it.
            endpoint: Endpoint::Tcp(String::new()),
            created_at_ms: now,
            last_active_ms: now,
            last_synced_ms: None,
            source: WorkspaceSource::Cold,
            state: WorkspaceState::Starting,
            created_by: fleet.instance_id.clone(),
            egress_socket: None,
        };
        if !fleet
            .store
            .reserve(&record, fleet.cfg.max_workspaces)
            .await?
        {
            return Err(Error::CapacityExhausted(fleet.cfg.max_workspaces));
        }
        let spec = WorkspaceSpec {
            workspace_id: workspace_id.clone(),
            tenant_id: record.tenant_id.clone(),
            conversation_id: record.conversation_id.clone(),
        };
        let span = tracing::info_span!(
            "create_workspace",
            tenant_id = spec.tenant_id.as_deref().unwrap_or(""),
            conversation_id = spec.conversation_id.as_deref().unwrap_or(""),
            workspace_id = %workspace_id,
            pooled = owner.is_none()
        );
        let ready = Duration::from_secs(fleet.cfg.agent_ready_timeout_secs);
        let created = async {
            let ws = fleet.runtime.create(&spec).await?;
            let health = AgentClient::new(ws.endpoint.clone())
                .wait_healthy(ready)
                .await
                .map_err(|e| {
                    warn!(error = %e, "agent did not become healthy");
                    Error::AgentNotReady(ready.as_secs())
                })?;
            wire::version::check(&health).map_err(Error::IncompatibleAgent)?;
            fleet.runtime.seal(&spec.workspace_id).await?;
            Ok::<_, Error>(ws)
        }
        .instrument(span.clone())
        .await;
        let ws = match created {
            Ok(ws) => ws,
            Err(e) => {
                let _ = fleet.runtime.destroy(&workspace_id).await;
                let _ = fleet.store.delete_record(&workspace_id).await;
                return Err(e);
            }
        };
        record.endpoint = ws.endpoint;
        record.egress_socket = ws.egress_socket;
        record.created_at_ms = ws.created_at_ms;
        record.last_active_ms = now_ms();
        record.state = if owner.is_some() {
            WorkspaceState::Bound
        } else {
            WorkspaceState::Pooled
        };
        if let Err(e) = fleet.store.put_record(&record).await {
            let _ = fleet.runtime.destroy(&workspace_id).await;
            let _ = fleet.store.delete_record(&workspace_id).await;
            return Err(e.into());
        }
        // Its egress listener now, not at the supervisor's next pass: a cold
        // workspace's first execution must already have its way out.
        if let Some(egress) = &fleet.egress {
            if let Err(e) = egress.ensure(&record).await {
                warn!(workspace_id = %workspace_id, error = %e, "egress listener not started");
            }
        }
        let startup = started.elapsed();
        fleet.telemetry.emit(
            &Subject::record(&record),
            ctx,
            FleetEvent::Created {
                source: if owner.is_some() { "cold" } else { "pool" },
                startup,
            },
        );
        span.in_scope(|| info!(startup_ms = startup.as_millis() as u64, "workspace ready"));
        Ok(record)
    }

    /// Creates a workspace for `key` and binds it.
    pub(super) async fn create_bound(
        &self,
        key: &ConversationKey,
        ctx: &RequestContext,
    ) -> Result<WorkspaceRecord> {
        let record = self.create_workspace(Some(key), ctx).await?;
        let bound = self
            .fleet
            .store
            .bind_if_absent(key, &record.workspace_id)
            .await?;
        if bound != record.workspace_id {
            // Another replica won without our lock (the store lock should prevent it,
            // but the binding is the final arbiter).
            warn!(winner = %bound, "conversation bound elsewhere meanwhile; discarding ours");
            self.destroy(&record, "duplicate", SyncFirst::No, ctx)
                .await?;
            return self
                .fleet
                .store
                .record(&bound)
                .await?
                .ok_or(Error::WorkspaceNotFound);
        }
        Ok(record)
    }
}
