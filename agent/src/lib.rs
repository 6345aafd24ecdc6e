//! The workspace agent: the process inside each sandbox. It serves an HTTP API over a
//! Unix socket (local Docker runtime) or TCP (ECS), runs commands and Claude Code turns
//! and streams their events, serves the workspace's files confined to its root, and
//! relays `127.0.0.1:8080` to the egress proxy's Unix socket.
//!
//! The wire contract shared with the control plane lives in [`wire`] and is the only
//! module built without the `server` feature.

pub mod wire;

#[cfg(feature = "server")]
pub mod archive;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod confine;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod exec;
#[cfg(feature = "server")]
pub mod files;
#[cfg(feature = "server")]
pub mod manifest;
#[cfg(feature = "server")]
pub mod probe;
#[cfg(feature = "server")]
pub mod relay;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod sse;
