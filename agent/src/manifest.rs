//! The workspace manifest for file sync (`GET /manifest`): every file, directory and
//! symlink under the root with size, mtime, mode, a SHA-256 of each file's content and
//! each symlink's target, sorted by path.
//!
//! The walk never follows symlinks and never leaves the root (directory descriptors
//! opened with `O_NOFOLLOW` relative to their parent, like [`crate::confine`]). Hashes
//! are cached in memory ([`HashCache`]) keyed by path, device, inode, size, mtime and
//! ctime (both with nanoseconds), so an unchanged tree is stat-ed but not re-read; a
//! file that changes while it is hashed is hashed but not cached. Names that are not
//! UTF-8, unreadable entries and special files (FIFOs, sockets, devices) are reported in
//! `skipped`, not listed.
//!
//! Limits: the agent's own cap on entries ([`crate::config::Config::max_manifest_entries`])
//! ends the walk with 413; the caller's `max_entries`/`max_bytes` stop listing and
//! hashing but the walk goes on counting, so the answer carries the real totals with
//! `over_limit` set.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::confine::{dir_flags, FsError, RelPath, Root, MAX_DEPTH};
use crate::files::{name_of, read_dir};
use crate::wire::{Manifest, ManifestEntry, ManifestKind, ManifestQuery, ManifestSkip};

/// Identity of a file version for the hash cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    path: String,
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl CacheKey {
    fn of(path: &str, st: &Stat) -> Self {
        CacheKey {
            path: path.to_string(),
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        }
    }
}

/// File hashes of the last manifest, keyed by file identity. Each manifest replaces the
/// cache with the entries it saw, so it never outgrows the workspace.
#[derive(Debug, Default)]
pub struct HashCache {
    inner: Mutex<HashMap<CacheKey, String>>,
}

impl HashCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, key: &CacheKey) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn replace(&self, map: HashMap<CacheKey, String>) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = map;
    }

    /// Number of cached hashes (for tests).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of one manifest build (logged by the handler).
#[derive(Debug, Default, Clone, Copy)]
pub struct BuildStats {
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    pub cached_files: u64,
}

/// Builds the manifest of the whole root. `hard_cap` is the agent's own entry limit
/// (beyond it: [`FsError::TooLarge`]).
pub fn build(
    root: &Root,
    query: &ManifestQuery,
    hard_cap: u64,
    cache: &HashCache,
) -> Result<(Manifest, BuildStats), FsError> {
    struct Level {
        fd: OwnedFd,
        prefix: RelPath,
        prefix_str: String,
        names: Vec<OsString>,
    }
    let open_level = |fd: OwnedFd, prefix: RelPath, prefix_str: String| -> Result<Level, Errno> {
        let mut names = Vec::new();
        let mut d = read_dir(fd.as_fd())?;
        while let Some(ent) = d.read() {
            let ent = ent?;
            let n = ent.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(name_of(n));
            }
        }
        names.sort();
        names.reverse(); // pop() yields them in order
        Ok(Level {
            fd,
            prefix,
            prefix_str,
            names,
        })
    };

    let max_entries = query.max_entries.unwrap_or(u64::MAX);
    let max_bytes = query.max_bytes.unwrap_or(u64::MAX);
    let mut m = Manifest::default();
    let mut stats = BuildStats::default();
    let mut new_cache: HashMap<CacheKey, String> = HashMap::new();

    let start = rustix::io::dup(root.fd()).map_err(|e| FsError::from_errno("", e))?;
    let mut stack = vec![open_level(start, RelPath::root(), String::new())
        .map_err(|e| FsError::from_errno("", e))?];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.pop() else {
            stack.pop();
            continue;
        };
        let path = level.prefix.join(&name);
        let Some(name_str) = name.to_str() else {
            m.skipped.push(ManifestSkip {
                path: path.display(),
                reason: "the name is not UTF-8".into(),
            });
            continue;
        };
        let path_str = if level.prefix_str.is_empty() {
            name_str.to_string()
        } else {
            format!("{}/{}", level.prefix_str, name_str)
        };
        let st = match rustix::fs::statat(&level.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue, // removed meanwhile
            Err(e) => return Err(FsError::from_errno(&path_str, e)),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        let kind = match ft {
            FileType::RegularFile => ManifestKind::File,
            FileType::Directory => ManifestKind::Dir,
            FileType::Symlink => ManifestKind::Symlink,
            _ => {
                m.skipped.push(ManifestSkip {
                    path: path_str,
                    reason: "not a regular file, directory or symlink".into(),
                });
                continue;
            }
        };
        m.total_entries += 1;
        if m.total_entries > hard_cap {
            return Err(FsError::TooLarge(format!(
                "the workspace has more than {hard_cap} entries (WORKSPACE_AGENT_MAX_MANIFEST_ENTRIES)"
            )));
        }
        let size = if kind == ManifestKind::File {
            st.st_size.max(0) as u64
        } else {
            0
        };
        m.total_file_bytes = m.total_file_bytes.saturating_add(size);
        if !m.over_limit && (m.total_entries > max_entries || m.total_file_bytes > max_bytes) {
            m.over_limit = true;
            m.entries = Vec::new(); // only the totals are answered from here on
        }
        let mut entry = ManifestEntry {
            path: path_str.clone(),
            kind,
            size,
            mtime_ms: st.st_mtime * 1000 + (st.st_mtime_nsec as i64) / 1_000_000,
            mode: st.st_mode & 0o7777,
            sha256: None,
            target: None,
        };
        let listed = !m.over_limit;
        match kind {
            ManifestKind::File if listed => {
                let key = CacheKey::of(&path_str, &st);
                if let Some(h) = cache.get(&key) {
                    stats.cached_files += 1;
                    new_cache.insert(key, h.clone());
                    entry.sha256 = Some(h);
                } else {
                    match hash_file(level.fd.as_fd(), &name, &path_str)? {
                        Hashed::Done { sha256, stable } => {
                            stats.hashed_files += 1;
                            stats.hashed_bytes += size;
                            if stable {
                                new_cache.insert(key, sha256.clone());
                            }
                            entry.sha256 = Some(sha256);
                        }
                        Hashed::Gone => {
                            m.total_entries -= 1;
                            m.total_file_bytes -= size;
                            continue;
                        }
                        Hashed::Skip(reason) => {
                            m.skipped.push(ManifestSkip {
                                path: path_str,
                                reason,
                            });
                            m.total_entries -= 1;
                            m.total_file_bytes -= size;
                            continue;
                        }
                    }
                }
            }
            ManifestKind::Symlink if listed => {
                match rustix::fs::readlinkat(&level.fd, &name, Vec::new()) {
                    Ok(t) => match t.into_string() {
                        Ok(t) => entry.target = Some(t),
                        Err(_) => {
                            m.skipped.push(ManifestSkip {
                                path: path_str,
                                reason: "the symlink target is not UTF-8".into(),
                            });
                            m.total_entries -= 1;
                            continue;
                        }
                    },
                    Err(Errno::NOENT) | Err(Errno::INVAL) => {
                        m.total_entries -= 1;
                        continue;
                    }
                    Err(e) => return Err(FsError::from_errno(&path_str, e)),
                }
            }
            _ => {}
        }
        if kind == ManifestKind::Dir {
            match rustix::fs::openat(&level.fd, &name, dir_flags(), Mode::empty()) {
                Ok(fd) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(FsError::InvalidPath {
                            path: path_str,
                            reason: "directory tree too deep".into(),
                        });
                    }
                    match open_level(fd, path, path_str.clone()) {
                        Ok(next) => stack.push(next),
                        Err(Errno::ACCESS) | Err(Errno::PERM) => {
                            m.skipped.push(ManifestSkip {
                                path: path_str.clone(),
                                reason: "the directory cannot be read (permission denied); its contents are not synced".into(),
                            });
                        }
                        Err(Errno::NOENT) => {}
                        Err(e) => return Err(FsError::from_errno(&path_str, e)),
                    }
                }
                Err(Errno::NOENT) | Err(Errno::LOOP) | Err(Errno::NOTDIR) => {}
                Err(e) => return Err(FsError::from_errno(&path_str, e)),
            }
        }
        if listed {
            m.entries.push(entry);
        }
    }
    // Sorting by the path string puts a directory before its contents (a prefix sorts
    // first); the walk order differs only where names contain bytes below `/`.
    m.entries.sort_by(|a, b| a.path.cmp(&b.path));
    if !m.over_limit {
        cache.replace(new_cache);
    }
    Ok((m, stats))
}

enum Hashed {
    Done { sha256: String, stable: bool },
    Gone,
    Skip(String),
}

/// Hashes the regular file `name` in `dir` without following a symlink; `stable` is
/// false when the file changed while it was read (not cached).
fn hash_file(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &OsString,
    shown: &str,
) -> Result<Hashed, FsError> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::LOOP) => return Ok(Hashed::Gone),
        Err(Errno::ACCESS) | Err(Errno::PERM) => {
            return Ok(Hashed::Skip(
                "the file cannot be read (permission denied)".into(),
            ))
        }
        Err(e) => return Err(FsError::from_errno(shown, e)),
    };
    let before = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(shown, e))?;
    if FileType::from_raw_mode(before.st_mode) != FileType::RegularFile {
        return Ok(Hashed::Gone);
    }
    let mut file = File::from(fd);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FsError::from_io(shown, e)),
        }
    }
    let after = rustix::fs::fstat(&file).map_err(|e| FsError::from_errno(shown, e))?;
    let stable = CacheKey::of("", &before) == CacheKey::of("", &after);
    Ok(Hashed::Done {
        sha256: hex(&hasher.finalize()),
        stable,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn setup() -> (tempfile::TempDir, Root) {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path().join("root");
        fs::create_dir_all(r.join("d/e")).unwrap();
        fs::write(r.join("a.txt"), "hello").unwrap();
        fs::write(r.join("d/e/f"), "").unwrap();
        fs::set_permissions(r.join("d/e/f"), fs::Permissions::from_mode(0o751)).unwrap();
        symlink("/usr/bin/python3", r.join("d/py")).unwrap();
        symlink("../a.txt", r.join("d/rel")).unwrap();
        let root = Root::open(&fs::canonicalize(&r).unwrap()).unwrap();
        (tmp, root)
    }

    #[test]
    fn lists_hashes_and_caches() {
        let (_tmp, root) = setup();
        let cache = HashCache::new();
        let (m, stats) = build(&root, &ManifestQuery::default(), 1000, &cache).unwrap();
        let paths: Vec<_> = m.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "d", "d/e", "d/e/f", "d/py", "d/rel"]);
        let a = &m.entries[0];
        assert_eq!(a.kind, ManifestKind::File);
        assert_eq!(a.size, 5);
        assert_eq!(
            a.sha256.as_deref(),
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        assert_eq!(m.entries[3].mode, 0o751);
        assert_eq!(
            m.entries[3].sha256.as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(m.entries[4].target.as_deref(), Some("/usr/bin/python3"));
        assert_eq!(m.entries[4].kind, ManifestKind::Symlink);
        assert_eq!(m.entries[5].target.as_deref(), Some("../a.txt"));
        assert_eq!(m.total_entries, 6);
        assert_eq!(m.total_file_bytes, 5);
        assert!(!m.over_limit);
        assert_eq!(stats.hashed_files, 2);
        assert_eq!(cache.len(), 2);

        // Unchanged: served from the cache.
        let (m2, stats) = build(&root, &ManifestQuery::default(), 1000, &cache).unwrap();
        assert_eq!(m2, m);
        assert_eq!((stats.hashed_files, stats.cached_files), (0, 2));

        // Changed content (same size) is re-hashed.
        fs::write(root.path().join("a.txt"), "HELLO").unwrap();
        let (m3, stats) = build(&root, &ManifestQuery::default(), 1000, &cache).unwrap();
        assert_eq!(stats.hashed_files, 1);
        assert_ne!(m3.entries[0].sha256, m.entries[0].sha256);
    }

    #[test]
    fn limits() {
        let (_tmp, root) = setup();
        let cache = HashCache::new();
        let q = ManifestQuery {
            max_entries: Some(3),
            max_bytes: None,
        };
        let (m, _) = build(&root, &q, 1000, &cache).unwrap();
        assert!(m.over_limit);
        assert!(m.entries.is_empty());
        assert_eq!(m.total_entries, 6);
        let q = ManifestQuery {
            max_entries: None,
            max_bytes: Some(4),
        };
        let (m, _) = build(&root, &q, 1000, &cache).unwrap();
        assert!(m.over_limit);
        assert_eq!(m.total_file_bytes, 5);
        let err = build(&root, &ManifestQuery::default(), 5, &cache).unwrap_err();
        assert!(matches!(err, FsError::TooLarge(ref msg) if msg.contains("more than 5 entries")));
    }

    #[test]
    fn skips_special_and_non_utf8() {
        let (_tmp, root) = setup();
        let p = root.path();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        fs::write(p.join(std::ffi::OsStr::from_bytes(b"bad\xff")), "x").unwrap();
        let (m, _) = build(&root, &ManifestQuery::default(), 1000, &HashCache::new()).unwrap();
        assert_eq!(m.entries.len(), 6);
        assert_eq!(m.skipped.len(), 2, "{:?}", m.skipped);
    }
}
