//! The stored manifest of a synced workspace, the checks every manifest passes before
//! it is used (from the agent, which runs inside the sandbox, or from the store, which
//! could have been tampered with), and the diff that decides what moves.
//!
//! A manifest is usable only if every path is relative and canonical (no `..`, `.`,
//! empty component, NUL, leading `/`), the entries are sorted and unique, every entry's
//! parent is a directory of the same manifest (so nothing sits below a symlink or a
//! file), files carry a SHA-256 and symlinks a target (which may be absolute: the
//! agent's restore keeps it as a plain symlink and never writes through it).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use wire::{ManifestEntry, ManifestKind};

/// Version of the stored manifest's format.
pub const FORMAT: u32 = 1;
/// Longest path accepted (the agent's limit).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest symlink target accepted.
pub const MAX_TARGET_BYTES: usize = 4095;

/// `<tenant>/<conversation>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredManifest {
    pub format: u32,
    pub tenant_id: String,
    pub conversation_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub synced_at: OffsetDateTime,
    /// The agent endpoint of the workspace these files were synced from or last
    /// restored into (the restore guard; see `syncer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// When every object of the manifest was last written or refreshed (absent:
    /// `synced_at` of the first sync).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub refreshed_at: Option<OffsetDateTime>,
    pub entries: Vec<ManifestEntry>,
    /// Paths whose objects were superseded when this manifest was written and are
    /// deleted after it (retried by the next sync if that failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_deletes: Vec<String>,
}

/// Where a manifest came from (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The workspace's agent.
    Agent,
    /// The object store.
    Store,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Agent => "the workspace agent",
            Origin::Store => "the object store",
        })
    }
}

/// Why a manifest entry is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    pub path: String,
    pub reason: String,
}

fn refuse(path: &str, reason: impl Into<String>) -> Unsafe {
    Unsafe {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Checks one path: relative, canonical, bounded.
pub fn check_path(path: &str) -> Result<(), Unsafe> {
    if path.is_empty() {
        return Err(refuse(path, "empty path"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(refuse(path, "path too long"));
    }
    if path.contains('\0') {
        return Err(refuse(path, "the path contains a NUL byte"));
    }
    if path.starts_with('/') {
        return Err(refuse(path, "absolute paths are not allowed"));
    }
    for c in path.split('/') {
        match c {
            "" => return Err(refuse(path, "empty path component")),
            "." => return Err(refuse(path, "`.` component")),
            ".." => return Err(refuse(path, "`..` components are not allowed")),
            _ if c.len() > 255 => return Err(refuse(path, "a component is longer than 255 bytes")),
            _ => {}
        }
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a whole manifest (see the module docs).
pub fn validate(entries: &[ManifestEntry]) -> Result<(), Unsafe> {
    let mut kinds: HashMap<&str, ManifestKind> = HashMap::with_capacity(entries.len());
    let mut prev: Option<&str> = None;
    for e in entries {
        let p = e.path.as_str();
        check_path(p)?;
        if let Some(prev) = prev {
            if prev >= p {
                return Err(refuse(p, "entries are not sorted or a path repeats"));
            }
        }
        prev = Some(p);
        if let Some((parent, _)) = p.rsplit_once('/') {
            match kinds.get(parent) {
                Some(ManifestKind::Dir) => {}
                Some(k) => {
                    return Err(refuse(
                        p,
                        format!("its parent {parent:?} is a {k:?}, not a directory (nothing may be written through it)"),
                    ))
                }
                None => {
                    return Err(refuse(
                        p,
                        format!("its parent directory {parent:?} is not in the manifest"),
                    ))
                }
            }
        }
        if e.mode > 0o7777 {
            return Err(refuse(p, format!("invalid mode {:o}", e.mode)));
        }
        match e.kind {
            ManifestKind::File => {
                if !e.sha256.as_deref().is_some_and(is_sha256_hex) {
                    return Err(refuse(p, "a file needs a lower-case hex sha256"));
                }
                if e.target.is_some() {
                    return Err(refuse(p, "a file has no symlink target"));
                }
            }
            ManifestKind::Dir => {
                if e.sha256.is_some() || e.target.is_some() {
                    return Err(refuse(p, "a directory has no sha256 or target"));
                }
            }
            ManifestKind::Symlink => {
                let t = e.target.as_deref().unwrap_or("");
                if t.is_empty() || t.len() > MAX_TARGET_BYTES || t.contains('\0') {
                    return Err(refuse(
                        p,
                        "a symlink needs a non-empty target without NUL of at most 4095 bytes",
                    ));
                }
                if e.sha256.is_some() {
                    return Err(refuse(p, "a symlink has no sha256"));
                }
            }
        }
        kinds.insert(p, e.kind);
    }
    Ok(())
}

/// Totals of a manifest: (entries, bytes of files).
pub fn totals(entries: &[ManifestEntry]) -> (u64, u64) {
    let bytes = entries
        .iter()
        .filter(|e| e.kind == ManifestKind::File)
        .map(|e| e.size)
        .fold(0u64, u64::saturating_add);
    (entries.len() as u64, bytes)
}

/// What a sync has to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Indexes (into the new entries) of files whose content must be uploaded.
    pub upload: Vec<usize>,
    /// Paths of files of the old manifest whose object is no longer needed (the path is
    /// gone or is no longer a file).
    pub removed_files: Vec<String>,
    /// True when anything differs (the manifest must be written).
    pub changed: bool,
}

/// Compares an entry's synced state: kind, size, sha256, target and mode (mtime is
/// not compared).
fn same(a: &ManifestEntry, b: &ManifestEntry) -> bool {
    a.kind == b.kind
        && a.size == b.size
        && a.sha256 == b.sha256
        && a.target == b.target
        && a.mode == b.mode
}

/// Diffs `old` (the stored manifest, if any) against `new` (the workspace now).
pub fn diff(old: Option<&[ManifestEntry]>, new: &[ManifestEntry]) -> Diff {
    let old = old.unwrap_or(&[]);
    let by_path: HashMap<&str, &ManifestEntry> = old.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut d = Diff {
        changed: old.len() != new.len(),
        ..Diff::default()
    };
    for (i, e) in new.iter().enumerate() {
        match by_path.get(e.path.as_str()) {
            Some(o) => {
                if !same(o, e) {
                    d.changed = true;
                }
                let content_same =
                    o.kind == ManifestKind::File && o.sha256 == e.sha256 && o.size == e.size;
                if e.kind == ManifestKind::File && !content_same {
                    d.upload.push(i);
                }
            }
            None => {
                d.changed = true;
                if e.kind == ManifestKind::File {
                    d.upload.push(i);
                }
            }
        }
    }
    let new_files: std::collections::HashSet<&str> = new
        .iter()
        .filter(|e| e.kind == ManifestKind::File)
        .map(|e| e.path.as_str())
        .collect();
    for o in old {
        if o.kind == ManifestKind::File && !new_files.contains(o.path.as_str()) {
            d.changed = true;
            d.removed_files.push(o.path.clone());
        }
    }
    d
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn file(path: &str, content: &str) -> ManifestEntry {
        use sha2::{Digest, Sha256};
        ManifestEntry {
            path: path.into(),
            kind: ManifestKind::File,
            size: content.len() as u64,
            mtime_ms: 1,
            mode: 0o644,
            sha256: Some(hex::encode(Sha256::digest(content.as_bytes()))),
            target: None,
        }
    }

    pub fn dir(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind: ManifestKind::Dir,
            size: 0,
            mtime_ms: 1,
            mode: 0o755,
            sha256: None,
            target: None,
        }
    }

    pub fn link(path: &str, target: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind: ManifestKind::Symlink,
            size: 0,
            mtime_ms: 1,
            mode: 0o777,
            sha256: None,
            target: Some(target.into()),
        }
    }

    fn paths(new: &[ManifestEntry], idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| new[i].path.clone()).collect()
    }

    #[test]
    fn first_sync_uploads_every_file() {
        let new = vec![dir("d"), file("d/a", "A"), link("l", "/usr/bin/python3")];
        let d = diff(None, &new);
        assert_eq!(paths(&new, &d.upload), ["d/a"]);
        assert!(d.removed_files.is_empty());
        assert!(d.changed);
    }

    #[test]
    fn unchanged_moves_nothing() {
        let old = vec![dir("d"), file("d/a", "A"), link("l", "t")];
        let mut new = old.clone();
        new[1].mtime_ms = 99; // a touch is not a change
        let d = diff(Some(&old), &new);
        assert_eq!(d, Diff::default());
    }

    #[test]
    fn changed_added_deleted_kind_and_link() {
        let old = vec![
            dir("d"),
            file("d/a", "A"),
            file("d/b", "B"),
            file("d/gone", "G"),
            file("f2d", "was a file"),
            link("l", "old-target"),
            file("mode", "M"),
            dir("x"),
            file("x/y", "Y"),
        ];
        let mut mode = file("mode", "M");
        mode.mode = 0o755;
        let new = vec![
            dir("d"),
            file("d/a", "A"),        // unchanged
            file("d/b", "B2"),       // changed content
            file("d/new", "N"),      // added
            dir("f2d"),              // file -> dir
            file("f2d/inner", "I"),  // added below it
            link("l", "new-target"), // retargeted
            mode,                    // mode only: no upload
            file("x", "now a file"), // dir -> file
        ];
        let d = diff(Some(&old), &new);
        assert_eq!(paths(&new, &d.upload), ["d/b", "d/new", "f2d/inner", "x"]);
        assert_eq!(d.removed_files, ["d/gone", "f2d", "x/y"]);
        assert!(d.changed);

        // Only a symlink retarget or a mode change: the manifest changes, nothing uploads.
        let old = vec![link("l", "a"), file("m", "M")];
        let mut m2 = file("m", "M");
        m2.mode = 0o600;
        for new in [
            vec![link("l", "b"), file("m", "M")],
            vec![link("l", "a"), m2],
        ] {
            let d = diff(Some(&old), &new);
            assert!(d.changed && d.upload.is_empty() && d.removed_files.is_empty());
        }
        // A symlink replacing a file drops the file's object.
        let d = diff(Some(&[file("p", "P")]), &[link("p", "/etc")]);
        assert_eq!(d.removed_files, ["p"]);
        assert!(d.upload.is_empty());
    }

    #[test]
    fn validation_refuses_unsafe_manifests() {
        let ok = vec![
            dir(".venv"),
            dir(".venv/bin"),
            link(".venv/bin/python", "/usr/bin/python3"),
            link(".venv/up", "../../.."),
            file("a b/é", "x").clone(),
        ];
        // "a b" is missing as a directory: refused; with it, accepted.
        assert!(validate(&ok).is_err());
        let mut ok2 = ok.clone();
        ok2.insert(4, dir("a b"));
        validate(&ok2).unwrap();

        let cases: Vec<(Vec<ManifestEntry>, &str)> = vec![
            (vec![file("../escape", "x")], "`..`"),
            (vec![dir("d"), file("d/../../x", "x")], "`..`"),
            (vec![file("/etc/passwd", "x")], "absolute"),
            (vec![file("a\0b", "x")], "NUL"),
            (vec![file("", "x")], "empty"),
            (vec![dir("d"), file("d//x", "x")], "empty path component"),
            (vec![file("./x", "x")], "`.`"),
            (vec![file("b", "x"), file("a", "x")], "sorted"),
            (vec![file("a", "x"), file("a", "x")], "sorted"),
            (
                vec![link("l", "/tmp"), file("l/planted", "x")],
                "not a directory",
            ),
            (vec![file("f", "x"), file("f/g", "x")], "not a directory"),
            (vec![file("d/x", "x")], "not in the manifest"),
            (vec![link("l", "")], "target"),
            (
                vec![ManifestEntry {
                    sha256: Some("zz".into()),
                    ..file("f", "x")
                }],
                "sha256",
            ),
            (
                vec![ManifestEntry {
                    sha256: None,
                    ..file("f", "x")
                }],
                "sha256",
            ),
            (
                vec![ManifestEntry {
                    mode: 0o17777,
                    ..file("f", "x")
                }],
                "mode",
            ),
        ];
        for (entries, why) in cases {
            let e = validate(&entries).unwrap_err();
            assert!(e.reason.contains(why), "{why}: {e:?}");
        }
    }

    #[test]
    fn stored_manifest_json() {
        let m = StoredManifest {
            format: FORMAT,
            tenant_id: "acme".into(),
            conversation_id: "c1".into(),
            synced_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            workspace: Some("unix:/run/ws-1/agent.sock".into()),
            refreshed_at: None,
            entries: vec![file("a", "A")],
            pending_deletes: vec![],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(
            json.contains(r#""synced_at":"2023-11-14T22:13:20Z""#),
            "{json}"
        );
        assert!(!json.contains("pending_deletes"));
        let back: StoredManifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<StoredManifest>(&json.replace("format", "formt")).is_err());
        assert_eq!(totals(&m.entries), (1, 1));
    }
}
