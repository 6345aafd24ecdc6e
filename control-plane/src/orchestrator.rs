//! The orchestrator: finds or creates the one workspace of a (tenant, conversation),
//! runs executions in it and relays their events, forwards file requests, and
//! destroys workspaces. Concurrent first requests for a conversation create exactly
//! one workspace: an in-process lock per conversation, plus a store lock for
//! replicas sharing a store, plus bind-if-absent as the final arbiter.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt};
use tracing::{info, warn, Instrument};
use wire::{self, Event, ExecuteRequest, WorkspaceSource};

use crate::{
    agent_client::{AgentClient, AgentError},
    audit::{self, AuditEvent},
    config::Config,
    egress::Egress,
    error::{Error, Result},
    metrics::{Metrics, ReasonLabel, SourceLabel, StatusLabel},
    runtime::{Endpoint, Runtime, WorkspaceSpec},
    store::{
        lease::Lease, Claim, ConversationKey, PoolSizing, StateStore, WorkspaceRecord,
        WorkspaceState,
    },
    sync::{SyncError, SyncReport, Syncer},
    time_util::now_ms,
};

/// Events of one execution, as relayed to the API caller.
pub type ExecutionStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// An instance's liveness mark expires this long after its last heartbeat.
pub const INSTANCE_TTL_MS: u64 = 6_000;
/// How often an instance renews its liveness mark.
pub const INSTANCE_HEARTBEAT: Duration = Duration::from_secs(2);

pub struct Orchestrator {
    runtime: Arc<dyn Runtime>,
    store: Arc<dyn StateStore>,
    cfg: Arc<Config>,
    metrics: Metrics,
    /// Lock owner name of this process in the store.
    instance_id: String,
    conversation_locks: Mutex<HashMap<ConversationKey, Weak<tokio::sync::Mutex<()>>>>,
    /// Wakes the warm-pool filler.
    pool_notify: Arc<tokio::sync::Notify>,
    /// Executions in progress per workspace.
    running: Arc<Mutex<HashMap<String, usize>>>,
    /// Per-workspace egress proxy listeners (local runtime), if enabled.
    egress: Option<Arc<Egress>>,
    /// File sync, if configured.
    syncer: Option<Arc<Syncer>>,
}

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

/// Tools of Claude Code whose results mean files may have changed (a sync is
/// scheduled, debounced, after each).
const FILE_CHANGING_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"];

impl Orchestrator {
    pub fn new(
        runtime: Arc<dyn Runtime>,
        store: Arc<dyn StateStore>,
        cfg: Arc<Config>,
        metrics: Metrics,
    ) -> Self {
        Self {
            runtime,
            store,
            cfg,
            metrics,
            instance_id: format!("cp-{}", uuid::Uuid::new_v4().simple()),
            conversation_locks: Mutex::new(HashMap::new()),
            pool_notify: Arc::new(tokio::sync::Notify::new()),
            running: Arc::new(Mutex::new(HashMap::new())),
            egress: None,
            syncer: None,
        }
    }

    /// Serves an egress proxy per workspace through `egress`.
    pub fn set_egress(&mut self, egress: Arc<Egress>) {
        self.egress = Some(egress);
    }

    /// Syncs workspaces' files through `syncer`.
    pub fn set_syncer(&mut self, syncer: Arc<Syncer>) {
        let metrics = self.metrics.clone();
        let store = self.store.clone();
        syncer.set_observer(move |key, result| {
            observe_sync(&metrics, result);
            if let Ok(report) = result {
                let store = store.clone();
                let key = key.clone();
                let at = report.synced_at;
                tokio::spawn(async move { record_synced(store.as_ref(), &key, at).await });
            }
        });
        self.syncer = Some(syncer);
    }

    pub fn egress(&self) -> Option<&Arc<Egress>> {
        self.egress.as_ref()
    }

    pub fn syncer(&self) -> Option<&Arc<Syncer>> {
        self.syncer.as_ref()
    }

    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// This process's name as a lock owner and creator of records.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Validates a conversation id and makes the key.
    pub fn key(tenant_id: &str, conversation_id: &str) -> Result<ConversationKey> {
        if !wire::is_valid_conversation_id(conversation_id) {
            return Err(Error::InvalidConversationId);
        }
        Ok(ConversationKey::new(tenant_id, conversation_id))
    }

    fn local_lock(&self, key: &ConversationKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .conversation_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(l) = map.get(key).and_then(Weak::upgrade) {
            return l;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.clone(), Arc::downgrade(&l));
        l
    }

    /// Runs `f` holding the conversation's lock (in-process and in the store).
    async fn with_conversation_lock<T, F, Fut>(&self, key: &ConversationKey, f: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let local = self.local_lock(key);
        let _guard = local.lock().await;
        let name = format!("conv:{}:{}", key.tenant_id, key.conversation_id);
        let deadline = Instant::now() + Duration::from_secs(self.cfg.agent_ready_timeout_secs + 30);
        let mut delay = Duration::from_millis(5);
        let lease = loop {
            if let Some(l) = Lease::try_acquire(&self.store, &name, &self.instance_id).await? {
                break l;
            }
            if Instant::now() >= deadline {
                return Err(Error::AgentNotReady(self.cfg.agent_ready_timeout_secs));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        };
        let out = f().await;
        lease.release().await;
        out
    }

    /// The conversation's live workspace, if one is bound (without creating one).
    pub async fn existing(&self, key: &ConversationKey) -> Result<Option<WorkspaceRecord>> {
        let Some(ws) = self.store.binding(key).await? else {
            return Ok(None);
        };
        Ok(self.store.record(&ws).await?)
    }

    /// Finds the conversation's workspace or creates it, and waits until its agent is
    /// healthy. A bound workspace whose agent does not answer and whose container is
    /// gone is replaced (source `recovered`).
    pub async fn acquire(&self, key: &ConversationKey) -> Result<Acquired> {
        if let Some(rec) = self.existing(key).await? {
            if AgentClient::new(rec.endpoint.clone())
                .health()
                .await
                .is_ok()
            {
                return Ok(Acquired {
                    record: rec,
                    source: WorkspaceSource::Existing,
                    replaced: None,
                    restored_from: None,
                });
            }
        }
        self.with_conversation_lock(key, || self.acquire_locked(key))
            .await
    }

    async fn acquire_locked(&self, key: &ConversationKey) -> Result<Acquired> {
        let mut replaced = None;
        if let Some(rec) = self.existing(key).await? {
            let client = AgentClient::new(rec.endpoint.clone());
            if client.health().await.is_ok() {
                return Ok(Acquired {
                    record: rec,
                    source: WorkspaceSource::Existing,
                    replaced: None,
                    restored_from: None,
                });
            }
            // Not answering: still starting, or dead?
            let alive = self
                .runtime
                .inspect(&rec.workspace_id)
                .await?
                .map(|w| w.running)
                .unwrap_or(false);
            if alive
                && client
                    .wait_healthy(Duration::from_secs(self.cfg.agent_ready_timeout_secs))
                    .await
                    .is_ok()
            {
                return Ok(Acquired {
                    record: rec,
                    source: WorkspaceSource::Existing,
                    replaced: None,
                    restored_from: None,
                });
            }
            warn!(
                tenant_id = %key.tenant_id,
                conversation_id = %key.conversation_id,
                workspace_id = %rec.workspace_id,
                "workspace is dead; replacing it"
            );
            self.metrics.container_crashes.inc();
            audit::record(
                AuditEvent::ContainerCrashed,
                &key.tenant_id,
                &key.conversation_id,
                &rec.workspace_id,
                "agent unreachable and container not running",
            );
            self.destroy_workspace(&rec, "crashed").await?;
            replaced = Some(rec.workspace_id);
        }
        let record = match self.claim_warm(key).await? {
            Some(rec) => rec,
            None => self.create_bound(key, WorkspaceSource::Cold).await?,
        };
        let source = if replaced.is_some() {
            WorkspaceSource::Recovered
        } else {
            record.source
        };
        // A new workspace starts from the conversation's last sync. If that fails it
        // is not used: syncing an empty workspace would overwrite the stored files.
        let restored_from = match self.restore(key, &record).await {
            Ok(at) => at,
            Err(e) => {
                warn!(workspace_id = %record.workspace_id, error = %e, "restore failed; discarding the workspace");
                let _ = self.destroy_workspace(&record, "restore_failed").await;
                return Err(e);
            }
        };
        Ok(Acquired {
            record,
            source,
            replaced,
            restored_from,
        })
    }

    /// Restores the conversation's synced files into a new workspace; returns when
    /// they were synced (`None` when nothing is stored or sync is off).
    async fn restore(
        &self,
        key: &ConversationKey,
        rec: &WorkspaceRecord,
    ) -> Result<Option<String>> {
        let Some(syncer) = &self.syncer else {
            return Ok(None);
        };
        let client = AgentClient::new(rec.endpoint.clone());
        match syncer.restore(key, &client).await {
            Ok(Some(report)) => {
                info!(
                    workspace_id = %rec.workspace_id,
                    files = report.files,
                    bytes = report.bytes,
                    "restored the conversation's files"
                );
                audit::record(
                    AuditEvent::FilesRestored,
                    &key.tenant_id,
                    &key.conversation_id,
                    &rec.workspace_id,
                    &format!("{} files", report.files),
                );
                Ok(report
                    .synced_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok())
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.metrics
                    .sync_errors
                    .get_or_create(&crate::metrics::KindLabel {
                        kind: e.kind().into(),
                    })
                    .inc();
                Err(Error::Sync(e.to_string()))
            }
        }
    }

    /// Takes a healthy member of the warm pool and binds it to `key` (the conversation's
    /// tenant and policy are attached now, at claim time). Unhealthy members are
    /// destroyed and skipped. `None` when the pool is empty.
    async fn claim_warm(&self, key: &ConversationKey) -> Result<Option<WorkspaceRecord>> {
        let started = Instant::now();
        loop {
            match self.store.pool_claim(key).await? {
                Claim::Empty => {
                    if self.pool_enabled().await {
                        self.metrics.pool_exhausted.inc();
                    }
                    self.pool_notify.notify_one();
                    return Ok(None);
                }
                Claim::AlreadyBound(ws) => {
                    // Bound meanwhile by another replica: use that one.
                    return Ok(self.store.record(&ws).await?);
                }
                Claim::Claimed(ws) => {
                    self.pool_notify.notify_one();
                    let Some(mut rec) = self.store.record(&ws).await? else {
                        self.store.unbind(key, &ws).await?;
                        continue;
                    };
                    let healthy = AgentClient::new(rec.endpoint.clone())
                        .health()
                        .await
                        .is_ok_and(|h| wire::version::check(&h).is_ok());
                    if !healthy {
                        warn!(workspace_id = %ws, "unhealthy or incompatible pool member; destroying it");
                        self.store.unbind(key, &ws).await?;
                        rec.tenant_id = None;
                        rec.conversation_id = None;
                        self.destroy_workspace(&rec, "unhealthy").await?;
                        continue;
                    }
                    let now = now_ms();
                    rec.tenant_id = Some(key.tenant_id.clone());
                    rec.conversation_id = Some(key.conversation_id.clone());
                    rec.state = WorkspaceState::Bound;
                    rec.source = WorkspaceSource::Warm;
                    rec.last_active_ms = now;
                    self.store.put_record(&rec).await?;
                    // The conversation's egress policy (and audit context) from now on.
                    if let Some(egress) = &self.egress {
                        if let Err(e) = egress.ensure(&rec).await {
                            warn!(workspace_id = %ws, error = %e, "egress listener not updated");
                        }
                    }
                    self.metrics.pool_hits.inc();
                    self.metrics
                        .pool_acquire_seconds
                        .observe(started.elapsed().as_secs_f64());
                    audit::record(
                        AuditEvent::ContainerClaimed,
                        &key.tenant_id,
                        &key.conversation_id,
                        &ws,
                        "warm",
                    );
                    return Ok(Some(rec));
                }
            }
        }
    }

    /// True when the warm pool is configured to hold any workspace.
    pub async fn pool_enabled(&self) -> bool {
        self.pool_sizing().await.max > 0
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

    /// Wakes the pool filler (after a claim, or when sizes change).
    pub fn pool_notify(&self) -> Arc<tokio::sync::Notify> {
        self.pool_notify.clone()
    }

    /// Creates a workspace, bound to `owner` or (with `None`) unbound for the warm
    /// pool: reserves its record under the fleet cap (so workspaces still starting
    /// count, across replicas), starts it and waits for its agent. On failure nothing
    /// is left behind.
    pub async fn create_workspace(
        &self,
        owner: Option<&ConversationKey>,
        source: WorkspaceSource,
    ) -> Result<WorkspaceRecord> {
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
            source,
            state: WorkspaceState::Starting,
            created_by: self.instance_id.clone(),
            egress_socket: None,
        };
        if !self.store.reserve(&record, self.cfg.max_workspaces).await? {
            return Err(Error::CapacityExhausted(self.cfg.max_workspaces));
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
        let created = async {
            let ws = self.runtime.create(&spec).await?;
            let health = AgentClient::new(ws.endpoint.clone())
                .wait_healthy(Duration::from_secs(self.cfg.agent_ready_timeout_secs))
                .await
                .map_err(|e| {
                    warn!(error = %e, "agent did not become healthy");
                    Error::AgentNotReady(self.cfg.agent_ready_timeout_secs)
                })?;
            wire::version::check(&health).map_err(Error::IncompatibleAgent)?;
            Ok::<_, Error>(ws)
        }
        .instrument(span.clone())
        .await;
        let ws = match created {
            Ok(ws) => ws,
            Err(e) => {
                let _ = self.runtime.destroy(&workspace_id).await;
                let _ = self.store.delete_record(&workspace_id).await;
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
        if let Err(e) = self.store.put_record(&record).await {
            let _ = self.runtime.destroy(&workspace_id).await;
            let _ = self.store.delete_record(&workspace_id).await;
            return Err(e.into());
        }
        // Its egress listener now, not at the supervisor's next pass: a cold
        // workspace's first execution must already have its way out.
        if let Some(egress) = &self.egress {
            if let Err(e) = egress.ensure(&record).await {
                warn!(workspace_id = %workspace_id, error = %e, "egress listener not started");
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let label = SourceLabel {
            source: if owner.is_some() {
                source.as_str()
            } else {
                "pool"
            }
            .into(),
        };
        self.metrics
            .container_startup_seconds
            .get_or_create(&label)
            .observe(secs);
        self.metrics.containers_created.get_or_create(&label).inc();
        audit::record(
            AuditEvent::ContainerCreated,
            spec.tenant_id.as_deref().unwrap_or(""),
            spec.conversation_id.as_deref().unwrap_or(""),
            &workspace_id,
            &label.source,
        );
        span.in_scope(|| info!(startup_ms = (secs * 1000.0) as u64, "workspace ready"));
        Ok(record)
    }

    /// Creates a workspace for `key` and binds it.
    async fn create_bound(
        &self,
        key: &ConversationKey,
        source: WorkspaceSource,
    ) -> Result<WorkspaceRecord> {
        let record = self.create_workspace(Some(key), source).await?;
        let bound = self.store.bind_if_absent(key, &record.workspace_id).await?;
        if bound != record.workspace_id {
            // Another replica won without our lock (the store lock should prevent it,
            // but the binding is the final arbiter).
            warn!(winner = %bound, "conversation bound elsewhere meanwhile; discarding ours");
            self.destroy_workspace(&record, "duplicate").await?;
            return self
                .store
                .record(&bound)
                .await?
                .ok_or(Error::WorkspaceNotFound);
        }
        Ok(record)
    }

    /// Runs an execution in the conversation's workspace (creating it if needed) and
    /// returns its events, starting with `workspace` (and `container_recovered` when
    /// the previous workspace was found dead).
    pub async fn execute(
        &self,
        tenant_id: &str,
        conversation_id: &str,
        req: ExecuteRequest,
    ) -> Result<ExecutionStream> {
        let key = Self::key(tenant_id, conversation_id)?;
        req.validate()?;
        let acquired = self.acquire(&key).await?;
        let rec = acquired.record.clone();
        self.store.touch(&rec.workspace_id, now_ms()).await?;

        let mut head = vec![Event::Workspace {
            workspace_id: rec.workspace_id.clone(),
            source: acquired.source,
        }];
        if let Some(prev) = &acquired.replaced {
            head.push(Event::ContainerRecovered {
                workspace_id: rec.workspace_id.clone(),
                previous_workspace_id: prev.clone(),
                last_synced_at: acquired.restored_from.clone(),
            });
        }

        let client = AgentClient::new(rec.endpoint.clone());
        let mode = match &req {
            ExecuteRequest::Command(_) => "command",
            ExecuteRequest::Agent(_) => "agent",
        };
        audit::record(
            AuditEvent::ExecutionStarted,
            &key.tenant_id,
            &key.conversation_id,
            &rec.workspace_id,
            mode,
        );
        let events = client.execute(&req).await?;
        let guard = ExecutionGuard::new(
            rec.workspace_id.clone(),
            self.running.clone(),
            self.metrics.clone(),
            key.clone(),
            self.store.clone(),
        );
        let sync = self.syncer.clone().map(|s| SyncHook {
            syncer: s,
            key: key.clone(),
            client: client.clone(),
            metrics: self.metrics.clone(),
            store: self.store.clone(),
            tools: HashMap::new(),
        });
        let relay = relay_events(events, guard, sync);
        Ok(Box::pin(futures::stream::iter(head).chain(relay)))
    }

    /// Number of executions running in a workspace.
    pub fn running_executions(&self, workspace_id: &str) -> usize {
        self.running
            .lock()
            .map(|m| m.get(workspace_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The client of the conversation's existing workspace (for file requests),
    /// recording activity.
    pub async fn client_for_existing(
        &self,
        key: &ConversationKey,
    ) -> Result<(WorkspaceRecord, AgentClient)> {
        let rec = self.existing(key).await?.ok_or(Error::WorkspaceNotFound)?;
        self.store.touch(&rec.workspace_id, now_ms()).await?;
        let client = AgentClient::new(rec.endpoint.clone());
        Ok((rec, client))
    }

    /// The client of the conversation's workspace, creating it if needed.
    pub async fn client_for(
        &self,
        key: &ConversationKey,
    ) -> Result<(WorkspaceRecord, AgentClient)> {
        let acquired = self.acquire(key).await?;
        self.store
            .touch(&acquired.record.workspace_id, now_ms())
            .await?;
        let client = AgentClient::new(acquired.record.endpoint.clone());
        Ok((acquired.record, client))
    }

    /// Destroys the conversation's workspace; `false` if it had none.
    pub async fn delete(&self, key: &ConversationKey) -> Result<bool> {
        self.with_conversation_lock(key, || async {
            match self.existing(key).await? {
                Some(rec) => {
                    // Nothing is lost: sync first; only a dead workspace is deleted
                    // without (there is nothing left to save).
                    if let Err(e) = self.sync_workspace(&rec).await {
                        if AgentClient::new(rec.endpoint.clone()).health().await.is_ok() {
                            return Err(e);
                        }
                        warn!(workspace_id = %rec.workspace_id, error = %e, "deleting a dead workspace without a final sync");
                    }
                    self.destroy_workspace(&rec, "deleted").await?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
        .await
    }

    /// Unbinds (if bound), takes out of the pool (if pooled), destroys and forgets one
    /// workspace.
    pub async fn destroy_workspace(&self, rec: &WorkspaceRecord, reason: &str) -> Result<()> {
        let tenant = rec.tenant_id.as_deref().unwrap_or("");
        let conversation = rec.conversation_id.as_deref().unwrap_or("");
        if let (Some(t), Some(c)) = (&rec.tenant_id, &rec.conversation_id) {
            self.store
                .unbind(&ConversationKey::new(t, c), &rec.workspace_id)
                .await?;
        }
        self.store.pool_remove(&rec.workspace_id).await?;
        if let Some(egress) = &self.egress {
            egress.release(&rec.workspace_id).await;
        }
        self.runtime.destroy(&rec.workspace_id).await?;
        self.store.delete_record(&rec.workspace_id).await?;
        if let (Some(syncer), Some(t), Some(c)) =
            (&self.syncer, &rec.tenant_id, &rec.conversation_id)
        {
            syncer.forget(&ConversationKey::new(t, c));
        }
        self.note_destroyed(tenant, conversation, &rec.workspace_id, reason);
        Ok(())
    }

    /// Counts and audits one destroyed workspace.
    pub fn note_destroyed(
        &self,
        tenant: &str,
        conversation: &str,
        workspace_id: &str,
        reason: &str,
    ) {
        self.metrics
            .containers_destroyed
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
        audit::record(
            AuditEvent::ContainerDestroyed,
            tenant,
            conversation,
            workspace_id,
            reason,
        );
    }

    /// Marks this instance alive in the store (renewed every [`INSTANCE_HEARTBEAT`]).
    pub async fn heartbeat(&self) -> Result<()> {
        let name = format!("instance:{}", self.instance_id);
        self.store
            .try_lock(&name, &self.instance_id, INSTANCE_TTL_MS)
            .await?;
        Ok(())
    }

    /// Whether the instance `id` renewed its liveness mark recently.
    pub async fn instance_alive(&self, id: &str) -> Result<bool> {
        if id == self.instance_id {
            return Ok(true);
        }
        if id.is_empty() {
            return Ok(false);
        }
        let name = format!("instance:{id}");
        let probe = format!("probe:{}", self.instance_id);
        // Taking the mark succeeds only when nobody holds it.
        if self.store.try_lock(&name, &probe, 1).await? {
            self.store.unlock(&name, &probe).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Settles reservations left by dead instances (killed mid-create): a workspace
    /// that came up healthy is adopted (into the pool, or bound to its conversation);
    /// anything else is removed. Returns how many were settled.
    pub async fn resolve_abandoned_starts(&self) -> Result<usize> {
        let mut n = 0;
        for mut rec in self.store.records().await? {
            if rec.state != WorkspaceState::Starting || self.instance_alive(&rec.created_by).await?
            {
                continue;
            }
            n += 1;
            let live = self.runtime.inspect(&rec.workspace_id).await?;
            let healthy = match &live {
                Some(w) if w.running => AgentClient::new(w.endpoint.clone()).health().await.is_ok(),
                _ => false,
            };
            let Some(w) = live.filter(|_| healthy) else {
                info!(workspace_id = %rec.workspace_id, "removing a workspace abandoned mid-create");
                self.destroy_workspace(&rec, "abandoned").await?;
                continue;
            };
            rec.endpoint = w.endpoint;
            rec.egress_socket = w.egress_socket;
            rec.created_at_ms = w.created_at_ms;
            match (&rec.tenant_id, &rec.conversation_id) {
                (Some(t), Some(c)) => {
                    let key = ConversationKey::new(t, c);
                    rec.state = WorkspaceState::Bound;
                    self.store.put_record(&rec).await?;
                    if self.store.bind_if_absent(&key, &rec.workspace_id).await? != rec.workspace_id
                    {
                        self.destroy_workspace(&rec, "duplicate").await?;
                    }
                }
                _ => {
                    rec.state = WorkspaceState::Pooled;
                    self.store.put_record(&rec).await?;
                    self.store.pool_push(&rec.workspace_id).await?;
                }
            }
            info!(workspace_id = %rec.workspace_id, "adopted a workspace abandoned mid-create");
        }
        Ok(n)
    }

    /// Syncs a bound workspace's files to the object store now (before it goes away,
    /// or on request). A no-op without sync or for an unbound workspace.
    pub async fn sync_workspace(&self, rec: &WorkspaceRecord) -> Result<Option<SyncReport>> {
        let (Some(syncer), Some(t), Some(c)) = (&self.syncer, &rec.tenant_id, &rec.conversation_id)
        else {
            return Ok(None);
        };
        let key = ConversationKey::new(t, c);
        let result = syncer
            .sync(&key, &AgentClient::new(rec.endpoint.clone()))
            .await;
        observe_sync(&self.metrics, &result);
        match result {
            Ok(report) => {
                record_synced(self.store.as_ref(), &key, report.synced_at).await;
                audit::record(
                    AuditEvent::FilesSynced,
                    t,
                    c,
                    &rec.workspace_id,
                    &format!("{} uploaded, {} deleted", report.uploaded, report.deleted),
                );
                Ok(Some(report))
            }
            Err(e) => Err(Error::Sync(e.to_string())),
        }
    }

    /// Syncs every bound workspace this process serves (shutdown).
    pub async fn sync_all(&self) -> usize {
        let Ok(records) = self.store.records().await else {
            return 0;
        };
        let mut n = 0;
        for rec in records.iter().filter(|r| r.state == WorkspaceState::Bound) {
            let ours = match &self.egress {
                Some(e) => e.serves(&rec.workspace_id).await,
                None => true,
            };
            if !ours {
                continue;
            }
            match self.sync_workspace(rec).await {
                Ok(Some(_)) => n += 1,
                Ok(None) => {}
                Err(e) => {
                    warn!(workspace_id = %rec.workspace_id, error = %e, "sync on shutdown failed")
                }
            }
        }
        n
    }

    /// Workspaces of one tenant.
    pub async fn list(&self, tenant_id: &str) -> Result<Vec<WorkspaceRecord>> {
        Ok(self
            .store
            .records()
            .await?
            .into_iter()
            .filter(|r| r.tenant_id.as_deref() == Some(tenant_id))
            .collect())
    }

    /// One workspace of a tenant by id (another tenant's is "not found").
    pub async fn get_by_id(&self, tenant_id: &str, workspace_id: &str) -> Result<WorkspaceRecord> {
        match self.store.record(workspace_id).await? {
            Some(r) if r.tenant_id.as_deref() == Some(tenant_id) => Ok(r),
            _ => Err(Error::WorkspaceNotFound),
        }
    }

    /// Destroys every workspace of this fleet (shutdown with clean-up).
    pub async fn destroy_all(&self) -> Result<usize> {
        let mut n = 0;
        for ws in self.runtime.list().await? {
            match self.runtime.destroy(&ws.workspace_id).await {
                Ok(()) => n += 1,
                Err(e) => warn!(workspace_id = %ws.workspace_id, error = %e, "destroy failed"),
            }
            if let (Some(t), Some(c)) = (&ws.tenant_id, &ws.conversation_id) {
                let _ = self
                    .store
                    .unbind(&ConversationKey::new(t, c), &ws.workspace_id)
                    .await;
            }
            let _ = self.store.delete_record(&ws.workspace_id).await;
        }
        Ok(n)
    }
}

/// A new workspace id: `ws-` and 20 hex digits (80 random bits).
pub fn new_workspace_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("ws-{}", &u[..20])
}

/// Counts an execution as running for as long as it lives.
struct ExecutionGuard {
    workspace_id: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
    metrics: Metrics,
    key: ConversationKey,
    outcome: &'static str,
    /// Touches the record while the execution runs, so the reaper of any replica
    /// sees it as active.
    heartbeat: tokio::task::JoinHandle<()>,
}

/// How often a running execution marks its workspace active.
const EXECUTION_HEARTBEAT: Duration = Duration::from_secs(20);

impl ExecutionGuard {
    fn new(
        workspace_id: String,
        running: Arc<Mutex<HashMap<String, usize>>>,
        metrics: Metrics,
        key: ConversationKey,
        store: Arc<dyn StateStore>,
    ) -> Self {
        if let Ok(mut m) = running.lock() {
            *m.entry(workspace_id.clone()).or_default() += 1;
        }
        metrics.active_executions.inc();
        let ws = workspace_id.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXECUTION_HEARTBEAT).await;
                if let Err(e) = store.touch(&ws, now_ms()).await {
                    warn!(workspace_id = %ws, error = %e, "execution heartbeat failed");
                }
            }
        });
        Self {
            workspace_id,
            running,
            metrics,
            key,
            outcome: "cancelled",
            heartbeat,
        }
    }
}

impl Drop for ExecutionGuard {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if let Ok(mut m) = self.running.lock() {
            if let Some(n) = m.get_mut(&self.workspace_id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.workspace_id);
                }
            }
        }
        self.metrics.active_executions.dec();
        self.metrics
            .requests
            .get_or_create(&StatusLabel {
                status: self.outcome.into(),
            })
            .inc();
        let event = if self.outcome == "success" {
            AuditEvent::ExecutionCompleted
        } else {
            AuditEvent::ExecutionFailed
        };
        audit::record(
            event,
            &self.key.tenant_id,
            &self.key.conversation_id,
            &self.workspace_id,
            self.outcome,
        );
    }
}

/// Relays the agent's events until a terminal one; a stream that breaks or ends
/// without one ends with an `error` event instead of hanging or stopping silently.
fn relay_events(
    events: crate::agent_client::EventStream,
    guard: ExecutionGuard,
    sync: Option<SyncHook>,
) -> impl Stream<Item = Event> + Send {
    futures::stream::unfold(
        (events, Some(guard), sync),
        |(mut events, guard, mut sync)| async move {
            let mut guard = guard?;
            let ev = match events.next().await {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => lost(&e),
                None => Event::Error {
                    code: "workspace_lost".into(),
                    message: "the workspace's agent ended the stream without a result".into(),
                },
            };
            if let Some(hook) = sync.as_mut() {
                hook.observe(&ev);
            }
            if ev.is_terminal() {
                // The platform's outcome, not the command's: a command that exits 1 was
                // served successfully; an `error` event means the platform failed it.
                guard.outcome = match &ev {
                    Event::Result(r) if r.timed_out => "timeout",
                    Event::Result(_) => "success",
                    _ => "error",
                };
                if let Event::Result(wire::ExecResult {
                    tokens: Some(t), ..
                }) = &ev
                {
                    guard.metrics.count_tokens(&guard.key.tenant_id, t);
                }
                drop(guard);
                if let Some(hook) = sync.take() {
                    hook.after_execute();
                }
                return Some((ev, (events, None, None)));
            }
            Some((ev, (events, Some(guard), sync)))
        },
    )
}

/// File sync around one execution: a debounced sync after each file-changing tool
/// result, and a sync right after the execution.
struct SyncHook {
    syncer: Arc<Syncer>,
    key: ConversationKey,
    client: AgentClient,
    metrics: Metrics,
    store: Arc<dyn StateStore>,
    /// Tool names by tool-use id, to know what a tool result belongs to.
    tools: HashMap<String, String>,
}

impl SyncHook {
    fn observe(&mut self, ev: &Event) {
        match ev {
            Event::ToolUse { id, name, .. } => {
                self.tools.insert(id.clone(), name.clone());
            }
            Event::ToolResult { tool_use_id, .. } => {
                let changes_files = self
                    .tools
                    .get(tool_use_id)
                    .is_some_and(|n| FILE_CHANGING_TOOLS.contains(&n.as_str()));
                if changes_files {
                    self.syncer.schedule(&self.key, &self.client);
                }
            }
            _ => {}
        }
    }

    fn after_execute(self) {
        tokio::spawn(async move {
            let result = self.syncer.sync(&self.key, &self.client).await;
            observe_sync(&self.metrics, &result);
            match result {
                Ok(report) => record_synced(self.store.as_ref(), &self.key, report.synced_at).await,
                Err(e) => warn!(
                    tenant_id = %self.key.tenant_id,
                    conversation_id = %self.key.conversation_id,
                    error = %e,
                    "sync after execute failed"
                ),
            }
        });
    }
}

/// Counts a sync's outcome in the metrics.
fn observe_sync(metrics: &Metrics, result: &std::result::Result<SyncReport, SyncError>) {
    match result {
        Ok(r) => {
            metrics.syncs.inc();
            metrics
                .sync_duration_seconds
                .observe(r.duration.as_secs_f64());
            metrics.sync_uploaded_objects.inc_by(r.uploaded);
        }
        Err(e) => {
            metrics.syncs.inc();
            metrics
                .sync_errors
                .get_or_create(&crate::metrics::KindLabel {
                    kind: e.kind().into(),
                })
                .inc();
        }
    }
}

/// Writes a sync's time into the conversation's current workspace record.
async fn record_synced(store: &dyn StateStore, key: &ConversationKey, at: time::OffsetDateTime) {
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    let Ok(Some(ws)) = store.binding(key).await else {
        return;
    };
    if let Ok(Some(mut rec)) = store.record(&ws).await {
        if rec.last_synced_ms.is_none_or(|prev| prev < ms) {
            rec.last_synced_ms = Some(ms);
            let _ = store.put_record(&rec).await;
        }
    }
}

fn lost(e: &AgentError) -> Event {
    Event::Error {
        code: "workspace_lost".into(),
        message: format!("lost the workspace's agent mid-stream: {e}"),
    }
}
