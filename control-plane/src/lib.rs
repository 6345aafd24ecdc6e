//! The control plane: the API a backend calls to run turns and commands in a
//! conversation's workspace, and everything behind it.
//!
//! Services over one shared context ([`fleet::Fleet`]):
//! - [`lifecycle`]: get-or-create of a conversation's workspace (warm claim, cold
//!   create, restore, recovery) and the one destroy path;
//! - [`execution`]: validate, reach the workspace in one hop, relay events;
//! - [`membership`]: instance liveness, abandoned creates, start-up reconciliation;
//! - [`sync::coordinator`]: when files are synced and what each result records;
//! - [`pool`]: the warm pool's filler; [`gc`]: the reaper.
//!
//! Around them: [`config`] (the one typed configuration), [`api`] (axum router, auth,
//! request ids, error mapping, SSE relay; handlers talk to services only),
//! [`runtime`] (Docker via bollard), [`store`] (state behind a trait), [`agent_client`]
//! (HTTP to a workspace's agent), [`egress`] (one egress-proxy listener per workspace),
//! [`telemetry`] (typed fleet events → metrics and the audit log), [`metrics`].
#![forbid(unsafe_code)]

pub mod agent_client;
pub mod api;
pub mod config;
pub mod egress;
pub mod error;
pub mod execution;
pub mod fleet;
pub mod gc;
pub mod host_stats;
pub mod lifecycle;
pub mod membership;
pub mod metrics;
pub mod periodic;
pub mod pool;
pub mod runtime;
pub mod server;
pub mod services;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod time_util;
