//! Moving bytes between the agent and the object store through local spool files:
//! spooling an export body to disk, indexing the exported tar (offset, size and
//! SHA-256 of each file, so objects upload straight from the spool), and writing the
//! restore tar (directories, files, symlinks as they are) for `PUT /archive`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::SyncError;

fn spool_err(e: impl std::fmt::Display) -> SyncError {
    SyncError::Spool(e.to_string())
}

/// A new anonymous-ish spool file (removed when the returned path drops).
pub fn spool_file(dir: &Path) -> Result<(std::fs::File, tempfile::TempPath), SyncError> {
    let f = tempfile::Builder::new()
        .prefix("sync-")
        .tempfile_in(dir)
        .map_err(|e| {
            SyncError::Spool(format!(
                "cannot create a spool file in {}: {e}",
                dir.display()
            ))
        })?;
    Ok(f.into_parts())
}

/// Longest silence of an agent's export before the sync gives up.
const EXPORT_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes a response body to a new spool file, refusing more than `limit` bytes or a
/// silence longer than [`EXPORT_IDLE`].
pub async fn spool_body(
    body: Incoming,
    dir: &Path,
    limit: u64,
) -> Result<(tempfile::TempPath, u64), SyncError> {
    let (file, path) = spool_file(dir)?;
    let mut out = tokio::fs::File::from_std(file);
    let mut body = body;
    let mut total = 0u64;
    // The agent is sandbox-controlled: a stalled export must not hold a sync forever.
    loop {
        let frame = match tokio::time::timeout(EXPORT_IDLE, body.frame()).await {
            Err(_) => {
                return Err(SyncError::Export(format!(
                    "the agent sent nothing for {} s",
                    EXPORT_IDLE.as_secs()
                )))
            }
            Ok(None) => break,
            Ok(Some(frame)) => frame,
        };
        let frame = frame.map_err(|e| SyncError::Export(format!("the transfer broke off: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                return Err(SyncError::Export(format!(
                    "the export is larger than the {limit} bytes expected"
                )));
            }
            out.write_all(&data).await.map_err(spool_err)?;
        }
    }
    out.flush().await.map_err(spool_err)?;
    Ok((path, total))
}

/// One exported regular file inside a spooled tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub path: String,
    pub offset: u64,
    pub size: u64,
    pub sha256: String,
}

/// Reads the spooled export tar: every entry must be a regular file that was asked
/// for (at most once); returns where each one's bytes are and their SHA-256.
pub fn index_export(tar_path: &Path, asked: &HashSet<&str>) -> Result<Vec<Exported>, SyncError> {
    let f = std::fs::File::open(tar_path).map_err(spool_err)?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let mut out = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let entries = ar
        .entries()
        .map_err(|e| SyncError::Export(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut e = entry.map_err(|e| SyncError::Export(format!("malformed tar: {e}")))?;
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let name = String::from_utf8(e.path_bytes().into_owned())
            .map_err(|_| SyncError::Export("an entry name is not UTF-8".into()))?;
        if !asked.contains(name.as_str()) {
            return Err(SyncError::Export(format!(
                "entry {name:?} was not asked for"
            )));
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            // The path stopped being a regular file since the manifest: left out here,
            // seen as gone by the caller and picked up by the next sync.
            continue;
        }
        if !seen.insert(name.clone()) {
            return Err(SyncError::Export(format!("entry {name:?} appears twice")));
        }
        let offset = e.raw_file_position();
        let size = e.size();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        loop {
            let n = e
                .read(&mut buf)
                .map_err(|err| SyncError::Export(format!("reading entry {name:?}: {err}")))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            hasher.update(&buf[..n]);
        }
        if read != size {
            return Err(SyncError::Export(format!("entry {name:?} is truncated")));
        }
        out.push(Exported {
            path: name,
            offset,
            size,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    Ok(out)
}

/// Content of one file of a restore tar.
#[derive(Debug)]
pub enum FileData {
    Memory(Bytes),
    /// Downloaded into a spool file of this size.
    Spooled(tempfile::TempPath, u64),
}

/// One entry of a restore tar.
#[derive(Debug)]
pub enum TarItem {
    Dir {
        path: String,
        mode: u32,
        mtime_ms: i64,
    },
    Symlink {
        path: String,
        target: String,
        mode: u32,
        mtime_ms: i64,
    },
    File {
        path: String,
        mode: u32,
        mtime_ms: i64,
        data: FileData,
    },
}

fn header(kind: tar::EntryType, mode: u32, mtime_ms: i64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_mtime((mtime_ms.max(0) / 1000) as u64);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h
}

/// Writes the items received on `rx` as a tar into `file` (blocking: run it on the
/// blocking pool). Returns the tar's size.
pub fn write_tar(
    file: std::fs::File,
    mut rx: tokio::sync::mpsc::Receiver<TarItem>,
) -> Result<u64, SyncError> {
    let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, file));
    b.follow_symlinks(false);
    while let Some(item) = rx.blocking_recv() {
        match item {
            TarItem::Dir {
                path,
                mode,
                mtime_ms,
            } => {
                let mut h = header(tar::EntryType::Directory, mode, mtime_ms, 0);
                b.append_data(&mut h, &path, std::io::empty())
                    .map_err(|e| spool_err(format!("{path}: {e}")))?;
            }
            TarItem::Symlink {
                path,
                target,
                mode,
                mtime_ms,
            } => {
                let mut h = header(tar::EntryType::Symlink, mode, mtime_ms, 0);
                b.append_link(&mut h, &path, PathBuf::from(&target))
                    .map_err(|e| spool_err(format!("{path}: {e}")))?;
            }
            TarItem::File {
                path,
                mode,
                mtime_ms,
                data,
            } => match data {
                FileData::Memory(bytes) => {
                    let mut h = header(tar::EntryType::Regular, mode, mtime_ms, bytes.len() as u64);
                    b.append_data(&mut h, &path, &bytes[..])
                        .map_err(|e| spool_err(format!("{path}: {e}")))?;
                }
                FileData::Spooled(tmp, size) => {
                    let f = std::fs::File::open(&tmp).map_err(spool_err)?;
                    let mut h = header(tar::EntryType::Regular, mode, mtime_ms, size);
                    b.append_data(&mut h, &path, f.take(size))
                        .map_err(|e| spool_err(format!("{path}: {e}")))?;
                }
            },
        }
    }
    let mut w = b.into_inner().map_err(spool_err)?;
    w.flush().map_err(spool_err)?;
    let f = w.into_inner().map_err(|e| spool_err(e.error()))?;
    let size = f.metadata().map_err(spool_err)?.len();
    Ok(size)
}

/// Limits of one transfer batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// File content per batch (a larger file goes alone).
    pub bytes: u64,
    /// Entries per batch.
    pub items: usize,
    /// Path text per batch.
    pub path_bytes: usize,
}

/// Splits `items` — (index, content bytes, path length), in order — into batches within
/// `limits`, keeping the order. Entries without content (directories, symlinks) never
/// start a new batch on account of bytes.
pub fn batches(
    items: impl IntoIterator<Item = (usize, u64, usize)>,
    limits: BatchLimits,
) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let (mut bytes, mut path_bytes) = (0u64, 0usize);
    for (i, size, path_len) in items {
        let full = !cur.is_empty()
            && ((size > 0 && bytes + size > limits.bytes)
                || cur.len() >= limits.items
                || path_bytes + path_len > limits.path_bytes);
        if full {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
            path_bytes = 0;
        }
        cur.push(i);
        bytes += size;
        path_bytes += path_len;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_of_an_export() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
        for (name, data) in [("a.txt", &b"alpha"[..]), ("d/b.bin", &[0u8; 70_000][..])] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        b.finish().unwrap();
        drop(b);
        let asked: HashSet<&str> = ["a.txt", "d/b.bin", "gone"].into_iter().collect();
        let idx = index_export(&p, &asked).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx[0].path, "a.txt");
        assert_eq!(idx[0].size, 5);
        assert_eq!(
            idx[0].sha256,
            "8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8"
        );
        let all = std::fs::read(&p).unwrap();
        let o = idx[1].offset as usize;
        assert_eq!(&all[o..o + 70_000], &[0u8; 70_000][..]);
        // An entry nobody asked for refuses the export.
        let only_a: HashSet<&str> = ["a.txt"].into_iter().collect();
        assert!(matches!(
            index_export(&p, &only_a),
            Err(SyncError::Export(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restore_tar_keeps_links_as_they_are() {
        let tmp = tempfile::tempdir().unwrap();
        let (file, path) = spool_file(tmp.path()).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let writer = tokio::task::spawn_blocking(move || write_tar(file, rx));
        let long = format!("d/{}", "n".repeat(150));
        for item in [
            TarItem::Dir {
                path: "d".into(),
                mode: 0o750,
                mtime_ms: 1_700_000_000_000,
            },
            TarItem::Symlink {
                path: "d/python".into(),
                target: "/usr/bin/python3".into(),
                mode: 0o777,
                mtime_ms: 0,
            },
            TarItem::File {
                path: long.clone(),
                mode: 0o755,
                mtime_ms: 0,
                data: FileData::Memory(Bytes::from_static(b"#!/bin/sh\n")),
            },
        ] {
            tx.send(item).await.unwrap();
        }
        drop(tx);
        let size = writer.await.unwrap().unwrap();
        assert!(size > 0);
        let mut ar = tar::Archive::new(std::fs::File::open(&path).unwrap());
        let got: Vec<(String, tar::EntryType, Option<String>, u32)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(got[0], ("d".into(), tar::EntryType::Directory, None, 0o750));
        assert_eq!(
            got[1],
            (
                "d/python".into(),
                tar::EntryType::Symlink,
                Some("/usr/bin/python3".into()),
                0o777
            )
        );
        assert_eq!(got[2].0, long);
        assert_eq!(got[2].3, 0o755);
    }
}
