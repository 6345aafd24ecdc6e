//! The control plane's configuration: one typed struct, read from embedded defaults, an
//! optional TOML file and `CP_*` environment variables (in that order of precedence),
//! then validated once at start with messages that name the offending setting.
//!
//! Environment: nested keys use `__` (`CP_DOCKER__IMAGE=...`); API tokens have a
//! compact form `CP_API_TOKENS="tenant-a:token1,tenant-b:token2"`.

use std::net::SocketAddr;

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

mod docker;

pub use docker::{looks_like_credential, parse_size, DockerConfig};

/// The seccomp profile shipped with the project (`deployment/seccomp/`), embedded so a
/// fresh binary has a safe default without any file on disk.
pub const EMBEDDED_SECCOMP_PROFILE: &str =
    include_str!("../../../deployment/seccomp/workspace-seccomp.json");

/// Smallest pids limit that leaves room for gVisor's Sentry and gofer host threads.
pub const MIN_PIDS_LIMIT_RUNSC: i64 = 192;

/// Minimum length of an API token.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Bearer tokens, each bound to one tenant.
    pub tokens: Vec<TokenConfig>,
    /// Name of this fleet: containers are labelled with it, and a control plane only
    /// adopts, lists and reaps the containers of its own fleet.
    pub fleet: String,
    /// Which runtime runs workspaces.
    pub runtime: RuntimeKind,
    pub docker: DockerConfig,
    pub store: StoreConfig,
    pub pool: PoolConfig,
    pub gc: GcConfig,
    /// File sync to an object store (see `docs/sync.md`).
    pub sync: crate::sync::SyncConfig,
    /// The per-workspace egress proxy (see `docs/proxy.md`).
    pub egress: crate::egress::EgressConfig,
    /// How long to wait for a new workspace's agent to answer `/health`.
    pub agent_ready_timeout_secs: u64,
    /// Seconds of silence after which an SSE keep-alive comment is sent.
    pub keepalive_secs: u64,
    /// Largest accepted request body (file uploads), bytes.
    pub max_body_bytes: usize,
    /// Largest accepted JSON body (execute requests), bytes.
    pub max_json_bytes: usize,
    /// Upper bound on live workspaces (per control plane fleet).
    pub max_workspaces: usize,
    /// On shutdown, destroy every workspace of this fleet.
    pub cleanup_on_shutdown: bool,
    /// On shutdown, how long running streams may continue before they are cancelled.
    pub shutdown_grace_secs: u64,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Where audit lines go: `tracing` (target `audit`, in the log), `stdout`, `off`,
    /// or a file path (appended, mode 0600). See the `audit` crate for the schema.
    pub audit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub tenant: String,
    pub token: String,
    /// May read and change fleet-wide settings (warm-pool sizing).
    #[serde(default)]
    pub admin: bool,
}

/// Where state lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` (embedded, one process) or `redis` (shared by replicas).
    pub kind: StoreKind,
    /// `redis://host:port/` or `rediss://` for TLS (ElastiCache in transit).
    pub redis_url: String,
    /// AUTH token, kept out of the URL (in ECS injected from Secrets Manager as
    /// `CP_STORE__REDIS_PASSWORD`); empty means none.
    #[serde(default)]
    pub redis_password: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Memory,
    Redis,
}

/// Warm pool: pre-started, healthy, unbound workspaces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Members to keep ready (0 disables the pool).
    pub min: usize,
    /// Never more members than this (starting ones included).
    pub max: usize,
    /// How many members are started at once while filling.
    pub fill_parallelism: usize,
    /// How often every replica re-reads the sizing from the store, ms.
    pub poll_interval_ms: u64,
    /// First retry delay after a failed create (doubles up to 30 s, with jitter), ms.
    pub retry_base_ms: u64,
    /// On shutdown, destroy the pool members this process created.
    pub drain_on_shutdown: bool,
}

/// The reaper.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    /// A bound workspace with no API call and no running execution for this long is
    /// synced and destroyed (confirmed on two consecutive sweeps).
    pub idle_ttl_secs: u64,
    /// Any workspace older than this is synced and destroyed.
    pub absolute_ttl_secs: u64,
    /// A labelled container without a record is removed once older than this.
    pub orphan_grace_secs: u64,
    /// Past the absolute TTL plus this, a workspace whose sync keeps failing is
    /// destroyed anyway (`destroyed_without_sync`; the last stored files stay).
    pub sync_grace_secs: u64,
    /// Longest a sweep spends on one workspace (its sync included).
    pub item_timeout_secs: u64,
    /// Workspaces handled at once by a sweep.
    pub concurrency: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    Docker,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            tokens: Vec::new(),
            fleet: "default".into(),
            runtime: RuntimeKind::Docker,
            docker: DockerConfig::default(),
            store: StoreConfig {
                kind: StoreKind::Memory,
                redis_url: "redis://127.0.0.1:6379/".into(),
                redis_password: String::new(),
            },
            pool: PoolConfig {
                min: 2,
                max: 10,
                fill_parallelism: 2,
                poll_interval_ms: 2000,
                retry_base_ms: 200,
                drain_on_shutdown: true,
            },
            gc: GcConfig {
                enabled: true,
                interval_secs: 60,
                idle_ttl_secs: 3600,
                absolute_ttl_secs: 8 * 3600,
                orphan_grace_secs: 300,
                sync_grace_secs: 600,
                item_timeout_secs: 300,
                concurrency: 4,
            },
            sync: crate::sync::SyncConfig::default(),
            egress: crate::egress::EgressConfig::default(),
            agent_ready_timeout_secs: 30,
            keepalive_secs: 15,
            max_body_bytes: 64 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            max_workspaces: 200,
            cleanup_on_shutdown: false,
            shutdown_grace_secs: 10,
            log_format: LogFormat::Text,
            audit: "tracing".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Read(#[from] Box<figment::Error>),
    #[error("invalid configuration: {field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl Config {
    /// Reads defaults, then `file` (if given), then the environment; validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    /// The layered sources, exposed so tests can add their own.
    pub fn figment(file: Option<&std::path::Path>) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig.merge(
            Env::prefixed("CP_")
                .ignore(&["API_TOKENS", "CONFIG", "LOG", "TEST_LOG"])
                .split("__"),
        )
    }

    /// Extracts and validates; `CP_API_TOKENS` adds tokens in its compact form.
    pub fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let mut cfg: Config = fig.extract().map_err(Box::new)?;
        if let Ok(compact) = std::env::var("CP_API_TOKENS") {
            cfg.tokens.extend(parse_compact_tokens(&compact)?);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every setting; the first problem found is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tokens.is_empty() {
            return Err(invalid(
                "tokens",
                "at least one API token is required (CP_API_TOKENS=tenant:token or [[tokens]] in the file)",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.tokens {
            if !wire::is_valid_conversation_id(&t.tenant) {
                return Err(invalid(
                    "tokens.tenant",
                    format!(
                        "tenant id {:?} must match ^[A-Za-z0-9._-]{{1,128}}$",
                        t.tenant
                    ),
                ));
            }
            if t.token.len() < MIN_TOKEN_LEN || t.token.chars().any(|c| c.is_whitespace()) {
                return Err(invalid(
                    "tokens.token",
                    format!(
                        "the token of tenant {:?} must be at least {MIN_TOKEN_LEN} characters without spaces",
                        t.tenant
                    ),
                ));
            }
            if !seen.insert(t.token.as_str()) {
                return Err(invalid(
                    "tokens.token",
                    "the same token is configured twice",
                ));
            }
        }
        if !wire::is_valid_conversation_id(&self.fleet) {
            return Err(invalid("fleet", "must match ^[A-Za-z0-9._-]{1,128}$"));
        }
        if self.agent_ready_timeout_secs == 0 || self.keepalive_secs == 0 {
            return Err(invalid(
                "agent_ready_timeout_secs/keepalive_secs",
                "must be greater than 0",
            ));
        }
        if self.max_workspaces == 0 {
            return Err(invalid("max_workspaces", "must be greater than 0"));
        }
        if self.pool.min > self.pool.max {
            return Err(invalid("pool.min", "must not exceed pool.max"));
        }
        if self.pool.max > self.max_workspaces {
            return Err(invalid("pool.max", "must not exceed max_workspaces"));
        }
        if self.pool.fill_parallelism == 0 || self.pool.poll_interval_ms == 0 {
            return Err(invalid(
                "pool.fill_parallelism/poll_interval_ms",
                "must be greater than 0",
            ));
        }
        if self.gc.interval_secs == 0
            || self.gc.idle_ttl_secs == 0
            || self.gc.absolute_ttl_secs == 0
        {
            return Err(invalid(
                "gc.interval_secs/idle_ttl_secs/absolute_ttl_secs",
                "must be greater than 0",
            ));
        }
        if self.gc.item_timeout_secs == 0 || self.gc.concurrency == 0 {
            return Err(invalid(
                "gc.item_timeout_secs/concurrency",
                "must be greater than 0",
            ));
        }
        if self.store.kind == StoreKind::Redis
            && !(self.store.redis_url.starts_with("redis://")
                || self.store.redis_url.starts_with("rediss://"))
        {
            return Err(invalid(
                "store.redis_url",
                "must start with redis:// or rediss://",
            ));
        }
        self.sync
            .validate()
            .map_err(|e| invalid("sync", e.to_string()))?;
        self.egress.validate().map_err(|e| invalid("egress", e))?;
        let bedrock = &self.egress.default_policy.bedrock;
        if self.egress.enabled
            && bedrock.enabled
            && !self.docker.aws_region.is_empty()
            && bedrock
                .region
                .as_deref()
                .is_some_and(|r| r != self.docker.aws_region)
        {
            return Err(invalid(
                "docker.aws_region",
                "must equal egress.default_policy.bedrock.region (the proxy signs for that region only)",
            ));
        }
        self.docker.validate()
    }
}

/// Parses `tenant:token[:admin][,tenant:token[:admin]...]`.
pub fn parse_compact_tokens(s: &str) -> Result<Vec<TokenConfig>, ConfigError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|entry| {
            let mut parts = entry.splitn(3, ':');
            let (Some(tenant), Some(token)) = (parts.next(), parts.next()) else {
                return Err(invalid(
                    "CP_API_TOKENS",
                    "expected tenant:token[:admin] entries separated by commas",
                ));
            };
            let admin = match parts.next() {
                None => false,
                Some("admin") => true,
                Some(other) => {
                    return Err(invalid(
                        "CP_API_TOKENS",
                        format!("unknown token flag {other:?} (only `admin`)"),
                    ))
                }
            };
            Ok(TokenConfig {
                tenant: tenant.trim().to_string(),
                token: token.trim().to_string(),
                admin,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
