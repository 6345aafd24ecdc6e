//! Process-wide proxy settings ([`ProxyConfig`]) and the serde-able egress policy
//! description ([`PolicyConfig`]) that [`crate::policy::Policy`] is compiled from.
//!
//! Both deserialize from TOML or JSON with unknown fields refused, so a typo in a
//! config file is an error instead of a silently ignored setting.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings shared by every listener of one [`crate::Proxy`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub tls: TlsSettings,
    pub dns: DnsSettings,
    /// AWS region used by the credential chain itself (STS, SSO); the Bedrock
    /// region is part of each policy. Defaults to `AWS_REGION`, then `us-east-1`.
    pub aws_region: Option<String>,
    /// TEST ONLY: resolve these host names to fixed socket addresses instead of asking
    /// DNS (like curl's `--resolve`). The address guard still applies, so a local
    /// upstream needs an allow entry with `allow_private`. Keys are canonicalised
    /// like every other host.
    pub test_resolve_overrides: BTreeMap<String, SocketAddr>,
}

/// Timeouts, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// One name resolution (504 `dns_timeout` beyond).
    pub dns_ms: u64,
    /// TCP connect plus TLS handshake to the upstream (504 `connect_timeout`).
    pub connect_ms: u64,
    /// Reading a request head from the client, including idle keep-alive time.
    pub header_read_ms: u64,
    /// Time from sending the request upstream to the response head
    /// (504 `upstream_timeout`). Non-streaming model invocations can take minutes.
    pub upstream_response_ms: u64,
    /// A tunnel with no bytes in either direction for this long is closed.
    pub tunnel_idle_ms: u64,
    /// Every tunnel is closed after this long, busy or not (a sandbox cannot keep a
    /// connection its policy may since have revoked open for ever).
    pub tunnel_max_ms: u64,
    /// Idle pooled upstream connections are closed after this long.
    pub pool_idle_ms: u64,
    /// Graceful shutdown waits this long for requests and tunnels to finish.
    pub drain_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            dns_ms: 5_000,
            connect_ms: 10_000,
            header_read_ms: 30_000,
            upstream_response_ms: 900_000,
            tunnel_idle_ms: 600_000,
            tunnel_max_ms: 3_600_000,
            pool_idle_ms: 90_000,
            drain_ms: 30_000,
        }
    }
}

impl Timeouts {
    pub fn dns(&self) -> Duration {
        Duration::from_millis(self.dns_ms)
    }
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn header_read(&self) -> Duration {
        Duration::from_millis(self.header_read_ms)
    }
    pub fn upstream_response(&self) -> Duration {
        Duration::from_millis(self.upstream_response_ms)
    }
    pub fn tunnel_max(&self) -> Duration {
        Duration::from_millis(self.tunnel_max_ms)
    }

    pub fn tunnel_idle(&self) -> Duration {
        Duration::from_millis(self.tunnel_idle_ms)
    }
    pub fn pool_idle(&self) -> Duration {
        Duration::from_millis(self.pool_idle_ms)
    }
    pub fn drain(&self) -> Duration {
        Duration::from_millis(self.drain_ms)
    }
}

/// Size and concurrency limits. Concurrency limits apply per listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Request line plus headers; beyond this, 431 `headers_too_large`.
    pub max_header_bytes: usize,
    /// Number of request headers; beyond this, 431 `headers_too_large`.
    pub max_headers: usize,
    /// In-flight plain-HTTP and gateway requests per listener (429 beyond).
    pub max_concurrent_requests: usize,
    /// Open CONNECT tunnels per listener (429 beyond).
    pub max_concurrent_tunnels: usize,
    /// Buffered request body for the Bedrock gateway (413 beyond).
    pub max_gateway_body_bytes: usize,
    /// Idle upstream connections kept per (host, address).
    pub pool_max_idle_per_host: usize,
    /// Copy buffer per tunnel direction (at least 16 KiB).
    pub tunnel_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_concurrent_requests: 256,
            max_concurrent_tunnels: 256,
            max_gateway_body_bytes: 32 * 1024 * 1024,
            pool_max_idle_per_host: 32,
            tunnel_buffer_bytes: 256 * 1024,
        }
    }
}

/// Upstream TLS trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// Trust the Mozilla root set compiled into the binary (`webpki-roots`).
    pub webpki_roots: bool,
    /// Extra PEM files with CA certificates to trust (private CAs, tests).
    pub extra_ca_files: Vec<PathBuf>,
    /// Extra CA certificates as inline PEM text.
    pub extra_ca_pem: Vec<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            webpki_roots: true,
            extra_ca_files: Vec::new(),
            extra_ca_pem: Vec::new(),
        }
    }
}

/// DNS resolver settings. Answers are cached for their TTL (bounded below).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSettings {
    /// Name servers (`ip:port`); empty means the system configuration
    /// (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Number of cached answers.
    pub cache_size: u64,
    /// Upper bound on how long an answer is cached, in seconds.
    pub max_ttl_secs: u64,
    /// Upper bound on how long a negative answer is cached, in seconds.
    pub negative_max_ttl_secs: u64,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            nameservers: Vec::new(),
            cache_size: 4096,
            max_ttl_secs: 300,
            negative_max_ttl_secs: 30,
        }
    }
}

/// A problem found while validating a [`ProxyConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("reading CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no usable CA certificate: {0}")]
    Tls(String),
    #[error("DNS resolver: {0}")]
    Resolver(String),
    #[error("invalid policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
}

fn invalid(field: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        message: message.to_string(),
    }
}

impl ProxyConfig {
    /// Check value ranges. [`crate::Proxy::new`] calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        for (name, v) in [
            ("timeouts.dns_ms", t.dns_ms),
            ("timeouts.connect_ms", t.connect_ms),
            ("timeouts.header_read_ms", t.header_read_ms),
            ("timeouts.upstream_response_ms", t.upstream_response_ms),
            ("timeouts.tunnel_idle_ms", t.tunnel_idle_ms),
            ("timeouts.tunnel_max_ms", t.tunnel_max_ms),
            ("timeouts.pool_idle_ms", t.pool_idle_ms),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be greater than 0"));
            }
        }
        let l = &self.limits;
        if l.max_header_bytes < 1024 {
            return Err(invalid("limits.max_header_bytes", "must be at least 1024"));
        }
        if l.max_headers == 0 {
            return Err(invalid("limits.max_headers", "must be greater than 0"));
        }
        if l.max_concurrent_requests == 0 {
            return Err(invalid(
                "limits.max_concurrent_requests",
                "must be greater than 0",
            ));
        }
        if l.max_concurrent_tunnels == 0 {
            return Err(invalid(
                "limits.max_concurrent_tunnels",
                "must be greater than 0",
            ));
        }
        if l.tunnel_buffer_bytes < 16 * 1024 {
            return Err(invalid(
                "limits.tunnel_buffer_bytes",
                "must be at least 16384",
            ));
        }
        if !self.tls.webpki_roots
            && self.tls.extra_ca_files.is_empty()
            && self.tls.extra_ca_pem.is_empty()
        {
            return Err(invalid(
                "tls",
                "webpki_roots is off and no extra CA is configured: no upstream could be trusted",
            ));
        }
        for key in self.test_resolve_overrides.keys() {
            crate::host::parse_host(key).map_err(|e| {
                invalid(
                    &format!("test_resolve_overrides.{key}"),
                    &format!("invalid host: {e}"),
                )
            })?;
        }
        Ok(())
    }
}

/// A secret value: literal, or read from an environment variable when the policy is
/// compiled. `Debug` never shows a literal value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SecretSource {
    /// `{ env = "MCP_GITHUB_TOKEN" }`
    Env { env: String },
    /// A literal value.
    Value(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env { env } => f.debug_struct("Env").field("env", env).finish(),
            SecretSource::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

/// One allow entry: a plain string, or a table with options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AllowEntryConfig {
    Host(String),
    Detailed {
        host: String,
        #[serde(default)]
        allow_private: bool,
    },
}

impl AllowEntryConfig {
    pub fn host(&self) -> &str {
        match self {
            AllowEntryConfig::Host(h) | AllowEntryConfig::Detailed { host: h, .. } => h,
        }
    }
    pub fn allow_private(&self) -> bool {
        matches!(
            self,
            AllowEntryConfig::Detailed {
                allow_private: true,
                ..
            }
        )
    }
}

impl From<&str> for AllowEntryConfig {
    fn from(s: &str) -> Self {
        AllowEntryConfig::Host(s.to_string())
    }
}

/// Credential injection for one host (MCP servers): clients send plain `http://`
/// requests for `host`; the proxy adds `headers` and always connects with TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectRuleConfig {
    /// Exact host, optionally `:port` of the TLS upstream (default 443).
    pub host: String,
    /// Header name → value. Values are secrets.
    pub headers: BTreeMap<String, SecretSource>,
    #[serde(default)]
    pub allow_private: bool,
}

/// Bedrock gateway settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BedrockConfig {
    /// Accept origin-form `POST /model/{id}/...` requests and sign them.
    pub enabled: bool,
    /// Region, e.g. `us-east-1`. Required when enabled unless `endpoint` names it.
    pub region: Option<String>,
    /// Endpoint host, default `bedrock-runtime.<region>.amazonaws.com` (set for VPC
    /// endpoints or FIPS).
    pub endpoint: Option<String>,
    /// Permit private addresses for the endpoint (VPC interface endpoints).
    pub allow_private: bool,
}

/// The egress policy of one listener, as written in config files and APIs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub allow: Vec<AllowEntryConfig>,
    pub deny: Vec<String>,
    pub inject: Vec<InjectRuleConfig>,
    pub bedrock: BedrockConfig,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_from_toml() {
        let p: PolicyConfig = toml::from_str(
            r#"
            allow = ["pypi.org", { host = "vpce.internal.example", allow_private = true }]
            deny = ["evil.example.com"]
            [[inject]]
            host = "mcp.example.com"
            headers = { Authorization = { env = "MCP_TOKEN" }, "X-Api-Key" = "literal" }
            [bedrock]
            enabled = true
            region = "us-west-2"
            "#,
        )
        .unwrap();
        assert_eq!(p.allow.len(), 2);
        assert!(p.allow[1].allow_private());
        assert_eq!(
            p.inject[0].headers["Authorization"],
            SecretSource::Env {
                env: "MCP_TOKEN".into()
            }
        );
        let dbg = format!("{:?}", p);
        assert!(!dbg.contains("literal"), "{dbg}");
        assert!(toml::from_str::<PolicyConfig>("alow = []").is_err());
    }

    #[test]
    fn proxy_config_validation() {
        assert!(ProxyConfig::default().validate().is_ok());
        let mut c = ProxyConfig::default();
        c.limits.tunnel_buffer_bytes = 1024;
        assert!(c.validate().is_err());
        let c: Result<ProxyConfig, _> = toml::from_str("[timeouts]\ndns = 5");
        assert!(c.is_err());
    }
}
