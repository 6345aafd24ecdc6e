//! Listeners: one Unix socket per workspace with its own policy and audit context,
//! policy changes at run time without disturbing other workspaces, graceful drain,
//! tunnels (half-close, idle timeout), pooling and metrics.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use proxy_sidecar::{AuditSink, Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

async fn unix_request(path: &Path, req: &[u8]) -> RawResponse {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(req).await.unwrap();
    read_response(&mut s, req.starts_with(b"CONNECT"))
        .await
        .unwrap()
}

fn get(host: &str, close: bool) -> Vec<u8> {
    format!(
        "GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_workspace_unix_listeners_with_runtime_policy_changes() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = spawn_upstream(None, echo_handler()).await;
    let (echo, _e) = spawn_tcp_echo().await;
    let mut cfg = ProxyConfig::default();
    cfg.test_resolve_overrides
        .insert("shared.test".into(), upstream.addr);
    cfg.test_resolve_overrides
        .insert("a-only.test".into(), upstream.addr);
    cfg.test_resolve_overrides.insert("echo.test".into(), echo);
    let (sink, mut audit) = AuditSink::channel();
    let proxy = Proxy::builder(cfg).audit_sink(sink).build().unwrap();

    let a_path = dir.path().join("ws-a").join("proxy.sock");
    let b_path = dir.path().join("ws-b").join("proxy.sock");
    std::fs::create_dir_all(a_path.parent().unwrap()).unwrap();
    std::fs::create_dir_all(b_path.parent().unwrap()).unwrap();
    // A stale socket file from a previous run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&a_path).unwrap());
    let a = proxy
        .serve_unix(
            &a_path,
            ctx("ws-a"),
            policy(r#"allow = [{ host = "shared.test", allow_private = true }, { host = "a-only.test", allow_private = true }]"#),
        )
        .await
        .unwrap();
    let b = proxy
        .serve_unix(
            &b_path,
            ctx("ws-b"),
            policy(r#"allow = [{ host = "shared.test", allow_private = true }, { host = "echo.test:443", allow_private = true }]"#),
        )
        .await
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&a_path).unwrap().permissions().mode() & 0o777,
        0o666
    );

    // Each listener applies its own policy.
    assert_eq!(
        unix_request(&a_path, &get("a-only.test", true))
            .await
            .status,
        200
    );
    let r = unix_request(&b_path, &get("a-only.test", true)).await;
    assert_eq!((r.status, r.reason()), (403, Some("host_not_allowed")));

    // Long-lived traffic on B: a keep-alive connection and a tunnel.
    let mut b_keepalive = UnixStream::connect(&b_path).await.unwrap();
    b_keepalive
        .write_all(&get("shared.test", false))
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut b_keepalive, false).await.unwrap().status,
        200
    );
    let mut b_tunnel = UnixStream::connect(&b_path).await.unwrap();
    b_tunnel
        .write_all(b"CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut b_tunnel, true).await.unwrap().status,
        200
    );
    b_tunnel.write_all(b"one").await.unwrap();
    let mut buf = [0u8; 3];
    b_tunnel.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"one");

    // A keep-alive connection on A, then A's policy changes under it.
    let mut a_keepalive = UnixStream::connect(&a_path).await.unwrap();
    a_keepalive
        .write_all(&get("a-only.test", false))
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut a_keepalive, false).await.unwrap().status,
        200
    );
    a.set_policy(policy(
        r#"allow = [{ host = "shared.test", allow_private = true }]"#,
    ));
    a_keepalive
        .write_all(&get("a-only.test", false))
        .await
        .unwrap();
    let r = read_response(&mut a_keepalive, false).await.unwrap();
    assert_eq!(
        (r.status, r.reason()),
        (403, Some("host_not_allowed")),
        "the new policy applies to the next request on an existing connection"
    );

    // B was not disturbed: same keep-alive connection, same tunnel.
    b_keepalive
        .write_all(&get("shared.test", false))
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut b_keepalive, false).await.unwrap().status,
        200
    );
    b_tunnel.write_all(b"two").await.unwrap();
    b_tunnel.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"two");

    // Shutting A down removes its socket and leaves B running.
    a.shutdown().await;
    assert!(!a_path.exists(), "socket file removed");
    assert!(UnixStream::connect(&a_path).await.is_err());
    b_tunnel.write_all(b"3rd").await.unwrap();
    b_tunnel.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"3rd");
    assert_eq!(
        unix_request(&b_path, &get("shared.test", true))
            .await
            .status,
        200
    );
    assert_eq!(b.active_tunnels(), 1);

    // Audit records carry each listener's own context.
    drop(b_tunnel);
    drop(b_keepalive);
    b.shutdown().await;
    let mut records = Vec::new();
    while let Ok(r) = audit.try_recv() {
        records.push(r);
    }
    assert!(records
        .iter()
        .filter(|r| r.host.as_deref() == Some("a-only.test") && r.decision == "allowed")
        .all(|r| r.workspace_id == "ws-a" && r.conversation_id == "conv-ws-a"));
    let tunnel = records.iter().find(|r| r.mode == "connect").unwrap();
    assert_eq!(tunnel.workspace_id, "ws-b");
    assert_eq!(tunnel.tenant_id, "tenant-1");
    assert_eq!((tunnel.bytes_out, tunnel.bytes_in), (9, 9));
    assert!(records.iter().all(|r| !r.tenant_id.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_drain_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    // An upstream that answers after 500 ms.
    let slow = spawn_upstream(
        None,
        std::sync::Arc::new(|_r: &Recorded| {
            std::thread::sleep(Duration::from_millis(500));
            http::Response::new(body("finally"))
        }),
    )
    .await;
    let mut cfg = ProxyConfig::default();
    cfg.test_resolve_overrides
        .insert("slow.test".into(), slow.addr);
    let proxy = Proxy::builder(cfg)
        .audit_sink(AuditSink::Disabled)
        .build()
        .unwrap();
    let path = dir.path().join("proxy.sock");
    let h = proxy
        .serve_unix(
            &path,
            ctx("ws"),
            policy(r#"allow = [{ host = "slow.test", allow_private = true }]"#),
        )
        .await
        .unwrap();
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(&get("slow.test", false)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shutdown = tokio::spawn(h.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        UnixStream::connect(&path).await.is_err(),
        "no new connections while draining"
    );
    let r = read_response(&mut s, false).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "finally");
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("drain completes once the request is done")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_closes_open_tunnels() {
    let (echo, _e) = spawn_tcp_echo().await;
    let tp = start_proxy(
        |c, _| {
            c.timeouts.drain_ms = 300;
            c.test_resolve_overrides.insert("echo.test".into(), echo);
        },
        policy(r#"allow = [{ host = "echo.test", allow_private = true }]"#),
        None,
    )
    .await;
    let (r, mut t) = connect_via(tp.addr, "echo.test:443").await;
    assert_eq!(r.status, 200);
    let mut tp = tp;
    let handle = tp.handle.take().unwrap();
    let started = std::time::Instant::now();
    handle.shutdown().await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "tunnel closed at the drain deadline");
}

/// A proxy that tunnels to a TCP echo server as `echo.test`, with `timeouts` set.
async fn echo_tunnel_proxy(
    timeouts: impl FnOnce(&mut proxy_sidecar::config::Timeouts) + Send + 'static,
) -> (TestProxy, tokio::task::JoinHandle<()>) {
    let (echo, task) = spawn_tcp_echo().await;
    let tp = start_proxy(
        move |c, _| {
            timeouts(&mut c.timeouts);
            c.test_resolve_overrides.insert("echo.test".into(), echo);
        },
        policy(r#"allow = [{ host = "echo.test", allow_private = true }]"#),
        None,
    )
    .await;
    (tp, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_pass_half_close_and_idle_out() {
    let (mut tp, _e) = echo_tunnel_proxy(|t| t.tunnel_idle_ms = 300).await;
    // Half-close: after our FIN the upstream still answers, then closes.
    let (r, mut t) = connect_via(tp.addr, "echo.test:443").await;
    assert_eq!(r.status, 200);
    let payload = vec![7u8; 200_000];
    t.write_all(&payload).await.unwrap();
    t.shutdown().await.unwrap();
    let mut got = Vec::new();
    t.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), payload.len() + 3);
    assert!(got.ends_with(b"bye"));

    // Idle: nothing flows, the proxy closes the tunnel.
    let (r, mut t) = connect_via(tp.addr, "echo.test:443").await;
    assert_eq!(r.status, 200);
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf))
        .await
        .expect("idle tunnel closed by the proxy")
        .unwrap_or(0);
    assert_eq!(n, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let audit = tp.drain_audit();
    let half = &audit[0];
    assert_eq!((half.bytes_out, half.bytes_in), (200_000, 200_003));
    assert!(half.complete);
    assert!(
        !audit[1].complete,
        "idle-closed tunnel is marked incomplete"
    );
}

/// A tunnel that keeps carrying bytes is still closed at its maximum lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_tunnels_end_at_their_maximum_lifetime() {
    let (mut tp, _e) = echo_tunnel_proxy(|t| t.tunnel_max_ms = 500).await;
    let (r, mut t) = connect_via(tp.addr, "echo.test:443").await;
    assert_eq!(r.status, 200);
    // Keep it busy (never idle) well past the lifetime; the proxy must end it.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 64];
        loop {
            if t.write_all(b"ping").await.is_err() {
                return;
            }
            match tokio::time::timeout(Duration::from_millis(200), t.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a busy tunnel outlived its maximum lifetime");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let audit = tp.drain_audit();
    assert!(!audit[0].complete, "ended by the proxy, not by either side");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled_and_metrics_exported() {
    let upstream = spawn_upstream(None, echo_handler()).await;
    let mut tp = start_proxy(
        |c, _| {
            c.test_resolve_overrides
                .insert("pool.test".into(), upstream.addr);
        },
        policy(r#"allow = [{ host = "pool.test", allow_private = true }]"#),
        None,
    )
    .await;
    for i in 0..5 {
        // New client connection each time; the upstream connection is reused.
        let r = raw(
            tp.addr,
            format!("POST http://pool.test/{i} HTTP/1.1\r\nHost: pool.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    assert_eq!(tp.proxy.idle_upstream_connections(), 1);
    let r = get_via(tp.addr, "http://denied.test/", "denied.test").await;
    assert_eq!(r.status, 403);

    let audit = tp.drain_audit();
    assert!(audit[0].connect_ms.is_some());
    assert!(
        audit[1].connect_ms.is_none(),
        "reused connection has no connect time"
    );
    assert_eq!(audit[0].bytes_out, 5);
    assert!(audit[0].bytes_in > 0);
    assert!(audit[0].dns_ms.is_some());
    assert_eq!(
        audit[0].resolved.as_deref(),
        Some(upstream.addr.to_string().as_str())
    );

    let text = scrape(&tp);
    for needle in [
        "workspace_proxy_request_duration_seconds_count{mode=\"forward\"} 5",
        "workspace_proxy_exchange_duration_seconds_count{mode=\"forward\",decision=\"allowed\"} 5",
        "workspace_proxy_exchange_duration_seconds_count{mode=\"forward\",decision=\"blocked\"} 1",
        "workspace_proxy_blocked_total{reason=\"host_not_allowed\"} 1",
        "workspace_proxy_dns_duration_seconds_count",
        "workspace_proxy_connect_duration_seconds_count{tls=\"false\"} 1",
        "workspace_proxy_active_tunnels 0",
        "workspace_proxy_active_requests 0",
        "workspace_proxy_bytes_total{direction=\"out\"} 25",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_are_cached() {
    let upstream = spawn_upstream(None, echo_handler()).await;
    let port = upstream.addr.port();
    let (dns, _t, queries) = spawn_dns_counting(std::collections::HashMap::from([(
        "cache.test".to_string(),
        "127.0.0.1".parse().unwrap(),
    )]))
    .await;
    let mut tp = start_proxy(
        |c, _| c.dns.nameservers = vec![dns],
        policy(&format!(
            r#"allow = [{{ host = "cache.test:{port}", allow_private = true }}]"#
        )),
        None,
    )
    .await;
    for _ in 0..3 {
        let r = get_via(
            tp.addr,
            &format!("http://cache.test:{port}/"),
            &format!("cache.test:{port}"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        queries.load(Ordering::SeqCst),
        1,
        "one A query, then the TTL cache answers"
    );
    let audit = tp.drain_audit();
    assert_eq!(
        audit[0].resolved.as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_cut_off() {
    let tp = start_proxy(
        |c, _| c.timeouts.header_read_ms = 300,
        policy("allow = []"),
        None,
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(tp.addr).await.unwrap();
    s.write_all(b"GET http://a.example/ HTTP/1.1\r\nHost: a.exa")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let started = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("connection closed by the header read timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}
