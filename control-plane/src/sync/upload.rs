//! The upload stage of a sync: files are exported from the agent in batches (one
//! `POST /archive/export` each, spooled to disk, bounded), then each file is uploaded
//! from the spool as its own object. The same path serves new content and objects a
//! lifecycle refresh found missing. Files that vanished between the manifest and the
//! export are reported, never stored.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use wire::ManifestEntry;

use super::error::SyncError;
use super::key::ConversationLayout;
use super::syncer::Syncer;
use super::transfer;
use crate::agent_client::AgentClient;

/// Most paths in one export request (keeps its JSON body well below the agent's limit).
const EXPORT_BATCH_PATHS: usize = 2000;
const EXPORT_BATCH_PATH_BYTES: usize = 2 * 1024 * 1024;

/// What an upload did.
#[derive(Debug, Default)]
pub(super) struct Uploaded {
    pub files: u64,
    pub bytes: u64,
    /// Paths that were gone when exported.
    pub vanished: HashSet<String>,
}

impl Syncer {
    /// Exports and uploads the files `targets` (indexes into `entries`), recording in
    /// each entry the size and hash of what was read (the file may have changed since
    /// the manifest).
    pub(super) async fn upload(
        &self,
        layout: &ConversationLayout,
        agent: &AgentClient,
        entries: &mut [ManifestEntry],
        targets: &[usize],
    ) -> Result<Uploaded, SyncError> {
        let mut out = Uploaded::default();
        for batch in export_batches(entries, targets, self.cfg.archive_batch_bytes) {
            let paths: Vec<String> = batch.iter().map(|&i| entries[i].path.clone()).collect();
            let results = self
                .export_and_upload(layout, agent, &paths, entries, &batch)
                .await?;
            let mut got: HashMap<String, (u64, String)> = results
                .into_iter()
                .map(|(p, size, sha)| (p, (size, sha)))
                .collect();
            for &i in &batch {
                match got.remove(&entries[i].path) {
                    Some((size, sha)) => {
                        out.files += 1;
                        out.bytes += size;
                        entries[i].size = size;
                        entries[i].sha256 = Some(sha);
                    }
                    None => {
                        out.vanished.insert(entries[i].path.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Rewrites the stored objects of `targets` in place (lifecycle refresh); returns
    /// the targets whose object was missing (to upload again).
    pub(super) async fn refresh(
        &self,
        layout: &ConversationLayout,
        entries: &[ManifestEntry],
        targets: &[usize],
    ) -> Result<Vec<usize>, SyncError> {
        // Futures collected first: a closure inside the stream's type would make the
        // caller's future not provably `Send` (higher-ranked lifetimes).
        let futs: Vec<_> = targets
            .iter()
            .map(|&i| {
                let path = entries[i].path.clone();
                async move {
                    let okey = layout.file(&path)?;
                    Ok::<_, SyncError>((i, self.store.refresh(&okey).await?))
                }
            })
            .collect();
        let results: Vec<(usize, bool)> = futures::stream::iter(futs)
            .buffer_unordered(self.cfg.concurrency)
            .try_collect()
            .await?;
        Ok(results.iter().filter(|r| !r.1).map(|r| r.0).collect())
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
}

/// Splits the files to upload into export requests: at most `batch_bytes` of content
/// (a larger file goes alone), [`EXPORT_BATCH_PATHS`] paths and
/// [`EXPORT_BATCH_PATH_BYTES`] of path text each.
pub(super) fn export_batches(
    entries: &[ManifestEntry],
    upload: &[usize],
    batch_bytes: u64,
) -> Vec<Vec<usize>> {
    transfer::batches(
        upload
            .iter()
            .map(|&i| (i, entries[i].size, entries[i].path.len())),
        transfer::BatchLimits {
            bytes: batch_bytes,
            items: EXPORT_BATCH_PATHS,
            path_bytes: EXPORT_BATCH_PATH_BYTES,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::manifest::tests::{dir, file};
    use super::*;

    #[test]
    fn export_batches_bound_bytes_and_paths() {
        let mut entries = vec![dir("d")];
        for i in 0..5 {
            entries.push(file(&format!("d/f{i}"), &"x".repeat(40)));
        }
        let upload: Vec<usize> = (1..6).collect();
        let b = export_batches(&entries, &upload, 100);
        assert_eq!(b, vec![vec![1, 2], vec![3, 4], vec![5]]);
        let b = export_batches(&entries, &upload, 10);
        assert_eq!(b.len(), 5, "a file larger than a batch goes alone");
    }
}
