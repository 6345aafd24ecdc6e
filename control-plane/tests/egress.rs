//! Egress from inside a real workspace: the sandbox's only way out is its own proxy
//! listener, reached through the agent's relay on 127.0.0.1:8080 (`http_proxy`).
//! Allowed hosts answer; everything else, metadata addresses included, is refused;
//! the conversation's policy is bound at claim time and changeable at run time (by
//! an admin when it widens access); a dead listener is restarted; the sandbox cannot
//! touch its proxy socket.

mod support;

use std::{net::SocketAddr, time::Duration};

use proxy_sidecar::{AllowEntryConfig, PolicyConfig};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback HTTP server answering every request with `hello from <name>`.
async fn upstream(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!("hello from {name}\n");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn private(host: &str) -> AllowEntryConfig {
    AllowEntryConfig::Detailed {
        host: host.into(),
        allow_private: true,
    }
}

/// `wget` through the sandbox's proxy (no `-T`: it crashes Debian's static busybox).
async fn fetch(plane: &Plane, conv: &str, url: &str) -> (String, String) {
    let (out, err, _) = plane
        .sh(conv, &format!("timeout 15 wget -q -O - {url} 2>&1; true"))
        .await;
    (out, err)
}

#[tokio::test]
async fn the_sandbox_reaches_only_what_its_policy_allows() {
    if !docker_tests_enabled() {
        return;
    }
    let a = upstream("allowed").await;
    let b = upstream("other").await;
    let mut cfg = test_config(&new_fleet("egress"));
    cfg.egress.proxy.test_resolve_overrides = [
        ("allowed.test".to_string(), a),
        ("other.test".to_string(), b),
    ]
    .into();
    cfg.egress.default_policy = PolicyConfig {
        allow: vec![private("allowed.test")],
        ..Default::default()
    };
    // One warm member: its listener is deny-all until a conversation claims it.
    cfg.pool.min = 1;
    cfg.pool.max = 1;
    cfg.pool.poll_interval_ms = 100;
    let plane = Plane::start_cfg(cfg).await;
    for _ in 0..100 {
        let st: serde_json::Value = plane
            .get("/v1/pool", TOKEN_ACME)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if st["size"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Claimed from the pool with the conversation's policy bound at claim time.
    let events = plane
        .execute(TOKEN_ACME, "net", &cmd_request(&["true"]))
        .await;
    assert!(matches!(
        events[0],
        wire::Event::Workspace {
            source: wire::WorkspaceSource::Warm,
            ..
        }
    ));
    let ws = workspace_id_of(&events);
    let (out, _) = fetch(&plane, "net", "http://allowed.test/").await;
    assert!(out.contains("hello from allowed"), "{out}");
    // Not on the list; the metadata service; the host's loopback; the control plane.
    for url in [
        "http://other.test/",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:22/",
        &format!("http://{}/health/live", plane.server.as_ref().unwrap().addr),
    ] {
        let (out, _) = fetch(&plane, "net", url).await;
        assert!(
            out.contains("403") || out.contains("Forbidden"),
            "{url}: {out}"
        );
        assert!(!out.contains("hello from"), "{url}: {out}");
    }
    // Without the proxy there is no network at all.
    let (out, _, _) = plane
        .sh("net", "timeout 5 wget -q -O - http://10.0.0.1/ 2>&1 </dev/null; env -u http_proxy -u HTTP_PROXY timeout 5 wget -q -O - http://93.184.216.34/ 2>&1; true")
        .await;
    assert!(!out.contains("hello from"), "{out}");

    // Widening the policy (a private upstream) needs an admin token (globex is not).
    let widen = serde_json::json!({"allow": [{"host": "other.test", "allow_private": true}]});
    let r = plane
        .put("/v1/conversations/net/egress", TOKEN_GLOBEX)
        .json(&widen)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = plane
        .put("/v1/conversations/net/egress", TOKEN_ACME)
        .json(&widen)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Applied at once to the running workspace: other.test now, allowed.test no more.
    let (out, _) = fetch(&plane, "net", "http://other.test/").await;
    assert!(out.contains("hello from other"), "{out}");
    let (out, _) = fetch(&plane, "net", "http://allowed.test/").await;
    assert!(!out.contains("hello from"), "{out}");
    // Back to the configured policy.
    let r = plane
        .delete("/v1/conversations/net/egress", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (out, _) = fetch(&plane, "net", "http://allowed.test/").await;
    assert!(out.contains("hello from allowed"), "{out}");

    // The sandbox cannot touch its proxy socket (read-only mount)...
    let (_, _, r) = plane.sh("net", "rm -f /run/egress/proxy.sock").await;
    assert_ne!(r.exit_code, Some(0));
    let (_, _, r) = plane.sh("net", "ln -s /etc/shadow /run/egress/x").await;
    assert_ne!(r.exit_code, Some(0));
    // ...and a listener that dies (here: its socket removed on the host) is restarted.
    let sock = plane
        .cfg
        .docker
        .socket_root
        .join(&ws)
        .join("egress/proxy.sock");
    std::fs::remove_file(&sock).unwrap();
    let (out, _) = fetch(&plane, "net", "http://allowed.test/").await;
    assert!(!out.contains("hello from"), "the socket is gone: {out}");
    let mut back = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if sock.exists() {
            back = true;
            break;
        }
    }
    assert!(back, "the egress listener was not restarted");
    let (out, _) = fetch(&plane, "net", "http://allowed.test/").await;
    assert!(out.contains("hello from allowed"), "{out}");
}

#[tokio::test]
async fn tenants_cannot_widen_egress_or_read_the_control_planes_environment() {
    if !docker_tests_enabled() {
        return;
    }
    let plane = Plane::start("egresspol").await;
    for (body, why) in [
        (
            serde_json::json!({"allow": [{"host": "10.0.0.5", "allow_private": true}]}),
            "private addresses",
        ),
        (
            serde_json::json!({"inject": [{"host": "mcp.example.com",
                "headers": {"Authorization": {"env": "AWS_SECRET_ACCESS_KEY"}}}]}),
            "the control plane's environment",
        ),
        (
            serde_json::json!({"bedrock": {"enabled": true, "region": "us-east-1",
                "endpoint": "evil.example.com"}}),
            "Bedrock endpoint override",
        ),
    ] {
        let r = plane
            .put("/v1/conversations/p/egress", TOKEN_GLOBEX)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{why}");
        let b: serde_json::Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "policy_not_allowed", "{why}");
    }
    // Not even an admin can make the proxy send the control plane's environment
    // anywhere (only operator-listed names, none here) or reach loopback (the API,
    // Redis) through a policy set by the API.
    for (body, why) in [
        (
            serde_json::json!({"inject": [{"host": "mcp.example.com",
                "headers": {"Authorization": {"env": "CP_API_TOKENS"}}}]}),
            "an admin reading the environment",
        ),
        (
            serde_json::json!({"allow": [{"host": "127.0.0.1:6379", "allow_private": true}]}),
            "an admin allowing loopback",
        ),
    ] {
        let r = plane
            .put("/v1/conversations/p/egress", TOKEN_ACME)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{why}");
    }
    // Invalid entries are 400 with the proxy's own validation message.
    for bad in [
        serde_json::json!({"allow": ["*"]}),
        serde_json::json!({"allow": ["http://pypi.org/simple"]}),
        serde_json::json!({"allow": ["*.com"]}),
        serde_json::json!({"nonsense": true}),
    ] {
        let r = plane
            .put("/v1/conversations/p/egress", TOKEN_GLOBEX)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // A literal MCP header for the tenant's own conversation is fine; another tenant's
    // conversation of the same name is another conversation.
    let ok = serde_json::json!({"allow": ["pypi.org"],
        "inject": [{"host": "mcp.example.com", "headers": {"Authorization": "Bearer t0k"}}]});
    let r = plane
        .put("/v1/conversations/p/egress", TOKEN_GLOBEX)
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mine: serde_json::Value = plane
        .get("/v1/conversations/p/egress", TOKEN_GLOBEX)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["source"], "conversation");
    let theirs: serde_json::Value = plane
        .get("/v1/conversations/p/egress", TOKEN_ACME)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        theirs["source"], "default",
        "acme's `p` is another conversation"
    );
}
