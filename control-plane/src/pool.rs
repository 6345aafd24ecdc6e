//! The warm pool's filler: keeps `min` healthy, unbound workspaces ready (never more
//! than `max`, starting ones included, and never beyond the fleet cap, which the
//! store's reservation enforces). It fills at start in the background, tops up after
//! every claim (the orchestrator wakes it), re-reads the sizing from the store so a
//! change made through the API reaches every replica, retries failed creates with
//! exponential backoff and jitter, trims surplus members after a downsize, and drains
//! its own members on shutdown. Claiming is the orchestrator's (`claim_warm`).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wire::WorkspaceSource;

use crate::{
    error::Result,
    orchestrator::Orchestrator,
    store::{lease::Lease, WorkspaceRecord, WorkspaceState},
};

/// Lease that lets one replica at a time change the pool.
const FILL_LEASE: &str = "pool-fill";
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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
    orch: Arc<Orchestrator>,
}

impl WarmPool {
    pub fn new(orch: Arc<Orchestrator>) -> Self {
        Self { orch }
    }

    /// Runs the filler until `stop`; then drains this process's members if so
    /// configured.
    pub fn spawn(self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let notify = self.orch.pool_notify();
            let poll = Duration::from_millis(self.orch.config().pool.poll_interval_ms);
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
                    backoff(self.orch.config().pool.retry_base_ms, failures)
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
            if self.orch.config().pool.drain_on_shutdown {
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
        let orch = &self.orch;
        let store = orch.store();
        let sizing = orch.pool_sizing().await;
        let owner = orch.instance_id().to_string();
        let Some(lease) = Lease::try_acquire(store, FILL_LEASE, &owner).await? else {
            return Ok(FillReport {
                size: store.pool_members().await?.len(),
                ..Default::default()
            });
        };
        let result = self.fill_locked(sizing.min, sizing.max).await;
        lease.release().await;
        let report = result?;
        orch.metrics().pool_size.set(report.size as i64);
        Ok(report)
    }

    async fn fill_locked(&self, min: usize, max: usize) -> Result<FillReport> {
        let orch = &self.orch;
        let store = orch.store();
        let mut report = FillReport::default();
        // Reservations of dead instances would otherwise count as "starting" forever.
        orch.resolve_abandoned_starts().await?;
        let mut members = store.pool_members().await?;
        while members.len() > max {
            let Some(ws) = members.pop() else { break };
            if store.pool_remove(&ws).await? {
                if let Some(rec) = store.record(&ws).await? {
                    orch.destroy_workspace(&rec, "pool_trim").await?;
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
            let parallel = orch.config().pool.fill_parallelism.max(1);
            let results: Vec<Result<WorkspaceRecord>> = futures::stream::iter(0..want)
                .map(|_| async {
                    let rec = orch.create_workspace(None, WorkspaceSource::Warm).await?;
                    orch.store().pool_push(&rec.workspace_id).await?;
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
        let store = self.orch.store();
        let mut n = 0;
        for ws in store.pool_members().await? {
            let Some(rec) = store.record(&ws).await? else {
                continue;
            };
            if rec.created_by != self.orch.instance_id() {
                continue;
            }
            if store.pool_remove(&ws).await? {
                self.orch.destroy_workspace(&rec, "pool_drain").await?;
                n += 1;
            }
        }
        self.orch
            .metrics()
            .pool_size
            .set(store.pool_members().await?.len() as i64);
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
