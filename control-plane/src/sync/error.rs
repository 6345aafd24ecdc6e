//! [`SyncError`]: everything a sync or a restore can fail with, each with a message
//! that says what to do.

use super::{
    config::SyncConfigError, key::KeyError, manifest::Origin, object_store::ObjectStoreError,
};
use crate::agent_client::AgentError;

/// Which size limit a workspace exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `sync.max_files` (entries: files, directories, symlinks).
    MaxFiles,
    /// `sync.max_total_bytes` (bytes of regular files).
    MaxTotalBytes,
}

impl Limit {
    pub fn setting(self) -> &'static str {
        match self {
            Limit::MaxFiles => "sync.max_files",
            Limit::MaxTotalBytes => "sync.max_total_bytes",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Limit::MaxFiles => "entries",
            Limit::MaxTotalBytes => "bytes",
        }
    }
}

fn too_large_message(limit: &Limit, actual: &u64, allowed: &u64, at_least: &bool) -> String {
    format!(
        "the workspace is too large to sync: {}{actual} {}, the limit {} is {allowed}",
        if *at_least { "more than " } else { "" },
        limit.unit(),
        limit.setting(),
    )
}

/// A failed sync or restore.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A size limit is exceeded (nothing was uploaded or restored).
    #[error("{}", too_large_message(.limit, .actual, .allowed, .at_least))]
    TooLarge {
        limit: Limit,
        actual: u64,
        allowed: u64,
        /// `actual` is a lower bound (the agent stopped counting).
        at_least: bool,
    },
    /// A manifest entry is unsafe or malformed; nothing was written.
    #[error("refused a manifest from {origin}: entry {path:?}: {reason}")]
    UnsafeManifest {
        origin: Origin,
        path: String,
        reason: String,
    },
    /// The stored manifest cannot be read as one.
    #[error("the stored manifest {key} is corrupt: {message}")]
    CorruptManifest { key: String, message: String },
    /// The conversation has stored files that were never restored into this
    /// workspace: syncing it would replace them with its (probably empty) contents.
    #[error("{conversation} has stored files that were not restored into the workspace at {endpoint}; restore it first (syncing now would overwrite the stored files)")]
    NotRestored {
        conversation: String,
        endpoint: String,
    },
    #[error("invalid conversation for sync: {0}")]
    Key(#[from] KeyError),
    #[error("workspace agent: {0}")]
    Agent(#[from] AgentError),
    #[error("object store: {0}")]
    Store(#[from] ObjectStoreError),
    /// The agent's export could not be read.
    #[error("unusable export from the workspace agent: {0}")]
    Export(String),
    /// Spooling on the control plane's host failed.
    #[error("local spool: {0}")]
    Spool(String),
    #[error("{0}")]
    Config(#[from] SyncConfigError),
}

impl SyncError {
    /// A short stable label for metrics (`workspace_s3_sync_errors_total{kind}`).
    pub fn kind(&self) -> &'static str {
        match self {
            SyncError::TooLarge { .. } => "too_large",
            SyncError::UnsafeManifest { .. } => "unsafe_manifest",
            SyncError::CorruptManifest { .. } => "corrupt_manifest",
            SyncError::NotRestored { .. } => "not_restored",
            SyncError::Key(_) => "invalid_key",
            SyncError::Agent(_) => "agent",
            SyncError::Store(_) => "object_store",
            SyncError::Export(_) => "export",
            SyncError::Spool(_) => "spool",
            SyncError::Config(_) => "config",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_names_the_limit() {
        let e = SyncError::TooLarge {
            limit: Limit::MaxFiles,
            actual: 5003,
            allowed: 5000,
            at_least: false,
        };
        assert_eq!(
            e.to_string(),
            "the workspace is too large to sync: 5003 entries, the limit sync.max_files is 5000"
        );
        let e = SyncError::TooLarge {
            limit: Limit::MaxTotalBytes,
            actual: 10,
            allowed: 5,
            at_least: true,
        };
        assert!(e.to_string().contains("more than 10 bytes"));
        assert!(e.to_string().contains("sync.max_total_bytes is 5"));
        assert_eq!(e.kind(), "too_large");
    }
}
