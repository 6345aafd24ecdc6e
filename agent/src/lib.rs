//! The workspace agent: the process inside each sandbox. It serves an HTTP API over a
//! Unix socket (local Docker runtime) or TCP (ECS), runs commands and Claude Code turns
//! and streams their events, serves the workspace's files confined to its root, and
//! relays `127.0.0.1:8080` to the egress proxy's Unix socket.
//!
//! The wire contract shared with the control plane is the `wire` crate, re-exported
//! here as [`wire`]; the control plane depends on it, never on this crate.

pub use wire;

pub mod archive;
pub mod config;
pub mod confine;
pub mod error;
pub mod exec;
pub mod files;
pub mod manifest;
pub mod probe;
pub mod relay;
pub mod server;
pub mod sse;
