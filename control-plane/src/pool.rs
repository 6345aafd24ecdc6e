//! The warm pool's filler: keeps `min` healthy, unbound workspaces ready (never more
//! than `max`, starting ones included, and never beyond the fleet cap, which the
//! store's reservation enforces). It fills at start in the background, tops up after
//! every claim (the lifecycle wakes it), re-reads the sizing from the store so a
//! change made through the API reaches every replica, retries failed creates with
//! exponential backoff and jitter, trims surplus members after a downsize, and drains
//! its own members on shutdown. Claiming is the lifecycle's (`claim_warm`).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    error::Result,
    fleet::Fleet,
    lifecycle::{Lifecycle, SyncFirst},
    membership::Membership,
    store::{lease::Lease, PoolSizing, WorkspaceRecord, WorkspaceState},
    telemetry::{FleetEvent, RequestContext, Subject},
};

/// Lease that lets one replica at a time change the pool.
const FILL_LEASE: &str = "pool-fill";
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Answer of `GET/PUT /v1/pool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub min: usize,
    pub max: usize,
    /// Healthy members ready now.
    pub size: usize,
    /// Members being started.
    pub starting: usize,
    /// The fleet-wide workspace cap.
    pub max_workspaces: usize,
}

/// What one fill pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FillReport {
    pub created: usize,
    pub failed: usize,
    pub trimmed: usize,
    /// Members after the pass.
    pub size: usize,
}

pub struct WarmPool {
    lifecycle: Arc<Lifecycle>,
    membership: Arc<Membership>,
}

impl WarmPool {
    pub fn new(lifecycle: Arc<Lifecycle>, membership: Arc<Membership>) -> Self {
        Self {
            lifecycle,
            membership,
        }
    }

    fn fleet(&self) -> &Arc<Fleet> {
        self.lifecycle.fleet()
    }

    /// The pool's sizing and members now.
    pub async fn status(&self) -> Result<PoolStatus> {
        let fleet = self.fleet();
        let sizing = fleet.pool_sizing().await;
        let size = fleet.store.pool_members().await?.len();
        let starting = fleet
            .store
            .records()
            .await?
            .iter()
            .filter(|r| r.state == WorkspaceState::Starting && r.tenant_id.is_none())
            .count();
        Ok(PoolStatus {
            min: sizing.min,
            max: sizing.max,
            size,
            starting,
            max_workspaces: fleet.cfg.max_workspaces,
        })
    }

    /// Stores a new sizing (every replica's filler picks it up) and wakes the filler.
    /// The caller has checked it against the fleet cap.
    pub async fn resize(&self, sizing: PoolSizing, ctx: &RequestContext) -> Result<()> {
        let fleet = self.fleet();
        fleet.store.set_pool_sizing(sizing).await?;
        fleet.pool_notify.notify_one();
        fleet.telemetry.emit(
            &Subject::none(),
            ctx,
            FleetEvent::PoolResized {
                min: sizing.min,
                max: sizing.max,
            },
        );
        Ok(())
    }

    /// Runs the filler until `stop`; then drains this process's members if so
    /// configured.
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let notify = self.fleet().pool_notify.clone();
            let poll = Duration::from_millis(self.fleet().cfg.pool.poll_interval_ms);
            let mut failures: u32 = 0;
            loop {
                let report = match self.fill_once().await {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(error = %e, "warm pool fill failed");
                        FillReport {
                            failed: 1,
                            ..Default::default()
                        }
                    }
                };
                let wait = if report.failed > 0 {
                    failures = failures.saturating_add(1);
                    backoff(self.fleet().cfg.pool.retry_base_ms, failures)
                } else {
                    failures = 0;
                    poll
                };
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = notify.notified(), if report.failed == 0 => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if self.fleet().cfg.pool.drain_on_shutdown {
                match self.drain().await {
                    Ok(n) => info!(drained = n, "warm pool drained"),
                    Err(e) => warn!(error = %e, "draining the warm pool failed"),
                }
            }
        })
    }

    /// One pass: trims a surplus, then starts the missing members (in parallel, up to
    /// `fill_parallelism`). Only one replica fills at a time (a store lock).
    pub async fn fill_once(&self) -> Result<FillReport> {
        let fleet = self.fleet();
        let store = &fleet.store;
        let sizing = fleet.pool_sizing().await;
        let owner = fleet.instance_id.clone();
        let Some(lease) = Lease::try_acquire(store, FILL_LEASE, &owner).await? else {
            return Ok(FillReport {
                size: store.pool_members().await?.len(),
                ..Default::default()
            });
        };
        let result = self.fill_locked(sizing.min, sizing.max).await;
        lease.release().await;
        result
    }

    async fn fill_locked(&self, min: usize, max: usize) -> Result<FillReport> {
        let fleet = self.fleet();
        let store = &fleet.store;
        let ctx = RequestContext::system("pool");
        let mut report = FillReport::default();
        // Reservations of dead instances would otherwise count as "starting" forever.
        self.membership.resolve_abandoned_starts().await?;
        let mut members = store.pool_members().await?;
        while members.len() > max {
            let Some(ws) = members.pop() else { break };
            if store.pool_remove(&ws).await? {
                if let Some(rec) = store.record(&ws).await? {
                    self.lifecycle
                        .destroy(&rec, "pool_trim", SyncFirst::No, &ctx)
                        .await?;
                }
                report.trimmed += 1;
            }
        }
        let starting = store
            .records()
            .await?
            .iter()
            .filter(|r| r.state == WorkspaceState::Starting && r.tenant_id.is_none())
            .count();
        let have = members.len() + starting;
        let want = min.min(max).saturating_sub(have);
        if want > 0 {
            debug!(have, want, "filling the warm pool");
            let parallel = fleet.cfg.pool.fill_parallelism.max(1);
            let results: Vec<Result<WorkspaceRecord>> = futures::stream::iter(0..want)
                .map(|_| async {
                    let rec = self.lifecycle.create_workspace(None, &ctx).await?;
                    store.pool_push(&rec.workspace_id).await?;
                    Ok(rec)
                })
                .buffer_unordered(parallel)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(_) => report.created += 1,
                    Err(e) => {
                        warn!(error = %e, "creating a pool member failed");
                        report.failed += 1;
                    }
                }
            }
        }
        report.size = store.pool_members().await?.len();
        Ok(report)
    }

    /// Destroys the pool members this process created; returns how many.
    pub async fn drain(&self) -> Result<usize> {
        let fleet = self.fleet();
        let store = &fleet.store;
        let ctx = RequestContext::system("pool");
        let mut n = 0;
        for ws in store.pool_members().await? {
            let Some(rec) = store.record(&ws).await? else {
                continue;
            };
            if rec.created_by != fleet.instance_id {
                continue;
            }
            if store.pool_remove(&ws).await? {
                self.lifecycle
                    .destroy(&rec, "pool_drain", SyncFirst::No, &ctx)
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Exponential backoff with full jitter: a random delay in [d/2, d], d = base·2ⁿ⁻¹,
/// capped at 30 s.
pub fn backoff(base_ms: u64, failures: u32) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    let cap = exp.min(MAX_BACKOFF.as_millis() as u64).max(1);
    let jittered = rand::rng().random_range(cap / 2..=cap);
    Duration::from_millis(jittered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        for n in 1..20 {
            let d = backoff(100, n).as_millis() as u64;
            let full = (100u64 << (n - 1).min(16)).min(30_000);
            assert!(d >= full / 2 && d <= full, "{n}: {d} vs {full}");
        }
        let samples: std::collections::HashSet<_> = (0..50).map(|_| backoff(1000, 3)).collect();
        assert!(samples.len() > 1, "jitter");
    }
}
