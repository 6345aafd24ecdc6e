//! The control plane's configuration: one typed struct, read from embedded defaults, an
//! optional TOML file and `CP_*` environment variables (in that order of precedence),
//! then validated once at start with messages that name the offending setting.
//!
//! Environment: nested keys use `__` (`CP_DOCKER__IMAGE=...`); API tokens have a
//! compact form `CP_API_TOKENS="tenant-a:token1,tenant-b:token2"`.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

/// The seccomp profile shipped with the project (`deployment/seccomp/`), embedded so a
/// fresh binary has a safe default without any file on disk.
pub const EMBEDDED_SECCOMP_PROFILE: &str =
    include_str!("../../deployment/seccomp/workspace-seccomp.json");

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

/// Hardening and sizing of workspace containers on a Docker engine. Every security
/// layer is on by default; see `docs/security.md` for what each one stops.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Docker socket; empty means `DOCKER_HOST` or `/var/run/docker.sock`.
    pub socket: String,
    /// Workspace image (the offline image locally, `deployment/images/` in production).
    pub image: String,
    /// Host directory holding one socket directory per workspace.
    pub socket_root: PathBuf,
    /// Where the agent's (writable) socket directory is mounted in the container.
    pub socket_mount: String,
    /// Where the (read-only) directory of the egress proxy's socket is mounted.
    pub egress_mount: String,
    /// OCI runtime (`runsc` for gVisor); empty means the engine's default.
    pub oci_runtime: String,
    /// Seccomp profile file; empty means the embedded profile.
    pub seccomp_profile: String,
    /// AppArmor profile name; empty means none is requested.
    pub apparmor_profile: String,
    /// User inside the container.
    pub user: String,
    /// Host uid owning the per-workspace socket directory (the sandbox user's uid as
    /// the host sees it; with userns-remap, the remapped uid).
    pub socket_dir_owner_uid: u32,
    pub memory_bytes: i64,
    /// CPU quota in cores (e.g. 2.0).
    pub cpus: f64,
    pub pids_limit: i64,
    /// Size of the writable `/workspace` tmpfs; a write beyond it fails with ENOSPC.
    pub workspace_size: String,
    pub tmp_size: String,
    pub home_size: String,
    pub run_size: String,
    /// Extra environment for the agent; names that look like credentials are refused.
    pub extra_env: BTreeMap<String, String>,
    /// Region Claude Code uses on Bedrock (`AWS_REGION` of the agent, with the
    /// gateway's Bedrock variables, see `runtime::agent_env`); it must be the egress
    /// policy's `bedrock.region`. Empty: no Bedrock variables.
    pub aws_region: String,
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
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            socket: String::new(),
            image: "workspace-offline:latest".into(),
            socket_root: PathBuf::from("/run/agent-workspaces"),
            socket_mount: "/run/workspace".into(),
            egress_mount: "/run/egress".into(),
            oci_runtime: String::new(),
            seccomp_profile: String::new(),
            apparmor_profile: String::new(),
            user: "1000:1000".into(),
            socket_dir_owner_uid: 1000,
            memory_bytes: 2 * 1024 * 1024 * 1024,
            cpus: 2.0,
            pids_limit: 256,
            workspace_size: "1g".into(),
            tmp_size: "256m".into(),
            home_size: "256m".into(),
            run_size: "16m".into(),
            extra_env: BTreeMap::new(),
            aws_region: "us-east-1".into(),
        }
    }
}

/// A configuration that could not be read or is not valid.
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

impl DockerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.image.trim().is_empty() {
            return Err(invalid("docker.image", "must not be empty"));
        }
        if !self.socket_root.is_absolute() {
            return Err(invalid("docker.socket_root", "must be an absolute path"));
        }
        if !self.socket_mount.starts_with('/') {
            return Err(invalid("docker.socket_mount", "must be an absolute path"));
        }
        if !self.egress_mount.starts_with('/') || self.egress_mount == self.socket_mount {
            return Err(invalid(
                "docker.egress_mount",
                "must be an absolute path other than docker.socket_mount",
            ));
        }
        if self.memory_bytes < 64 * 1024 * 1024 {
            return Err(invalid("docker.memory_bytes", "must be at least 64 MiB"));
        }
        if !(self.cpus > 0.0 && self.cpus <= 256.0) {
            return Err(invalid("docker.cpus", "must be in (0, 256]"));
        }
        if self.pids_limit < 16 {
            return Err(invalid("docker.pids_limit", "must be at least 16"));
        }
        if self.oci_runtime == "runsc" && self.pids_limit < MIN_PIDS_LIMIT_RUNSC {
            return Err(invalid(
                "docker.pids_limit",
                format!(
                    "with runsc the limit also counts gVisor's own host threads (about 80 when idle): use at least {MIN_PIDS_LIMIT_RUNSC}"
                ),
            ));
        }
        for (field, v) in [
            ("docker.workspace_size", &self.workspace_size),
            ("docker.tmp_size", &self.tmp_size),
            ("docker.home_size", &self.home_size),
            ("docker.run_size", &self.run_size),
        ] {
            if parse_size(v).is_none() {
                return Err(invalid(
                    field,
                    format!("{v:?} is not a size like 512m or 1g"),
                ));
            }
        }
        if self.user.split(':').any(|p| p == "0" || p == "root") {
            return Err(invalid("docker.user", "workspaces never run as root"));
        }
        for key in self.extra_env.keys() {
            if looks_like_credential(key) {
                return Err(invalid(
                    "docker.extra_env",
                    format!("{key} looks like a credential; the sandbox never holds one (the egress proxy injects credentials)"),
                ));
            }
        }
        if !self.seccomp_profile.is_empty() {
            let text = std::fs::read_to_string(&self.seccomp_profile).map_err(|e| {
                invalid(
                    "docker.seccomp_profile",
                    format!("cannot read {}: {e}", self.seccomp_profile),
                )
            })?;
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| invalid("docker.seccomp_profile", format!("not valid JSON: {e}")))?;
        }
        Ok(())
    }

    /// The seccomp profile's JSON content (from the file, or the embedded one).
    pub fn seccomp_profile_content(&self) -> std::io::Result<String> {
        if self.seccomp_profile.is_empty() {
            Ok(EMBEDDED_SECCOMP_PROFILE.to_string())
        } else {
            std::fs::read_to_string(&self.seccomp_profile)
        }
    }
}

/// True for environment names that would carry a credential into the sandbox.
pub fn looks_like_credential(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    // The region is not a secret (Claude Code on Bedrock requires it).
    if matches!(n.as_str(), "AWS_REGION" | "AWS_DEFAULT_REGION") {
        return false;
    }
    n.starts_with("AWS_")
        || n.starts_with("ANTHROPIC_API")
        || [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "PASSWD",
            "CREDENTIAL",
            "API_KEY",
            "PRIVATE_KEY",
        ]
        .iter()
        .any(|w| n.contains(w))
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

/// Parses sizes like `512m`, `1g`, `65536k`, `1024` into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.strip_suffix(['k', 'm', 'g']) {
        Some(n) => (
            n,
            match s.chars().last() {
                Some('k') => 1u64 << 10,
                Some('m') => 1 << 20,
                _ => 1 << 30,
            },
        ),
        None => (s.as_str(), 1),
    };
    let n: u64 = num.parse().ok()?;
    (n > 0).then_some(n.checked_mul(mult)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Config {
        Config {
            tokens: vec![TokenConfig {
                tenant: "t1".into(),
                token: "0123456789abcdef".into(),
                admin: false,
            }],
            ..Config::default()
        }
    }

    #[test]
    fn defaults_with_a_token_are_valid() {
        valid().validate().unwrap();
    }

    type Mutation = Box<dyn Fn(&mut Config)>;

    #[test]
    fn rejects_bad_settings_with_the_field_named() {
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.tokens.clear()), "tokens"),
            (
                Box::new(|c| c.tokens[0].token = "short".into()),
                "tokens.token",
            ),
            (
                Box::new(|c| c.tokens[0].tenant = "a/b".into()),
                "tokens.tenant",
            ),
            (
                Box::new(|c| {
                    let t = c.tokens[0].clone();
                    c.tokens.push(t)
                }),
                "tokens.token",
            ),
            (Box::new(|c| c.docker.image.clear()), "docker.image"),
            (
                Box::new(|c| c.docker.socket_root = "rel".into()),
                "docker.socket_root",
            ),
            (
                Box::new(|c| c.docker.workspace_size = "lots".into()),
                "docker.workspace_size",
            ),
            (Box::new(|c| c.docker.user = "0:0".into()), "docker.user"),
            (Box::new(|c| c.docker.cpus = 0.0), "docker.cpus"),
            (Box::new(|c| c.pool.min = c.pool.max + 1), "pool.min"),
            (Box::new(|c| c.pool.max = c.max_workspaces + 1), "pool.max"),
            (
                Box::new(|c| {
                    c.store.kind = StoreKind::Redis;
                    c.store.redis_url = "localhost:6379".into();
                }),
                "store.redis_url",
            ),
            (
                Box::new(|c| {
                    c.docker.oci_runtime = "runsc".into();
                    c.docker.pids_limit = 64;
                }),
                "docker.pids_limit",
            ),
            (
                Box::new(|c| {
                    c.docker
                        .extra_env
                        .insert("AWS_SECRET_ACCESS_KEY".into(), "x".into());
                }),
                "docker.extra_env",
            ),
            (
                Box::new(|c| {
                    c.docker.extra_env.insert("GITHUB_TOKEN".into(), "x".into());
                }),
                "docker.extra_env",
            ),
            (
                Box::new(|c| c.docker.seccomp_profile = "/nonexistent/profile.json".into()),
                "docker.seccomp_profile",
            ),
            (
                Box::new(|c| c.docker.aws_region = "eu-west-1".into()),
                "docker.aws_region",
            ),
        ];
        // The region is configuration, not a credential.
        let mut c = valid();
        c.docker
            .extra_env
            .insert("AWS_DEFAULT_REGION".into(), "us-east-1".into());
        assert!(c.validate().is_ok());
        for (mutate, field) in cases {
            let mut c = valid();
            mutate(&mut c);
            match c.validate() {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn sizes_and_compact_tokens() {
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("65536k"), Some(65536 << 10));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("x"), None);
        let t = parse_compact_tokens("a:0123456789abcdef, b:fedcba9876543210").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].tenant, "b");
        assert!(parse_compact_tokens("nocolon").is_err());
        assert!(parse_compact_tokens("a:0123456789abcdef:admin").unwrap()[0].admin);
        assert!(parse_compact_tokens("a:0123456789abcdef:root").is_err());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's signature
    fn toml_file_and_env_layers() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "cp.toml",
                r#"
                listen = "127.0.0.1:9999"
                [[tokens]]
                tenant = "acme"
                token = "0123456789abcdef"
                [docker]
                pids_limit = 64
                "#,
            )?;
            jail.set_env("CP_DOCKER__IMAGE", "img:1");
            let cfg = Config::from_figment(Config::figment(Some("cp.toml".as_ref())))
                .map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen.port(), 9999);
            assert_eq!(cfg.docker.pids_limit, 64);
            assert_eq!(cfg.docker.image, "img:1");
            assert_eq!(cfg.tokens[0].tenant, "acme");
            Ok(())
        });
    }

    #[test]
    fn embedded_seccomp_profile_is_json() {
        let v: serde_json::Value = serde_json::from_str(EMBEDDED_SECCOMP_PROFILE).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    }
}
