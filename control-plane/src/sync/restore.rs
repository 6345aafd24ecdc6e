//! The restore stage: the stored manifest's entries are fetched (in memory when small,
//! spooled when large, each file's SHA-256 checked against the manifest) into tar
//! batches that the agent imports with `links=preserve`; directories come before what
//! they hold. Objects that are missing or do not match are reported, never trusted.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use wire::{ManifestEntry, ManifestKind};

use super::error::{Limit, SyncError};
use super::key::ConversationLayout;
use super::manifest;
use super::object_store::ObjectStoreError;
use super::syncer::{RestoreReport, Syncer};
use super::transfer::{self, FileData, TarItem};
use crate::agent_client::AgentClient;
use crate::store::ConversationKey;

/// Objects up to this size are fetched into memory for a restore; larger ones are
/// spooled to disk.
const IN_MEMORY_OBJECT_BYTES: u64 = 8 * 1024 * 1024;

impl Syncer {
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

/// Splits a manifest (sorted: directories before their contents) into restore tars of
/// at most `batch_bytes` of file content each (a larger file goes alone). Every batch
/// keeps the manifest order, so a directory is always created before what it holds.
fn restore_batches(entries: &[ManifestEntry], batch_bytes: u64) -> Vec<Vec<usize>> {
    transfer::batches(
        entries.iter().enumerate().map(|(i, e)| {
            let size = if e.kind == ManifestKind::File {
                e.size
            } else {
                0
            };
            (i, size, 0)
        }),
        transfer::BatchLimits {
            bytes: batch_bytes,
            items: usize::MAX,
            path_bytes: usize::MAX,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::manifest::tests::{dir, file};
    use super::*;

    #[test]
    fn restore_batches_keep_order_and_bound_bytes() {
        let mut entries = vec![dir("d")];
        for i in 0..5 {
            entries.push(file(&format!("d/f{i}"), &"x".repeat(40)));
        }
        let r = restore_batches(&entries, 100);
        assert_eq!(r, vec![vec![0, 1, 2], vec![3, 4], vec![5]]);
        assert_eq!(restore_batches(&[], 100), Vec::<Vec<usize>>::new());
    }
}
