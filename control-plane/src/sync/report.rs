//! What a sync or a restore did: the reports the coordinator turns into telemetry and
//! the API returns from a forced sync.

use std::time::Duration;

use time::OffsetDateTime;

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// File objects uploaded (new or changed content).
    pub uploaded: u64,
    /// File objects deleted (files gone or no longer files).
    pub deleted: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Entries (files, directories, symlinks) in the workspace's manifest.
    pub entries: u64,
    /// Bytes of all files in the workspace.
    pub total_bytes: u64,
    /// Whether a new manifest was written (false when nothing changed).
    pub manifest_written: bool,
    /// Entries the agent left out (names not UTF-8, unreadable, special files).
    pub skipped: u64,
    /// Files that disappeared between the manifest and their export.
    pub vanished: u64,
    /// Objects rewritten in place so the bucket's lifecycle does not age them out
    /// (`refresh_after_days`).
    pub refreshed: u64,
    /// Deletions left over from an earlier sync (recorded in the stored manifest)
    /// done by this one.
    pub retried_deletes: u64,
    /// Deletions that failed and will be retried by the next sync.
    pub pending_deletes: u64,
    pub duration: Duration,
    pub synced_at: OffsetDateTime,
}

/// What one restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Entries restored (files, directories, symlinks).
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// Tar batches sent to the agent.
    pub archives: u64,
    /// Files whose object is missing from the store (not restored).
    pub missing: Vec<String>,
    /// Files whose object did not match the manifest's SHA-256 (a sync interrupted
    /// between upload and manifest write; the object's newer content was restored).
    pub mismatched: Vec<String>,
    /// When the restored state was synced.
    pub synced_at: OffsetDateTime,
    pub duration: Duration,
}
