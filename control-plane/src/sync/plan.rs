//! The pure stages of a sync: from the stored manifest, the workspace's manifest and
//! the settings, **what** to upload, refresh and delete ([`plan`]), and after the
//! transfers, **the next manifest** and whether it must be written ([`next_manifest`]).
//! No I/O here: the property tests below state the invariants the crash-consistency
//! argument of `docs/sync.md` rests on (a file is uploaded iff its content is new; a
//! path that is a file in the new manifest is never deleted; deletions are recorded
//! before they happen).

use std::collections::HashSet;

use time::OffsetDateTime;
use wire::{ManifestEntry, ManifestKind};

use super::manifest::{self, StoredManifest, FORMAT};
use crate::store::ConversationKey;

/// What one sync will transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// Indexes (into the new entries) of files whose content must be uploaded.
    pub upload: Vec<usize>,
    /// Indexes of files whose stored objects are rewritten in place (lifecycle
    /// refresh), never one of `upload`; empty unless `refresh_due`.
    pub refresh: Vec<usize>,
    /// Files of the old manifest whose objects are no longer needed.
    pub removed: Vec<String>,
    /// Anything differs from the stored manifest.
    pub changed: bool,
    /// The objects are old enough to be refreshed (`refresh_after_days`).
    pub refresh_due: bool,
}

/// Plans a sync of `new` against the stored `old`.
pub fn plan(
    old: Option<&StoredManifest>,
    new: &[ManifestEntry],
    refresh_after_days: u32,
    now: OffsetDateTime,
) -> SyncPlan {
    let diff = manifest::diff(old.map(|o| &o.entries[..]), new);
    let refresh_due = refresh_after_days > 0
        && old.is_some_and(|o| {
            now - o.refreshed_at.unwrap_or(o.synced_at)
                > time::Duration::days(i64::from(refresh_after_days))
        });
    let refresh = if refresh_due {
        let uploading: HashSet<usize> = diff.upload.iter().copied().collect();
        new.iter()
            .enumerate()
            .filter(|(i, e)| e.kind == ManifestKind::File && !uploading.contains(i))
            .map(|(i, _)| i)
            .collect()
    } else {
        Vec::new()
    };
    SyncPlan {
        upload: diff.upload,
        refresh,
        removed: diff.removed_files,
        changed: diff.changed,
        refresh_due,
    }
}

/// The manifest to store after the transfers, and whether it must be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NextManifest {
    pub manifest: StoredManifest,
    /// Write it (something changed, the workspace moved, a refresh, or the list of
    /// pending deletions changed).
    pub write: bool,
    /// Deletions first planned by this sync (the rest of `pending_deletes` are
    /// retries of earlier ones).
    pub fresh_deletes: HashSet<String>,
}

/// Builds the next manifest from the transferred `entries` (the new manifest without
/// the files that vanished before their export, with the sizes and hashes of what was
/// read). Deletions still to do are recorded in it: the removed files, files that
/// vanished (if they were stored), and earlier pending ones — never a path that is a
/// file of the new manifest.
#[allow(clippy::too_many_arguments)]
pub fn next_manifest(
    key: &ConversationKey,
    old: Option<&StoredManifest>,
    plan: &SyncPlan,
    entries: Vec<ManifestEntry>,
    vanished: &HashSet<String>,
    endpoint: &str,
    now: OffsetDateTime,
) -> NextManifest {
    let mut removed = plan.removed.clone();
    if let Some(o) = old {
        removed.extend(
            o.entries
                .iter()
                .filter(|e| e.kind == ManifestKind::File && vanished.contains(&e.path))
                .map(|e| e.path.clone()),
        );
    }
    let new_files: HashSet<&str> = entries
        .iter()
        .filter(|e| e.kind == ManifestKind::File)
        .map(|e| e.path.as_str())
        .collect();
    let fresh_deletes: HashSet<String> = removed.into_iter().collect();
    let mut pending: Vec<String> = old
        .map(|o| o.pending_deletes.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(fresh_deletes.iter().cloned())
        .filter(|p| !new_files.contains(p.as_str()))
        .collect();
    pending.sort();
    pending.dedup();
    let moved = old.and_then(|o| o.workspace.as_deref()) != Some(endpoint);
    let old_pending = old.map(|o| o.pending_deletes.len()).unwrap_or(0);
    let write = old.is_none()
        || plan.changed
        || !vanished.is_empty()
        || moved
        || plan.refresh_due
        || pending.len() != old_pending;
    let refreshed_at = match old {
        Some(o) if !plan.refresh_due => Some(o.refreshed_at.unwrap_or(o.synced_at)),
        _ => Some(now),
    };
    NextManifest {
        manifest: StoredManifest {
            format: FORMAT,
            tenant_id: key.tenant_id.clone(),
            conversation_id: key.conversation_id.clone(),
            synced_at: now,
            workspace: Some(endpoint.to_string()),
            refreshed_at,
            entries,
            pending_deletes: pending,
        },
        write,
        fresh_deletes,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::sync::manifest::tests::{dir, file, link};

    /// A workspace: path → (kind 0 file / 1 dir / 2 link, content).
    fn entries(ws: &BTreeMap<String, (u8, String)>) -> Vec<ManifestEntry> {
        ws.iter()
            .map(|(p, (k, c))| match k {
                0 => file(p, c),
                1 => dir(p),
                _ => link(p, c),
            })
            .collect()
    }

    fn stored(es: Vec<ManifestEntry>, pending: Vec<String>, at: OffsetDateTime) -> StoredManifest {
        StoredManifest {
            format: FORMAT,
            tenant_id: "t".into(),
            conversation_id: "c".into(),
            synced_at: at,
            workspace: Some("unix:/a".into()),
            refreshed_at: None,
            entries: es,
            pending_deletes: pending,
        }
    }

    fn workspace() -> impl Strategy<Value = BTreeMap<String, (u8, String)>> {
        proptest::collection::btree_map("[a-e]{1,2}", (0u8..3, "[xy]{0,2}"), 0..12)
    }

    fn is_file(es: &[ManifestEntry], p: &str) -> bool {
        es.iter()
            .any(|e| e.path == p && e.kind == ManifestKind::File)
    }

    proptest! {
        #[test]
        fn uploads_exactly_the_files_with_new_content(
            old_ws in workspace(), new_ws in workspace(), has_old in any::<bool>(),
        ) {
            let now = OffsetDateTime::now_utc();
            let old = has_old.then(|| stored(entries(&old_ws), vec![], now));
            let new = entries(&new_ws);
            let p = plan(old.as_ref(), &new, 0, now);
            for (i, e) in new.iter().enumerate() {
                let same_content = old.as_ref().is_some_and(|o| o.entries.iter().any(|x| {
                    x.path == e.path && x.kind == ManifestKind::File
                        && x.sha256 == e.sha256 && x.size == e.size
                }));
                let expected = e.kind == ManifestKind::File && !same_content;
                prop_assert_eq!(p.upload.contains(&i), expected, "{}", e.path);
            }
            for r in &p.removed {
                prop_assert!(old.as_ref().is_some_and(|o| is_file(&o.entries, r)));
                prop_assert!(!is_file(&new, r));
            }
            prop_assert!(p.refresh.is_empty() && !p.refresh_due);
        }

        #[test]
        fn never_deletes_a_file_of_the_new_manifest_and_records_every_deletion(
            old_ws in workspace(), new_ws in workspace(),
            old_pending in proptest::collection::vec("[a-e]{1,2}", 0..4),
            vanish in proptest::collection::vec(0usize..12, 0..3),
        ) {
            let now = OffsetDateTime::now_utc();
            let old = stored(entries(&old_ws), old_pending.clone(), now);
            let new = entries(&new_ws);
            let p = plan(Some(&old), &new, 0, now);
            let vanished: HashSet<String> = vanish.iter()
                .filter_map(|&i| p.upload.get(i).map(|&j| new[j].path.clone()))
                .collect();
            let kept: Vec<ManifestEntry> =
                new.iter().filter(|e| !vanished.contains(&e.path)).cloned().collect();
            let key = ConversationKey::new("t", "c");
            let next = next_manifest(&key, Some(&old), &p, kept.clone(), &vanished, "unix:/a", now);
            let pending = &next.manifest.pending_deletes;
            for d in pending {
                prop_assert!(!is_file(&kept, d), "would delete live file {}", d);
            }
            let mut sorted = pending.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&sorted, pending);
            for r in p.removed.iter().chain(old_pending.iter()) {
                prop_assert!(pending.contains(r) || is_file(&kept, r), "lost deletion {}", r);
            }
            if p.changed || !vanished.is_empty() {
                prop_assert!(next.write);
            }
        }

        #[test]
        fn a_due_refresh_rewrites_every_other_file_once(ws in workspace(), changed in workspace()) {
            let then = OffsetDateTime::now_utc() - time::Duration::days(61);
            let now = OffsetDateTime::now_utc();
            let old = stored(entries(&ws), vec![], then);
            let new = entries(&changed);
            let p = plan(Some(&old), &new, 60, now);
            prop_assert!(p.refresh_due);
            let up: HashSet<usize> = p.upload.iter().copied().collect();
            let re: HashSet<usize> = p.refresh.iter().copied().collect();
            prop_assert!(up.is_disjoint(&re));
            for (i, e) in new.iter().enumerate() {
                prop_assert_eq!(e.kind == ManifestKind::File, up.contains(&i) || re.contains(&i));
            }
            let next = next_manifest(&ConversationKey::new("t", "c"), Some(&old), &p, new, &HashSet::new(), "unix:/a", now);
            prop_assert!(next.write);
            prop_assert_eq!(next.manifest.refreshed_at, Some(now));
        }
    }

    #[test]
    fn an_unchanged_workspace_writes_nothing() {
        let now = OffsetDateTime::now_utc();
        let es = vec![dir("d"), file("d/a", "x")];
        let old = stored(es.clone(), vec![], now);
        let p = plan(Some(&old), &es, 60, now);
        assert!(p.upload.is_empty() && p.removed.is_empty() && !p.changed);
        let next = next_manifest(
            &ConversationKey::new("t", "c"),
            Some(&old),
            &p,
            es,
            &HashSet::new(),
            "unix:/a",
            now,
        );
        assert!(!next.write);
        // Another workspace (a restore elsewhere) makes it written.
        let moved = next_manifest(
            &ConversationKey::new("t", "c"),
            Some(&old),
            &p,
            old.entries.clone(),
            &HashSet::new(),
            "unix:/b",
            now,
        );
        assert!(moved.write);
    }
}
