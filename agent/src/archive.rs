//! Tar export and import of the workspace (sync and restore).
//!
//! Export ([`export`]) writes a tar of the whole root or of a selection of paths:
//! relative `/`-separated names, directories, regular files and symlinks (as symlinks,
//! never followed); sockets, FIFOs and devices are skipped.
//!
//! Import ([`import`]) reads a tar that the caller has buffered to a seekable file and
//! works in two passes. Pass 1 validates every header and checks it against the
//! current workspace *without writing anything*; any of these refuses the whole
//! archive: an absolute name or a `..` component, a device/FIFO/sparse/unknown entry, a
//! symlink whose target is absolute or resolves outside the root, a hard link whose
//! target is not a regular file inside the root, an entry written through a symlink or
//! file that the archive itself creates, an entry whose parent resolves (through an
//! existing symlink) outside the root, or a file/directory clash with the workspace.
//! Pass 2 extracts with the confined writer (atomic replace per file; symlinks and hard
//! links created under a temporary name, then renamed). Only a failure in pass 2 (disk
//! full, a concurrent change) can leave an import half done.
//!
//! For file sync, [`export_entries`] exports exactly a list of entries, and
//! [`import_with`] with [`LinkPolicy::Preserve`] (the control plane's restore) keeps
//! symlinks that point outside the root as they are while refusing any entry that
//! would be written through a symlink.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use tar::{EntryType, Header};

use crate::confine::{dir_flags, lexical_link_target, FsError, RelPath, Root};
use crate::files::{begin_write, name_of, read_dir, sync_dir, tmp_name, FinalLink};
use crate::wire::{ImportResult, LinkPolicy};

/// Most entries an imported archive may hold.
pub const MAX_IMPORT_ENTRIES: usize = 1_000_000;

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive itself is unacceptable (400): nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// A file-system failure (path refusals are 400, clashes 409, ...).
    #[error(transparent)]
    Fs(#[from] FsError),
}

fn invalid(msg: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid(msg.into())
}

// ---------------------------------------------------------------------------------
// Export

/// Writes a tar of `selection` (each a path relative to the root; an empty selection
/// or the root itself means everything) to `out`, and returns `out`.
pub fn export<W: Write>(root: &Root, selection: &[RelPath], out: W) -> Result<W, FsError> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let whole = [RelPath::root()];
    let selection = if selection.is_empty() {
        &whole[..]
    } else {
        selection
    };
    for path in selection {
        let shown = path.display();
        let r = root.resolve(path, false)?;
        let st = r.stat.ok_or_else(|| FsError::NotFound {
            path: shown.clone(),
        })?;
        match &r.name {
            None => export_dir_contents(&mut builder, root.fd(), path)?,
            Some(name) => {
                append_entry(&mut builder, r.parent.as_fd(), name, path, &st)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    let fd = rustix::fs::openat(&r.parent, name, dir_flags(), Mode::empty())
                        .map_err(|e| FsError::from_errno(&shown, e))?;
                    export_dir_contents(&mut builder, fd.as_fd(), path)?;
                }
            }
        }
    }
    builder
        .into_inner()
        .map_err(|e| FsError::from_io("(archive)", e))
}

/// Writes a tar of exactly the entries `paths` (file sync): a file with its content, a
/// directory as the directory entry alone (not its contents), a symlink as a symlink.
/// Intermediate components are resolved like every file route (confined; symlinks
/// inside the root followed); the final one never is. Entries that no longer exist or
/// cannot be read are left out (the caller sees them missing). Returns `out` and the
/// number of entries written.
pub fn export_entries<W: Write>(
    root: &Root,
    paths: &[RelPath],
    out: W,
) -> Result<(W, u64), FsError> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut written = 0u64;
    for path in paths {
        let r = match root.resolve(path, false) {
            Ok(r) => r,
            Err(FsError::NotFound { .. }) | Err(FsError::NotDir { .. }) => continue,
            Err(e) => return Err(e),
        };
        let (Some(st), Some(name)) = (r.stat, &r.name) else {
            continue; // gone, or the root itself (nothing to export)
        };
        match append_entry(&mut builder, r.parent.as_fd(), name, path, &st) {
            Ok(()) => written += 1,
            Err(FsError::PermissionDenied { path }) => {
                tracing::debug!(%path, "export skips an unreadable entry");
            }
            Err(e) => return Err(e),
        }
    }
    let out = builder
        .into_inner()
        .map_err(|e| FsError::from_io("(archive)", e))?;
    Ok((out, written))
}

/// Checks, before any byte of an export is sent, that every path resolves inside the
/// root (a path through a symlink that leaves it is [`FsError::Escapes`]); a missing
/// entry is fine (left out of the export).
pub fn check_export_paths(root: &Root, paths: &[RelPath]) -> Result<(), FsError> {
    for path in paths {
        match root.resolve(path, false) {
            Ok(_) | Err(FsError::NotFound { .. }) | Err(FsError::NotDir { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends everything below the directory `dir` (whose path is `prefix`), depth first
/// in name order.
fn export_dir_contents<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: std::os::fd::BorrowedFd<'_>,
    prefix: &RelPath,
) -> Result<(), FsError> {
    struct Level {
        fd: OwnedFd,
        prefix: RelPath,
        names: Vec<OsString>,
    }
    let open_level = |fd: OwnedFd, prefix: RelPath| -> Result<Level, FsError> {
        let shown = prefix.display();
        let mut names = Vec::new();
        let mut d = read_dir(fd.as_fd()).map_err(|e| FsError::from_errno(&shown, e))?;
        while let Some(ent) = d.read() {
            let ent = ent.map_err(|e| FsError::from_errno(&shown, e))?;
            let n = ent.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(name_of(n));
            }
        }
        names.sort();
        names.reverse(); // pop() yields them in order
        Ok(Level { fd, prefix, names })
    };
    let start = rustix::io::dup(dir).map_err(|e| FsError::from_errno(&prefix.display(), e))?;
    let mut stack = vec![open_level(start, prefix.clone())?];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.pop() else {
            stack.pop();
            continue;
        };
        let path = level.prefix.join(&name);
        let st = match rustix::fs::statat(&level.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue, // removed while exporting
            Err(e) => return Err(FsError::from_errno(&path.display(), e)),
        };
        append_entry(builder, level.fd.as_fd(), &name, &path, &st)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            match rustix::fs::openat(&level.fd, &name, dir_flags(), Mode::empty()) {
                Ok(fd) => {
                    if stack.len() >= crate::confine::MAX_DEPTH {
                        return Err(FsError::InvalidPath {
                            path: path.display(),
                            reason: "directory tree too deep".into(),
                        });
                    }
                    let next = open_level(fd, path)?;
                    stack.push(next);
                }
                Err(Errno::NOENT) | Err(Errno::LOOP) | Err(Errno::NOTDIR) => {}
                Err(e) => return Err(FsError::from_errno(&path.display(), e)),
            }
        }
    }
    Ok(())
}

fn base_header(st: &Stat, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_size(0);
    h
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    path: &RelPath,
    st: &Stat,
) -> Result<(), FsError> {
    let shown = path.display();
    let io_err = |e: io::Error| FsError::from_io(&shown, e);
    let tar_path = path.to_path_buf();
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let mut h = base_header(st, EntryType::Directory);
            builder
                .append_data(&mut h, &tar_path, io::empty())
                .map_err(io_err)?;
        }
        FileType::RegularFile => {
            let fd = match rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) | Err(Errno::LOOP) => return Ok(()), // changed meanwhile
                Err(e) => return Err(FsError::from_errno(&shown, e)),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(&shown, e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Ok(());
            }
            let size = st.st_size.max(0) as u64;
            let mut h = base_header(&st, EntryType::Regular);
            h.set_size(size);
            // Exactly `size` bytes even if the file changes while being read.
            let data = File::from(fd).take(size).chain(io::repeat(0)).take(size);
            builder
                .append_data(&mut h, &tar_path, data)
                .map_err(io_err)?;
        }
        FileType::Symlink => {
            let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                Ok(t) => t,
                Err(Errno::NOENT) | Err(Errno::INVAL) => return Ok(()),
                Err(e) => return Err(FsError::from_errno(&shown, e)),
            };
            let target = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
            let mut h = base_header(st, EntryType::Symlink);
            builder
                .append_link(&mut h, &tar_path, &target)
                .map_err(io_err)?;
        }
        _ => tracing::debug!(path = %shown, "archive export skips a special file"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Import

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Hardlink => "hard link",
        }
    }
}

#[derive(Debug)]
struct Planned {
    path: RelPath,
    kind: Kind,
    mode: u32,
    mtime: Option<u64>,
    /// Symlink target bytes, or the hard link's target path.
    link: Option<Vec<u8>>,
    link_path: Option<RelPath>,
    data_pos: u64,
    size: u64,
}

/// Validates and extracts the tar in `archive` into the root. See the module docs.
pub fn import(root: &Root, archive: &mut File) -> Result<ImportResult, ArchiveError> {
    import_with(root, archive, LinkPolicy::Confine)
}

/// [`import`] with a symlink policy. With [`LinkPolicy::Preserve`] (the control
/// plane's restore) a symlink whose target is absolute or leaves the root is created as
/// it is instead of refusing the archive, and, since such links may now exist, no entry
/// may be written through *any* symlink: an entry whose parent is reached through an
/// existing symlink, or a directory entry where a symlink exists, refuses the archive.
/// Every other refusal stays.
pub fn import_with(
    root: &Root,
    archive: &mut File,
    links: LinkPolicy,
) -> Result<ImportResult, ArchiveError> {
    let planned = validate(root, archive, links == LinkPolicy::Preserve)?;
    extract(root, archive, &planned)
}

fn validate(
    root: &Root,
    archive: &mut File,
    preserve_links: bool,
) -> Result<Vec<Planned>, ArchiveError> {
    archive
        .seek(SeekFrom::Start(0))
        .map_err(|e| FsError::from_io("(archive)", e))?;
    let mut ar = tar::Archive::new(&mut *archive);
    let entries = ar
        .entries_with_seek()
        .map_err(|e| invalid(format!("not a tar archive: {e}")))?;
    let mut planned: Vec<Planned> = Vec::new();
    for entry in entries {
        let e = entry.map_err(|e| invalid(format!("malformed tar archive: {e}")))?;
        let et = e.header().entry_type();
        if et.is_pax_global_extensions() {
            continue;
        }
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path = RelPath::parse_bytes(&raw)
            .map_err(|err| invalid(format!("entry {shown:?} refused: {err}")))?;
        let kind = match et {
            EntryType::Regular | EntryType::Continuous => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => Kind::Symlink,
            EntryType::Link => Kind::Hardlink,
            other => {
                return Err(invalid(format!(
                    "entry {shown:?} refused: unsupported type {other:?} (only files, directories, symlinks and hard links)"
                )))
            }
        };
        if path.is_root() {
            if kind == Kind::Dir {
                continue; // "./": the root itself
            }
            return Err(invalid(format!(
                "entry {shown:?} refused: names the workspace root"
            )));
        }
        let mut link = None;
        let mut link_path = None;
        if matches!(kind, Kind::Symlink | Kind::Hardlink) {
            let target = e
                .link_name_bytes()
                .map(|t| t.into_owned())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    invalid(format!("entry {shown:?} refused: link without a target"))
                })?;
            let tshown = String::from_utf8_lossy(&target).into_owned();
            if kind == Kind::Symlink {
                let parent = path.split_last().map(|(p, _)| p).unwrap_or_default();
                if !preserve_links && lexical_link_target(&parent, &target).is_none() {
                    return Err(invalid(format!(
                        "symlink {shown:?} -> {tshown:?} refused: its target is absolute or leaves the workspace"
                    )));
                }
            } else {
                let t = RelPath::parse_bytes(&target).map_err(|err| {
                    invalid(format!("hard link {shown:?} -> {tshown:?} refused: {err}"))
                })?;
                if t.is_root() {
                    return Err(invalid(format!(
                        "hard link {shown:?} refused: its target is the workspace root"
                    )));
                }
                link_path = Some(t);
            }
            link = Some(target);
        }
        let header = e.header();
        planned.push(Planned {
            path,
            kind,
            mode: header.mode().unwrap_or(0o644),
            mtime: header.mtime().ok(),
            link,
            link_path,
            data_pos: e.raw_file_position(),
            size: if kind == Kind::File { e.size() } else { 0 },
        });
        if planned.len() > MAX_IMPORT_ENTRIES {
            return Err(invalid(format!(
                "archive refused: more than {MAX_IMPORT_ENTRIES} entries"
            )));
        }
    }

    // A path may not be both a directory and something else in one archive.
    let mut kinds: HashMap<&RelPath, Kind> = HashMap::new();
    for p in &planned {
        if let Some(k) = kinds.insert(&p.path, p.kind) {
            if (k == Kind::Dir) != (p.kind == Kind::Dir) {
                return Err(invalid(format!(
                    "entry {:?} refused: the archive has it both as a {} and a {}",
                    p.path.display(),
                    k.noun(),
                    p.kind.noun()
                )));
            }
        }
    }

    // Nothing may be written through a symlink, file or hard link the archive creates.
    let non_dirs: HashMap<&RelPath, Kind> = planned
        .iter()
        .filter(|p| p.kind != Kind::Dir)
        .map(|p| (&p.path, p.kind))
        .collect();
    let through_non_dir = |path: &RelPath| -> Option<(RelPath, Kind)> {
        let mut prefix = path.split_last()?.0;
        loop {
            if let Some(k) = non_dirs.get(&prefix) {
                return Some((prefix, *k));
            }
            prefix = prefix.split_last()?.0;
        }
    };
    for p in &planned {
        for target in [Some(&p.path), p.link_path.as_ref()].into_iter().flatten() {
            if let Some((prefix, k)) = through_non_dir(target) {
                return Err(invalid(format!(
                    "entry {:?} refused: it would be written through {:?}, which the archive makes a {}",
                    target.display(),
                    prefix.display(),
                    k.noun()
                )));
            }
        }
    }

    // Check every entry against the workspace as it is now (read-only).
    let mut files_in_archive: HashSet<&RelPath> = HashSet::new();
    for p in &planned {
        let shown = p.path.display();
        let escape = |e: FsError| {
            match e {
            FsError::Escapes { .. } => invalid(format!(
                "entry {shown:?} refused: it would be written through a symlink that leaves the workspace"
            )),
            FsError::NotDir { .. } => ArchiveError::Fs(FsError::Conflict {
                path: shown.clone(),
                reason: "a parent in the workspace is not a directory".into(),
            }),
            other => ArchiveError::Fs(other),
        }
        };
        let (parent, _) = p.path.split_last().unwrap_or_default();
        let parent_l = root.lookup(&parent, true).map_err(escape)?;
        if preserve_links && parent_l.canon != parent {
            return Err(invalid(format!(
                "entry {shown:?} refused: its parent {:?} is reached through a symlink, and a restore never writes through symlinks",
                parent.display()
            )));
        }
        if let Some(st) = parent_l.stat {
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return Err(ArchiveError::Fs(FsError::Conflict {
                    path: shown,
                    reason: "a parent in the workspace is not a directory".into(),
                }));
            }
        }
        let here = root.lookup(&p.path, false).map_err(escape)?;
        let existing = here.stat.map(|s| FileType::from_raw_mode(s.st_mode));
        match (p.kind, existing) {
            (_, None) => {}
            (Kind::Dir, Some(FileType::Directory)) => {}
            (Kind::Dir, Some(FileType::Symlink)) if preserve_links => {
                return Err(invalid(format!(
                    "entry {shown:?} refused: a symlink exists where the archive has a directory, and a restore never writes through symlinks"
                )))
            }
            (Kind::Dir, Some(FileType::Symlink)) => {
                let followed = root.lookup(&p.path, true).map_err(escape)?;
                match followed.stat.map(|s| FileType::from_raw_mode(s.st_mode)) {
                    Some(FileType::Directory) => {}
                    _ => return Err(ArchiveError::Fs(FsError::Conflict {
                        path: shown,
                        reason:
                            "a symlink to a non-directory exists where the archive has a directory"
                                .into(),
                    })),
                }
            }
            (Kind::Dir, Some(_)) => {
                return Err(ArchiveError::Fs(FsError::Conflict {
                    path: shown,
                    reason: "a file exists where the archive has a directory".into(),
                }))
            }
            (_, Some(FileType::Directory)) => {
                return Err(ArchiveError::Fs(FsError::Conflict {
                    path: shown,
                    reason: format!(
                        "a directory exists where the archive has a {}",
                        p.kind.noun()
                    ),
                }))
            }
            _ => {}
        }
        if p.kind == Kind::Symlink && !preserve_links {
            let target = p.link.as_deref().unwrap_or_default();
            if lexical_link_target(&parent_l.canon, target).is_none() {
                return Err(invalid(format!(
                    "symlink {shown:?} -> {:?} refused: its target leaves the workspace",
                    String::from_utf8_lossy(target)
                )));
            }
        }
        if let Some(t) = &p.link_path {
            if !files_in_archive.contains(t) {
                let l = root.lookup(t, false).map_err(escape)?;
                let is_file = l
                    .stat
                    .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::RegularFile)
                    .unwrap_or(false);
                if !is_file {
                    return Err(invalid(format!(
                        "hard link {shown:?} -> {:?} refused: the target is not a regular file of the archive or workspace",
                        t.display()
                    )));
                }
            }
        }
        if p.kind == Kind::File {
            files_in_archive.insert(&p.path);
        }
    }
    Ok(planned)
}

fn extract(
    root: &Root,
    archive: &mut File,
    planned: &[Planned],
) -> Result<ImportResult, ArchiveError> {
    let mut dirs: Vec<&Planned> = Vec::new();
    let mut bytes = 0u64;
    for p in planned {
        let shown = p.path.display();
        let err = |e: Errno| FsError::from_errno(&shown, e);
        match p.kind {
            Kind::Dir => {
                let r = root.resolve_create(&p.path, true)?;
                if let (None, Some(name)) = (r.stat, &r.name) {
                    match rustix::fs::mkdirat(&r.parent, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(err(e).into()),
                    }
                }
                dirs.push(p);
            }
            Kind::File => {
                let mut w = begin_write(root, &p.path, FinalLink::Replace)?;
                archive
                    .seek(SeekFrom::Start(p.data_pos))
                    .map_err(|e| FsError::from_io(&shown, e))?;
                let copied = io::copy(&mut (&mut *archive).take(p.size), w.file())
                    .map_err(|e| FsError::from_io(&shown, e))?;
                if copied != p.size {
                    return Err(invalid(format!("entry {shown:?}: archive truncated")));
                }
                w.set_mode(p.mode)?;
                if let Some(m) = p.mtime {
                    w.set_mtime_secs(m as i64)?;
                }
                w.commit()?;
                bytes += p.size;
            }
            Kind::Symlink | Kind::Hardlink => {
                let r = root.resolve_create(&p.path, false)?;
                let name = r.name.clone().ok_or_else(|| FsError::IsDir {
                    path: shown.clone(),
                })?;
                let tmp = tmp_name();
                let _ = rustix::fs::unlinkat(&r.parent, &tmp, AtFlags::empty());
                if p.kind == Kind::Symlink {
                    let target = std::ffi::OsStr::from_bytes(p.link.as_deref().unwrap_or_default());
                    rustix::fs::symlinkat(target, &r.parent, &tmp).map_err(err)?;
                } else {
                    let t = p
                        .link_path
                        .as_ref()
                        .ok_or_else(|| invalid("hard link without target"))?;
                    let src = root.resolve(t, false)?;
                    let src_name = match (&src.name, src.file_type()) {
                        (Some(n), Some(FileType::RegularFile)) => n.clone(),
                        _ => {
                            return Err(invalid(format!(
                                "hard link {shown:?}: target {:?} is not a regular file",
                                t.display()
                            )))
                        }
                    };
                    rustix::fs::linkat(&src.parent, &src_name, &r.parent, &tmp, AtFlags::empty())
                        .map_err(err)?;
                }
                if let Err(e) = rustix::fs::renameat(&r.parent, &tmp, &r.parent, &name) {
                    let _ = rustix::fs::unlinkat(&r.parent, &tmp, AtFlags::empty());
                    return Err(err(e).into());
                }
                sync_dir(r.parent.as_fd());
            }
        }
    }
    // Directory modes and times last (children changed the times; a read-only mode
    // would have blocked them). The owner keeps rwx so the workspace stays manageable.
    for p in dirs.iter().rev() {
        let shown = p.path.display();
        let err = |e: Errno| FsError::from_errno(&shown, e);
        let (fd, _) = root.open_dir(&p.path)?;
        let fd = rustix::fs::openat(
            &fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode((p.mode & 0o777) | 0o700)).map_err(err)?;
        if let Some(m) = p.mtime {
            let ts = rustix::fs::Timespec {
                tv_sec: m as i64,
                tv_nsec: 0,
            };
            rustix::fs::futimens(
                &fd,
                &rustix::fs::Timestamps {
                    last_access: ts,
                    last_modification: ts,
                },
            )
            .map_err(err)?;
        }
    }
    Ok(ImportResult {
        entries: planned.len() as u64,
        bytes,
    })
}
