//! Name resolution: hickory-resolver with its TTL-respecting answer cache, plus the
//! test-only override table.
//!
//! Names are always looked up as fully qualified (a trailing dot is added), so search
//! domains from `resolv.conf` never turn `internal` into `internal.corp.example`.
//! The caller vets every returned address and dials only those; there is no second
//! lookup between vetting and connecting.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::config::{ConfigError, DnsSettings};
use crate::host::{parse_host, Host};

/// Why a name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("lookup timed out")]
    Timeout,
    #[error("lookup failed: {0}")]
    Failed(String),
    #[error("no address")]
    NoAddress,
}

/// The addresses for one target, and how long the lookup took.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub addrs: Vec<SocketAddr>,
    pub elapsed: Duration,
    /// Whether the test override table answered.
    pub overridden: bool,
}

/// Shared resolver.
pub struct Resolver {
    inner: TokioResolver,
    overrides: HashMap<Host, SocketAddr>,
    timeout: Duration,
}

impl Resolver {
    pub fn new(
        settings: &DnsSettings,
        overrides: &std::collections::BTreeMap<String, SocketAddr>,
        timeout: Duration,
    ) -> Result<Resolver, ConfigError> {
        let mut builder = if settings.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| {
                ConfigError::Resolver(format!(
                    "reading the system DNS configuration (/etc/resolv.conf): {e}"
                ))
            })?
        } else {
            let servers = settings
                .nameservers
                .iter()
                .map(|sa| {
                    let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                    for c in &mut ns.connections {
                        c.port = sa.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.cache_size = settings.cache_size;
        opts.positive_max_ttl = Some(Duration::from_secs(settings.max_ttl_secs));
        opts.negative_max_ttl = Some(Duration::from_secs(settings.negative_max_ttl_secs));
        opts.timeout = timeout;
        opts.attempts = 2;
        let inner = builder
            .build()
            .map_err(|e| ConfigError::Resolver(e.to_string()))?;
        let mut map = HashMap::new();
        for (k, v) in overrides {
            let host = parse_host(k).map_err(|e| ConfigError::Invalid {
                field: format!("test_resolve_overrides.{k}"),
                message: e.to_string(),
            })?;
            map.insert(host, *v);
        }
        Ok(Resolver {
            inner,
            overrides: map,
            timeout,
        })
    }

    /// Resolve a canonical host for `port`. IP literals resolve to themselves.
    pub async fn resolve(&self, host: &Host, port: u16) -> Result<Resolution, ResolveError> {
        let start = Instant::now();
        if let Some(addr) = self.overrides.get(host) {
            return Ok(Resolution {
                addrs: vec![*addr],
                elapsed: start.elapsed(),
                overridden: true,
            });
        }
        let name = match host {
            Host::Domain(d) => d,
            other => {
                let ip = other.ip().ok_or(ResolveError::NoAddress)?;
                return Ok(Resolution {
                    addrs: vec![SocketAddr::new(ip, port)],
                    elapsed: start.elapsed(),
                    overridden: false,
                });
            }
        };
        let fqdn = format!("{name}.");
        let lookup = tokio::time::timeout(self.timeout, self.inner.lookup_ip(fqdn.as_str()))
            .await
            .map_err(|_| ResolveError::Timeout)?
            .map_err(|e| {
                if e.is_no_records_found() || e.is_nx_domain() {
                    ResolveError::NoAddress
                } else if matches!(e, hickory_resolver::net::NetError::Timeout) {
                    ResolveError::Timeout
                } else {
                    ResolveError::Failed(e.to_string())
                }
            })?;
        let addrs: Vec<SocketAddr> = lookup
            .iter()
            .map(|ip: IpAddr| SocketAddr::new(ip, port))
            .collect();
        if addrs.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        Ok(Resolution {
            addrs,
            elapsed: start.elapsed(),
            overridden: false,
        })
    }
}
