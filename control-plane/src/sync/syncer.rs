//! [`Syncer`]: incremental sync of a conversation's workspace to the object store, and
//! restore into a new workspace. The stages live beside it: `plan` (pure: what to
//! transfer, the next manifest), `upload` (export and upload, shared by new content and
//! lifecycle refreshes), `restore`.
//!
//! **Sync** (one at a time per conversation; an internal per-key mutex): read the
//! agent's manifest (with the limits, so an oversized workspace is refused before any
//! hashing or transfer), check it, diff it against the last stored manifest (kept in
//! memory, so an unchanged workspace costs no object-store request), export only the
//! changed files from the agent (in batches, spooled to disk), upload one object per
//! file straight from the spool, write the new manifest (the commit point), then delete
//! the objects of files that disappeared. The deletions are recorded in the manifest
//! before they happen and retried by the next sync if they fail, so a crash at any point
//! leaves a manifest whose objects all exist.
//!
//! **Restore**: load the stored manifest, check every path and entry (an unsafe one
//! refuses the restore before anything is written), check the limits, fetch the
//! objects (verifying their SHA-256) into tar batches and `PUT /archive?links=preserve`
//! each one: symlinks pointing outside (a venv's `bin/python -> /usr/bin/python3`) are
//! recreated as they are, and the agent never writes through a symlink.
//!
//! **Guard**: once a conversation has stored files, a sync from a workspace the files
//! were never restored into (another agent endpoint than the last sync/restore) is
//! refused with [`SyncError::NotRestored`]: an empty new workspace would otherwise
//! replace the stored files.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use time::OffsetDateTime;
use wire::{ManifestEntry, ManifestQuery};

use super::config::{SyncBackend, SyncConfig};
use super::error::{Limit, SyncError};
use super::key::ConversationLayout;
use super::local::LocalDirStore;
use super::manifest::{self, Origin, StoredManifest, FORMAT};
use super::object_store::ObjectStore;
use super::plan::{next_manifest, plan};
pub use super::report::{RestoreReport, SyncReport};
use super::s3::S3Store;
use crate::agent_client::{AgentClient, AgentError};
use crate::store::ConversationKey;

/// Largest stored manifest read back (100k entries take ~25 MB of JSON).
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

/// Per-conversation sync state (behind the per-key mutex).
#[derive(Debug, Default)]
pub(super) struct KeyState {
    /// `manifest` reflects the store.
    pub(super) loaded: bool,
    /// The last stored manifest (`None`: nothing stored).
    pub(super) manifest: Option<StoredManifest>,
    /// The agent endpoint last synced or restored.
    pub(super) endpoint: Option<String>,
}

/// Syncs workspaces to an object store and restores them.
pub struct Syncer {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) cfg: SyncConfig,
    pub(super) spool_dir: PathBuf,
    states: Mutex<HashMap<ConversationKey, Arc<tokio::sync::Mutex<KeyState>>>>,
    last_synced: Mutex<HashMap<ConversationKey, OffsetDateTime>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("store", &self.store.describe())
            .field("max_total_bytes", &self.cfg.max_total_bytes)
            .field("max_files", &self.cfg.max_files)
            .finish()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn unsafe_manifest(origin: Origin, u: manifest::Unsafe) -> SyncError {
    SyncError::UnsafeManifest {
        origin,
        path: u.path,
        reason: u.reason,
    }
}

impl Syncer {
    /// A syncer over `store` with the limits and knobs of `cfg` (validated here).
    pub fn new(store: Arc<dyn ObjectStore>, cfg: &SyncConfig) -> Result<Self, SyncError> {
        cfg.validate()?;
        Ok(Syncer {
            store,
            spool_dir: cfg.spool_dir.clone().unwrap_or_else(std::env::temp_dir),
            cfg: cfg.clone(),
            states: Mutex::new(HashMap::new()),
            last_synced: Mutex::new(HashMap::new()),
        })
    }

    /// The syncer of the `[sync]` settings: `None` for `backend = "none"`. S3
    /// credentials come from the standard chain; no request is made here.
    pub async fn from_config(cfg: &SyncConfig) -> Result<Option<Self>, SyncError> {
        cfg.validate()?;
        let store: Arc<dyn ObjectStore> = match cfg.backend {
            SyncBackend::None => return Ok(None),
            SyncBackend::Local => Arc::new(LocalDirStore::new(cfg.local_dir.clone())),
            SyncBackend::S3 => Arc::new(S3Store::from_config(cfg).await),
        };
        Self::new(store, cfg).map(Some)
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn config(&self) -> &SyncConfig {
        &self.cfg
    }

    pub(super) fn state(&self, key: &ConversationKey) -> Arc<tokio::sync::Mutex<KeyState>> {
        lock(&self.states).entry(key.clone()).or_default().clone()
    }

    /// When the conversation was last synced (or restored) by this process, or read
    /// from its stored manifest. Memory only: never waits for a running sync.
    pub fn last_synced(&self, key: &ConversationKey) -> Option<OffsetDateTime> {
        lock(&self.last_synced).get(key).copied()
    }

    pub(super) fn set_last_synced(&self, key: &ConversationKey, at: OffsetDateTime) {
        lock(&self.last_synced).insert(key.clone(), at);
    }

    /// Whether the store holds files of the conversation (a restore would do
    /// something). Served from memory once known.
    pub async fn has_state(&self, key: &ConversationKey) -> Result<bool, SyncError> {
        let layout = ConversationLayout::new(key)?;
        let state = self.state(key);
        let st = state.lock().await;
        if st.loaded {
            return Ok(st.manifest.is_some());
        }
        Ok(self.store.head(&layout.manifest()).await?.is_some())
    }

    /// Drops what this process remembers of the conversation (its cached manifest and
    /// the last synced workspace). Call when the conversation is gone for good or its
    /// sync is taken over elsewhere; the stored files stay.
    pub fn forget(&self, key: &ConversationKey) {
        lock(&self.states).remove(key);
        lock(&self.last_synced).remove(key);
    }

    /// Checks that the store is reachable and writable (for readiness): writes and
    /// deletes one object under `!health/` (a prefix no tenant id can have).
    pub async fn probe(&self) -> Result<(), SyncError> {
        let key = super::key::ObjectKey::new(format!("!health/{}", uuid::Uuid::new_v4().simple()))?;
        self.store.put(&key, Bytes::from_static(b"ok")).await?;
        self.store.delete(&key).await?;
        Ok(())
    }

    /// Deletes every stored object of the conversation; returns how many.
    pub async fn purge(&self, key: &ConversationKey) -> Result<u64, SyncError> {
        let layout = ConversationLayout::new(key)?;
        let state = self.state(key);
        let mut st = state.lock().await;
        let keys = self.store.list(layout.prefix()).await?;
        // The manifest goes first: a half-done purge never leaves a manifest that
        // points at deleted objects.
        let manifest_key = layout.manifest();
        if keys.contains(&manifest_key) {
            self.store.delete(&manifest_key).await?;
        }
        let rest: Vec<_> = keys
            .iter()
            .filter(|k| **k != manifest_key)
            .cloned()
            .collect();
        self.store.delete_many(&rest).await?;
        st.loaded = true;
        st.manifest = None;
        lock(&self.last_synced).remove(key);
        tracing::info!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
            objects = keys.len(), "stored workspace files purged");
        Ok(keys.len() as u64)
    }

    /// Reads and checks the stored manifest (see [`manifest::validate`]).
    pub(super) async fn load(
        &self,
        key: &ConversationKey,
        layout: &ConversationLayout,
    ) -> Result<Option<StoredManifest>, SyncError> {
        let mkey = layout.manifest();
        let Some(bytes) = self.store.get(&mkey, MAX_MANIFEST_BYTES).await? else {
            return Ok(None);
        };
        let m: StoredManifest =
            serde_json::from_slice(&bytes).map_err(|e| SyncError::CorruptManifest {
                key: mkey.to_string(),
                message: e.to_string(),
            })?;
        if m.format != FORMAT {
            return Err(SyncError::CorruptManifest {
                key: mkey.to_string(),
                message: format!("unknown format {} (this build reads {FORMAT})", m.format),
            });
        }
        if m.tenant_id != key.tenant_id || m.conversation_id != key.conversation_id {
            return Err(SyncError::CorruptManifest {
                key: mkey.to_string(),
                message: format!("it belongs to {}/{}", m.tenant_id, m.conversation_id),
            });
        }
        manifest::validate(&m.entries).map_err(|u| unsafe_manifest(Origin::Store, u))?;
        for p in &m.pending_deletes {
            manifest::check_path(p).map_err(|u| unsafe_manifest(Origin::Store, u))?;
        }
        Ok(Some(m))
    }

    pub(super) async fn ensure_loaded(
        &self,
        key: &ConversationKey,
        layout: &ConversationLayout,
        st: &mut KeyState,
    ) -> Result<(), SyncError> {
        if !st.loaded {
            st.manifest = self.load(key, layout).await?;
            st.loaded = true;
            if let Some(m) = &st.manifest {
                self.set_last_synced(key, m.synced_at);
            }
        }
        Ok(())
    }

    pub(super) fn check_limits(
        &self,
        entries: u64,
        bytes: u64,
        at_least: bool,
    ) -> Result<(), SyncError> {
        if entries > self.cfg.max_files {
            return Err(SyncError::TooLarge {
                limit: Limit::MaxFiles,
                actual: entries,
                allowed: self.cfg.max_files,
                at_least,
            });
        }
        if bytes > self.cfg.max_total_bytes {
            return Err(SyncError::TooLarge {
                limit: Limit::MaxTotalBytes,
                actual: bytes,
                allowed: self.cfg.max_total_bytes,
                at_least,
            });
        }
        Ok(())
    }

    /// Syncs the workspace served by `agent` to the store (see the module docs): read
    /// the workspace's manifest, [`plan`] it against the stored one, upload, refresh,
    /// write the [`next_manifest`] (the commit point), then delete what it no longer
    /// references.
    pub async fn sync(
        &self,
        key: &ConversationKey,
        agent: &AgentClient,
    ) -> Result<SyncReport, SyncError> {
        let started = Instant::now();
        let layout = ConversationLayout::new(key)?;
        let state = self.state(key);
        let mut st = state.lock().await;
        self.ensure_loaded(key, &layout, &mut st).await?;
        let endpoint = agent.endpoint().to_string();
        if let Some(stored) = &st.manifest {
            let known = st.endpoint.as_deref() == Some(endpoint.as_str())
                || stored.workspace.as_deref() == Some(endpoint.as_str());
            if !known {
                return Err(SyncError::NotRestored {
                    conversation: key.to_string(),
                    endpoint,
                });
            }
        }

        // 1. The workspace as it is now (limits checked by the agent before hashing).
        let (mut entries, skipped) = self.workspace_manifest(key, agent).await?;

        // 2. What to transfer.
        let now = OffsetDateTime::now_utc();
        let old = st.manifest.as_ref();
        let p = plan(old, &entries, self.cfg.refresh_after_days, now);

        // 3. Upload the changed files; refresh old objects when due (an object found
        // missing is uploaded again from the workspace).
        let up = self.upload(&layout, agent, &mut entries, &p.upload).await?;
        let (mut uploaded, mut bytes_uploaded, mut vanished) = (up.files, up.bytes, up.vanished);
        let mut refreshed = 0u64;
        if p.refresh_due {
            let missing = self.refresh(&layout, &entries, &p.refresh).await?;
            refreshed = (p.refresh.len() - missing.len()) as u64;
            let again = self.upload(&layout, agent, &mut entries, &missing).await?;
            uploaded += again.files;
            bytes_uploaded += again.bytes;
            vanished.extend(again.vanished);
            if !missing.is_empty() {
                tracing::warn!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
                    missing = missing.len(), "objects missing from the store were uploaded again");
            }
        }
        entries.retain(|e| !vanished.contains(&e.path));

        // 4. The new manifest, with the deletions still to do recorded in it first.
        let (n_entries, n_bytes) = manifest::totals(&entries);
        let next = next_manifest(key, old, &p, entries, &vanished, &endpoint, now);
        let mut new_manifest = next.manifest;
        if next.write {
            let json = serde_json::to_vec(&new_manifest)
                .map_err(|e| SyncError::Spool(format!("cannot serialise the manifest: {e}")))?;
            self.store
                .put(&layout.manifest(), Bytes::from(json))
                .await?;
        }

        // 5. Delete what is no longer referenced.
        let (deleted, retried) = self
            .delete_pending(key, &layout, &mut new_manifest, &next.fresh_deletes)
            .await?;
        let pending_deletes = new_manifest.pending_deletes.len() as u64;
        st.manifest = Some(new_manifest);
        st.endpoint = Some(endpoint);
        self.set_last_synced(key, now);
        let report = SyncReport {
            uploaded,
            deleted,
            bytes_uploaded,
            entries: n_entries,
            total_bytes: n_bytes,
            manifest_written: next.write,
            skipped,
            vanished: vanished.len() as u64,
            retried_deletes: retried,
            refreshed,
            pending_deletes,
            duration: started.elapsed(),
            synced_at: now,
        };
        tracing::info!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
            uploaded, deleted = report.deleted, bytes_uploaded, entries = report.entries,
            manifest_written = next.write, elapsed_ms = report.duration.as_millis() as u64,
            "workspace synced");
        Ok(report)
    }

    /// The agent's manifest of the workspace, checked (paths, limits); and how many
    /// entries it left out.
    async fn workspace_manifest(
        &self,
        key: &ConversationKey,
        agent: &AgentClient,
    ) -> Result<(Vec<ManifestEntry>, u64), SyncError> {
        let query = ManifestQuery {
            max_entries: Some(self.cfg.max_files),
            max_bytes: Some(self.cfg.max_total_bytes),
        };
        let m = match agent.manifest(&query).await {
            Ok(m) => m,
            Err(AgentError::Status { status, body }) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                tracing::debug!(message = %body.error.message, "agent refused the manifest");
                return Err(SyncError::TooLarge {
                    limit: Limit::MaxFiles,
                    actual: self.cfg.max_files,
                    allowed: self.cfg.max_files,
                    at_least: true,
                });
            }
            Err(e) => return Err(e.into()),
        };
        if m.over_limit {
            self.check_limits(m.total_entries, m.total_file_bytes, false)?;
            // Never treat the empty entry list of an over-limit answer as the workspace.
            return Err(SyncError::Export(format!(
                "the agent flagged its manifest over the limits, but its totals ({} entries, {} bytes) are within them",
                m.total_entries, m.total_file_bytes
            )));
        }
        manifest::validate(&m.entries).map_err(|u| unsafe_manifest(Origin::Agent, u))?;
        let (n_entries, n_bytes) = manifest::totals(&m.entries);
        self.check_limits(n_entries, n_bytes, false)?;
        let skipped = m.skipped.len() as u64;
        if skipped > 0 {
            tracing::warn!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
                skipped, first = ?m.skipped.first(), "some workspace entries are not synced");
        }
        Ok((m.entries, skipped))
    }

    /// Deletes the objects the new manifest records as pending; on success the list
    /// is emptied (a failure leaves it for the next sync). Returns (first-time
    /// deletions, retried ones).
    async fn delete_pending(
        &self,
        key: &ConversationKey,
        layout: &ConversationLayout,
        m: &mut StoredManifest,
        fresh: &HashSet<String>,
    ) -> Result<(u64, u64), SyncError> {
        if m.pending_deletes.is_empty() {
            return Ok((0, 0));
        }
        let keys = m
            .pending_deletes
            .iter()
            .map(|p| layout.file(p))
            .collect::<Result<Vec<_>, _>>()?;
        match self.store.delete_many(&keys).await {
            Ok(()) => {
                let first = m
                    .pending_deletes
                    .iter()
                    .filter(|p| fresh.contains(*p))
                    .count() as u64;
                let retried = m.pending_deletes.len() as u64 - first;
                m.pending_deletes.clear();
                Ok((first, retried))
            }
            Err(e) => {
                tracing::warn!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
                    error = %e, pending = keys.len(), "deleting superseded objects failed; the next sync retries");
                Ok((0, 0))
            }
        }
    }
}
