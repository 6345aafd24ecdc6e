//! Host and authority canonicalisation.
//!
//! Every host name the proxy sees (request targets, `Host` headers, allowlist entries,
//! injection rules) goes through [`parse_host`] exactly once, and the resulting
//! [`Host`] is what is matched, routed to and logged. Canonical form:
//!
//! - domain names: lowercase ASCII, IDN converted to punycode (UTS #46, as browsers do),
//!   one trailing dot removed, labels of `[a-z0-9_-]` (1–63 bytes), at most 253 bytes;
//! - IPv4 in every spelling the WHATWG URL standard accepts (`127.1`, `0x7f.0.0.1`,
//!   `2130706433`, `0177.0.0.1`) becomes the dotted quad;
//! - IPv6 must be bracketed in an authority; IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`)
//!   becomes the IPv4 address; zone identifiers are refused.
//!
//! Percent signs, userinfo and anything else a real client never puts in a host are
//! refused rather than decoded, so there is only one way to spell each host.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Maximum length of a domain name in its canonical (ASCII) form.
pub const MAX_DOMAIN_LEN: usize = 253;
/// Maximum length of one label.
pub const MAX_LABEL_LEN: usize = 63;

/// Why a host or authority was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("host contains a character that is not allowed: {0:?}")]
    InvalidCharacter(char),
    #[error("invalid IPv6 literal")]
    InvalidIpv6,
    #[error("invalid host name: {0}")]
    InvalidName(String),
    #[error("host name longer than 253 bytes")]
    TooLong,
    #[error("userinfo (`user@`) is not allowed in an authority")]
    UserInfo,
    #[error("invalid port")]
    InvalidPort,
    #[error("a port is required")]
    MissingPort,
}

/// A canonical host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// Lowercase ASCII (punycode) domain name without trailing dot.
    Domain(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl Host {
    /// The IP address when the host is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::Ipv4(a) => Some(IpAddr::V4(*a)),
            Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        }
    }

    /// The domain name when the host is not a literal.
    pub fn domain(&self) -> Option<&str> {
        match self {
            Host::Domain(d) => Some(d),
            _ => None,
        }
    }

    /// Host as used in a URI authority or `Host` header (IPv6 bracketed).
    pub fn to_uri_host(&self) -> String {
        match self {
            Host::Ipv6(a) => format!("[{a}]"),
            other => other.to_string(),
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Host::Ipv4(v4),
                None => Host::Ipv6(a),
            },
        }
    }
}

/// Displays the canonical spelling (IPv6 without brackets; see [`Host::to_uri_host`]).
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "{a}"),
        }
    }
}

/// A canonical host with a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    pub host: Host,
    pub port: u16,
}

impl Authority {
    /// `host:port` with the port left out when it equals `default_port`.
    pub fn to_host_header(&self, default_port: u16) -> String {
        if self.port == default_port {
            self.host.to_uri_host()
        } else {
            format!("{}:{}", self.host.to_uri_host(), self.port)
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host.to_uri_host(), self.port)
    }
}

fn forbidden_char(c: char) -> bool {
    c.is_ascii_control()
        || c.is_whitespace()
        || matches!(
            c,
            '%' | '/' | '\\' | '@' | '?' | '#' | '[' | ']' | '<' | '>' | '^' | '|' | ':' | '*'
        )
}

/// Canonicalise a host (no port). IPv6 literals must be bracketed.
pub fn parse_host(input: &str) -> Result<Host, HostError> {
    if input.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(inner) = input.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(HostError::InvalidIpv6)?;
        let addr: Ipv6Addr = inner.parse().map_err(|_| HostError::InvalidIpv6)?;
        return Ok(Host::from(IpAddr::V6(addr)));
    }
    if let Some(c) = input.chars().find(|c| forbidden_char(*c)) {
        return Err(HostError::InvalidCharacter(c));
    }
    // One trailing dot (fully-qualified spelling) is the same host.
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    if trimmed.is_empty() {
        return Err(HostError::Empty);
    }
    if trimmed.len() > 4 * MAX_DOMAIN_LEN {
        return Err(HostError::TooLong);
    }
    match url::Host::parse(trimmed) {
        Ok(url::Host::Ipv4(a)) => Ok(Host::Ipv4(a)),
        Ok(url::Host::Ipv6(a)) => Ok(Host::from(IpAddr::V6(a))),
        Ok(url::Host::Domain(d)) => {
            validate_domain(&d)?;
            Ok(Host::Domain(d))
        }
        Err(e) => Err(HostError::InvalidName(e.to_string())),
    }
}

/// Check a lowercase ASCII domain: label syntax and lengths.
pub(crate) fn validate_domain(d: &str) -> Result<(), HostError> {
    if d.len() > MAX_DOMAIN_LEN {
        return Err(HostError::TooLong);
    }
    for label in d.split('.') {
        validate_label(label)?;
    }
    Ok(())
}

pub(crate) fn validate_label(label: &str) -> Result<(), HostError> {
    if label.is_empty() {
        return Err(HostError::InvalidName("empty label".into()));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(HostError::InvalidName("label longer than 63 bytes".into()));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(HostError::InvalidCharacter(c));
    }
    Ok(())
}

/// Split an authority (`host`, `host:port`, `[v6]`, `[v6]:port`) and canonicalise it.
/// Returns the host and the port if one was written.
pub fn parse_authority_parts(input: &str) -> Result<(Host, Option<u16>), HostError> {
    if input.contains('@') {
        return Err(HostError::UserInfo);
    }
    let (host, port) = if input.starts_with('[') {
        match input.find(']') {
            Some(end) => {
                let (h, rest) = input.split_at(end + 1);
                if rest.is_empty() {
                    (h, None)
                } else if let Some(p) = rest.strip_prefix(':') {
                    (h, Some(p))
                } else {
                    return Err(HostError::InvalidIpv6);
                }
            }
            None => return Err(HostError::InvalidIpv6),
        }
    } else {
        match input.split_once(':') {
            Some((h, p)) => {
                if p.contains(':') {
                    // A bare IPv6 address or garbage: IPv6 needs brackets.
                    return Err(HostError::InvalidIpv6);
                }
                (h, Some(p))
            }
            None => (input, None),
        }
    };
    let port = port.map(parse_port).transpose()?;
    Ok((parse_host(host)?, port))
}

/// Parse an authority; `default_port` is used when none is written, and when it is
/// `None` a port is required.
pub fn parse_authority(input: &str, default_port: Option<u16>) -> Result<Authority, HostError> {
    let (host, port) = parse_authority_parts(input)?;
    let port = port.or(default_port).ok_or(HostError::MissingPort)?;
    Ok(Authority { host, port })
}

/// A decimal port 1–65535, at most 5 digits.
pub fn parse_port(p: &str) -> Result<u16, HostError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::InvalidPort);
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(HostError::InvalidPort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> String {
        parse_host(s).unwrap().to_string()
    }

    #[test]
    fn canonical_spellings() {
        assert_eq!(h("Example.COM."), "example.com");
        assert_eq!(h("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(h("127.1"), "127.0.0.1");
        assert_eq!(h("0x7f.0.0.1"), "127.0.0.1");
        assert_eq!(h("2130706433"), "127.0.0.1");
        assert_eq!(h("0177.0.0.1"), "127.0.0.1");
        assert_eq!(h("0x7f000001"), "127.0.0.1");
        assert_eq!(h("127.0.0.1."), "127.0.0.1");
        assert_eq!(h("[::ffff:127.0.0.1]"), "127.0.0.1");
        assert_eq!(h("[::FFFF:7f00:1]"), "127.0.0.1");
        assert_eq!(h("[0:0:0:0:0:0:0:1]"), "::1");
        assert_eq!(h("under_score.example"), "under_score.example");
        assert_eq!(h("ｅｘａｍｐｌｅ。com"), "example.com");
    }

    #[test]
    fn refused_spellings() {
        for bad in [
            "",
            ".",
            "a..b",
            ".a.com",
            "a.com..",
            "%31%32%37.0.0.1",
            "a b.com",
            "a/b",
            "user@host",
            "[::1",
            "[fe80::1%25eth0]",
            "::1",
            "1.2.3.4.5",
            "example.123",
            "*.example.com",
            "a\u{0}b",
            "a\\b.com",
            "256.0.0.1",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(parse_host(&long).is_err());
    }

    #[test]
    fn authorities() {
        let a = parse_authority("Example.com:8443", Some(80)).unwrap();
        assert_eq!(a.to_string(), "example.com:8443");
        let a = parse_authority("[::1]:443", None).unwrap();
        assert_eq!(a.to_string(), "[::1]:443");
        let a = parse_authority("example.com", Some(80)).unwrap();
        assert_eq!(a.port, 80);
        assert_eq!(a.to_host_header(80), "example.com");
        assert_eq!(
            parse_authority("example.com", None),
            Err(HostError::MissingPort)
        );
        assert_eq!(
            parse_authority("u:p@example.com:80", None),
            Err(HostError::UserInfo)
        );
        for bad in [
            "example.com:0",
            "example.com:65536",
            "example.com:",
            "example.com:+80",
            "example.com:080080",
            "::1:80",
            "[::1]x",
        ] {
            assert!(parse_authority(bad, Some(80)).is_err(), "{bad:?}");
        }
    }
}
