//! [`LocalDirStore`]: objects as files below one directory (the embedded default).
//!
//! A key `a/b/c` is stored as `<root>/d.a/d.b/f.c`: directories get a `d.` prefix and
//! the object itself an `f.` prefix, so the keys `x` and `x/y` (an S3 store holds both
//! happily) never collide as a file and a directory, and listing decodes names back.
//! Keys are [`ObjectKey`]s (relative, no `..`, no NUL), so a key can never name a path
//! outside the root. Writes go to a temporary file in the target directory, are synced
//! to disk (unless turned off), and renamed over the object, so a reader sees the old
//! or the new object, never a torn one.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::key::ObjectKey;
use super::object_store::{ObjectStore, ObjectStoreError};

const DIR_PREFIX: &str = "d.";
const OBJ_PREFIX: &str = "f.";

/// Objects in a local directory.
#[derive(Debug, Clone)]
pub struct LocalDirStore {
    root: PathBuf,
    fsync: bool,
}

impl LocalDirStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDirStore {
            root: root.into(),
            fsync: true,
        }
    }

    /// Turns syncing each object to disk on or off (on by default).
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, key: &ObjectKey) -> PathBuf {
        let mut p = self.root.clone();
        for c in key.components() {
            p.push(format!("{DIR_PREFIX}{c}"));
        }
        p
    }

    /// The file holding `key`.
    pub fn path_of(&self, key: &ObjectKey) -> PathBuf {
        let comps: Vec<&str> = key.components().collect();
        let mut p = self.root.clone();
        if let Some((last, dirs)) = comps.split_last() {
            for c in dirs {
                p.push(format!("{DIR_PREFIX}{c}"));
            }
            p.push(format!("{OBJ_PREFIX}{last}"));
        }
        p
    }

    fn loc(&self, key: &ObjectKey) -> String {
        format!("local:{}", self.path_of(key).display())
    }
}

fn tmp_path(target: &Path) -> PathBuf {
    let name = format!(".tmp-{}", uuid::Uuid::new_v4().simple());
    target.with_file_name(name)
}

/// Writes an object atomically with `fill` producing its bytes.
fn write_atomic(
    target: &Path,
    fsync: bool,
    fill: impl Fn(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let parent = target
        .parent()
        .ok_or_else(|| std::io::Error::other("object path without a parent"))?;
    // A concurrent delete may prune an empty parent between the mkdir and the create:
    // try again a few times.
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Tenants' files: directories 0700 and objects 0600, whatever the umask, so no
        // other host user can read them.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
        let tmp = tmp_path(target);
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            fill(&mut f)?;
            f.flush()?;
            if fsync {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, target)
        })();
        match result {
            Ok(()) => return Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 {
                    continue;
                }
                return Err(e);
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ObjectStoreError> + Send + 'static,
) -> Result<T, ObjectStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ObjectStoreError::failed("io", "local store", e))?
}

fn name_check(key: &ObjectKey) -> Result<(), ObjectStoreError> {
    // File names are at most 255 bytes; the prefix takes 2.
    if key.components().any(|c| c.len() > 253) {
        return Err(ObjectStoreError::failed(
            "put",
            key.as_str(),
            "a key component is longer than 253 bytes",
        ));
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalDirStore {
    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }

    async fn put(&self, key: &ObjectKey, data: Bytes) -> Result<(), ObjectStoreError> {
        name_check(key)?;
        let target = self.path_of(key);
        let loc = self.loc(key);
        let fsync = self.fsync;
        blocking(move || {
            write_atomic(&target, fsync, |f| f.write_all(&data))
                .map_err(|e| ObjectStoreError::failed("put", loc, e))
        })
        .await
    }

    async fn put_file_range(
        &self,
        key: &ObjectKey,
        file: &Path,
        offset: u64,
        len: u64,
    ) -> Result<(), ObjectStoreError> {
        name_check(key)?;
        let target = self.path_of(key);
        let loc = self.loc(key);
        let src = file.to_path_buf();
        let fsync = self.fsync;
        blocking(move || {
            write_atomic(&target, fsync, |out| {
                let mut f = std::fs::File::open(&src)?;
                f.seek(std::io::SeekFrom::Start(offset))?;
                let copied = std::io::copy(&mut f.take(len), out)?;
                if copied != len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the spooled file is shorter than expected",
                    ));
                }
                Ok(())
            })
            .map_err(|e| ObjectStoreError::failed("put", loc, e))
        })
        .await
    }

    async fn get(&self, key: &ObjectKey, max_len: u64) -> Result<Option<Bytes>, ObjectStoreError> {
        let path = self.path_of(key);
        let loc = self.loc(key);
        blocking(move || {
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(ObjectStoreError::failed("get", loc, e)),
            };
            let size = f
                .metadata()
                .map_err(|e| ObjectStoreError::failed("get", loc.clone(), e))?
                .len();
            if size > max_len {
                return Err(ObjectStoreError::TooLarge {
                    location: loc,
                    size,
                    limit: max_len,
                });
            }
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf)
                .map_err(|e| ObjectStoreError::failed("get", loc, e))?;
            Ok(Some(Bytes::from(buf)))
        })
        .await
    }

    async fn get_to_file(
        &self,
        key: &ObjectKey,
        dest: &Path,
        max_len: u64,
    ) -> Result<Option<u64>, ObjectStoreError> {
        let path = self.path_of(key);
        let loc = self.loc(key);
        let dest = dest.to_path_buf();
        blocking(move || {
            let f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(ObjectStoreError::failed("get", loc, e)),
            };
            let size = f
                .metadata()
                .map_err(|e| ObjectStoreError::failed("get", loc.clone(), e))?
                .len();
            if size > max_len {
                return Err(ObjectStoreError::TooLarge {
                    location: loc,
                    size,
                    limit: max_len,
                });
            }
            let mut out = std::fs::File::create(&dest)
                .map_err(|e| ObjectStoreError::failed("write", dest.display().to_string(), e))?;
            let n = std::io::copy(&mut f.take(max_len), &mut out)
                .map_err(|e| ObjectStoreError::failed("get", loc, e))?;
            Ok(Some(n))
        })
        .await
    }

    async fn refresh(&self, key: &ObjectKey) -> Result<bool, ObjectStoreError> {
        let path = self.path_of(key);
        let loc = self.loc(key);
        blocking(move || {
            let f = match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(ObjectStoreError::failed("refresh", loc, e)),
            };
            f.set_modified(std::time::SystemTime::now())
                .map_err(|e| ObjectStoreError::failed("refresh", loc, e))?;
            Ok(true)
        })
        .await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>, ObjectStoreError> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ObjectStoreError::failed("head", self.loc(key), e)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectStoreError> {
        let path = self.path_of(key);
        let loc = self.loc(key);
        let root = self.root.clone();
        blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(ObjectStoreError::failed("delete", loc, e)),
            }
            // Prune directories left empty, up to (not including) the root.
            let mut dir = path.parent().map(Path::to_path_buf);
            while let Some(d) = dir {
                if d == root || !d.starts_with(&root) || std::fs::remove_dir(&d).is_err() {
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &ObjectKey) -> Result<Vec<ObjectKey>, ObjectStoreError> {
        let dir = self.dir_of(prefix);
        let prefix = prefix.clone();
        let loc = format!("local:{}", dir.display());
        blocking(move || {
            let mut out = Vec::new();
            let mut todo = vec![(dir, prefix.as_str().to_string())];
            while let Some((d, key_prefix)) = todo.pop() {
                let rd = match std::fs::read_dir(&d) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(ObjectStoreError::failed("list", loc, e)),
                };
                for ent in rd {
                    let ent = ent.map_err(|e| ObjectStoreError::failed("list", loc.clone(), e))?;
                    let Ok(name) = ent.file_name().into_string() else {
                        continue;
                    };
                    let ft = ent
                        .file_type()
                        .map_err(|e| ObjectStoreError::failed("list", loc.clone(), e))?;
                    if let (true, Some(c)) = (ft.is_dir(), name.strip_prefix(DIR_PREFIX)) {
                        todo.push((ent.path(), format!("{key_prefix}/{c}")));
                    } else if let (true, Some(c)) = (ft.is_file(), name.strip_prefix(OBJ_PREFIX)) {
                        if let Ok(k) = ObjectKey::new(format!("{key_prefix}/{c}")) {
                            out.push(k);
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> ObjectKey {
        ObjectKey::new(s).unwrap()
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalDirStore::new(tmp.path().join("objects"));
        assert_eq!(s.get(&k("a/x"), 100).await.unwrap(), None);
        assert_eq!(s.head(&k("a/x")).await.unwrap(), None);
        s.put(&k("a/x"), Bytes::from_static(b"file x"))
            .await
            .unwrap();
        // `a/x` and `a/x/y` coexist, like in S3.
        s.put(&k("a/x/y"), Bytes::from_static(b"under x"))
            .await
            .unwrap();
        s.put(&k("a/z"), Bytes::from_static(b"")).await.unwrap();
        s.put(&k("b/other"), Bytes::from_static(b"b"))
            .await
            .unwrap();
        assert_eq!(
            s.get(&k("a/x"), 100).await.unwrap().as_deref(),
            Some(&b"file x"[..])
        );
        assert_eq!(s.head(&k("a/x/y")).await.unwrap(), Some(7));
        let listed: Vec<_> = s
            .list(&k("a"))
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(listed, ["a/x", "a/x/y", "a/z"]);
        assert!(matches!(
            s.get(&k("a/x"), 3).await,
            Err(ObjectStoreError::TooLarge {
                size: 6,
                limit: 3,
                ..
            })
        ));
        // Replace.
        s.put(&k("a/x"), Bytes::from_static(b"v2")).await.unwrap();
        assert_eq!(s.get(&k("a/x"), 100).await.unwrap().unwrap(), &b"v2"[..]);
        // Ranges of a spooled file.
        let spool = tmp.path().join("spool");
        std::fs::write(&spool, b"0123456789").unwrap();
        s.put_file_range(&k("a/r"), &spool, 3, 4).await.unwrap();
        assert_eq!(s.get(&k("a/r"), 100).await.unwrap().unwrap(), &b"3456"[..]);
        assert!(s.put_file_range(&k("a/r2"), &spool, 8, 4).await.is_err());
        let dest = tmp.path().join("copy");
        assert_eq!(s.get_to_file(&k("a/r"), &dest, 100).await.unwrap(), Some(4));
        assert_eq!(std::fs::read(&dest).unwrap(), b"3456");
        // Refresh restarts the object's age.
        let p = s.path_of(&k("a/r"));
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400 * 100);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(s.refresh(&k("a/r")).await.unwrap());
        let age = std::fs::metadata(&p).unwrap().modified().unwrap().elapsed();
        assert!(age.map(|a| a.as_secs() < 60).unwrap_or(true));
        assert!(!s.refresh(&k("a/none")).await.unwrap());
        // Delete prunes empty directories; deleting twice is fine.
        s.delete(&k("a/x/y")).await.unwrap();
        s.delete(&k("a/x/y")).await.unwrap();
        assert!(!s.root().join("d.a/d.x").exists());
        s.delete_many(&[k("a/x"), k("a/z"), k("a/r")])
            .await
            .unwrap();
        assert!(s.list(&k("a")).await.unwrap().is_empty());
        assert!(!s.root().join("d.a").exists());
        assert_eq!(s.list(&k("b")).await.unwrap(), vec![k("b/other")]);
        // No temporary files are left behind.
        let mut names = Vec::new();
        for e in walk(s.root()) {
            names.push(e);
        }
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn keys_map_inside_the_root() {
        let s = LocalDirStore::new("/srv/objects");
        assert_eq!(
            s.path_of(&k("t/c/files/.env")),
            Path::new("/srv/objects/d.t/d.c/d.files/f..env")
        );
        // Unsafe keys cannot even be made.
        for bad in ["../x", "/etc/passwd", "a/../../x", "a\0"] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?}");
        }
    }

    fn walk(p: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                out.push(e.file_name().to_string_lossy().into_owned());
                if e.file_type().unwrap().is_dir() {
                    out.extend(walk(&e.path()));
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn objects_are_private_to_the_control_plane() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(tmp.path().join("objects"));
        let key = ObjectKey::new("t/c/files/a/b.txt".to_string()).unwrap();
        store
            .put(&key, Bytes::from_static(b"secret"))
            .await
            .unwrap();
        let file = store.path_of(&key);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&file) & 0o777, 0o600, "object");
        let mut dir = file.parent().unwrap().to_path_buf();
        while dir != tmp.path() {
            assert_eq!(
                mode(&dir) & 0o077,
                0,
                "{} readable by others",
                dir.display()
            );
            dir = dir.parent().unwrap().to_path_buf();
        }
    }
}
