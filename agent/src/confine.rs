//! Confinement of workspace paths to the workspace root: syntactic validation of
//! request paths ([`RelPath`]) and a race-resistant resolver ([`Root`]) that walks a
//! path one component at a time with `openat(O_PATH|O_NOFOLLOW)` relative to directory
//! file descriptors it holds, reading symbolic links itself.
//!
//! Rules:
//! - a request path is relative, `/`-separated, without NUL bytes and without any `..`
//!   component (`.` and empty components are ignored);
//! - a symbolic link met on the way is followed only if its target is relative and,
//!   resolved against the directories walked so far, stays inside the root (`..` in a
//!   link target pops the walked directory stack; popping past the root is an escape);
//!   absolute targets are escapes;
//! - at most [`MAX_SYMLINK_HOPS`] links per resolution (like the kernel's 40).
//!
//! Because every step is an `openat` relative to an already-open directory with
//! `O_NOFOLLOW`, replacing a component by a symlink between steps cannot redirect the
//! walk outside the root; `..` is never asked of the file system. (A directory moved
//! out of the root while held could still be walked into; in a workspace the root is
//! its own mount, so `rename` out of it fails with `EXDEV`.) No `openat2` is needed,
//! which keeps this working under gVisor and older kernels.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// Most symbolic links followed while resolving one path.
pub const MAX_SYMLINK_HOPS: usize = 40;
/// Deepest directory nesting the resolver walks.
pub const MAX_DEPTH: usize = 512;
/// Longest accepted request path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// A file-system failure, mapped to an HTTP status once at the API edge.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("path {path:?} resolves outside the workspace root")]
    Escapes { path: String },
    #[error("{path:?} not found")]
    NotFound { path: String },
    #[error("{path:?} is a directory")]
    IsDir { path: String },
    #[error("{path:?}: a path component is not a directory")]
    NotDir { path: String },
    #[error("{path:?} is not a regular file")]
    NotFile { path: String },
    #[error("too many levels of symbolic links resolving {path:?}")]
    Loop { path: String },
    #[error("{path:?}: {reason}")]
    Conflict { path: String, reason: String },
    #[error("{path:?}: permission denied")]
    PermissionDenied { path: String },
    #[error("no space left in the workspace")]
    NoSpace,
    #[error("{0}")]
    TooLarge(String),
    #[error("{path:?}: {source}")]
    Io { path: String, source: io::Error },
}

impl FsError {
    /// Maps an OS error met while working on `path`.
    pub fn from_errno(path: &str, e: Errno) -> Self {
        let path = path.to_string();
        match e {
            Errno::NOENT => FsError::NotFound { path },
            Errno::NOTDIR => FsError::NotDir { path },
            Errno::ISDIR => FsError::IsDir { path },
            Errno::LOOP => FsError::Loop { path },
            Errno::NOSPC | Errno::DQUOT => FsError::NoSpace,
            Errno::ACCESS | Errno::PERM | Errno::ROFS => FsError::PermissionDenied { path },
            Errno::NAMETOOLONG => FsError::InvalidPath {
                path,
                reason: "name too long".into(),
            },
            Errno::EXIST | Errno::NOTEMPTY => FsError::Conflict {
                path,
                reason: e.to_string(),
            },
            other => FsError::Io {
                path,
                source: other.into(),
            },
        }
    }

    /// Maps a `std::io::Error` met while working on `path`.
    pub fn from_io(path: &str, e: io::Error) -> Self {
        match Errno::from_io_error(&e) {
            Some(errno) => Self::from_errno(path, errno),
            None => FsError::Io {
                path: path.to_string(),
                source: e,
            },
        }
    }
}

/// A syntactically valid path relative to the workspace root. May be empty (the root).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RelPath {
    comps: Vec<OsString>,
}

impl RelPath {
    /// Parses a request path; see the module rules. An empty result is allowed here;
    /// callers that need a non-root path use [`RelPath::parse_non_root`].
    pub fn parse(s: &str) -> Result<Self, FsError> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Like [`RelPath::parse`] but refuses paths naming the root itself.
    pub fn parse_non_root(s: &str) -> Result<Self, FsError> {
        let p = Self::parse(s)?;
        if p.is_root() {
            return Err(FsError::InvalidPath {
                path: s.to_string(),
                reason: "the path is empty or names the workspace root".into(),
            });
        }
        Ok(p)
    }

    /// Parses raw path bytes (tar entry names).
    pub fn parse_bytes(b: &[u8]) -> Result<Self, FsError> {
        let shown = || String::from_utf8_lossy(b).into_owned();
        let invalid = |reason: &str| FsError::InvalidPath {
            path: shown(),
            reason: reason.to_string(),
        };
        if b.len() > MAX_PATH_BYTES {
            return Err(invalid("path too long"));
        }
        if b.contains(&0) {
            return Err(invalid("contains a NUL byte"));
        }
        if b.first() == Some(&b'/') {
            return Err(invalid("absolute paths are not allowed"));
        }
        let mut comps = Vec::new();
        for c in b.split(|&x| x == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(invalid("`..` components are not allowed")),
                _ => {
                    if c.len() > 255 {
                        return Err(invalid("a path component is longer than 255 bytes"));
                    }
                    comps.push(OsString::from_vec(c.to_vec()));
                }
            }
        }
        if comps.len() > MAX_DEPTH {
            return Err(invalid("path too deep"));
        }
        Ok(RelPath { comps })
    }

    pub fn root() -> Self {
        RelPath::default()
    }

    pub fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    pub fn components(&self) -> &[OsString] {
        &self.comps
    }

    /// This path with one more component (which must be a plain name).
    pub fn join(&self, name: &OsStr) -> RelPath {
        let mut comps = self.comps.clone();
        comps.push(name.to_os_string());
        RelPath { comps }
    }

    /// The parent path and the last component; `None` for the root.
    pub fn split_last(&self) -> Option<(RelPath, &OsStr)> {
        let (last, rest) = self.comps.split_last()?;
        Some((
            RelPath {
                comps: rest.to_vec(),
            },
            last.as_os_str(),
        ))
    }

    /// True when `self` is a proper ancestor of `other`.
    pub fn is_proper_prefix_of(&self, other: &RelPath) -> bool {
        self.comps.len() < other.comps.len() && other.comps[..self.comps.len()] == self.comps[..]
    }

    /// `/`-joined (lossy for non-UTF-8 names), `""` for the root.
    pub fn display(&self) -> String {
        let mut s = String::new();
        for (i, c) in self.comps.iter().enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.push_str(&c.to_string_lossy());
        }
        s
    }

    /// `/`-joined raw bytes (exact, for tar entry names).
    pub fn to_path_buf(&self) -> PathBuf {
        let mut p = PathBuf::new();
        for c in &self.comps {
            p.push(c);
        }
        p
    }
}

/// Where a path resolved to. `parent` is an `O_PATH` descriptor of the directory
/// holding the entry `name`; for the root itself `name` is `None` and `parent` is the
/// root.
#[derive(Debug)]
pub struct Resolved {
    pub parent: OwnedFd,
    pub name: Option<OsString>,
    /// The entry's canonical path relative to the root (symlinks resolved).
    pub canon: RelPath,
    /// `lstat` of the entry; `None` when it does not exist.
    pub stat: Option<Stat>,
}

impl Resolved {
    pub fn file_type(&self) -> Option<FileType> {
        self.stat.map(|s| FileType::from_raw_mode(s.st_mode))
    }

    pub fn is_root(&self) -> bool {
        self.name.is_none()
    }
}

/// What to do with missing intermediate directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Fail with `NotFound`.
    Fail,
    /// Create them (mode 0755).
    Create,
    /// Stop at the first missing component and report it (read-only look-ups).
    Report,
}

/// The outcome of a read-only look-up that may stop early.
#[derive(Debug)]
pub struct Lookup {
    /// Canonical path of the existing part followed by the missing components.
    pub canon: RelPath,
    /// `lstat` of the entry when the whole path exists.
    pub stat: Option<Stat>,
}

enum Step {
    /// A name; `true` when it comes from a symlink target (never created).
    Name(OsString, bool),
    Parent,
}

struct Walked {
    /// Directories walked: `[0]` is the root (empty name).
    stack: Vec<(OwnedFd, OsString)>,
    /// `None`: the path resolved to the directory on top of `stack`.
    name: Option<OsString>,
    stat: Option<Stat>,
    /// Components after the first missing one (`Missing::Report` only).
    rest: Vec<OsString>,
}

/// The workspace root: its canonical path and an open `O_PATH` descriptor.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    fd: OwnedFd,
}

pub(crate) fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl Root {
    /// Opens the root directory (which should already be canonical).
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(path, dir_flags(), Mode::empty())?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Absolute path of a canonical relative path (for a child's working directory).
    pub fn absolute(&self, canon: &RelPath) -> PathBuf {
        self.path.join(canon.to_path_buf())
    }

    /// Resolves `path`; intermediate components must exist. The final component may
    /// be missing (`stat == None`). With `follow_final`, a final symlink is followed
    /// (within the root).
    pub fn resolve(&self, path: &RelPath, follow_final: bool) -> Result<Resolved, FsError> {
        self.finish(path, self.walk(path, follow_final, Missing::Fail)?)
    }

    /// Like [`Root::resolve`] but creates missing intermediate directories.
    pub fn resolve_create(&self, path: &RelPath, follow_final: bool) -> Result<Resolved, FsError> {
        self.finish(path, self.walk(path, follow_final, Missing::Create)?)
    }

    /// Read-only look-up that tolerates missing components, following every symlink
    /// (the final one too when `follow_final`): tells where the path would land.
    pub fn lookup(&self, path: &RelPath, follow_final: bool) -> Result<Lookup, FsError> {
        let w = self.walk(path, follow_final, Missing::Report)?;
        let mut canon = RelPath {
            comps: w.stack.iter().skip(1).map(|(_, n)| n.clone()).collect(),
        };
        if let Some(n) = &w.name {
            canon.comps.push(n.clone());
        }
        canon.comps.extend(w.rest.iter().cloned());
        Ok(Lookup {
            canon,
            stat: if w.rest.is_empty() { w.stat } else { None },
        })
    }

    fn finish(&self, path: &RelPath, mut w: Walked) -> Result<Resolved, FsError> {
        let mut canon = RelPath {
            comps: w.stack.iter().skip(1).map(|(_, n)| n.clone()).collect(),
        };
        match w.name {
            Some(name) => {
                canon.comps.push(name.clone());
                let (parent, _) = w.stack.pop().ok_or_else(|| internal(path))?;
                Ok(Resolved {
                    parent,
                    name: Some(name),
                    canon,
                    stat: w.stat,
                })
            }
            None if w.stack.len() == 1 => {
                let (parent, _) = w.stack.pop().ok_or_else(|| internal(path))?;
                Ok(Resolved {
                    parent,
                    name: None,
                    canon,
                    stat: w.stat,
                })
            }
            None => {
                // The path ended on a directory reached through `..` in a link target:
                // express it as (its parent, its name).
                let (_, name) = w.stack.pop().ok_or_else(|| internal(path))?;
                let (parent, _) = w.stack.pop().ok_or_else(|| internal(path))?;
                Ok(Resolved {
                    parent,
                    name: Some(name),
                    canon,
                    stat: w.stat,
                })
            }
        }
    }

    fn walk(
        &self,
        path: &RelPath,
        follow_final: bool,
        missing: Missing,
    ) -> Result<Walked, FsError> {
        let shown = path.display();
        let err = |e: Errno| FsError::from_errno(&shown, e);
        let root_fd = rustix::io::dup(&self.fd).map_err(err)?;
        let mut stack: Vec<(OwnedFd, OsString)> = vec![(root_fd, OsString::new())];
        let mut queue: VecDeque<Step> = path
            .comps
            .iter()
            .map(|c| Step::Name(c.clone(), false))
            .collect();
        let mut hops = 0usize;

        while let Some(step) = queue.pop_front() {
            let (name, from_link) = match step {
                Step::Parent => {
                    if stack.len() == 1 {
                        return Err(FsError::Escapes { path: shown });
                    }
                    stack.pop();
                    continue;
                }
                Step::Name(n, from_link) => (n, from_link),
            };
            let last = queue.is_empty();
            let dir = match stack.last() {
                Some((fd, _)) => fd,
                None => return Err(internal(path)),
            };
            if last && !follow_final {
                let stat = match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => Some(st),
                    Err(Errno::NOENT) => None,
                    Err(e) => return Err(err(e)),
                };
                return Ok(Walked {
                    stack,
                    name: Some(name),
                    stat,
                    rest: Vec::new(),
                });
            }
            let st = match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => {
                    if last {
                        return Ok(Walked {
                            stack,
                            name: Some(name),
                            stat: None,
                            rest: Vec::new(),
                        });
                    }
                    match missing {
                        // Directories are created for the request's own components
                        // only, never for the target of a dangling symlink.
                        Missing::Fail => return Err(FsError::NotFound { path: shown }),
                        Missing::Create if from_link => {
                            return Err(FsError::NotFound { path: shown })
                        }
                        Missing::Report => {
                            let mut rest = Vec::new();
                            for s in queue {
                                match s {
                                    Step::Name(n, _) => rest.push(n),
                                    // `missing/..` cannot be resolved (the kernel says ENOENT).
                                    Step::Parent => return Err(FsError::NotFound { path: shown }),
                                }
                            }
                            return Ok(Walked {
                                stack,
                                name: Some(name),
                                stat: None,
                                rest,
                            });
                        }
                        Missing::Create => {
                            match rustix::fs::mkdirat(dir, &name, Mode::from_raw_mode(0o755)) {
                                Ok(()) | Err(Errno::EXIST) => {}
                                Err(e) => return Err(err(e)),
                            }
                            hops += 1; // bounds retries if the entry keeps vanishing
                            if hops > MAX_SYMLINK_HOPS + MAX_DEPTH {
                                return Err(FsError::Loop { path: shown });
                            }
                            queue.push_front(Step::Name(name, from_link));
                            continue;
                        }
                    }
                }
                Err(e) => return Err(err(e)),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(FsError::Loop { path: shown });
                    }
                    let target = match rustix::fs::readlinkat(dir, &name, Vec::new()) {
                        Ok(t) => t.into_bytes(),
                        // Replaced by a non-link since the stat: look again.
                        Err(Errno::INVAL) | Err(Errno::NOENT) => {
                            queue.push_front(Step::Name(name, from_link));
                            continue;
                        }
                        Err(e) => return Err(err(e)),
                    };
                    if target.first() == Some(&b'/') {
                        return Err(FsError::Escapes { path: shown });
                    }
                    if target.is_empty() {
                        return Err(FsError::NotFound { path: shown });
                    }
                    for c in target.split(|&b| b == b'/').rev() {
                        match c {
                            b"" | b"." => {}
                            b".." => queue.push_front(Step::Parent),
                            _ => queue.push_front(Step::Name(OsString::from_vec(c.to_vec()), true)),
                        }
                    }
                }
                FileType::Directory => {
                    if last {
                        return Ok(Walked {
                            stack,
                            name: Some(name),
                            stat: Some(st),
                            rest: Vec::new(),
                        });
                    }
                    match rustix::fs::openat(dir, &name, dir_flags(), Mode::empty()) {
                        Ok(fd) => {
                            if stack.len() > MAX_DEPTH {
                                return Err(FsError::InvalidPath {
                                    path: shown,
                                    reason: "path too deep".into(),
                                });
                            }
                            stack.push((fd, name));
                        }
                        // Swapped for a symlink or removed since the stat: look again.
                        Err(Errno::LOOP) | Err(Errno::NOTDIR) | Err(Errno::NOENT) => {
                            hops += 1;
                            if hops > MAX_SYMLINK_HOPS {
                                return Err(FsError::Loop { path: shown });
                            }
                            queue.push_front(Step::Name(name, from_link));
                        }
                        Err(e) => return Err(err(e)),
                    }
                }
                _ => {
                    if last {
                        return Ok(Walked {
                            stack,
                            name: Some(name),
                            stat: Some(st),
                            rest: Vec::new(),
                        });
                    }
                    return Err(FsError::NotDir { path: shown });
                }
            }
        }
        // The queue ran out after a `..` (or the path was empty): the result is the
        // directory on top of the stack.
        let stat = match stack.last() {
            Some((fd, _)) => rustix::fs::fstat(fd).map_err(err)?,
            None => return Err(internal(path)),
        };
        Ok(Walked {
            stack,
            name: None,
            stat: Some(stat),
            rest: Vec::new(),
        })
    }

    /// Opens the directory `path` resolves to (following symlinks) as an `O_PATH`
    /// descriptor, with its canonical path.
    pub fn open_dir(&self, path: &RelPath) -> Result<(OwnedFd, RelPath), FsError> {
        let shown = path.display();
        let r = self.resolve(path, true)?;
        match (r.file_type(), &r.name) {
            (None, _) => Err(FsError::NotFound { path: shown }),
            (Some(FileType::Directory), None) => Ok((r.parent, r.canon)),
            (Some(FileType::Directory), Some(name)) => {
                let fd = rustix::fs::openat(&r.parent, name, dir_flags(), Mode::empty())
                    .map_err(|e| FsError::from_errno(&shown, e))?;
                Ok((fd, r.canon))
            }
            (Some(_), _) => Err(FsError::NotDir { path: shown }),
        }
    }
}

fn internal(path: &RelPath) -> FsError {
    FsError::Io {
        path: path.display(),
        source: io::Error::other("resolver stack underflow"),
    }
}

/// Lexically resolves a symlink `target` placed in directory `dir` (canonical, relative
/// to the root). Returns the resulting root-relative path, or `None` if the target is
/// absolute, empty, or climbs above the root.
pub fn lexical_link_target(dir: &RelPath, target: &[u8]) -> Option<RelPath> {
    if target.is_empty() || target.first() == Some(&b'/') || target.contains(&0) {
        return None;
    }
    let mut comps = dir.comps.clone();
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                comps.pop()?;
            }
            _ => comps.push(OsString::from_vec(c.to_vec())),
        }
    }
    Some(RelPath { comps })
}

/// The bytes of an `OsStr`, for building paths and tar names.
pub fn os_bytes(s: &OsStr) -> &[u8] {
    s.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn p(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn parse_rules() {
        assert_eq!(p("a/b").display(), "a/b");
        assert_eq!(p("./a//b/").display(), "a/b");
        assert!(p("").is_root());
        assert!(p(".").is_root());
        for bad in ["/etc/passwd", "../x", "a/../b", "a/..", "..", "a\0b"] {
            assert!(
                matches!(RelPath::parse(bad), Err(FsError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
        assert!(RelPath::parse_non_root("./").is_err());
        assert!(RelPath::parse(&"x/".repeat(3000)).is_err());
        assert!(RelPath::parse(&"y".repeat(300)).is_err());
        assert!(p("a").is_proper_prefix_of(&p("a/b")));
        assert!(!p("a").is_proper_prefix_of(&p("a")));
        assert!(!p("a").is_proper_prefix_of(&p("ab/c")));
    }

    #[test]
    fn lexical_targets() {
        assert_eq!(lexical_link_target(&p("a/b"), b"../c"), Some(p("a/c")));
        assert_eq!(lexical_link_target(&p("a"), b".."), Some(p("")));
        assert_eq!(lexical_link_target(&p("a"), b"../.."), None);
        assert_eq!(lexical_link_target(&p(""), b"/etc"), None);
        assert_eq!(lexical_link_target(&p(""), b""), None);
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: Root,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let rootp = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(rootp.join("d/e")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(rootp.join("d/e/f.txt"), "f").unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        symlink("d/e", rootp.join("in_dir")).unwrap();
        symlink("d/e/f.txt", rootp.join("in_file")).unwrap();
        symlink("../outside", rootp.join("out_rel")).unwrap();
        symlink(&outside, rootp.join("out_abs")).unwrap();
        symlink("../../..", rootp.join("d/e/up3")).unwrap();
        symlink("..", rootp.join("d/e/up1")).unwrap();
        symlink("loop2", rootp.join("loop1")).unwrap();
        symlink("loop1", rootp.join("loop2")).unwrap();
        let root = Root::open(&fs::canonicalize(&rootp).unwrap()).unwrap();
        Fixture {
            _tmp: tmp,
            root,
            outside,
        }
    }

    #[test]
    fn resolves_inside_links() {
        let f = fixture();
        let r = f.root.resolve(&p("in_dir/f.txt"), true).unwrap();
        assert_eq!(r.canon.display(), "d/e/f.txt");
        assert_eq!(r.file_type(), Some(FileType::RegularFile));
        let r = f.root.resolve(&p("in_file"), true).unwrap();
        assert_eq!(r.canon.display(), "d/e/f.txt");
        let r = f.root.resolve(&p("in_file"), false).unwrap();
        assert_eq!(r.file_type(), Some(FileType::Symlink));
        let r = f.root.resolve(&p("d/e/up1/e/f.txt"), true).unwrap();
        assert_eq!(r.canon.display(), "d/e/f.txt");
        // `d/e/up1` -> `..` = d
        let r = f.root.resolve(&p("d/e/up1"), true).unwrap();
        assert_eq!(r.canon.display(), "d");
        let r = f.root.resolve(&p("missing"), true).unwrap();
        assert!(r.stat.is_none());
        let r = f.root.resolve(&p(""), true).unwrap();
        assert!(r.is_root());
    }

    #[test]
    fn refuses_escapes() {
        let f = fixture();
        for path in [
            "out_rel",
            "out_rel/secret",
            "out_abs/secret",
            "d/e/up3",
            "d/e/up3/outside/secret",
        ] {
            let r = f.root.resolve(&p(path), true);
            assert!(matches!(r, Err(FsError::Escapes { .. })), "{path}: {r:?}");
            let r = f.root.resolve_create(&p(&format!("{path}/new")), true);
            assert!(matches!(r, Err(FsError::Escapes { .. })), "{path}: {r:?}");
        }
        // Not following the final link is fine: it names the link itself.
        let r = f.root.resolve(&p("out_abs"), false).unwrap();
        assert_eq!(r.file_type(), Some(FileType::Symlink));
        assert!(matches!(
            f.root.resolve(&p("loop1"), true),
            Err(FsError::Loop { .. })
        ));
        assert!(matches!(
            f.root.resolve(&p("nope/x"), true),
            Err(FsError::NotFound { .. })
        ));
        assert!(matches!(
            f.root.resolve(&p("d/e/f.txt/x"), true),
            Err(FsError::NotDir { .. })
        ));
        assert_eq!(fs::read_dir(&f.outside).unwrap().count(), 1);
    }

    #[test]
    fn creates_intermediates_and_looks_up() {
        let f = fixture();
        let r = f.root.resolve_create(&p("n1/n2/file"), true).unwrap();
        assert!(r.stat.is_none());
        assert!(f.root.path().join("n1/n2").is_dir());
        let l = f.root.lookup(&p("in_dir/x/y"), true).unwrap();
        assert_eq!(l.canon.display(), "d/e/x/y");
        assert!(l.stat.is_none());
        assert!(matches!(
            f.root.lookup(&p("out_rel/x"), true),
            Err(FsError::Escapes { .. })
        ));
        let (_, canon) = f.root.open_dir(&p("in_dir")).unwrap();
        assert_eq!(canon.display(), "d/e");
        assert!(matches!(
            f.root.open_dir(&p("in_file")),
            Err(FsError::NotDir { .. })
        ));
    }
}
