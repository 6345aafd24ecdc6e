//! Address guard: which IP addresses the proxy may dial.
//!
//! Every address a name resolves to (or an IP literal in a request) is classified
//! here before any connection is made. IPv6 forms that embed an IPv4 address
//! (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4
//! `2002::/16`, Teredo `2001::/32`) are judged by the embedded address as well.
//!
//! Always denied: unspecified, link-local (`169.254/16`, `fe80::/10`), cloud metadata
//! (`169.254.169.254`, `169.254.170.2`, `fd00:ec2::/32`, `100.100.100.200`, ...),
//! multicast, broadcast, reserved/special-purpose ranges, and the proxy's own listening
//! addresses. Denied unless the matching allow entry has `allow_private`: loopback,
//! RFC 1918, CGNAT `100.64/10`, ULA `fc00::/7`, site-local `fec0::/10`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address may not be dialled. `as_str` is the refusal reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    Unspecified,
    Loopback,
    Private,
    Cgnat,
    LinkLocal,
    Metadata,
    Multicast,
    Broadcast,
    Reserved,
}

impl AddressClass {
    /// Whether a per-entry `allow_private` lifts this class.
    pub fn private_overridable(self) -> bool {
        matches!(
            self,
            AddressClass::Loopback | AddressClass::Private | AddressClass::Cgnat
        )
    }
}

/// The classification of an address, `None` for ordinary global unicast.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

const METADATA_V4: [Ipv4Addr; 6] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS/GCP/Azure/OpenStack instance metadata
    Ipv4Addr::new(169, 254, 170, 2),   // ECS task metadata and credentials
    Ipv4Addr::new(169, 254, 169, 253), // Amazon DNS
    Ipv4Addr::new(169, 254, 169, 123), // Amazon Time Sync
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud metadata
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud metadata
];

fn in_v4(a: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(a) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

pub fn classify_v4(a: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if METADATA_V4.contains(&a) {
        return Some(Metadata);
    }
    let rules: &[([u8; 4], u32, AddressClass)] = &[
        ([0, 0, 0, 0], 8, Unspecified),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([10, 0, 0, 0], 8, Private),
        ([172, 16, 0, 0], 12, Private),
        ([192, 168, 0, 0], 16, Private),
        ([100, 64, 0, 0], 10, Cgnat),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
        ([192, 0, 0, 0], 24, Reserved),    // IETF protocol assignments
        ([192, 0, 2, 0], 24, Reserved),    // TEST-NET-1
        ([198, 51, 100, 0], 24, Reserved), // TEST-NET-2
        ([203, 0, 113, 0], 24, Reserved),  // TEST-NET-3
        ([198, 18, 0, 0], 15, Reserved),   // benchmarking
        ([192, 88, 99, 0], 24, Reserved),  // deprecated 6to4 relay anycast
    ];
    rules
        .iter()
        .find(|(net, prefix, _)| in_v4(a, *net, *prefix))
        .map(|(_, _, class)| *class)
}

fn in_v6(a: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(a) & mask) == (u128::from(net) & mask)
}

/// IPv4 addresses embedded in an IPv6 address by the well-known transition mechanisms.
pub fn embedded_v4(a: Ipv6Addr) -> Vec<Ipv4Addr> {
    let bits = u128::from(a);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let mut out = Vec::new();
    if let Some(v4) = a.to_ipv4_mapped() {
        out.push(v4);
    }
    // IPv4-compatible ::a.b.c.d (deprecated; :: and ::1 are handled as such).
    if bits >> 32 == 0 && bits > 1 {
        out.push(low32);
    }
    // NAT64 well-known prefix and local-use prefix (RFC 6052, RFC 8215).
    if in_v6(a, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96)
        || in_v6(a, Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48)
    {
        out.push(low32);
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if in_v6(a, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        out.push(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    // Teredo: 2001:0000:SSSS:SSSS:flags:port:CCCC:CCCC, client address inverted.
    if in_v6(a, Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32) {
        out.push(Ipv4Addr::from(((bits >> 64) & 0xffff_ffff) as u32));
        out.push(Ipv4Addr::from(!((bits & 0xffff_ffff) as u32)));
    }
    out
}

pub fn classify_v6(a: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if a.is_unspecified() {
        return Some(Unspecified);
    }
    if a.is_loopback() {
        return Some(Loopback);
    }
    // Embedded IPv4: the most severe class of any embedded address decides.
    let embedded = embedded_v4(a);
    if !embedded.is_empty() {
        let mut worst: Option<AddressClass> = None;
        for v4 in embedded {
            if let Some(c) = classify_v4(v4) {
                worst = Some(match worst {
                    Some(w) if severity(w) >= severity(c) => w,
                    _ => c,
                });
            }
        }
        // IPv4-compatible addresses (::a.b.c.d) are deprecated and never routable.
        let compat = u128::from(a) >> 32 == 0;
        return worst.or(compat.then_some(Reserved));
    }
    let rules: &[(Ipv6Addr, u32, AddressClass)] = &[
        (
            Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0),
            32,
            Metadata,
        ),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, LinkLocal),
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, Private),
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, Private),
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Multicast),
        (Ipv6Addr::new(0x0100, 0, 0, 0, 0, 0, 0, 0), 64, Reserved), // discard-only
        (
            Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0),
            32,
            Reserved,
        ), // documentation
        (
            Ipv6Addr::new(0x2001, 0x0002, 0, 0, 0, 0, 0, 0),
            48,
            Reserved,
        ), // benchmarking
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, Reserved), // documentation
        (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 8, Reserved),       // reserved by IETF
    ];
    rules
        .iter()
        .find(|(net, prefix, _)| in_v6(a, *net, *prefix))
        .map(|(_, _, class)| *class)
}

fn severity(c: AddressClass) -> u8 {
    use AddressClass::*;
    match c {
        Metadata => 9,
        LinkLocal => 8,
        Unspecified => 7,
        Broadcast => 6,
        Multicast => 5,
        Reserved => 4,
        Loopback => 3,
        Private => 2,
        Cgnat => 1,
    }
}

/// Why [`Guard::check`] refused an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Class(AddressClass),
    /// The proxy's own listening address.
    OwnAddress,
}

/// Address policy plus the proxy's own addresses.
#[derive(Debug, Default)]
pub struct Guard {
    own: std::sync::RwLock<Vec<SocketAddr>>,
}

impl Guard {
    /// Register a listening address of this process (TCP listeners, admin port).
    pub fn add_own(&self, addr: SocketAddr) {
        if let Ok(mut own) = self.own.write() {
            own.push(addr);
        }
    }

    pub fn remove_own(&self, addr: SocketAddr) {
        if let Ok(mut own) = self.own.write() {
            if let Some(i) = own.iter().position(|a| *a == addr) {
                own.swap_remove(i);
            }
        }
    }

    fn is_own(&self, target: SocketAddr) -> bool {
        let Ok(own) = self.own.read() else {
            return true;
        };
        let tip = canonical_ip(target.ip());
        own.iter().any(|o| {
            if o.port() != target.port() {
                return false;
            }
            let oip = canonical_ip(o.ip());
            // A listener on the unspecified address answers on every local address.
            oip == tip || oip.is_unspecified() || (oip.is_loopback() && tip.is_loopback())
        })
    }

    /// Decide whether `target` may be dialled. `allow_private` comes from the
    /// matching allow entry.
    pub fn check(&self, target: SocketAddr, allow_private: bool) -> Result<(), Denied> {
        if let Some(class) = classify(target.ip()) {
            if !(allow_private && class.private_overridable()) {
                return Err(Denied::Class(class));
            }
        }
        if self.is_own(target) {
            return Err(Denied::OwnAddress);
        }
        Ok(())
    }
}

/// IPv4-mapped IPv6 as IPv4, everything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(a)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::AddressClass::*;
    use super::*;

    fn c(s: &str) -> Option<AddressClass> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn classes() {
        assert_eq!(c("8.8.8.8"), None);
        assert_eq!(c("127.0.0.1"), Some(Loopback));
        assert_eq!(c("0.0.0.0"), Some(Unspecified));
        assert_eq!(c("10.1.2.3"), Some(Private));
        assert_eq!(c("172.31.255.255"), Some(Private));
        assert_eq!(c("172.32.0.1"), None);
        assert_eq!(c("192.168.1.1"), Some(Private));
        assert_eq!(c("100.64.0.1"), Some(Cgnat));
        assert_eq!(c("169.254.169.254"), Some(Metadata));
        assert_eq!(c("169.254.170.2"), Some(Metadata));
        assert_eq!(c("169.254.1.1"), Some(LinkLocal));
        assert_eq!(c("224.0.0.1"), Some(Multicast));
        assert_eq!(c("255.255.255.255"), Some(Broadcast));
        assert_eq!(c("240.0.0.1"), Some(Reserved));
        assert_eq!(c("::"), Some(Unspecified));
        assert_eq!(c("::1"), Some(Loopback));
        assert_eq!(c("fd00:ec2::254"), Some(Metadata));
        assert_eq!(c("fd12::1"), Some(Private));
        assert_eq!(c("fe80::1"), Some(LinkLocal));
        assert_eq!(c("ff02::1"), Some(Multicast));
        assert_eq!(c("2606:4700::1111"), None);
        // Embeddings.
        assert_eq!(c("::ffff:127.0.0.1"), Some(Loopback));
        assert_eq!(c("::127.0.0.1"), Some(Loopback));
        assert_eq!(c("::8.8.8.8"), Some(Reserved));
        assert_eq!(c("64:ff9b::a9fe:a9fe"), Some(Metadata));
        assert_eq!(c("64:ff9b:1::7f00:1"), Some(Loopback));
        assert_eq!(c("64:ff9b::808:808"), None);
        assert_eq!(c("2002:7f00:1::"), Some(Loopback));
        assert_eq!(c("2002:a9fe:a9fe::1"), Some(Metadata));
        assert_eq!(c("2002:808:808::1"), None);
        // Teredo client 127.0.0.1 (inverted 80ff:fffe), server 65.54.227.120.
        assert_eq!(c("2001:0:4136:e378:8000:63bf:80ff:fffe"), Some(Loopback));
        assert_eq!(c("2001:0:4136:e378:8000:63bf:f7f7:f7f7"), None);
    }

    #[test]
    fn allow_private_and_own() {
        let g = Guard::default();
        let lo: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(g.check(lo, false), Err(Denied::Class(Loopback)));
        assert_eq!(g.check(lo, true), Ok(()));
        let md: SocketAddr = "169.254.169.254:80".parse().unwrap();
        assert_eq!(g.check(md, true), Err(Denied::Class(Metadata)));
        g.add_own("0.0.0.0:8080".parse().unwrap());
        let own: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(g.check(own, true), Err(Denied::OwnAddress));
        let own6: SocketAddr = "[::ffff:10.0.0.1]:8080".parse().unwrap();
        assert_eq!(g.check(own6, true), Err(Denied::OwnAddress));
    }
}
