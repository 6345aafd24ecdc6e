//! File sync: a conversation's workspace saved to an object store and restored into a
//! new workspace.
//!
//! - [`config`]: the `[sync]` settings ([`SyncConfig`]);
//! - [`key`]: validated object keys and the per-conversation layout;
//! - [`object_store`]: the [`ObjectStore`] trait; [`local`] (a directory, the embedded
//!   default) and [`s3`] (`aws-sdk-s3`) implement it;
//! - [`manifest`]: the stored manifest, manifest checks and the diff;
//! - [`transfer`]: spooling exports and building restore tars;
//! - [`syncer`]: [`Syncer`], incremental sync and restore (how), in stages: [`plan`]
//!   (pure: what to transfer, the next manifest), `upload`, `restore`;
//! - [`coordinator`]: [`coordinator::SyncCoordinator`], when to sync and what each result records;
//! - [`error`]: the [`SyncError`] type;
//!
//! See `docs/sync.md`.

pub mod config;
pub mod coordinator;
pub mod error;
pub mod key;
pub mod local;
pub mod manifest;
pub mod object_store;
pub mod plan;
mod report;
mod restore;
pub mod s3;
pub mod syncer;
pub mod transfer;
mod upload;

pub use config::{SseMode, SyncBackend, SyncConfig, SyncConfigError};
pub use error::{Limit, SyncError};
pub use key::{ConversationLayout, ObjectKey};
pub use local::LocalDirStore;
pub use object_store::{ObjectStore, ObjectStoreError};
pub use s3::{S3Store, Sse};
pub use syncer::{RestoreReport, SyncReport, Syncer};
