//! Table-driven bad inputs and attacks, each through a real socket, each asserting the
//! exact status and `X-Proxy-Reason`, over plain HTTP (absolute-form) and CONNECT.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    Plain,
    Connect,
    Both,
}

struct Row {
    name: &'static str,
    /// host[:port] as the client writes it.
    target: &'static str,
    via: Via,
    status: u16,
    reason: Option<&'static str>,
}

const fn row(
    name: &'static str,
    target: &'static str,
    via: Via,
    status: u16,
    reason: &'static str,
) -> Row {
    Row {
        name,
        target,
        via,
        status,
        reason: Some(reason),
    }
}

/// Targets refused (or allowed) by host, address or name resolution.
const TARGET_ROWS: &[Row] = &[
    // Allowlist.
    row(
        "unlisted host",
        "evil.test",
        Via::Both,
        403,
        "host_not_allowed",
    ),
    row(
        "denied subdomain beats wildcard allow",
        "bad.wild.test",
        Via::Both,
        403,
        "host_denied",
    ),
    row(
        "wildcard does not cover apex",
        "wild.test",
        Via::Both,
        403,
        "host_not_allowed",
    ),
    row(
        "lookalike suffix",
        "evilwild.test",
        Via::Both,
        403,
        "host_not_allowed",
    ),
    row(
        "port not allowed for host",
        "api.example.com:22",
        Via::Both,
        403,
        "port_not_allowed",
    ),
    row(
        "default ports only without explicit port",
        "ok.test:8080",
        Via::Both,
        403,
        "port_not_allowed",
    ),
    row(
        "trailing-dot spelling of a denied host",
        "bad.wild.test.",
        Via::Both,
        403,
        "host_denied",
    ),
    row(
        "uppercase spelling of a denied host",
        "BAD.Wild.TEST",
        Via::Both,
        403,
        "host_denied",
    ),
    // Loopback in every spelling.
    row("loopback", "127.0.0.1", Via::Both, 403, "address_loopback"),
    row(
        "loopback shorthand",
        "127.1",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "loopback hex octet",
        "0x7f.0.0.1",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "loopback decimal integer",
        "2130706433",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "loopback octal octet",
        "0177.0.0.1",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "loopback octal integer",
        "017700000001",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "loopback other /8 address",
        "127.0.0.2",
        Via::Both,
        403,
        "address_loopback",
    ),
    row("IPv6 loopback", "[::1]", Via::Both, 403, "address_loopback"),
    row(
        "IPv4-mapped loopback",
        "[::ffff:127.0.0.1]",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "IPv4-mapped loopback, hex",
        "[::ffff:7f00:1]",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "IPv4-compatible loopback",
        "[::127.0.0.1]",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "NAT64 loopback",
        "[64:ff9b::7f00:1]",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "Teredo client loopback",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        Via::Both,
        403,
        "address_loopback",
    ),
    // Metadata.
    row(
        "instance metadata",
        "169.254.169.254",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "instance metadata hex integer",
        "0xa9fea9fe",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "instance metadata decimal integer",
        "2852039166",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "instance metadata IPv4-mapped",
        "[::ffff:169.254.169.254]",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "ECS credentials endpoint",
        "169.254.170.2",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "IMDS IPv6",
        "[fd00:ec2::254]",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "6to4 embedding of metadata",
        "[2002:a9fe:a9fe::1]",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "NAT64 embedding of metadata",
        "[64:ff9b::a9fe:a9fe]",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "Alibaba metadata",
        "100.100.100.200",
        Via::Both,
        403,
        "address_metadata",
    ),
    // Other non-public ranges.
    row(
        "RFC 1918 10/8",
        "10.0.0.1",
        Via::Both,
        403,
        "address_private",
    ),
    row(
        "RFC 1918 172.16/12",
        "172.16.5.4",
        Via::Both,
        403,
        "address_private",
    ),
    row(
        "RFC 1918 192.168/16",
        "192.168.1.1",
        Via::Both,
        403,
        "address_private",
    ),
    row(
        "IPv6 ULA",
        "[fd12:3456::1]",
        Via::Both,
        403,
        "address_private",
    ),
    row("CGNAT", "100.64.0.1", Via::Both, 403, "address_cgnat"),
    row(
        "link-local",
        "169.254.1.1",
        Via::Both,
        403,
        "address_link_local",
    ),
    row(
        "IPv6 link-local",
        "[fe80::1]",
        Via::Both,
        403,
        "address_link_local",
    ),
    row(
        "unspecified",
        "0.0.0.0",
        Via::Both,
        403,
        "address_unspecified",
    ),
    row(
        "unspecified shorthand",
        "0",
        Via::Both,
        403,
        "address_unspecified",
    ),
    row(
        "IPv6 unspecified",
        "[::]",
        Via::Both,
        403,
        "address_unspecified",
    ),
    row(
        "multicast",
        "224.0.0.1",
        Via::Both,
        403,
        "address_multicast",
    ),
    row(
        "IPv6 multicast",
        "[ff02::1]",
        Via::Both,
        403,
        "address_multicast",
    ),
    row(
        "broadcast",
        "255.255.255.255",
        Via::Both,
        403,
        "address_broadcast",
    ),
    row("reserved", "240.0.0.1", Via::Both, 403, "address_reserved"),
    // Names that resolve somewhere forbidden (DNS rebinding and friends).
    row(
        "override rebinding to private",
        "rebind.test",
        Via::Both,
        403,
        "address_private",
    ),
    row(
        "override rebinding to loopback",
        "rebind-lo.test",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "allow_private does not unlock metadata",
        "meta.test",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "name for the ECS credentials endpoint",
        "ecs.test",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "name resolving to NAT64 metadata",
        "nat64.test",
        Via::Both,
        403,
        "address_metadata",
    ),
    row(
        "real DNS answer with a private address",
        "dns-private.test",
        Via::Both,
        403,
        "address_private",
    ),
    row(
        "real DNS answer with loopback",
        "dns-lo.test",
        Via::Both,
        403,
        "address_loopback",
    ),
    row(
        "the proxy's own address",
        "self.test",
        Via::Both,
        403,
        "address_self",
    ),
    // Resolution and connection failures.
    row("NXDOMAIN", "nx.test", Via::Both, 502, "dns_failed"),
    row("DNS timeout", "slow.test", Via::Both, 504, "dns_timeout"),
    row(
        "connection refused",
        "closed.test",
        Via::Both,
        502,
        "connect_failed",
    ),
    row(
        "connect timeout",
        "blackhole.test",
        Via::Both,
        504,
        "connect_timeout",
    ),
    // Malformed targets.
    row("empty label", "a..b.test", Via::Both, 400, "invalid_host"),
    row("port zero", "ok.test:0", Via::Both, 400, "invalid_port"),
    row(
        "port out of range",
        "ok.test:65536",
        Via::Both,
        400,
        "invalid_port",
    ),
    row(
        "userinfo in authority",
        "user:pw@ok.test",
        Via::Both,
        400,
        "userinfo_not_allowed",
    ),
    // Credential-injected host.
    row(
        "CONNECT to a credential-injected host",
        "mcp.test:443",
        Via::Connect,
        403,
        "connect_to_injected_host",
    ),
    row(
        "injected credentials only over TLS (upstream speaks plain HTTP)",
        "mcp.test",
        Via::Plain,
        502,
        "tls_failed",
    ),
    row(
        "upstream never answers",
        "silent.test",
        Via::Plain,
        504,
        "upstream_timeout",
    ),
];

fn plain_request(target: &str, host_header: &str) -> Vec<u8> {
    format!(
        "GET http://{target}/path?x=1 HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn connect_request(target: &str, host_header: &str) -> Vec<u8> {
    format!("CONNECT {target} HTTP/1.1\r\nHost: {host_header}\r\n\r\n").into_bytes()
}

/// CONNECT needs an explicit port.
fn with_port(target: &str) -> String {
    let has_port = if target.starts_with('[') {
        target.contains("]:")
    } else {
        target.contains(':')
    };
    if has_port {
        target.to_string()
    } else {
        format!("{target}:443")
    }
}

/// A listener with a full accept queue: further connection attempts hang.
async fn blackhole() -> (
    SocketAddr,
    Vec<tokio::net::TcpStream>,
    tokio::net::TcpListener,
) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        } else {
            break;
        }
    }
    (addr, fillers, listener)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_table() {
    let upstream = spawn_upstream(None, echo_handler()).await;
    let (silent, _silent_task) = spawn_silent().await;
    let closed = closed_port().await;
    let (hole, _fillers, _hole_listener) = blackhole().await;
    let (dns, _dns_task) = spawn_dns(HashMap::from([
        ("dns-private.test".to_string(), "10.1.2.3".parse().unwrap()),
        ("dns-lo.test".to_string(), "127.0.0.1".parse().unwrap()),
    ]))
    .await;
    let up = upstream.addr;
    let p = policy(
        r#"
        allow = [
          { host = "ok.test", allow_private = true },
          "*.wild.test",
          "api.example.com:8443",
          "rebind.test", "rebind-lo.test",
          { host = "meta.test", allow_private = true },
          { host = "ecs.test", allow_private = true },
          { host = "nat64.test", allow_private = true },
          "dns-private.test", "dns-lo.test", "nx.test", "slow.test",
          { host = "self.test", allow_private = true },
          { host = "closed.test", allow_private = true },
          { host = "blackhole.test", allow_private = true },
          { host = "silent.test", allow_private = true },
          "api.example.com",
        ]
        deny = ["bad.wild.test"]
        [[inject]]
        host = "mcp.test"
        headers = { Authorization = "Bearer injected-secret-value" }
        allow_private = true
        "#,
    );
    let mut tp = start_proxy(
        |c, me| {
            c.timeouts.dns_ms = 400;
            c.timeouts.connect_ms = 400;
            c.timeouts.upstream_response_ms = 500;
            c.dns.nameservers = vec![dns];
            let o = &mut c.test_resolve_overrides;
            o.insert("ok.test".into(), up);
            o.insert("mcp.test".into(), up);
            o.insert("rebind.test".into(), "10.0.0.1:80".parse().unwrap());
            o.insert("rebind-lo.test".into(), up);
            o.insert("meta.test".into(), "169.254.169.254:80".parse().unwrap());
            o.insert("ecs.test".into(), "169.254.170.2:80".parse().unwrap());
            o.insert(
                "nat64.test".into(),
                "[64:ff9b::a9fe:a9fe]:80".parse().unwrap(),
            );
            o.insert("self.test".into(), me);
            o.insert("closed.test".into(), closed);
            o.insert("blackhole.test".into(), hole);
            o.insert("silent.test".into(), silent);
        },
        p,
        None,
    )
    .await;
    let proxy = tp.addr;

    let mut failures = Vec::new();
    let mut checked = 0;
    let mut check = |name: String, r: &RawResponse, status: u16, reason: Option<&str>| {
        checked += 1;
        if r.status != status || r.reason() != reason {
            failures.push(format!(
                "{name}: got {} {:?}, want {} {:?} (body {:?})",
                r.status,
                r.reason(),
                status,
                reason,
                r.text()
            ));
        }
    };

    for row in TARGET_ROWS {
        if matches!(row.via, Via::Plain | Via::Both) {
            let r = raw(proxy, &plain_request(row.target, row.target)).await;
            check(format!("{} [plain]", row.name), &r, row.status, row.reason);
        }
        if matches!(row.via, Via::Connect | Via::Both) {
            let t = with_port(row.target);
            let r = raw(proxy, &connect_request(&t, &t)).await;
            check(
                format!("{} [CONNECT]", row.name),
                &r,
                row.status,
                row.reason,
            );
        }
    }

    // Request-level attacks.
    let plain_host_mismatch = raw(proxy, &plain_request("ok.test", "evil.test")).await;
    check(
        "Host header mismatch [plain]".into(),
        &plain_host_mismatch,
        421,
        Some("host_mismatch"),
    );
    let connect_host_mismatch = raw(proxy, &connect_request("ok.test:443", "evil.test:443")).await;
    check(
        "Host header mismatch [CONNECT]".into(),
        &connect_host_mismatch,
        421,
        Some("host_mismatch"),
    );
    let r = raw(proxy, &plain_request("ok.test:80", "ok.test:8080")).await;
    check(
        "Host header port mismatch [plain]".into(),
        &r,
        421,
        Some("host_mismatch"),
    );
    let r = raw(
        proxy,
        b"GET http://ok.test/ HTTP/1.1\r\nHost: ok.test\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    check(
        "duplicate Host headers [plain]".into(),
        &r,
        400,
        Some("bad_request"),
    );
    let r = raw(
        proxy,
        b"CONNECT ok.test:443 HTTP/1.1\r\nHost: ok.test:443\r\nHost: evil.test:443\r\n\r\n",
    )
    .await;
    check(
        "duplicate Host headers [CONNECT]".into(),
        &r,
        400,
        Some("bad_request"),
    );
    let r = raw(proxy, b"CONNECT ok.test HTTP/1.1\r\nHost: ok.test\r\n\r\n").await;
    check("CONNECT without port".into(), &r, 400, Some("invalid_port"));
    // A tunnel is opaque: without a port in its entry, only TLS's port.
    let r = raw(proxy, &connect_request("ok.test:80", "ok.test:80")).await;
    check(
        "CONNECT to port 80 of a host allowed without a port".into(),
        &r,
        403,
        Some("port_not_allowed"),
    );
    // TRACE/TRACK would echo the request, injected credentials included.
    for method in ["TRACE", "TRACK"] {
        let req = format!(
            "{method} http://mcp.test/ HTTP/1.1\r\nHost: mcp.test\r\nConnection: close\r\n\r\n"
        );
        let r = raw(proxy, req.as_bytes()).await;
        check(
            format!("{method} to a credential-injected host"),
            &r,
            405,
            Some("method_not_allowed"),
        );
    }
    let r = raw(
        proxy,
        b"GET https://ok.test/ HTTP/1.1\r\nHost: ok.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    check(
        "https:// absolute-form [plain]".into(),
        &r,
        400,
        Some("unsupported_scheme"),
    );
    let big = "a".repeat(40 * 1024);
    let r = raw(
        proxy,
        format!("GET http://ok.test/ HTTP/1.1\r\nHost: ok.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    check(
        "oversized headers [plain]".into(),
        &r,
        431,
        Some("headers_too_large"),
    );
    let r = raw(
        proxy,
        format!("CONNECT ok.test:443 HTTP/1.1\r\nHost: ok.test:443\r\nX-Big: {big}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    check(
        "oversized headers [CONNECT]".into(),
        &r,
        431,
        Some("headers_too_large"),
    );
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = raw(
        proxy,
        format!("GET http://ok.test/ HTTP/1.1\r\nHost: ok.test\r\n{many}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    check(
        "too many headers [plain]".into(),
        &r,
        431,
        Some("headers_too_large"),
    );
    let r = raw(
        proxy,
        format!("CONNECT ok.test:443 HTTP/1.1\r\nHost: ok.test:443\r\n{many}\r\n").as_bytes(),
    )
    .await;
    check(
        "too many headers [CONNECT]".into(),
        &r,
        431,
        Some("headers_too_large"),
    );
    // Origin-form to a listener without the gateway.
    let r = raw(
        proxy,
        b"POST /model/m/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    check("gateway disabled".into(), &r, 403, Some("gateway_disabled"));

    // Positive controls: the same proxy does let allowed traffic through.
    for spelling in ["ok.test", "OK.Test", "ok.test."] {
        let r = raw(proxy, &plain_request(spelling, spelling)).await;
        check(format!("allowed {spelling} [plain]"), &r, 200, None);
    }
    let (r, mut tunnel) = connect_via(proxy, "ok.test:443").await;
    check("allowed ok.test [CONNECT]".into(), &r, 200, None);
    tunnel
        .write_all(b"GET /through-tunnel HTTP/1.1\r\nHost: ok.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let inner = read_response(&mut tunnel, false).await.unwrap();
    assert_eq!(inner.status, 200);
    assert_eq!(echo_json(&inner)["target"], "/through-tunnel");

    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 80, "only {checked} checks ran");

    // The injected credential never reached the plain-HTTP upstream.
    for rec in upstream.recorded() {
        assert!(
            rec.headers.get("authorization").is_none(),
            "plain upstream saw an Authorization header: {rec:?}"
        );
    }
    // Every refusal was audited with its reason, and nothing secret was logged.
    let audit = tp.drain_audit();
    let blocked = audit.iter().filter(|a| a.decision == "blocked").count();
    assert!(blocked >= 80, "only {blocked} blocked audit records");
    for a in &audit {
        let line = a.to_json_line();
        // The platform's one audit schema, the same as the control plane's lines.
        let common = audit::AuditRecord::check_line(&line).unwrap();
        assert_eq!(common.outcome, a.decision);
        assert_eq!(common.actor.as_deref(), Some("sandbox"));
        assert!(!line.contains("injected-secret-value"), "{line}");
        assert!(!line.contains("x=1"), "query string logged: {line}");
        assert_eq!(a.workspace_id, "ws-test");
    }
    let meta = audit
        .iter()
        .find(|a| a.host.as_deref() == Some("meta.test"))
        .unwrap();
    assert_eq!(meta.resolved.as_deref(), Some("169.254.169.254:80"));
    assert_eq!(meta.reason.as_deref(), Some("address_metadata"));
    let shorthand = audit
        .iter()
        .filter(|a| a.host.as_deref() == Some("127.0.0.1"))
        .count();
    assert!(
        shorthand >= 12,
        "IPv4 spellings are logged canonically ({shorthand})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_answer_429_with_retry_after() {
    let (echo, _t) = spawn_tcp_echo().await;
    let (silent, _s) = spawn_silent().await;
    let p = policy(
        r#"allow = [{ host = "echo.test", allow_private = true }, { host = "slow.test", allow_private = true }]"#,
    );
    let tp = start_proxy(
        |c, _| {
            c.limits.max_concurrent_tunnels = 1;
            c.limits.max_concurrent_requests = 1;
            c.test_resolve_overrides.insert("echo.test".into(), echo);
            c.test_resolve_overrides.insert("slow.test".into(), silent);
        },
        p,
        None,
    )
    .await;
    let (r, mut first) = connect_via(tp.addr, "echo.test:443").await;
    assert_eq!(r.status, 200);
    let r = raw(tp.addr, &connect_request("echo.test:443", "echo.test:443")).await;
    assert_eq!((r.status, r.reason()), (429, Some("too_many_tunnels")));
    assert_eq!(r.header("retry-after"), Some("1"));
    // The first tunnel still works; closing it frees the slot.
    first.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    drop(first);
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (r, _s) = connect_via(tp.addr, "echo.test:443").await;
        if r.status == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "tunnel slot was not released");

    // One request in flight (upstream never answers) → the next gets 429.
    let mut hang = tokio::net::TcpStream::connect(tp.addr).await.unwrap();
    hang.write_all(b"GET http://slow.test/ HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = raw(tp.addr, &plain_request("slow.test", "slow.test")).await;
    assert_eq!((r.status, r.reason()), (429, Some("too_many_requests")));
    assert_eq!(r.header("retry-after"), Some("1"));
}
