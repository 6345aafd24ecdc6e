//! Configuration of the `proxy-sidecar` binary: one typed struct, read from an
//! optional TOML file and then from environment variables (env wins), validated as a
//! whole before anything listens. Also the small admin server (`/health`, `/metrics`).
//!
//! Environment variables (see `docs/proxy.md` for the full reference):
//!
//! | variable | field |
//! |---|---|
//! | `PROXY_CONFIG` | path of the TOML file |
//! | `PROXY_LISTEN` (or `PROXY_LISTEN_HOST` + `PROXY_LISTEN_PORT`) | `listen` |
//! | `PROXY_ADMIN_LISTEN` | `admin_listen` |
//! | `PROXY_ALLOW` (alias `PROXY_DOMAIN_WHITELIST`), comma-separated | `policy.allow` |
//! | `PROXY_DENY`, comma-separated | `policy.deny` |
//! | `PROXY_INJECT` (alias `MCP_HEADER_RULES`), JSON array | `policy.inject` |
//! | `PROXY_BEDROCK_REGION` (enables the gateway) | `policy.bedrock.region` |
//! | `PROXY_BEDROCK_ENDPOINT` | `policy.bedrock.endpoint` |
//! | `PROXY_BEDROCK_ALLOW_PRIVATE` = `true` / `false` | `policy.bedrock.allow_private` |
//! | `PROXY_WORKSPACE_ID`, `PROXY_CONVERSATION_ID`, `PROXY_TENANT_ID` | `context.*` |
//! | `PROXY_WORKER_THREADS` (0 = one per CPU) | `worker_threads` |
//! | `PROXY_AUDIT` = `stdout` / `tracing` / `off` / a file path | `audit` |
//! | `PROXY_LOG_FORMAT` = `json` / `text` | `log_format` |
//! | `PROXY_EXTRA_CA_FILES`, comma-separated | `proxy.tls.extra_ca_files` |
//! | `PROXY_DNS_SERVERS`, comma-separated `ip:port` | `proxy.dns.nameservers` |
//! | `PROXY_TEST_RESOLVE`, comma-separated `host=ip:port` (tests only) | `proxy.test_resolve_overrides` |

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{AllowEntryConfig, InjectRuleConfig, PolicyConfig, ProxyConfig};
use crate::policy::Policy;
use crate::proxy::ListenerContext;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

/// The sidecar's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SidecarConfig {
    /// Proxy listener (sandbox-facing).
    pub listen: SocketAddr,
    /// `/health` and `/metrics`.
    pub admin_listen: SocketAddr,
    pub log_format: LogFormat,
    /// Tokio worker threads; 0 means one per CPU, 1 runs everything on one thread.
    pub worker_threads: usize,
    /// `stdout`, `tracing`, `off`, or a file path (JSON lines, appended).
    pub audit: String,
    pub context: ListenerContext,
    pub proxy: ProxyConfig,
    pub policy: PolicyConfig,
}

impl Default for SidecarConfig {
    fn default() -> Self {
        SidecarConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            log_format: LogFormat::Json,
            worker_threads: 0,
            audit: "stdout".into(),
            context: ListenerContext::default(),
            proxy: ProxyConfig::default(),
            policy: PolicyConfig::default(),
        }
    }
}

/// A configuration problem, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for SidecarConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SidecarConfigError {}

fn csv(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A validated configuration: the compiled policy is ready to serve.
pub struct Validated {
    pub config: SidecarConfig,
    pub policy: Policy,
}

impl SidecarConfig {
    /// Read the file (if any), then apply environment variables via `env`.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SidecarConfig, SidecarConfigError> {
        let mut problems = Vec::new();
        let mut cfg = match file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => match toml::from_str::<SidecarConfig>(&text) {
                    Ok(c) => c,
                    Err(e) => {
                        return Err(SidecarConfigError {
                            problems: vec![format!("{}: {}", path.display(), e.to_string().trim())],
                        })
                    }
                },
                Err(e) => {
                    return Err(SidecarConfigError {
                        problems: vec![format!("reading {}: {e}", path.display())],
                    })
                }
            },
            None => SidecarConfig::default(),
        };

        let mut addr = |var: &str, slot: &mut SocketAddr| {
            if let Some(v) = env(var) {
                match v.trim().parse() {
                    Ok(a) => *slot = a,
                    Err(_) => problems.push(format!("{var}={v:?}: expected ip:port")),
                }
            }
        };
        addr("PROXY_LISTEN", &mut cfg.listen);
        addr("PROXY_ADMIN_LISTEN", &mut cfg.admin_listen);
        if let Some(h) = env("PROXY_LISTEN_HOST") {
            match h.trim().parse() {
                Ok(ip) => cfg.listen.set_ip(ip),
                Err(_) => problems.push(format!("PROXY_LISTEN_HOST={h:?}: expected an IP address")),
            }
        }
        if let Some(p) = env("PROXY_LISTEN_PORT") {
            match p.trim().parse() {
                Ok(port) => cfg.listen.set_port(port),
                Err(_) => problems.push(format!("PROXY_LISTEN_PORT={p:?}: expected a port")),
            }
        }
        if let Some(v) = env("PROXY_ALLOW").or_else(|| env("PROXY_DOMAIN_WHITELIST")) {
            cfg.policy.allow = csv(&v).into_iter().map(AllowEntryConfig::Host).collect();
        }
        if let Some(v) = env("PROXY_DENY") {
            cfg.policy.deny = csv(&v);
        }
        if let Some(v) = env("PROXY_INJECT").or_else(|| env("MCP_HEADER_RULES")) {
            match serde_json::from_str::<Vec<InjectRuleConfig>>(&v) {
                Ok(rules) => cfg.policy.inject = rules,
                // The JSON may hold literal secrets: report the position only.
                Err(e) => problems.push(format!(
                    "PROXY_INJECT: not a JSON array of {{host, headers}} rules (line {}, column {})",
                    e.line(),
                    e.column()
                )),
            }
        }
        if let Some(r) = env("PROXY_BEDROCK_REGION") {
            cfg.policy.bedrock.enabled = true;
            cfg.policy.bedrock.region = Some(r.trim().to_string());
        }
        if let Some(e) = env("PROXY_BEDROCK_ENDPOINT") {
            cfg.policy.bedrock.enabled = true;
            cfg.policy.bedrock.endpoint = Some(e.trim().to_string());
        }
        // A VPC interface endpoint's private DNS resolves the Bedrock host to RFC 1918
        // addresses, which the address guard refuses unless the operator says so here.
        if let Some(v) = env("PROXY_BEDROCK_ALLOW_PRIVATE") {
            match v.trim() {
                "true" => cfg.policy.bedrock.allow_private = true,
                "false" => cfg.policy.bedrock.allow_private = false,
                other => problems.push(format!(
                    "PROXY_BEDROCK_ALLOW_PRIVATE={other:?}: expected true or false"
                )),
            }
        }
        if let Some(v) = env("PROXY_WORKSPACE_ID") {
            cfg.context.workspace_id = v;
        }
        if let Some(v) = env("PROXY_CONVERSATION_ID") {
            cfg.context.conversation_id = v;
        }
        if let Some(v) = env("PROXY_TENANT_ID") {
            cfg.context.tenant_id = v;
        }
        if let Some(v) = env("PROXY_WORKER_THREADS") {
            match v.trim().parse() {
                Ok(n) => cfg.worker_threads = n,
                Err(_) => problems.push(format!("PROXY_WORKER_THREADS={v:?}: expected a number")),
            }
        }
        if let Some(v) = env("PROXY_AUDIT") {
            cfg.audit = v;
        }
        if let Some(v) = env("PROXY_LOG_FORMAT") {
            match v.trim() {
                "json" => cfg.log_format = LogFormat::Json,
                "text" => cfg.log_format = LogFormat::Text,
                other => {
                    problems.push(format!("PROXY_LOG_FORMAT={other:?}: expected json or text"))
                }
            }
        }
        if let Some(v) = env("PROXY_EXTRA_CA_FILES") {
            cfg.proxy.tls.extra_ca_files = csv(&v).into_iter().map(PathBuf::from).collect();
        }
        if let Some(v) = env("PROXY_DNS_SERVERS") {
            let mut servers = Vec::new();
            for s in csv(&v) {
                match s.parse() {
                    Ok(a) => servers.push(a),
                    Err(_) => problems.push(format!("PROXY_DNS_SERVERS: {s:?} is not ip:port")),
                }
            }
            cfg.proxy.dns.nameservers = servers;
        }
        if let Some(v) = env("PROXY_TEST_RESOLVE") {
            for item in csv(&v) {
                match item
                    .split_once('=')
                    .map(|(h, a)| (h, a.parse::<SocketAddr>()))
                {
                    Some((h, Ok(a))) => {
                        cfg.proxy.test_resolve_overrides.insert(h.to_string(), a);
                    }
                    _ => problems.push(format!("PROXY_TEST_RESOLVE: {item:?} is not host=ip:port")),
                }
            }
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(SidecarConfigError { problems })
        }
    }

    /// Validate everything (settings, policy, secrets present) before serving.
    pub fn validate(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Validated, SidecarConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = self.proxy.validate() {
            problems.push(e.to_string());
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            problems.push("listen and admin_listen must differ".into());
        }
        match self.audit.as_str() {
            "stdout" | "tracing" | "off" => {}
            p if p.starts_with('/') => {}
            other => problems.push(format!(
                "audit = {other:?}: expected stdout, tracing, off or an absolute file path"
            )),
        }
        let policy = match Policy::from_config_with_env(&self.policy, env) {
            Ok(p) => Some(p),
            Err(e) => {
                for p in e.problems {
                    problems.push(format!("policy.{} {:?}: {}", p.field, p.input, p.message));
                }
                None
            }
        };
        match policy {
            Some(policy) if problems.is_empty() => Ok(Validated {
                config: self,
                policy,
            }),
            _ => Err(SidecarConfigError { problems }),
        }
    }
}

/// Serve `/health` and `/metrics` until `shutdown` fires.
pub async fn serve_admin(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(admin_response(&req, &registry)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn admin_response(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/health" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/metrics" => {
            let mut out = String::new();
            match prometheus_client::encoding::text::encode(&mut out, registry) {
                Ok(()) => (
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    out,
                ),
                Err(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "encoding failed\n".into(),
                ),
            }
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[policy]\nallow = [\"a.example.com\"]\n[proxy.timeouts]\nconnect_ms = 1234\n",
        )
        .unwrap();
        let env = env_of(&[
            ("PROXY_ALLOW", "pypi.org, files.pythonhosted.org"),
            ("PROXY_BEDROCK_REGION", "us-west-2"),
            (
                "PROXY_INJECT",
                r#"[{"host":"mcp.example.com","headers":{"Authorization":{"env":"TOK"}}}]"#,
            ),
            ("TOK", "Bearer s3cret"),
            ("PROXY_TENANT_ID", "t1"),
        ]);
        let cfg = SidecarConfig::load(Some(&path), &env).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cfg.proxy.timeouts.connect_ms, 1234);
        assert_eq!(cfg.policy.allow.len(), 2);
        assert_eq!(cfg.context.tenant_id, "t1");
        let v = cfg.validate(&env).unwrap();
        assert_eq!(v.policy.bedrock().unwrap().region, "us-west-2");
    }

    #[test]
    fn bedrock_allow_private_from_env() {
        let cfg = SidecarConfig::load(None, &env_of(&[("PROXY_BEDROCK_REGION", "us-east-1")]));
        assert!(
            !cfg.unwrap().policy.bedrock.allow_private,
            "off unless asked for"
        );
        let env = env_of(&[
            ("PROXY_BEDROCK_REGION", "us-east-1"),
            ("PROXY_BEDROCK_ALLOW_PRIVATE", "true"),
        ]);
        let v = SidecarConfig::load(None, &env)
            .unwrap()
            .validate(&env)
            .unwrap();
        assert!(
            v.policy.bedrock().unwrap().allow_private,
            "reaches the gateway"
        );
        let err = SidecarConfig::load(None, &env_of(&[("PROXY_BEDROCK_ALLOW_PRIVATE", "yes")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("PROXY_BEDROCK_ALLOW_PRIVATE"),
            "{err}"
        );
    }

    #[test]
    fn invalid_entries_listed() {
        let env = env_of(&[
            ("PROXY_ALLOW", "*,*.com,a*.b.com,https://x.com,ok.example"),
            (
                "PROXY_INJECT",
                r#"[{"host":"mcp.example.com","headers":{"Authorization":"Bearer s3cret"}"#,
            ),
        ]);
        let err = SidecarConfig::load(None, &env).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let env = env_of(&[("PROXY_ALLOW", "*,*.com,a*.b.com,https://x.com,ok.example")]);
        let err = SidecarConfig::load(None, &env)
            .unwrap()
            .validate(&env)
            .err()
            .unwrap();
        assert_eq!(err.problems.len(), 4, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("policy.allow[1] \"*.com\": too broad"),
            "{text}"
        );
    }
}
