//! Allowlist grammar, parsing and matching.
//!
//! An entry is `host[:port]` where `host` is one of:
//!
//! - an exact name (`pypi.org`) or IP literal (`10.0.0.5`, `[fd00::5]`);
//! - `*.` followed by a name: any subdomain, at any depth, but not the name itself
//!   (`*.npmjs.org` matches `registry.npmjs.org` and `a.b.npmjs.org`, not `npmjs.org`);
//! - a name with single-label `*` wildcards inside (`bedrock-runtime.*.amazonaws.com`),
//!   each `*` matching exactly one label.
//!
//! Refused at load time: a lone `*`, partial-label wildcards (`a*.b.com`), a wildcard in
//! the last label, fewer than two literal labels next to a wildcard (`*.com`), schemes,
//! paths, queries, userinfo, empty labels, invalid ports.
//!
//! Ports: an allow entry without a port allows ports 80 and 443 only (443 only for a
//! `CONNECT` tunnel: [`Allowlist::decide_tunnel`]); with a port, that port only. A
//! deny entry without a port denies every port. Deny entries win.

use std::fmt;

use crate::host::{parse_host, parse_port, validate_label, Host, HostError};

/// Why an allowlist entry was refused at load time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty entry")]
    Empty,
    #[error("a scheme is not allowed in an entry (write only host[:port])")]
    Scheme,
    #[error("a path, query or fragment is not allowed in an entry")]
    Path,
    #[error("userinfo is not allowed in an entry")]
    UserInfo,
    #[error("`*` alone would allow every host")]
    BareWildcard,
    #[error("a wildcard must be a whole label (`*.example.com`, `a.*.example.com`)")]
    PartialWildcard,
    #[error("the last label cannot be a wildcard")]
    WildcardTld,
    #[error(
        "too broad: a wildcard entry needs at least two literal labels (e.g. `*.example.com`)"
    )]
    TooBroad,
    #[error("wildcards are not allowed with IP addresses")]
    WildcardIp,
    #[error("empty label")]
    EmptyLabel,
    #[error("invalid port")]
    InvalidPort,
    #[error("invalid host: {0}")]
    Host(#[from] HostError),
}

/// One label of a wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    Any,
    Lit(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Exact host (name or IP literal).
    Exact(Host),
    /// `[*.]labels`, `subdomains` when it started with `*.`.
    Wild {
        subdomains: bool,
        labels: Vec<Label>,
    },
}

/// A parsed, canonical allowlist or denylist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    kind: Kind,
    port: Option<u16>,
}

impl Pattern {
    /// Parse and canonicalise one entry.
    pub fn parse(input: &str) -> Result<Pattern, PatternError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s.contains("://") {
            return Err(PatternError::Scheme);
        }
        if s.contains(['/', '?', '#']) {
            return Err(PatternError::Path);
        }
        if s.contains('@') {
            return Err(PatternError::UserInfo);
        }
        let (host, port) = split_port(s)?;
        let port = port
            .map(|p| parse_port(p).map_err(|_| PatternError::InvalidPort))
            .transpose()?;
        if !host.contains('*') {
            let host = parse_host(host)?;
            return Ok(Pattern {
                kind: Kind::Exact(host),
                port,
            });
        }
        if host == "*" || host == "*." {
            return Err(PatternError::BareWildcard);
        }
        if host.starts_with('[') {
            return Err(PatternError::WildcardIp);
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        let mut parts: Vec<&str> = host.split('.').collect();
        let subdomains = parts.first() == Some(&"*");
        if subdomains {
            parts.remove(0);
        }
        let mut labels = Vec::with_capacity(parts.len());
        for p in &parts {
            if p.is_empty() {
                return Err(PatternError::EmptyLabel);
            }
            if *p == "*" {
                labels.push(Label::Any);
            } else if p.contains('*') {
                return Err(PatternError::PartialWildcard);
            } else {
                labels.push(Label::Lit(canonical_label(p)?));
            }
        }
        match labels.last() {
            Some(Label::Lit(last)) => {
                if last.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PatternError::WildcardIp);
                }
            }
            Some(Label::Any) => return Err(PatternError::WildcardTld),
            None => return Err(PatternError::BareWildcard),
        }
        let literal = labels.iter().filter(|l| matches!(l, Label::Lit(_))).count();
        if literal < 2 {
            return Err(PatternError::TooBroad);
        }
        Ok(Pattern {
            kind: Kind::Wild { subdomains, labels },
            port,
        })
    }

    /// The port written in the entry, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The exact host when the entry has no wildcard.
    pub fn exact_host(&self) -> Option<&Host> {
        match &self.kind {
            Kind::Exact(h) => Some(h),
            Kind::Wild { .. } => None,
        }
    }

    /// Whether the host part matches (ports are not considered).
    pub fn matches_host(&self, host: &Host) -> bool {
        match &self.kind {
            Kind::Exact(h) => h == host,
            Kind::Wild { subdomains, labels } => {
                let Host::Domain(d) = host else {
                    return false;
                };
                let n = d.bytes().filter(|b| *b == b'.').count() + 1;
                if *subdomains {
                    if n <= labels.len() {
                        return false;
                    }
                } else if n != labels.len() {
                    return false;
                }
                d.rsplit('.')
                    .zip(labels.iter().rev())
                    .all(|(h, p)| match p {
                        Label::Any => true,
                        Label::Lit(l) => l == h,
                    })
            }
        }
    }

    /// Port rule for allow entries: explicit port, else 80 and 443.
    pub fn allows_port(&self, port: u16) -> bool {
        match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        }
    }

    /// Port rule for deny entries: explicit port, else every port.
    pub fn denies_port(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

fn canonical_label(label: &str) -> Result<String, PatternError> {
    let ascii = idna::domain_to_ascii(label)
        .map_err(|e| PatternError::Host(HostError::InvalidName(e.to_string())))?;
    if ascii.contains('.') {
        return Err(PatternError::EmptyLabel);
    }
    validate_label(&ascii)?;
    Ok(ascii)
}

fn split_port(s: &str) -> Result<(&str, Option<&str>), PatternError> {
    if s.starts_with('[') {
        let end = s
            .find(']')
            .ok_or(PatternError::Host(HostError::InvalidIpv6))?;
        let (h, rest) = s.split_at(end + 1);
        return match rest {
            "" => Ok((h, None)),
            r => r
                .strip_prefix(':')
                .map(|p| (h, Some(p)))
                .ok_or(PatternError::Host(HostError::InvalidIpv6)),
        };
    }
    match s.split_once(':') {
        Some((_, p)) if p.contains(':') => Err(PatternError::Host(HostError::InvalidIpv6)),
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((s, None)),
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Exact(h) => f.write_str(&h.to_uri_host())?,
            Kind::Wild { subdomains, labels } => {
                if *subdomains {
                    f.write_str("*.")?;
                }
                for (i, l) in labels.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    match l {
                        Label::Any => f.write_str("*")?,
                        Label::Lit(s) => f.write_str(s)?,
                    }
                }
            }
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// An allow entry with its per-entry options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub pattern: Pattern,
    /// Permit private, CGNAT, ULA and loopback addresses for this entry (VPC
    /// endpoints, tests). Link-local, metadata and the proxy's own addresses stay denied.
    pub allow_private: bool,
}

/// The outcome of matching a host and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    Allowed(&'a AllowEntry),
    /// A deny entry matched (deny wins over allow).
    Denied,
    /// Some allow entry names the host, but not this port.
    PortNotAllowed,
    NotAllowed,
}

/// Compiled allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    allow: Vec<AllowEntry>,
    deny: Vec<Pattern>,
}

impl Allowlist {
    pub fn new(allow: Vec<AllowEntry>, deny: Vec<Pattern>) -> Self {
        Allowlist { allow, deny }
    }

    pub fn allow_entries(&self) -> &[AllowEntry] {
        &self.allow
    }

    pub fn deny_entries(&self) -> &[Pattern] {
        &self.deny
    }

    /// Decide for a canonical host and port.
    pub fn decide(&self, host: &Host, port: u16) -> Decision<'_> {
        self.decide_with(host, port, Pattern::allows_port)
    }

    /// Like [`Allowlist::decide`] for a `CONNECT` tunnel: an entry without a port
    /// allows 443 only (a tunnel is opaque; plain HTTP has the forward path).
    pub fn decide_tunnel(&self, host: &Host, port: u16) -> Decision<'_> {
        self.decide_with(host, port, |p, port| match p.port() {
            Some(explicit) => explicit == port,
            None => port == 443,
        })
    }

    fn decide_with(
        &self,
        host: &Host,
        port: u16,
        allows_port: impl Fn(&Pattern, u16) -> bool,
    ) -> Decision<'_> {
        if self
            .deny
            .iter()
            .any(|d| d.denies_port(port) && d.matches_host(host))
        {
            return Decision::Denied;
        }
        let mut host_seen = false;
        for e in &self.allow {
            if e.pattern.matches_host(host) {
                if allows_port(&e.pattern, port) {
                    return Decision::Allowed(e);
                }
                host_seen = true;
            }
        }
        if host_seen {
            Decision::PortNotAllowed
        } else {
            Decision::NotAllowed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn host(s: &str) -> Host {
        parse_host(s).unwrap()
    }

    #[test]
    fn grammar_errors() {
        use PatternError::*;
        let cases: &[(&str, PatternError)] = &[
            ("", Empty),
            ("*", BareWildcard),
            ("*:443", BareWildcard),
            ("*.com", TooBroad),
            ("*.*.com", TooBroad),
            ("a*.b.com", PartialWildcard),
            ("*a.b.com", PartialWildcard),
            ("example.*", WildcardTld),
            ("https://example.com", Scheme),
            ("example.com/path", Path),
            ("example.com?q", Path),
            ("user@example.com", UserInfo),
            (
                "a..example.com",
                Host(HostError::InvalidName("empty label".into())),
            ),
            ("*..example.com", EmptyLabel),
            ("example.com:0", InvalidPort),
            ("example.com:99999", InvalidPort),
            ("*.10.0.0.1", WildcardIp),
        ];
        for (input, want) in cases {
            let got = Pattern::parse(input);
            match (want, &got) {
                (Host(_), Err(Host(_))) => {}
                _ => assert_eq!(got.as_ref(), Err(want), "{input}"),
            }
        }
    }

    #[test]
    fn matching() {
        let sub = p("*.npmjs.org");
        assert!(sub.matches_host(&host("registry.npmjs.org")));
        assert!(sub.matches_host(&host("a.b.npmjs.org")));
        assert!(!sub.matches_host(&host("npmjs.org")));
        assert!(!sub.matches_host(&host("evilnpmjs.org")));
        let mid = p("bedrock-runtime.*.amazonaws.com");
        assert!(mid.matches_host(&host("bedrock-runtime.us-east-1.amazonaws.com")));
        assert!(!mid.matches_host(&host("bedrock-runtime.a.b.amazonaws.com")));
        assert!(!mid.matches_host(&host("bedrock-runtime.amazonaws.com")));
        let ip = p("10.0.0.5:8443");
        assert!(ip.matches_host(&host("10.0.0.5")));
        assert!(ip.matches_host(&host("167772165")));
        assert_eq!(p("Bücher.Example.").to_string(), "xn--bcher-kva.example");
        assert_eq!(
            p("*.Bücher.example:8443").to_string(),
            "*.xn--bcher-kva.example:8443"
        );
        assert_eq!(p("[::ffff:10.0.0.1]").to_string(), "10.0.0.1");
    }

    #[test]
    fn decisions() {
        let list = Allowlist::new(
            vec![
                AllowEntry {
                    pattern: p("*.example.com"),
                    allow_private: false,
                },
                AllowEntry {
                    pattern: p("api.other.com:8443"),
                    allow_private: false,
                },
            ],
            vec![p("bad.example.com"), p("x.example.com:443")],
        );
        assert!(matches!(
            list.decide(&host("a.example.com"), 443),
            Decision::Allowed(_)
        ));
        assert_eq!(
            list.decide(&host("a.example.com"), 22),
            Decision::PortNotAllowed
        );
        assert_eq!(list.decide(&host("bad.example.com"), 443), Decision::Denied);
        assert_eq!(list.decide(&host("bad.example.com"), 80), Decision::Denied);
        assert_eq!(list.decide(&host("x.example.com"), 443), Decision::Denied);
        assert!(matches!(
            list.decide(&host("x.example.com"), 80),
            Decision::Allowed(_)
        ));
        assert_eq!(
            list.decide(&host("api.other.com"), 443),
            Decision::PortNotAllowed
        );
        assert!(matches!(
            list.decide(&host("api.other.com"), 8443),
            Decision::Allowed(_)
        ));
        assert_eq!(list.decide(&host("example.com"), 443), Decision::NotAllowed);
    }
}
