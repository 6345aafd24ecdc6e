//! The contract between the control plane, the workspace agent and the API's callers,
//! defined once and used by both ends: the data types ([`types`]), the one validator of
//! an execute request ([`validate`]), SSE framing and a bounded decoder ([`sse`]), the
//! agent's environment variable names ([`env`]) and the contract's version
//! ([`version`]). Changing a type here changes the public API (see `docs/api.md`).
//!
//! This crate must never do I/O or depend on a runtime: the agent (inside the sandbox)
//! and the control plane (outside it) both link it, and the control plane links
//! nothing else of the agent.
#![forbid(unsafe_code)]

pub mod env;
pub mod sse;
pub mod types;
pub mod validate;
pub mod version;

pub use sse::{SseDecodeError, SseDecoder, SSE_KEEPALIVE};
pub use types::*;
pub use validate::Invalid;
pub use version::{VersionMismatch, WIRE_VERSION, WIRE_VERSION_HEADER};
