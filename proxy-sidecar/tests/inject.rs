//! Credential injection for MCP hosts: the header reaches the configured host only,
//! always over TLS, never over plaintext, and is never logged.

mod common;

use common::*;

const SECRET: &str = "Bearer mcp-secret-7f3a9c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_reaches_only_the_configured_host_over_tls() {
    let ca = TestCa::new();
    let mcp = spawn_upstream(Some(ca.server_config(&["mcp.test"])), echo_handler()).await;
    let mcp_port = spawn_upstream(Some(ca.server_config(&["mcp2.test"])), echo_handler()).await;
    let other_plain = spawn_upstream(None, echo_handler()).await;
    let cfg: proxy_sidecar::PolicyConfig = toml::from_str(&format!(
        r#"
        allow = [{{ host = "other.test", allow_private = true }}]
        [[inject]]
        host = "mcp.test"
        headers = {{ Authorization = "{SECRET}", "X-Team" = "blue" }}
        allow_private = true
        [[inject]]
        host = "mcp2.test:8443"
        headers = {{ "X-Api-Key" = {{ env = "TEST_MCP2_TOKEN" }} }}
        allow_private = true
        "#
    ))
    .unwrap();
    let env = |name: &str| (name == "TEST_MCP2_TOKEN").then(|| "token-from-env-55".to_string());
    let p = proxy_sidecar::Policy::from_config_with_env(&cfg, &env).unwrap();
    let (m, m2, op) = (mcp.addr, mcp_port.addr, other_plain.addr);
    let pem = ca.pem.clone();
    let mut tp = start_proxy(
        move |c, _| {
            c.tls.extra_ca_pem = vec![pem];
            c.test_resolve_overrides.insert("mcp.test".into(), m);
            c.test_resolve_overrides.insert("mcp2.test".into(), m2);
            c.test_resolve_overrides.insert("other.test".into(), op);
        },
        p,
        None,
    )
    .await;

    // The client speaks plain HTTP and tries to supply its own Authorization.
    let r = raw(
        tp.addr,
        b"GET http://mcp.test/sse?session=abc HTTP/1.1\r\nHost: mcp.test\r\nAuthorization: Bearer client-made-up\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = echo_json(&r);
    assert_eq!(
        j["tls"], true,
        "the injected host is always reached over TLS"
    );
    assert_eq!(j["sni"], "mcp.test");
    assert_eq!(j["headers"]["authorization"], serde_json::json!([SECRET]));
    assert_eq!(j["headers"]["x-team"], serde_json::json!(["blue"]));
    assert_eq!(j["headers"]["host"], serde_json::json!(["mcp.test"]));
    assert_eq!(j["target"], "/sse?session=abc");

    // Explicit upstream port and a value from the environment.
    let r = raw(
        tp.addr,
        b"POST http://mcp2.test:8443/rpc HTTP/1.1\r\nHost: mcp2.test:8443\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    let j = echo_json(&r);
    assert_eq!(j["tls"], true);
    assert_eq!(
        j["headers"]["x-api-key"],
        serde_json::json!(["token-from-env-55"])
    );
    assert!(j["headers"].get("authorization").is_none());
    assert_eq!(j["body_len"], 2);

    // Another allowed host gets nothing injected, via plain HTTP...
    let r = get_via(tp.addr, "http://other.test/x", "other.test").await;
    let j = echo_json(&r);
    assert_eq!(j["tls"], false);
    assert!(j["headers"].get("authorization").is_none(), "{j}");
    assert!(j["headers"].get("x-team").is_none());
    assert!(j["headers"].get("x-api-key").is_none());

    // ...and a host that merely shares a suffix or differs in port is not injected.
    let r = get_via(tp.addr, "http://mcp.test:8080/", "mcp.test:8080").await;
    assert_eq!((r.status, r.reason()), (403, Some("port_not_allowed")));
    let r = get_via(tp.addr, "http://x.mcp.test/", "x.mcp.test").await;
    assert_eq!((r.status, r.reason()), (403, Some("host_not_allowed")));

    // Upstreams that are not the configured host never saw the secret.
    for rec in other_plain
        .recorded()
        .iter()
        .chain(mcp_port.recorded().iter())
    {
        for (_, v) in rec.headers.iter() {
            assert!(
                !v.as_bytes().windows(10).any(|w| w == b"mcp-secret"),
                "{rec:?}"
            );
        }
    }
    // Exactly one Authorization header, the injected one.
    let rec = &mcp.recorded()[0];
    assert_eq!(rec.headers.get_all("authorization").iter().count(), 1);

    // Nothing secret in audit records or metrics.
    let audit = tp.drain_audit();
    assert!(audit
        .iter()
        .any(|a| a.mode == "inject" && a.host.as_deref() == Some("mcp.test")));
    for a in &audit {
        let line = a.to_json_line();
        assert!(
            !line.contains("mcp-secret") && !line.contains("token-from-env"),
            "{line}"
        );
        assert!(!line.contains("session=abc"), "query logged: {line}");
    }
    let text = scrape(&tp);
    // The two injected requests and the plain one were handed upstream: overhead
    // samples by mode; the refusals have none.
    assert_eq!(overhead(&text, "inject").0, 2, "{text}");
    assert_eq!(overhead(&text, "forward").0, 1, "{text}");
    assert!(!text.contains("mcp-secret"));
    // Debug output of the policy does not show values either.
    let dbg = format!("{:?}", tp.handle.as_ref().unwrap().policy());
    assert!(
        !dbg.contains("mcp-secret") && !dbg.contains("token-from-env"),
        "{dbg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_host_with_a_bad_certificate_is_refused() {
    // The upstream presents a certificate for a different name: the TLS handshake
    // fails and the header is never sent.
    let ca = TestCa::new();
    let wrong = spawn_upstream(Some(ca.server_config(&["not-mcp.test"])), echo_handler()).await;
    let untrusted_ca = TestCa::new();
    let untrusted = spawn_upstream(
        Some(untrusted_ca.server_config(&["mcp3.test"])),
        echo_handler(),
    )
    .await;
    let p = policy(&format!(
        r#"
        [[inject]]
        host = "mcp.test"
        headers = {{ Authorization = "{SECRET}" }}
        allow_private = true
        [[inject]]
        host = "mcp3.test"
        headers = {{ Authorization = "{SECRET}" }}
        allow_private = true
        "#
    ));
    let (w, u) = (wrong.addr, untrusted.addr);
    let pem = ca.pem.clone();
    let tp = start_proxy(
        move |c, _| {
            c.tls.extra_ca_pem = vec![pem];
            c.test_resolve_overrides.insert("mcp.test".into(), w);
            c.test_resolve_overrides.insert("mcp3.test".into(), u);
        },
        p,
        None,
    )
    .await;
    let r = get_via(tp.addr, "http://mcp.test/", "mcp.test").await;
    assert_eq!((r.status, r.reason()), (502, Some("tls_failed")));
    let r = get_via(tp.addr, "http://mcp3.test/", "mcp3.test").await;
    assert_eq!((r.status, r.reason()), (502, Some("tls_failed")));
    assert!(wrong.recorded().is_empty());
    assert!(untrusted.recorded().is_empty());
}
