//! The reaper: a loop (every `gc.interval_secs`) around a callable one-shot
//! [`Reaper::sweep`] (the GC Lambda calls the same). A sweep destroys bound
//! workspaces idle longer than the idle TTL ("activity" = any API call for the
//! conversation, and executions keep it active while they run) or older than the
//! absolute TTL, syncing their files first and confirming on two consecutive sweeps;
//! recycles pool members past the absolute TTL; removes labelled containers that have
//! no record (orphans) once past a grace period, and records whose container is gone.
//! A failing item is counted and skipped; it never stops the sweep. Only one replica
//! sweeps at a time (a store lock).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use futures::StreamExt;

use crate::{
    error::Result,
    fleet::Fleet,
    lifecycle::{Lifecycle, SyncFirst},
    membership::Membership,
    runtime::RuntimeWorkspace,
    store::{lease::Lease, WorkspaceRecord, WorkspaceState},
    telemetry::{FleetEvent, RequestContext, Subject},
    time_util::now_ms,
};

const GC_LEASE: &str = "gc";

/// What a sweep did with one workspace.
enum Item {
    Kept,
    /// Idle or expired for the first time (confirmed by the next sweep).
    Suspected(&'static str),
    /// Its container was gone: the record was dropped.
    Dropped,
    Destroyed(&'static str),
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Workspaces destroyed, by reason.
    pub destroyed: Vec<(String, String)>,
    /// Idle or expired workspaces seen for the first time (destroyed next sweep).
    pub suspected: usize,
    /// Records dropped because their container is gone.
    pub dropped_records: usize,
    pub errors: usize,
    /// True if another replica held the sweep lock.
    pub skipped: bool,
}

impl SweepReport {
    pub fn destroyed_ids(&self) -> Vec<&str> {
        self.destroyed.iter().map(|(w, _)| w.as_str()).collect()
    }
}

pub struct Reaper {
    lifecycle: Arc<Lifecycle>,
    membership: Arc<Membership>,
    /// Workspaces found idle/expired by the previous sweep, with the reason.
    suspects: Mutex<HashMap<String, &'static str>>,
}

impl Reaper {
    pub fn new(lifecycle: Arc<Lifecycle>, membership: Arc<Membership>) -> Self {
        Self {
            lifecycle,
            membership,
            suspects: Mutex::new(HashMap::new()),
        }
    }

    /// Runs sweeps every `gc.interval_secs` until `stop`.
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let every = Duration::from_secs(self.fleet().cfg.gc.interval_secs);
            crate::periodic::every(every, &stop, || async {
                let r = self.sweep().await;
                if !r.destroyed.is_empty() || r.errors > 0 {
                    info!(destroyed = r.destroyed.len(), errors = r.errors, "gc sweep");
                }
            })
            .await
        })
    }

    /// One sweep.
    pub async fn sweep(&self) -> SweepReport {
        let mut report = SweepReport::default();
        let store = self.fleet().store.clone();
        let owner = self.fleet().instance_id.clone();
        let lease = match Lease::try_acquire(&store, GC_LEASE, &owner).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                report.skipped = true;
                return report;
            }
            Err(e) => {
                warn!(error = %e, "gc: store unavailable");
                report.errors += 1;
                self.count(&report);
                return report;
            }
        };
        if let Err(e) = self.sweep_locked(&mut report).await {
            warn!(error = %e, "gc sweep aborted");
            report.errors += 1;
        }
        lease.release().await;
        self.count(&report);
        report
    }

    fn fleet(&self) -> &Arc<Fleet> {
        self.lifecycle.fleet()
    }

    fn count(&self, report: &SweepReport) {
        self.fleet().telemetry.emit(
            &Subject::none(),
            &RequestContext::system("gc"),
            FleetEvent::GcSweep {
                ok: report.errors == 0,
            },
        );
    }

    async fn sweep_locked(&self, report: &mut SweepReport) -> Result<()> {
        let fleet = self.fleet();
        let cfg = &fleet.cfg.gc;
        let store = &fleet.store;
        let runtime = &fleet.runtime;
        let ctx = RequestContext::system("gc");
        let lifecycle = &self.lifecycle;
        let now = now_ms();
        let grace_ms = (cfg.orphan_grace_secs as i64).saturating_mul(1000);

        let records = store.records().await?;
        let live: HashMap<String, _> = runtime
            .list()
            .await?
            .into_iter()
            .map(|w| (w.workspace_id.clone(), w))
            .collect();
        let recorded: HashSet<&str> = records.iter().map(|r| r.workspace_id.as_str()).collect();
        let previous = self.suspects.lock().map(|m| m.clone()).unwrap_or_default();

        // Items run concurrently, each under its own deadline: a workspace whose agent
        // stalls (or a slow sync) cannot hold up the others or the sweep.
        let item_timeout = Duration::from_secs(cfg.item_timeout_secs);
        let futs: Vec<_> = records
            .iter()
            .map(|rec| {
                let item = self.item(rec, live.get(&rec.workspace_id), &previous, now, &ctx);
                async move {
                    let outcome = match tokio::time::timeout(item_timeout, item).await {
                        Ok(o) => o,
                        Err(_) => Err(crate::agent_client::AgentError::Timeout.into()),
                    };
                    (rec.workspace_id.clone(), outcome)
                }
            })
            .collect();
        let outcomes: Vec<(String, Result<Item>)> = futures::stream::iter(futs)
            .buffer_unordered(cfg.concurrency.max(1))
            .collect()
            .await;
        let mut still_suspect = HashMap::new();
        for (ws, outcome) in outcomes {
            match outcome {
                Ok(Item::Kept) => {}
                Ok(Item::Suspected(reason)) => {
                    still_suspect.insert(ws, reason);
                    report.suspected += 1;
                }
                Ok(Item::Dropped) => report.dropped_records += 1,
                Ok(Item::Destroyed(reason)) => report.destroyed.push((ws, reason.into())),
                Err(e) => {
                    warn!(workspace_id = %ws, error = %e, "gc: item failed");
                    report.errors += 1;
                }
            }
        }

        // Labelled containers without a record: orphans (after a grace period, so a
        // creation in flight on another replica is not mistaken for one).
        for (ws, w) in &live {
            if recorded.contains(ws.as_str()) {
                continue;
            }
            let age = now - w.created_at_ms;
            if w.created_at_ms > 0 && age <= grace_ms {
                continue;
            }
            match lifecycle.destroy_unrecorded(w, "orphan", &ctx).await {
                Ok(()) => {
                    report.destroyed.push((ws.clone(), "orphan".into()));
                }
                Err(e) => {
                    warn!(workspace_id = %ws, error = %e, "gc: removing an orphan failed");
                    report.errors += 1;
                }
            }
        }

        if let Ok(mut m) = self.suspects.lock() {
            *m = still_suspect;
        }
        Ok(())
    }

    /// Decides (and does) what one workspace needs.
    async fn item(
        &self,
        rec: &WorkspaceRecord,
        live: Option<&RuntimeWorkspace>,
        previous: &HashMap<String, &'static str>,
        now: i64,
        ctx: &RequestContext,
    ) -> Result<Item> {
        let fleet = self.fleet();
        let cfg = &fleet.cfg.gc;
        let lifecycle = &self.lifecycle;
        let ws = rec.workspace_id.as_str();
        let idle_ms = (cfg.idle_ttl_secs as i64).saturating_mul(1000);
        let max_age_ms = (cfg.absolute_ttl_secs as i64).saturating_mul(1000);
        let sync_grace_ms = (cfg.sync_grace_secs as i64).saturating_mul(1000);
        let grace_ms = (cfg.orphan_grace_secs as i64).saturating_mul(1000);
        match (rec.state, live) {
            (WorkspaceState::Starting, _) => {
                // A reservation whose creator died mid-create (normally settled by
                // `resolve_abandoned_starts`; this is the backstop).
                if now - rec.created_at_ms > grace_ms
                    && !self.membership.instance_alive(&rec.created_by).await?
                {
                    lifecycle
                        .destroy(rec, "stale_start", SyncFirst::No, ctx)
                        .await?;
                    return Ok(Item::Destroyed("stale_start"));
                }
                Ok(Item::Kept)
            }
            (_, None) => {
                // The container vanished: found dead.
                lifecycle.found_dead(rec, "gc", "vanished", ctx).await?;
                Ok(Item::Dropped)
            }
            (_, Some(w)) if !w.running => {
                lifecycle.found_dead(rec, "gc", "dead", ctx).await?;
                Ok(Item::Destroyed("dead"))
            }
            (WorkspaceState::Pooled, _) => {
                if now - rec.created_at_ms > max_age_ms && fleet.store.pool_remove(ws).await? {
                    lifecycle
                        .destroy(rec, "recycled", SyncFirst::No, ctx)
                        .await?;
                    return Ok(Item::Destroyed("recycled"));
                }
                Ok(Item::Kept)
            }
            (WorkspaceState::Bound, _) => {
                let age = now - rec.created_at_ms;
                let expired = age > max_age_ms;
                let running = fleet.running.count(ws) > 0;
                let idle = !running && now - rec.last_active_ms > idle_ms;
                let reason = if expired {
                    "expired"
                } else if idle {
                    "idle"
                } else {
                    return Ok(Item::Kept);
                };
                if previous.get(ws) != Some(&reason) {
                    return Ok(Item::Suspected(reason));
                }
                // Confirmed on a second sweep. Re-read: activity since?
                if let Some(f) = fleet.store.record(ws).await? {
                    let idle_now =
                        fleet.running.count(ws) == 0 && now_ms() - f.last_active_ms > idle_ms;
                    if reason == "idle" && !idle_now {
                        return Ok(Item::Kept);
                    }
                }
                // Nothing is lost: files are synced before the destroy, and a failed
                // sync keeps the workspace for the next sweep — until the absolute TTL
                // plus a grace has passed: then the TTL wins, the last good stored
                // manifest stays, and the audit line says `destroyed_without_sync`.
                let sync_first = if age > max_age_ms.saturating_add(sync_grace_ms) {
                    SyncFirst::BestEffort
                } else {
                    SyncFirst::Required
                };
                lifecycle.destroy(rec, reason, sync_first, ctx).await?;
                Ok(Item::Destroyed(reason))
            }
        }
    }
}
