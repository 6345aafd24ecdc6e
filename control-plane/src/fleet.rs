//! The fleet: the one shared context every service works over — the runtime, the
//! state store, the configuration, telemetry, the egress listeners, sync coordination,
//! this instance's identity and the executions it runs. It holds no lifecycle logic
//! (that is `lifecycle`, `execution`, `membership`); it only answers questions about
//! the fleet as a whole, such as the gauges read at scrape time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;

use crate::{
    config::Config,
    egress::Egress,
    error::{Error, Result},
    host_stats::HostStats,
    runtime::Runtime,
    store::{ConversationKey, PoolSizing, StateStore, WorkspaceState},
    sync::coordinator::SyncCoordinator,
    telemetry::Telemetry,
};

/// An instance's liveness mark expires this long after its last heartbeat.
pub const INSTANCE_TTL_MS: u64 = 6_000;
/// How often an instance renews its liveness mark.
pub const INSTANCE_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// The shared context of the services.
pub struct Fleet {
    pub runtime: Arc<dyn Runtime>,
    pub store: Arc<dyn StateStore>,
    pub cfg: Arc<Config>,
    pub telemetry: Telemetry,
    /// Lock owner name of this process in the store.
    pub instance_id: String,
    /// Per-workspace egress proxy listeners (local runtime), if enabled.
    pub egress: Option<Arc<Egress>>,
    /// File sync, if configured.
    pub sync: Option<Arc<SyncCoordinator>>,
    /// Wakes the warm-pool filler.
    pub pool_notify: Arc<Notify>,
    /// Executions in progress per workspace (this process's).
    pub running: RunningExecutions,
    host: HostStats,
}

impl Fleet {
    pub fn new(
        runtime: Arc<dyn Runtime>,
        store: Arc<dyn StateStore>,
        cfg: Arc<Config>,
        telemetry: Telemetry,
    ) -> Self {
        telemetry
            .metrics()
            .max_workspaces
            .set(cfg.max_workspaces as i64);
        Self {
            runtime,
            store,
            cfg,
            telemetry,
            instance_id: format!("cp-{}", uuid::Uuid::new_v4().simple()),
            egress: None,
            sync: None,
            pool_notify: Arc::new(Notify::new()),
            running: RunningExecutions::default(),
            host: HostStats::default(),
        }
    }

    /// Validates a conversation id and makes the key.
    pub fn key(tenant_id: &str, conversation_id: &str) -> Result<ConversationKey> {
        if !wire::is_valid_conversation_id(conversation_id) {
            return Err(Error::InvalidConversationId);
        }
        Ok(ConversationKey::new(tenant_id, conversation_id))
    }

    /// The pool sizing in force: set at run time through the store, else configured.
    pub async fn pool_sizing(&self) -> PoolSizing {
        match self.store.pool_sizing().await {
            Ok(Some(s)) => s,
            _ => PoolSizing {
                min: self.cfg.pool.min,
                max: self.cfg.pool.max,
            },
        }
    }

    /// Sets the fleet gauges from the shared store (and the host's load), so every
    /// replica reports the same values whenever it is scraped.
    pub async fn refresh_gauges(&self) {
        let m = self.telemetry.metrics();
        if let Ok(records) = self.store.records().await {
            m.active_containers.set(records.len() as i64);
            let starting = records
                .iter()
                .filter(|r| r.state == WorkspaceState::Starting)
                .count();
            m.starting_workspaces.set(starting as i64);
        }
        if let Ok(members) = self.store.pool_members().await {
            m.pool_size.set(members.len() as i64);
        }
        if let Some((cpu, mem)) = self.host.sample() {
            m.host_cpu_percent.set(cpu);
            m.host_memory_percent.set(mem);
        }
    }
}

/// Executions in progress per workspace.
#[derive(Clone, Default)]
pub struct RunningExecutions(Arc<Mutex<HashMap<String, usize>>>);

impl RunningExecutions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn start(&self, workspace_id: &str) {
        *self.map().entry(workspace_id.to_string()).or_default() += 1;
    }

    pub fn end(&self, workspace_id: &str) {
        let mut m = self.map();
        if let Some(n) = m.get_mut(workspace_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(workspace_id);
            }
        }
    }

    pub fn count(&self, workspace_id: &str) -> usize {
        self.map().get(workspace_id).copied().unwrap_or(0)
    }
}

/// A new workspace id: `ws-` and 20 hex digits (80 random bits).
pub fn new_workspace_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("ws-{}", &u[..20])
}
