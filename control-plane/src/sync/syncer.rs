//! [`Syncer`]: incremental sync of a conversation's workspace to the object store, and
//! restore into a new workspace.
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
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::StatusCode;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use wire::{ManifestEntry, ManifestKind, ManifestQuery};

use super::config::{SyncBackend, SyncConfig};
use super::error::{Limit, SyncError};
use super::key::ConversationLayout;
use super::local::LocalDirStore;
use super::manifest::{self, Origin, StoredManifest, FORMAT};
use super::object_store::{ObjectStore, ObjectStoreError};
use super::s3::S3Store;
use super::transfer::{self, FileData, TarItem};
use crate::agent_client::{AgentClient, AgentError};
use crate::store::ConversationKey;

/// Largest stored manifest read back (100k entries take ~25 MB of JSON).
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;
/// Objects up to this size are fetched into memory for a restore; larger ones are
/// spooled to disk.
const IN_MEMORY_OBJECT_BYTES: u64 = 8 * 1024 * 1024;
/// Most paths in one export request (keeps its JSON body well below the agent's limit).
const EXPORT_BATCH_PATHS: usize = 2000;
const EXPORT_BATCH_PATH_BYTES: usize = 2 * 1024 * 1024;

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// File objects uploaded (new or changed content).
    pub uploaded: u64,
    /// File objects deleted (files gone or no longer files).
    pub deleted: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Entries (files, directories, symlinks) in the workspace's manifest.
    pub entries: u64,
    /// Bytes of all files in the workspace.
    pub total_bytes: u64,
    /// Whether a new manifest was written (false when nothing changed).
    pub manifest_written: bool,
    /// Entries the agent left out (names not UTF-8, unreadable, special files).
    pub skipped: u64,
    /// Files that disappeared between the manifest and their export.
    pub vanished: u64,
    /// Objects rewritten in place so the bucket's lifecycle does not age them out
    /// (`refresh_after_days`).
    pub refreshed: u64,
    /// Deletions left over from an earlier sync (recorded in the stored manifest)
    /// done by this one.
    pub retried_deletes: u64,
    /// Deletions that failed and will be retried by the next sync.
    pub pending_deletes: u64,
    pub duration: Duration,
    pub synced_at: OffsetDateTime,
}

/// What one restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Entries restored (files, directories, symlinks).
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// Tar batches sent to the agent.
    pub archives: u64,
    /// Files whose object is missing from the store (not restored).
    pub missing: Vec<String>,
    /// Files whose object did not match the manifest's SHA-256 (a sync interrupted
    /// between upload and manifest write; the object's newer content was restored).
    pub mismatched: Vec<String>,
    /// When the restored state was synced.
    pub synced_at: OffsetDateTime,
    pub duration: Duration,
}

/// Per-conversation sync state (behind the per-key mutex).
#[derive(Debug, Default)]
struct KeyState {
    /// `manifest` reflects the store.
    loaded: bool,
    /// The last stored manifest (`None`: nothing stored).
    manifest: Option<StoredManifest>,
    /// The agent endpoint last synced or restored.
    endpoint: Option<String>,
}

/// Syncs workspaces to an object store and restores them.
pub struct Syncer {
    store: Arc<dyn ObjectStore>,
    cfg: SyncConfig,
    spool_dir: PathBuf,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unsafe_manifest(origin: Origin, u: manifest::Unsafe) -> SyncError {
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

    fn state(&self, key: &ConversationKey) -> Arc<tokio::sync::Mutex<KeyState>> {
        lock(&self.states).entry(key.clone()).or_default().clone()
    }

    /// When the conversation was last synced (or restored) by this process, or read
    /// from its stored manifest. Memory only: never waits for a running sync.
    pub fn last_synced(&self, key: &ConversationKey) -> Option<OffsetDateTime> {
        lock(&self.last_synced).get(key).copied()
    }

    fn set_last_synced(&self, key: &ConversationKey, at: OffsetDateTime) {
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
    async fn load(
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

    async fn ensure_loaded(
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

    fn check_limits(&self, entries: u64, bytes: u64, at_least: bool) -> Result<(), SyncError> {
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

    /// Syncs the workspace served by `agent` to the store (see the module docs).
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
        let mut entries = m.entries;
        let m_paths: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();

        // 2. What changed.
        let old = st.manifest.as_ref();
        let diff = manifest::diff(old.map(|o| &o.entries[..]), &entries);
        let mut removed: Vec<String> = diff.removed_files.clone();

        // 3. Export and upload the changed files.
        let mut uploaded = 0u64;
        let mut bytes_uploaded = 0u64;
        let mut vanished: HashSet<String> = HashSet::new();
        for batch in export_batches(&entries, &diff.upload, self.cfg.archive_batch_bytes) {
            let paths: Vec<String> = batch.iter().map(|&i| entries[i].path.clone()).collect();
            let results = self
                .export_and_upload(&layout, agent, &paths, &entries, &batch)
                .await?;
            let mut got: HashMap<String, (u64, String)> = HashMap::new();
            for (path, size, sha) in results {
                uploaded += 1;
                bytes_uploaded += size;
                got.insert(path, (size, sha));
            }
            for &i in &batch {
                match got.remove(&entries[i].path) {
                    Some((size, sha)) => {
                        // What was read is what is stored (the file may have changed
                        // since the manifest).
                        entries[i].size = size;
                        entries[i].sha256 = Some(sha);
                    }
                    None => {
                        vanished.insert(entries[i].path.clone());
                    }
                }
            }
        }
        if !vanished.is_empty() {
            entries.retain(|e| !vanished.contains(&e.path));
            if let Some(o) = old {
                for e in &o.entries {
                    if e.kind == ManifestKind::File && vanished.contains(&e.path) {
                        removed.push(e.path.clone());
                    }
                }
            }
        }

        // 3b. Objects of a conversation that still syncs never grow old enough for the
        // bucket's lifecycle rules: refresh them every `refresh_after_days` (an object
        // found missing is uploaded again from the workspace).
        let now = OffsetDateTime::now_utc();
        let refresh_due = self.cfg.refresh_after_days > 0
            && old.is_some_and(|o| {
                now - o.refreshed_at.unwrap_or(o.synced_at)
                    > time::Duration::days(i64::from(self.cfg.refresh_after_days))
            });
        let mut refreshed = 0u64;
        if refresh_due {
            let fresh_uploads: HashSet<usize> = diff.upload.iter().copied().collect();
            let fresh_paths: HashSet<&str> = fresh_uploads
                .iter()
                .filter_map(|&i| m_paths.get(i).map(String::as_str))
                .collect();
            let targets: Vec<usize> = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.kind == ManifestKind::File && !fresh_paths.contains(e.path.as_str())
                })
                .map(|(i, _)| i)
                .collect();
            let layout_ref = &layout;
            let results: Vec<(usize, bool)> = futures::stream::iter(targets.into_iter().map(|i| {
                let path = entries[i].path.clone();
                async move {
                    let okey = layout_ref.file(&path)?;
                    Ok::<_, SyncError>((i, self.store.refresh(&okey).await?))
                }
            }))
            .buffer_unordered(self.cfg.concurrency)
            .try_collect()
            .await?;
            let missing: Vec<usize> = results.iter().filter(|r| !r.1).map(|r| r.0).collect();
            refreshed = (results.len() - missing.len()) as u64;
            for batch in export_batches(&entries, &missing, self.cfg.archive_batch_bytes) {
                let paths: Vec<String> = batch.iter().map(|&i| entries[i].path.clone()).collect();
                let results = self
                    .export_and_upload(&layout, agent, &paths, &entries, &batch)
                    .await?;
                let got: HashMap<String, (u64, String)> = results
                    .into_iter()
                    .map(|(p, size, sha)| (p, (size, sha)))
                    .collect();
                for &i in &batch {
                    if let Some((size, sha)) = got.get(&entries[i].path) {
                        uploaded += 1;
                        bytes_uploaded += size;
                        entries[i].size = *size;
                        entries[i].sha256 = Some(sha.clone());
                    }
                }
            }
            if !missing.is_empty() {
                tracing::warn!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
                    missing = missing.len(), "objects missing from the store were uploaded again");
            }
        }

        // 4. The new manifest: deletions still to do are recorded in it first.
        let new_files: HashSet<&str> = entries
            .iter()
            .filter(|e| e.kind == ManifestKind::File)
            .map(|e| e.path.as_str())
            .collect();
        let fresh: HashSet<String> = removed.into_iter().collect();
        let mut pending: Vec<String> = old
            .map(|o| o.pending_deletes.clone())
            .unwrap_or_default()
            .into_iter()
            .chain(fresh.iter().cloned())
            .filter(|p| !new_files.contains(p.as_str()))
            .collect();
        pending.sort();
        pending.dedup();
        let synced_at = now;
        let moved = old.and_then(|o| o.workspace.as_deref()) != Some(endpoint.as_str());
        let write = old.is_none() || diff.changed || !vanished.is_empty() || moved || refresh_due;
        let refreshed_at = match old {
            Some(o) if !refresh_due => Some(o.refreshed_at.unwrap_or(o.synced_at)),
            _ => Some(now),
        };
        let old_pending_len = old.map(|o| o.pending_deletes.len()).unwrap_or(0);
        let (n_entries, n_bytes) = manifest::totals(&entries);
        let mut new_manifest = StoredManifest {
            format: FORMAT,
            tenant_id: key.tenant_id.clone(),
            conversation_id: key.conversation_id.clone(),
            synced_at,
            workspace: Some(endpoint.clone()),
            refreshed_at,
            entries,
            pending_deletes: pending,
        };
        if write || new_manifest.pending_deletes.len() != old_pending_len {
            let json = serde_json::to_vec(&new_manifest)
                .map_err(|e| SyncError::Spool(format!("cannot serialise the manifest: {e}")))?;
            self.store
                .put(&layout.manifest(), Bytes::from(json))
                .await?;
        }

        // 5. Delete what is no longer referenced.
        let (mut deleted, mut retried) = (0u64, 0u64);
        if !new_manifest.pending_deletes.is_empty() {
            let keys = new_manifest
                .pending_deletes
                .iter()
                .map(|p| layout.file(p))
                .collect::<Result<Vec<_>, _>>()?;
            match self.store.delete_many(&keys).await {
                Ok(()) => {
                    for p in &new_manifest.pending_deletes {
                        if fresh.contains(p) {
                            deleted += 1;
                        } else {
                            retried += 1;
                        }
                    }
                    new_manifest.pending_deletes.clear();
                }
                Err(e) => {
                    tracing::warn!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
                        error = %e, pending = keys.len(), "deleting superseded objects failed; the next sync retries");
                }
            }
        }
        let pending_deletes = new_manifest.pending_deletes.len() as u64;
        st.manifest = Some(new_manifest);
        st.endpoint = Some(endpoint);
        self.set_last_synced(key, synced_at);
        let report = SyncReport {
            uploaded,
            deleted,
            bytes_uploaded,
            entries: n_entries,
            total_bytes: n_bytes,
            manifest_written: write,
            skipped,
            vanished: vanished.len() as u64,
            retried_deletes: retried,
            refreshed,
            pending_deletes,
            duration: started.elapsed(),
            synced_at,
        };
        tracing::info!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
            uploaded, deleted = report.deleted, bytes_uploaded, entries = report.entries,
            manifest_written = write, elapsed_ms = report.duration.as_millis() as u64,
            "workspace synced");
        Ok(report)
    }

    /// Exports `paths` from the agent into a spool file and uploads each file from it.
    /// Returns (path, size, sha256) of each uploaded file; paths that vanished are
    /// absent.
    async fn export_and_upload(
        &self,
        layout: &ConversationLayout,
        agent: &AgentClient,
        paths: &[String],
        entries: &[ManifestEntry],
        batch: &[usize],
    ) -> Result<Vec<(String, u64, String)>, SyncError> {
        let expected: u64 = batch.iter().map(|&i| entries[i].size).sum();
        // Room for headers, long names and files that grew since the manifest.
        let limit = self
            .cfg
            .max_total_bytes
            .max(expected)
            .saturating_add(4096 * paths.len() as u64 + (1 << 20));
        let body = agent.export_entries(paths).await?;
        let (tar_path, _size) = transfer::spool_body(body, &self.spool_dir, limit).await?;
        let tar_path = Arc::new(tar_path);
        let index = {
            let tar_path = tar_path.clone();
            let asked: Vec<String> = paths.to_vec();
            tokio::task::spawn_blocking(move || {
                let asked: HashSet<&str> = asked.iter().map(String::as_str).collect();
                transfer::index_export(&tar_path, &asked)
            })
            .await
            .map_err(|e| SyncError::Spool(e.to_string()))??
        };
        let uploads = futures::stream::iter(index.into_iter().map(|x| {
            let tar_path = tar_path.clone();
            async move {
                let okey = layout.file(&x.path)?;
                self.store
                    .put_file_range(&okey, &tar_path, x.offset, x.size)
                    .await?;
                Ok::<_, SyncError>((x.path, x.size, x.sha256))
            }
        }))
        .buffer_unordered(self.cfg.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(uploads)
    }

    /// Restores the conversation's stored files into the workspace served by `agent`
    /// (call before its first execute). `None` when nothing is stored.
    pub async fn restore(
        &self,
        key: &ConversationKey,
        agent: &AgentClient,
    ) -> Result<Option<RestoreReport>, SyncError> {
        let started = Instant::now();
        let layout = ConversationLayout::new(key)?;
        let state = self.state(key);
        let mut st = state.lock().await;
        // Always read the store: another replica may have synced since. Until the
        // restore succeeds the cached state is unknown (the next call reloads it).
        st.loaded = false;
        st.manifest = None;
        let stored = self.load(key, &layout).await?;
        let endpoint = agent.endpoint().to_string();
        let Some(m) = stored else {
            st.loaded = true;
            st.endpoint = Some(endpoint);
            return Ok(None);
        };
        let (n_entries, n_bytes) = manifest::totals(&m.entries);
        self.check_limits(n_entries, n_bytes, false)?;

        let mut report = RestoreReport {
            entries: 0,
            files: 0,
            bytes: 0,
            archives: 0,
            missing: Vec::new(),
            mismatched: Vec::new(),
            synced_at: m.synced_at,
            duration: Duration::ZERO,
        };
        let mut total_fetched = 0u64;
        for batch in restore_batches(&m.entries, self.cfg.archive_batch_bytes) {
            let (file, tar_path) = transfer::spool_file(&self.spool_dir)?;
            let (tx, rx) = tokio::sync::mpsc::channel::<TarItem>(self.cfg.concurrency * 2);
            let writer = tokio::task::spawn_blocking(move || transfer::write_tar(file, rx));
            let layout_ref = &layout;
            // Futures collected first: a closure inside the stream's type would make the
            // caller's future not provably `Send` (higher-ranked lifetimes).
            let futs: Vec<_> = batch
                .iter()
                .map(|i| self.fetch_item(layout_ref, &m.entries[*i]))
                .collect();
            let mut fetches = futures::stream::iter(futs).buffered(self.cfg.concurrency);
            let mut sent_entries = 0u64;
            let mut failure = None;
            while let Some(item) = fetches.next().await {
                match item {
                    Ok(Fetched::Item(item, outcome)) => {
                        match outcome {
                            Outcome::Ok(n) | Outcome::Mismatch(n) => {
                                total_fetched += n;
                                report.files += 1;
                                report.bytes += n;
                            }
                            Outcome::NotFile => {}
                        }
                        if let Outcome::Mismatch(_) = outcome {
                            report.mismatched.push(item_path(&item).to_string());
                        }
                        if total_fetched > self.cfg.max_total_bytes {
                            failure = Some(SyncError::TooLarge {
                                limit: Limit::MaxTotalBytes,
                                actual: total_fetched,
                                allowed: self.cfg.max_total_bytes,
                                at_least: true,
                            });
                            break;
                        }
                        sent_entries += 1;
                        if tx.send(item).await.is_err() {
                            break; // the writer failed: its error is reported below
                        }
                    }
                    Ok(Fetched::Missing(path)) => report.missing.push(path),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            drop(fetches);
            drop(tx);
            let written = writer.await.map_err(|e| SyncError::Spool(e.to_string()))?;
            if let Some(e) = failure {
                return Err(e);
            }
            let tar_size = written?;
            let file = tokio::fs::File::open(&tar_path)
                .await
                .map_err(|e| SyncError::Spool(e.to_string()))?;
            let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                file,
                256 * 1024,
            ));
            let imported = agent.import_archive_preserving_links(body).await?;
            tracing::debug!(
                tar_size,
                entries = imported.entries,
                "restore batch imported"
            );
            report.entries += sent_entries;
            report.archives += 1;
        }
        report.duration = started.elapsed();
        if !report.missing.is_empty() || !report.mismatched.is_empty() {
            tracing::warn!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
                missing = report.missing.len(), mismatched = report.mismatched.len(),
                first_missing = ?report.missing.first(), first_mismatched = ?report.mismatched.first(),
                "restore found objects that do not match the manifest");
        }
        tracing::info!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
            entries = report.entries, files = report.files, bytes = report.bytes,
            archives = report.archives, elapsed_ms = report.duration.as_millis() as u64,
            "workspace restored");
        self.set_last_synced(key, m.synced_at);
        // The workspace now holds the stored state: the next sync diffs against it, and
        // the stored manifest names it (so a restarted control plane lets it sync).
        let mut m = m;
        if !report.missing.is_empty() {
            let missing: HashSet<&str> = report.missing.iter().map(String::as_str).collect();
            m.entries.retain(|e| !missing.contains(e.path.as_str()));
        }
        m.workspace = Some(endpoint.clone());
        match serde_json::to_vec(&m) {
            Ok(json) => {
                if let Err(e) = self.store.put(&layout.manifest(), Bytes::from(json)).await {
                    tracing::warn!(tenant_id = %key.tenant_id, conversation_id = %key.conversation_id,
                        error = %e, "cannot record the restored workspace in the stored manifest");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialise the manifest"),
        }
        st.manifest = Some(m);
        st.loaded = true;
        st.endpoint = Some(endpoint);
        Ok(Some(report))
    }

    async fn fetch_item(
        &self,
        layout: &ConversationLayout,
        e: &ManifestEntry,
    ) -> Result<Fetched, SyncError> {
        let item = match e.kind {
            ManifestKind::Dir => TarItem::Dir {
                path: e.path.clone(),
                mode: e.mode,
                mtime_ms: e.mtime_ms,
            },
            ManifestKind::Symlink => TarItem::Symlink {
                path: e.path.clone(),
                target: e.target.clone().unwrap_or_default(),
                mode: e.mode,
                mtime_ms: e.mtime_ms,
            },
            ManifestKind::File => {
                let okey = layout.file(&e.path)?;
                let cap = self.cfg.max_total_bytes;
                let mut data = None;
                if e.size <= IN_MEMORY_OBJECT_BYTES {
                    match self.store.get(&okey, IN_MEMORY_OBJECT_BYTES).await {
                        Ok(None) => return Ok(Fetched::Missing(e.path.clone())),
                        Ok(Some(b)) => data = Some(FileData::Memory(b)),
                        Err(ObjectStoreError::TooLarge { .. }) => {} // spooled below
                        Err(err) => return Err(err.into()),
                    }
                }
                let data = match data {
                    Some(d) => d,
                    None => {
                        let (f, tmp) = transfer::spool_file(&self.spool_dir)?;
                        drop(f);
                        match self.store.get_to_file(&okey, &tmp, cap).await? {
                            None => return Ok(Fetched::Missing(e.path.clone())),
                            Some(n) => FileData::Spooled(tmp, n),
                        }
                    }
                };
                let (size, sha) = match &data {
                    FileData::Memory(b) => (b.len() as u64, hex::encode(Sha256::digest(b))),
                    FileData::Spooled(tmp, n) => {
                        let tmp = tmp.to_path_buf();
                        let sha = tokio::task::spawn_blocking(move || hash_file(&tmp))
                            .await
                            .map_err(|err| SyncError::Spool(err.to_string()))??;
                        (*n, sha)
                    }
                };
                let item = TarItem::File {
                    path: e.path.clone(),
                    mode: e.mode,
                    mtime_ms: e.mtime_ms,
                    data,
                };
                let outcome = if Some(&sha) == e.sha256.as_ref() && size == e.size {
                    Outcome::Ok(size)
                } else {
                    Outcome::Mismatch(size)
                };
                return Ok(Fetched::Item(item, outcome));
            }
        };
        Ok(Fetched::Item(item, Outcome::NotFile))
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok(u64),
    Mismatch(u64),
    NotFile,
}

enum Fetched {
    Item(TarItem, Outcome),
    Missing(String),
}

fn item_path(i: &TarItem) -> &str {
    match i {
        TarItem::Dir { path, .. } | TarItem::Symlink { path, .. } | TarItem::File { path, .. } => {
            path
        }
    }
}

fn hash_file(p: &std::path::Path) -> Result<String, SyncError> {
    let mut f = std::fs::File::open(p).map_err(|e| SyncError::Spool(e.to_string()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| SyncError::Spool(e.to_string()))?;
    Ok(hex::encode(h.finalize()))
}

/// Splits the files to upload into export requests: at most `batch_bytes` of content
/// (a larger file goes alone), [`EXPORT_BATCH_PATHS`] paths and
/// [`EXPORT_BATCH_PATH_BYTES`] of path text each.
fn export_batches(
    entries: &[ManifestEntry],
    upload: &[usize],
    batch_bytes: u64,
) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let (mut bytes, mut path_bytes) = (0u64, 0usize);
    for &i in upload {
        let e = &entries[i];
        let full = !cur.is_empty()
            && (bytes + e.size > batch_bytes
                || cur.len() >= EXPORT_BATCH_PATHS
                || path_bytes + e.path.len() > EXPORT_BATCH_PATH_BYTES);
        if full {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
            path_bytes = 0;
        }
        cur.push(i);
        bytes += e.size;
        path_bytes += e.path.len();
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Splits a manifest (sorted: directories before their contents) into restore tars of
/// at most `batch_bytes` of file content each (a larger file goes alone). Every batch
/// keeps the manifest order, so a directory is always created before what it holds.
fn restore_batches(entries: &[ManifestEntry], batch_bytes: u64) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut bytes = 0u64;
    for (i, e) in entries.iter().enumerate() {
        let size = if e.kind == ManifestKind::File {
            e.size
        } else {
            0
        };
        if !cur.is_empty() && size > 0 && bytes + size > batch_bytes {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.push(i);
        bytes += size;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::manifest::tests::{dir, file};
    use super::*;

    #[test]
    fn batches() {
        let mut entries = vec![dir("d")];
        for i in 0..5 {
            entries.push(file(&format!("d/f{i}"), &"x".repeat(40)));
        }
        let upload: Vec<usize> = (1..6).collect();
        let b = export_batches(&entries, &upload, 100);
        assert_eq!(b, vec![vec![1, 2], vec![3, 4], vec![5]]);
        let b = export_batches(&entries, &upload, 10);
        assert_eq!(b.len(), 5, "a file larger than a batch goes alone");
        let r = restore_batches(&entries, 100);
        assert_eq!(r, vec![vec![0, 1, 2], vec![3, 4], vec![5]]);
        assert_eq!(restore_batches(&[], 100), Vec::<Vec<usize>>::new());
    }
}
