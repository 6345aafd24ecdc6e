//! The control plane: the API a backend calls to run turns and commands in a
//! conversation's workspace, and everything behind it.
//!
//! - [`config`]: the one typed configuration, from a TOML file and `CP_*` env vars;
//! - [`api`]: the axum router, bearer auth, error mapping, SSE relay;
//! - [`orchestrator`]: get-or-create of a conversation's workspace, execute, files;
//! - [`runtime`]: where workspaces run (Docker via bollard);
//! - [`store`]: state (bindings, workspace records, locks) behind a trait;
//! - [`agent_client`]: HTTP to a workspace's agent over its Unix socket or TCP;
//! - [`pool`]: the warm pool's filler; [`gc`]: the reaper; [`sync`]: file sync to an
//!   object store; [`egress`]: one egress-proxy listener per workspace;
//! - [`reconcile`]: adopting the workspaces that already run at start;
//! - [`metrics`], [`audit`]: Prometheus metrics and the audit log.

pub mod agent_client;
pub mod api;
pub mod audit;
pub mod config;
pub mod egress;
pub mod error;
pub mod gc;
pub mod metrics;
pub mod orchestrator;
pub mod pool;
pub mod reconcile;
pub mod runtime;
pub mod server;
pub mod store;
pub mod sync;
pub mod time_util;
