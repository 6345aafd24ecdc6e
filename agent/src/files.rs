//! Workspace file operations on top of the confined resolver: open for reading, atomic
//! write (temporary file in the same directory, `fsync`, `rename`), delete (recursive,
//! never the root, never following a final symlink) and listing. All calls are
//! blocking; the HTTP layer runs them on the blocking pool.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::confine::{FsError, RelPath, Root, MAX_DEPTH};
use crate::wire::{FileEntry, FileKind};

/// Most entries one listing returns.
pub const MAX_LIST_ENTRIES: usize = 200_000;
/// Mode of new files.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// A regular file opened for reading.
#[derive(Debug)]
pub struct OpenedFile {
    pub file: File,
    pub size: u64,
}

/// Opens a regular file for reading; a final symlink is followed when it stays inside
/// the root.
pub fn open_read(root: &Root, path: &RelPath) -> Result<OpenedFile, FsError> {
    let shown = path.display();
    if path.is_root() {
        return Err(FsError::IsDir { path: shown });
    }
    let r = root.resolve(path, true)?;
    let name = match (&r.name, r.file_type()) {
        (_, None) => return Err(FsError::NotFound { path: shown }),
        (_, Some(FileType::Directory)) | (None, _) => return Err(FsError::IsDir { path: shown }),
        (Some(_), Some(FileType::RegularFile)) => r.name.as_deref().unwrap_or_default(),
        (Some(_), Some(_)) => return Err(FsError::NotFile { path: shown }),
    };
    // O_NONBLOCK: never hang if the entry was swapped for a FIFO since the stat.
    let fd = rustix::fs::openat(
        &r.parent,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FsError::from_errno(&shown, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(&shown, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(FsError::NotFile { path: shown });
    }
    Ok(OpenedFile {
        file: File::from(fd),
        size: st.st_size.max(0) as u64,
    })
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn tmp_name() -> OsString {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    OsString::from(format!(".wa-tmp-{}-{n}", std::process::id()))
}

/// A write in progress: data goes to a temporary file next to the target, which
/// replaces the target on [`PendingWrite::commit`]. Dropped uncommitted, the temporary
/// file is removed.
#[derive(Debug)]
pub struct PendingWrite {
    dir: OwnedFd,
    tmp: OsString,
    name: OsString,
    file: File,
    shown: String,
    committed: bool,
}

/// How to treat an existing final symlink when writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalLink {
    /// Write to the link's target (which must be inside the root): `PUT /files`.
    Follow,
    /// Replace the link itself: archive import.
    Replace,
}

/// Starts an atomic write of `path`, creating missing parent directories.
pub fn begin_write(root: &Root, path: &RelPath, link: FinalLink) -> Result<PendingWrite, FsError> {
    let shown = path.display();
    if path.is_root() {
        return Err(FsError::IsDir { path: shown });
    }
    let r = root.resolve_create(path, link == FinalLink::Follow)?;
    let name = match &r.name {
        Some(n) => n.clone(),
        None => return Err(FsError::IsDir { path: shown }),
    };
    let mode = match r.file_type() {
        None => DEFAULT_FILE_MODE,
        Some(FileType::RegularFile) => r
            .stat
            .map(|s| s.st_mode & 0o777)
            .unwrap_or(DEFAULT_FILE_MODE),
        Some(FileType::Symlink) if link == FinalLink::Replace => DEFAULT_FILE_MODE,
        Some(FileType::Directory) => {
            return Err(FsError::Conflict {
                path: shown,
                reason: "a directory exists at this path".into(),
            })
        }
        Some(_) => return Err(FsError::NotFile { path: shown }),
    };
    let tmp = tmp_name();
    let fd = rustix::fs::openat(
        &r.parent,
        &tmp,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| FsError::from_errno(&shown, e))?;
    let pending = PendingWrite {
        dir: r.parent,
        tmp,
        name,
        file: File::from(fd),
        shown,
        committed: false,
    };
    pending.set_mode(mode)?;
    Ok(pending)
}

impl PendingWrite {
    /// The temporary file to write the content to.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Sets the permission bits of the file being written (setuid/setgid/sticky are
    /// dropped).
    pub fn set_mode(&self, mode: u32) -> Result<(), FsError> {
        rustix::fs::fchmod(&self.file, Mode::from_raw_mode(mode & 0o777))
            .map_err(|e| FsError::from_errno(&self.shown, e))
    }

    /// Sets the modification (and access) time, seconds since the epoch.
    pub fn set_mtime_secs(&self, secs: i64) -> Result<(), FsError> {
        let ts = rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        rustix::fs::futimens(
            &self.file,
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
        )
        .map_err(|e| FsError::from_errno(&self.shown, e))
    }

    /// Flushes the data to disk and renames the temporary file over the target.
    /// Returns the size written.
    pub fn commit(mut self) -> Result<u64, FsError> {
        let shown = self.shown.clone();
        let err = |e: Errno| FsError::from_errno(&shown, e);
        rustix::fs::fsync(&self.file).map_err(err)?;
        let size = rustix::fs::fstat(&self.file).map_err(err)?.st_size.max(0) as u64;
        rustix::fs::renameat(&self.dir, &self.tmp, &self.dir, &self.name).map_err(|e| match e {
            Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => FsError::Conflict {
                path: shown.clone(),
                reason: "a directory exists at this path".into(),
            },
            e => err(e),
        })?;
        self.committed = true;
        sync_dir(self.dir.as_fd());
        Ok(size)
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.dir, &self.tmp, AtFlags::empty());
        }
    }
}

/// Best-effort `fsync` of a directory (so a rename survives a crash).
pub(crate) fn sync_dir(dir: BorrowedFd<'_>) {
    if let Ok(fd) = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let _ = rustix::fs::fsync(&fd);
    }
}

/// Deletes a file, symlink (not its target) or directory tree. The root is refused.
pub fn delete(root: &Root, path: &RelPath) -> Result<(), FsError> {
    let shown = path.display();
    if path.is_root() {
        return Err(FsError::InvalidPath {
            path: shown,
            reason: "refusing to delete the workspace root".into(),
        });
    }
    let r = root.resolve(path, false)?;
    let name = match &r.name {
        Some(n) => n.as_os_str(),
        None => {
            return Err(FsError::InvalidPath {
                path: shown,
                reason: "refusing to delete the workspace root".into(),
            })
        }
    };
    match r.file_type() {
        None => Err(FsError::NotFound { path: shown }),
        Some(FileType::Directory) => remove_tree(r.parent.as_fd(), name, &shown),
        Some(_) => rustix::fs::unlinkat(&r.parent, name, AtFlags::empty())
            .map_err(|e| FsError::from_errno(&shown, e)),
    }
}

fn open_dir_rd(parent: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Removes the directory `name` in `parent` and everything below it, without following
/// any symlink.
pub fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr, shown: &str) -> Result<(), FsError> {
    let err = |e: Errno| FsError::from_errno(shown, e);
    let mut stack: Vec<(OwnedFd, OsString)> =
        vec![(open_dir_rd(parent, name).map_err(err)?, name.to_os_string())];
    while let Some((fd, _)) = stack.last() {
        let mut dir = read_dir(fd.as_fd()).map_err(err)?;
        let mut child: Option<(OwnedFd, OsString)> = None;
        while let Some(ent) = dir.read() {
            let ent = ent.map_err(err)?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let n = name_of(n);
            let mut ft = ent.file_type();
            if ft == FileType::Unknown {
                ft = match rustix::fs::statat(fd, &n, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(err(e)),
                };
            }
            if ft == FileType::Directory {
                match open_dir_rd(fd.as_fd(), &n) {
                    Ok(sub) => {
                        child = Some((sub, n));
                        break;
                    }
                    Err(Errno::NOENT) => continue,
                    // Swapped for a non-directory: unlink whatever it is now.
                    Err(Errno::LOOP) | Err(Errno::NOTDIR) => {}
                    Err(e) => return Err(err(e)),
                }
            }
            match rustix::fs::unlinkat(fd, &n, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(err(e)),
            }
        }
        match child {
            Some(c) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(FsError::InvalidPath {
                        path: shown.to_string(),
                        reason: "directory tree too deep".into(),
                    });
                }
                stack.push(c);
            }
            None => {
                let (fd, n) = stack.pop().ok_or_else(|| FsError::NotFound {
                    path: shown.to_string(),
                })?;
                drop(fd);
                let p = stack.last().map(|(f, _)| f.as_fd()).unwrap_or(parent);
                match rustix::fs::unlinkat(p, &n, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(err(e)),
                }
            }
        }
    }
    Ok(())
}

/// Opens a directory stream on a directory descriptor (which may be `O_PATH`: the
/// directory is reopened readable through `"."`).
pub(crate) fn read_dir(fd: BorrowedFd<'_>) -> Result<Dir, Errno> {
    let rd = rustix::fs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Dir::new(rd)
}

/// An owned name from directory-entry bytes.
pub(crate) fn name_of(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// The wire kind of a file type.
pub fn kind_of(ft: FileType) -> FileKind {
    match ft {
        FileType::RegularFile => FileKind::File,
        FileType::Directory => FileKind::Dir,
        FileType::Symlink => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// Builds a [`FileEntry`] from an `lstat`.
pub fn entry_of(path: &RelPath, st: &Stat) -> FileEntry {
    FileEntry {
        path: path.display(),
        kind: kind_of(FileType::from_raw_mode(st.st_mode)),
        size: st.st_size.max(0) as u64,
        mtime_ms: st.st_mtime * 1000 + (st.st_mtime_nsec as i64) / 1_000_000,
        mode: st.st_mode & 0o7777,
    }
}

/// Lists the directory `path` resolves to (the root when empty), recursively if asked
/// (never descending into symlinks). Paths are relative to the root, as requested
/// (`<path>/<name>`), `/`-separated and sorted.
pub fn list(root: &Root, path: &RelPath, recursive: bool) -> Result<Vec<FileEntry>, FsError> {
    let shown = path.display();
    let (fd, _) = root.open_dir(path)?;
    let mut out = Vec::new();
    let mut todo: Vec<(OwnedFd, RelPath)> = vec![(fd, path.clone())];
    while let Some((fd, prefix)) = todo.pop() {
        let here = prefix.display();
        let err = |e: Errno| FsError::from_errno(&here, e);
        let mut dir = match read_dir(fd.as_fd()) {
            Ok(d) => d,
            // A subdirectory we cannot read is listed but not entered.
            Err(Errno::ACCESS) if prefix != *path => continue,
            Err(e) => return Err(err(e)),
        };
        while let Some(ent) = dir.read() {
            let ent = ent.map_err(err)?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let n = name_of(n);
            let st = match rustix::fs::statat(&fd, &n, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(err(e)),
            };
            let child = prefix.join(&n);
            out.push(entry_of(&child, &st));
            if out.len() > MAX_LIST_ENTRIES {
                return Err(FsError::TooLarge(format!(
                    "{shown:?} has more than {MAX_LIST_ENTRIES} entries; list a narrower path"
                )));
            }
            if recursive && FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                match rustix::fs::openat(&fd, &n, crate::confine::dir_flags(), Mode::empty()) {
                    Ok(sub) => todo.push((sub, child)),
                    Err(Errno::NOENT) | Err(Errno::LOOP) | Err(Errno::NOTDIR) => {}
                    Err(e) => return Err(err(e)),
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
