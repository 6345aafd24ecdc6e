//! Egress proxy for agent workspaces: the sandbox's only way out.
//!
//! A [`Proxy`] holds what all listeners share (resolver with TTL cache, upstream
//! connection pool, AWS credentials, metrics, audit sink). Each listener — one Unix
//! socket per workspace in local mode, or TCP `127.0.0.1:8080` in the ECS sidecar —
//! has its own [`ListenerContext`] and [`Policy`], replaceable at run time.
//!
//! Modes: forward proxy (absolute-form HTTP and `CONNECT` tunnels), Bedrock gateway
//! (origin-form `POST /model/{id}/...` signed with SigV4), and credential injection for
//! MCP hosts (plain HTTP in, TLS out, headers added). See `docs/proxy.md`.

pub mod allowlist;
pub mod audit;
pub mod body;
pub mod config;
pub mod credentials;
pub mod guard;
mod handler;
pub mod headers;
pub mod host;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reason;
pub mod resolve;
pub mod sidecar;
pub mod sigv4;
pub mod tls;
pub mod tunnel;
pub mod upstream;

pub use audit::{AuditRecord, AuditSink};
pub use config::{
    AllowEntryConfig, BedrockConfig, ConfigError, InjectRuleConfig, PolicyConfig, ProxyConfig,
    SecretSource,
};
pub use policy::{Policy, PolicyError};
pub use proxy::{ListenAddr, ListenerContext, ListenerHandle, Proxy, ProxyBuilder};
pub use reason::{Reason, REASON_HEADER};
