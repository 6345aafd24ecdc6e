//! A listener's compiled egress policy: allowlist, denylist, credential-injection
//! rules and the Bedrock gateway. Built from a [`PolicyConfig`]; every problem in the
//! input is reported at once, with its position, so the process (or the control plane's
//! API) can refuse it with a clear message.

use std::collections::HashMap;
use std::fmt;

use http::{HeaderName, HeaderValue};

use crate::allowlist::{AllowEntry, Allowlist, Decision, Pattern};
use crate::config::{PolicyConfig, SecretSource};
use crate::host::{parse_authority_parts, parse_host, Host};

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// Where: `allow[2]`, `inject[0].headers.Authorization`, `bedrock.region`, ...
    pub field: String,
    /// The offending input (never a secret value).
    pub input: String,
    pub message: String,
}

/// All problems found in a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub problems: Vec<PolicyProblem>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} invalid entr", self.problems.len())?;
        f.write_str(if self.problems.len() == 1 { "y" } else { "ies" })?;
        for p in &self.problems {
            write!(f, "; {} {:?}: {}", p.field, p.input, p.message)?;
        }
        Ok(())
    }
}

/// Headers a rule may never inject (framing, routing and hop-by-hop headers).
const FORBIDDEN_INJECT: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-authorization",
    "proxy-connection",
];

/// Credential injection for one exact host.
#[derive(Clone)]
pub struct InjectRule {
    pub host: Host,
    /// Port of the TLS upstream.
    pub upstream_port: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub allow_private: bool,
}

impl fmt::Debug for InjectRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectRule")
            .field("host", &self.host.to_string())
            .field("upstream_port", &self.upstream_port)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

/// The Bedrock gateway of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockGateway {
    pub host: Host,
    pub region: String,
    pub allow_private: bool,
}

/// Routing decision for a plain-HTTP (absolute-form) request.
#[derive(Debug, Clone, Copy)]
pub enum ForwardRoute<'a> {
    /// Forward over plain HTTP to the requested port.
    Direct { allow_private: bool },
    /// Add the rule's headers and connect with TLS to `rule.upstream_port`.
    Inject(&'a InjectRule),
}

/// What the policy says about a request target.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<T> {
    Allow(T),
    Denied,
    PortNotAllowed,
    NotAllowed,
    InjectedHostViaConnect,
}

/// A compiled egress policy. Cheap to share (`Arc<Policy>`); replace it whole to change it.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allowlist: Allowlist,
    inject: HashMap<Host, InjectRule>,
    bedrock: Option<BedrockGateway>,
}

impl Policy {
    /// A policy that refuses everything.
    pub fn deny_all() -> Policy {
        Policy::default()
    }

    /// Compile a policy; `${env}` secret sources are read from the process environment.
    pub fn from_config(config: &PolicyConfig) -> Result<Policy, PolicyError> {
        Self::from_config_with_env(config, &|name| std::env::var(name).ok())
    }

    /// Compile a policy with a custom environment lookup for [`SecretSource::Env`].
    pub fn from_config_with_env(
        config: &PolicyConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Policy, PolicyError> {
        let mut problems = Vec::new();
        let mut problem = |field: String, input: &str, message: String| {
            problems.push(PolicyProblem {
                field,
                input: input.to_string(),
                message,
            })
        };

        let mut allow = Vec::new();
        for (i, e) in config.allow.iter().enumerate() {
            match Pattern::parse(e.host()) {
                Ok(pattern) => allow.push(AllowEntry {
                    pattern,
                    allow_private: e.allow_private(),
                }),
                Err(err) => problem(format!("allow[{i}]"), e.host(), err.to_string()),
            }
        }
        let mut deny = Vec::new();
        for (i, e) in config.deny.iter().enumerate() {
            match Pattern::parse(e) {
                Ok(p) => deny.push(p),
                Err(err) => problem(format!("deny[{i}]"), e, err.to_string()),
            }
        }

        let mut inject = HashMap::new();
        for (i, r) in config.inject.iter().enumerate() {
            let field = format!("inject[{i}]");
            let (host, port) = match parse_authority_parts(r.host.trim()) {
                Ok(hp) => hp,
                Err(err) => {
                    problem(format!("{field}.host"), &r.host, err.to_string());
                    continue;
                }
            };
            if r.headers.is_empty() {
                problem(
                    format!("{field}.headers"),
                    &r.host,
                    "at least one header is required".into(),
                );
            }
            let mut headers = Vec::new();
            for (name, source) in &r.headers {
                let hfield = format!("{field}.headers.{name}");
                let hname = match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(n) => n,
                    Err(_) => {
                        problem(hfield, name, "invalid header name".into());
                        continue;
                    }
                };
                if FORBIDDEN_INJECT.contains(&hname.as_str())
                    || hname.as_str().starts_with("proxy-")
                {
                    problem(hfield, name, "this header cannot be injected".into());
                    continue;
                }
                let value = match source {
                    SecretSource::Value(v) => Some(v.clone()),
                    SecretSource::Env { env: var } => match env(var) {
                        Some(v) => Some(v),
                        None => {
                            problem(
                                hfield.clone(),
                                var,
                                format!("environment variable {var} is not set"),
                            );
                            None
                        }
                    },
                };
                let Some(value) = value else { continue };
                if value.is_empty() {
                    problem(hfield, name, "empty value".into());
                    continue;
                }
                match HeaderValue::from_str(&value) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        headers.push((hname, v));
                    }
                    // Never echo the value: it is a secret.
                    Err(_) => problem(hfield, name, "value is not a valid header value".into()),
                }
            }
            if matches!(host, Host::Domain(_)) || host.ip().is_some() {
                if inject.contains_key(&host) {
                    problem(format!("{field}.host"), &r.host, "duplicate host".into());
                    continue;
                }
                inject.insert(
                    host.clone(),
                    InjectRule {
                        host,
                        upstream_port: port.unwrap_or(443),
                        headers,
                        allow_private: r.allow_private,
                    },
                );
            }
        }

        let mut bedrock = None;
        let b = &config.bedrock;
        if b.enabled {
            let region_ok = |r: &str| {
                !r.is_empty()
                    && r.len() <= 32
                    && r.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    && !r.starts_with('-')
                    && !r.ends_with('-')
            };
            if let Some(r) = &b.region {
                if !region_ok(r) {
                    problem("bedrock.region".into(), r, "not a region name".into());
                }
            }
            let host = match (&b.endpoint, &b.region) {
                (Some(ep), _) => match parse_host(ep.trim()) {
                    Ok(h @ Host::Domain(_)) => Some(h),
                    Ok(_) => {
                        problem(
                            "bedrock.endpoint".into(),
                            ep,
                            "must be a DNS name (TLS needs it)".into(),
                        );
                        None
                    }
                    Err(e) => {
                        problem("bedrock.endpoint".into(), ep, e.to_string());
                        None
                    }
                },
                (None, Some(r)) if region_ok(r) => {
                    parse_host(&format!("bedrock-runtime.{r}.amazonaws.com")).ok()
                }
                (None, Some(_)) => None,
                (None, None) => {
                    problem(
                        "bedrock.region".into(),
                        "",
                        "region (or endpoint) is required when the gateway is enabled".into(),
                    );
                    None
                }
            };
            if let Some(host) = host {
                let from_host = host.domain().and_then(region_from_host);
                let region = match (from_host, &b.region) {
                    (Some(h), Some(r)) if h != *r => {
                        problem(
                            "bedrock.region".into(),
                            r,
                            format!("does not match the endpoint's region {h}"),
                        );
                        None
                    }
                    (Some(h), _) => Some(h),
                    (None, Some(r)) => Some(r.clone()),
                    (None, None) => {
                        problem(
                            "bedrock.region".into(),
                            "",
                            "cannot derive the region from the endpoint; set region".into(),
                        );
                        None
                    }
                };
                if let Some(region) = region {
                    bedrock = Some(BedrockGateway {
                        host,
                        region,
                        allow_private: b.allow_private,
                    });
                }
            }
        }

        if problems.is_empty() {
            Ok(Policy {
                allowlist: Allowlist::new(allow, deny),
                inject,
                bedrock,
            })
        } else {
            Err(PolicyError { problems })
        }
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    pub fn bedrock(&self) -> Option<&BedrockGateway> {
        self.bedrock.as_ref()
    }

    pub fn inject_rule(&self, host: &Host) -> Option<&InjectRule> {
        self.inject.get(host)
    }

    /// Number of injection rules (for logs; never the values).
    pub fn inject_hosts(&self) -> impl Iterator<Item = &Host> {
        self.inject.keys()
    }

    fn denied(&self, host: &Host, port: u16) -> bool {
        self.allowlist
            .deny_entries()
            .iter()
            .any(|d| d.denies_port(port) && d.matches_host(host))
    }

    /// Decide a plain-HTTP request to `host:port`.
    pub fn forward(&self, host: &Host, port: u16) -> Verdict<ForwardRoute<'_>> {
        if let Some(rule) = self.inject.get(host) {
            if self.denied(host, port) {
                return Verdict::Denied;
            }
            // Clients address the injected host as http://host[:upstream_port].
            return if port == 80 || port == rule.upstream_port {
                Verdict::Allow(ForwardRoute::Inject(rule))
            } else {
                Verdict::PortNotAllowed
            };
        }
        match self.allowlist.decide(host, port) {
            Decision::Allowed(e) => Verdict::Allow(ForwardRoute::Direct {
                allow_private: e.allow_private,
            }),
            Decision::Denied => Verdict::Denied,
            Decision::PortNotAllowed => Verdict::PortNotAllowed,
            Decision::NotAllowed => Verdict::NotAllowed,
        }
    }

    /// Decide a CONNECT tunnel to `host:port`; `Allow` carries `allow_private`.
    pub fn connect(&self, host: &Host, port: u16) -> Verdict<bool> {
        if self.inject.contains_key(host) {
            if self.denied(host, port) {
                return Verdict::Denied;
            }
            return Verdict::InjectedHostViaConnect;
        }
        // A tunnel is opaque: only TLS's port unless an entry names another one (a
        // plain-HTTP tunnel would bypass the forward path's per-request checks).
        match self.allowlist.decide_tunnel(host, port) {
            Decision::Allowed(e) => Verdict::Allow(e.allow_private),
            Decision::Denied => Verdict::Denied,
            Decision::PortNotAllowed => Verdict::PortNotAllowed,
            Decision::NotAllowed => Verdict::NotAllowed,
        }
    }
}

/// `bedrock-runtime[-fips].<region>.amazonaws.com[.cn]` → region.
fn region_from_host(host: &str) -> Option<String> {
    let rest = host
        .strip_prefix("bedrock-runtime-fips.")
        .or_else(|| host.strip_prefix("bedrock-runtime."))?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    (!region.contains('.') && !region.is_empty()).then(|| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AllowEntryConfig, BedrockConfig, InjectRuleConfig};
    use std::collections::BTreeMap;

    #[test]
    fn reports_every_problem() {
        let cfg = PolicyConfig {
            allow: vec![
                "*".into(),
                "*.com".into(),
                "a*.b.com".into(),
                "ok.example".into(),
            ],
            deny: vec!["https://x.example".into()],
            inject: vec![InjectRuleConfig {
                host: "mcp.example.com".into(),
                headers: BTreeMap::from([
                    ("Host".into(), SecretSource::Value("x".into())),
                    (
                        "Authorization".into(),
                        SecretSource::Env {
                            env: "NOPE_NOT_SET".into(),
                        },
                    ),
                    ("X-Bad".into(), SecretSource::Value("line\nbreak".into())),
                ]),
                allow_private: false,
            }],
            bedrock: BedrockConfig {
                enabled: true,
                region: None,
                endpoint: None,
                allow_private: false,
            },
        };
        let err = Policy::from_config_with_env(&cfg, &|_| None).unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "allow[0]",
                "allow[1]",
                "allow[2]",
                "deny[0]",
                "inject[0].headers.Authorization",
                "inject[0].headers.Host",
                "inject[0].headers.X-Bad",
                "bedrock.region"
            ]
        );
        assert!(!err.to_string().contains("line\nbreak"));
    }

    #[test]
    fn bedrock_region() {
        let mut cfg = PolicyConfig::default();
        cfg.bedrock.enabled = true;
        cfg.bedrock.region = Some("eu-west-1".into());
        let p = Policy::from_config(&cfg).unwrap();
        let b = p.bedrock().unwrap();
        assert_eq!(
            b.host.to_string(),
            "bedrock-runtime.eu-west-1.amazonaws.com"
        );
        assert_eq!(b.region, "eu-west-1");
        cfg.bedrock.endpoint = Some("bedrock-runtime.us-east-1.amazonaws.com".into());
        assert!(Policy::from_config(&cfg).is_err());
        cfg.bedrock.region = None;
        assert_eq!(
            Policy::from_config(&cfg).unwrap().bedrock().unwrap().region,
            "us-east-1"
        );
    }

    #[test]
    fn routes() {
        let cfg = PolicyConfig {
            allow: vec![AllowEntryConfig::from("pypi.org")],
            inject: vec![InjectRuleConfig {
                host: "mcp.example.com".into(),
                headers: BTreeMap::from([(
                    "Authorization".into(),
                    SecretSource::Value("Bearer t".into()),
                )]),
                allow_private: false,
            }],
            ..Default::default()
        };
        let p = Policy::from_config(&cfg).unwrap();
        let mcp = parse_host("MCP.example.com").unwrap();
        assert!(matches!(
            p.forward(&mcp, 80),
            Verdict::Allow(ForwardRoute::Inject(_))
        ));
        assert!(matches!(p.forward(&mcp, 8080), Verdict::PortNotAllowed));
        assert!(matches!(
            p.connect(&mcp, 443),
            Verdict::InjectedHostViaConnect
        ));
        let pypi = parse_host("pypi.org").unwrap();
        assert!(matches!(p.connect(&pypi, 443), Verdict::Allow(false)));
        assert!(!format!("{p:?}").contains("Bearer"));
    }
}
