//! Bedrock gateway: SigV4 signatures verified by an independent implementation in the
//! upstream, client credentials stripped, streaming responses relayed chunk by chunk,
//! credentials refreshed before they expire, and client-signed requests refused.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use bytes::Bytes;
use common::sigv4ref::{secret_for, verify_sigv4};
use common::*;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";

/// Upstream handler: verify, then answer JSON with the verdict. Paths ending in
/// `-stream` answer with a body fed by the test through `stream_slot`.
type StreamSlot = Arc<Mutex<Option<tokio::sync::mpsc::Sender<Bytes>>>>;

fn bedrock_handler(stream_slot: StreamSlot) -> Handler {
    Arc::new(move |r: &Recorded| {
        let verdict = verify_sigv4(r);
        if r.target.contains("-stream") {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
            *stream_slot.lock().unwrap() = Some(tx);
            let stream = futures_util::StreamExt::map(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                |b| Ok::<_, std::io::Error>(hyper::body::Frame::data(b)),
            );
            return Response::builder()
                .header("content-type", "application/vnd.amazon.eventstream")
                .body(StreamBody::new(stream).boxed())
                .unwrap();
        }
        let leaked: Vec<&str> = [
            "proxy-authorization",
            "x-hop",
            "x-amz-client-extra",
            "connection",
            "cookie",
        ]
        .into_iter()
        .filter(|h| r.headers.contains_key(*h))
        .collect();
        let j = serde_json::json!({
            "valid": verdict.is_ok(),
            "error": verdict.as_ref().err(),
            "akid": verdict.as_ref().ok(),
            "target": r.target,
            "token": r.headers.get("x-amz-security-token").map(|v| v.to_str().unwrap().to_string()),
            "amz_date": r.headers.get("x-amz-date").map(|v| v.to_str().unwrap().to_string()),
            "auth_count": r.headers.get_all("authorization").iter().count(),
            "host": r.headers.get("host").map(|v| v.to_str().unwrap().to_string()),
            "leaked": leaked,
            "anthropic_version": r.headers.get("anthropic-beta").map(|v| v.to_str().unwrap().to_string()),
            "tls": r.tls,
            "sni": r.sni,
        });
        Response::builder()
            .header("content-type", "application/json")
            .body(body(j.to_string()))
            .unwrap()
    })
}

struct Setup {
    tp: TestProxy,
    upstream: Upstream,
    stream_slot: StreamSlot,
    _ca: TestCa,
}

async fn setup(
    credentials: SharedCredentialsProvider,
    configure: impl FnOnce(&mut proxy_sidecar::ProxyConfig),
) -> Setup {
    let ca = TestCa::new();
    let stream_slot: StreamSlot = Arc::new(Mutex::new(None));
    let upstream = spawn_upstream(
        Some(ca.server_config(&[HOST])),
        bedrock_handler(stream_slot.clone()),
    )
    .await;
    let up = upstream.addr;
    let pem = ca.pem.clone();
    let p = policy(
        r#"
        [bedrock]
        enabled = true
        region = "us-east-1"
        allow_private = true
        "#,
    );
    let tp = start_proxy(
        move |c, _| {
            c.tls.webpki_roots = false;
            c.tls.extra_ca_pem = vec![pem];
            c.test_resolve_overrides.insert(HOST.into(), up);
            configure(c);
        },
        p,
        Some(credentials),
    )
    .await;
    Setup {
        tp,
        upstream,
        stream_slot,
        _ca: ca,
    }
}

fn invoke(path: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nanthropic-beta: tools-2024\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const CLIENT_JUNK: &str = "Authorization: AWS4-HMAC-SHA256 Credential=CLIENTKEY/19990101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00\r\n\
    X-Amz-Date: 19990101T000000Z\r\nX-Amz-Security-Token: client-token\r\nX-Amz-Client-Extra: 1\r\n\
    Proxy-Authorization: Basic Zm9vOmJhcg==\r\nConnection: X-Hop\r\nX-Hop: 1\r\nCookie: a=b\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_for_colon_and_percent_paths() {
    let creds = SharedCredentialsProvider::new(Credentials::new(
        "AKIDPROXY",
        secret_for("AKIDPROXY"),
        Some("proxy-session-token".into()),
        None,
        "test",
    ));
    let mut s = setup(creds, |_| {}).await;
    let paths = [
        "/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",
        "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke",
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0/converse",
        "/model/us.anthropic.claude-3-7-sonnet-20250219-v1:0/count-tokens",
    ];
    for path in paths {
        let r = raw(s.tp.addr, &invoke(path, CLIENT_JUNK, r#"{"messages":[]}"#)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let j = echo_json(&r);
        assert_eq!(j["valid"], true, "{path}: {}", j["error"]);
        assert_eq!(j["target"], path, "path bytes forwarded exactly");
        assert_eq!(j["akid"], "AKIDPROXY");
        assert_eq!(j["token"], "proxy-session-token");
        assert_ne!(j["amz_date"], "19990101T000000Z");
        assert_eq!(j["auth_count"], 1);
        assert_eq!(j["host"], HOST);
        assert_eq!(j["leaked"], serde_json::json!([]), "{path}");
        assert_eq!(
            j["anthropic_version"], "tools-2024",
            "unsigned headers still forwarded"
        );
        assert_eq!(j["tls"], true);
        assert_eq!(j["sni"], HOST);
    }
    // The upstream's own view: the signature covers the body actually received.
    let recs = s.upstream.recorded();
    assert_eq!(recs.len(), paths.len());
    assert!(recs
        .iter()
        .all(|r| r.body.as_ref() == br#"{"messages":[]}"#));
    // Pooling: all requests went over one upstream TLS connection.
    assert_eq!(s.upstream.connections.load(Ordering::SeqCst), 1);
    let audit = s.tp.drain_audit();
    assert_eq!(audit.len(), paths.len());
    for a in audit {
        assert_eq!(a.mode, "gateway");
        assert_eq!(a.host.as_deref(), Some(HOST));
        let line = a.to_json_line();
        assert!(
            !line.contains("proxy-session-token") && !line.contains("secret-for"),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_response_arrives_before_upstream_finishes() {
    let creds = SharedCredentialsProvider::new(Credentials::new(
        "AKIDPROXY",
        secret_for("AKIDPROXY"),
        None,
        None,
        "test",
    ));
    let s = setup(creds, |_| {}).await;
    let mut client = TcpStream::connect(s.tp.addr).await.unwrap();
    client
        .write_all(&invoke(
            "/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke-with-response-stream",
            "",
            "{}",
        ))
        .await
        .unwrap();
    let head = read_response(&mut client, true).await.unwrap();
    assert_eq!(head.status, 200);
    // The proxy's overhead (body read, signing, dial, TLS) is known once the request
    // is handed over; the streaming exchange has not ended and has no sample yet.
    let m = &scrape(&s.tp);
    assert_eq!(overhead(m, "gateway").0, 1, "{m}");
    assert_eq!(exchange(m, "gateway", "allowed").0, 0, "{m}");
    let tx = s
        .stream_slot
        .lock()
        .unwrap()
        .clone()
        .expect("upstream got the request");
    for i in 0..3 {
        let msg = format!("event-{i}");
        tx.send(Bytes::from(msg.clone())).await.unwrap();
        // The chunk must reach the client while the upstream is still open.
        let chunk = tokio::time::timeout(Duration::from_secs(5), read_chunk(&mut client))
            .await
            .expect("chunk relayed before the upstream finished")
            .unwrap()
            .unwrap();
        assert_eq!(chunk, msg.as_bytes());
    }
    drop(tx);
    *s.stream_slot.lock().unwrap() = None;
    let end = tokio::time::timeout(Duration::from_secs(5), read_chunk(&mut client))
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none());
    let rec = &s.upstream.recorded()[0];
    assert!(verify_sigv4(rec).is_ok());
}

/// Credentials that expire in two minutes (inside the refresh window), with a new
/// key each time.
#[derive(Debug, Default)]
struct Rotating {
    calls: Arc<AtomicU64>,
}

impl ProvideCredentials for Rotating {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let akid = format!("AKIDROT{n}");
        future::ProvideCredentials::ready(Ok(Credentials::new(
            akid.clone(),
            secret_for(&akid),
            Some(format!("token-{n}")),
            Some(SystemTime::now() + Duration::from_secs(120)),
            "rotating",
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_refreshed_before_expiry() {
    let rot = Rotating::default();
    let calls = rot.calls.clone();
    let s = setup(SharedCredentialsProvider::new(rot), |_| {}).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = raw(s.tp.addr, &invoke("/model/m:0/invoke", "", "{}")).await;
        let j = echo_json(&r);
        assert_eq!(j["valid"], true, "{}", j["error"]);
        seen.push(j["akid"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["AKIDROT1", "AKIDROT2", "AKIDROT3"]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lived_credentials_are_cached() {
    #[derive(Debug, Default)]
    struct Counting(Arc<AtomicU64>);
    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.fetch_add(1, Ordering::SeqCst);
            future::ProvideCredentials::ready(Ok(Credentials::new(
                "AKIDLONG",
                secret_for("AKIDLONG"),
                None,
                Some(SystemTime::now() + Duration::from_secs(3600)),
                "counting",
            )))
        }
    }
    let c = Counting::default();
    let calls = c.0.clone();
    let s = setup(SharedCredentialsProvider::new(c), |_| {}).await;
    for _ in 0..3 {
        let r = raw(s.tp.addr, &invoke("/model/m:0/invoke", "", "{}")).await;
        assert_eq!(echo_json(&r)["valid"], true);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_signed_and_malformed_gateway_requests_are_refused() {
    let creds = SharedCredentialsProvider::new(Credentials::new("A", "B", None, None, "t"));
    let s = setup(creds, |c| c.limits.max_gateway_body_bytes = 1024).await;
    let p = "/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke";
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (
            "presigned query".into(),
            invoke(&format!("{p}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=K%2F2024&X-Amz-Signature=ab"), "", "{}"),
            400,
            "presigned_request",
        ),
        (
            "presigned, lowercase".into(),
            invoke(&format!("{p}?x-amz-signature=ab"), "", "{}"),
            400,
            "presigned_request",
        ),
        (
            "streaming-signed payload".into(),
            invoke(p, "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n", "{}"),
            400,
            "streaming_signed_request",
        ),
        (
            "streaming unsigned trailer".into(),
            invoke(p, "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n", "{}"),
            400,
            "streaming_signed_request",
        ),
        (
            "aws-chunked encoding".into(),
            invoke(p, "Content-Encoding: aws-chunked\r\n", "{}"),
            400,
            "streaming_signed_request",
        ),
        (
            "SigV4A authorization".into(),
            invoke(p, "Authorization: AWS4-ECDSA-P256-SHA256 Credential=x, SignedHeaders=host, Signature=00\r\n", "{}"),
            400,
            "sigv4a_request",
        ),
        (
            "SigV4A region set".into(),
            invoke(p, "X-Amz-Region-Set: *\r\n", "{}"),
            400,
            "sigv4a_request",
        ),
        (
            "SigV4A presigned".into(),
            invoke(&format!("{p}?X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256"), "", "{}"),
            400,
            "sigv4a_request",
        ),
        (
            "GET".into(),
            format!("GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes(),
            405,
            "gateway_method_not_allowed",
        ),
        (
            "not a runtime path".into(),
            invoke("/foundation-models", "", "{}"),
            403,
            "gateway_path_not_allowed",
        ),
        (
            "dot-dot model".into(),
            invoke("/model/../invoke", "", "{}"),
            403,
            "gateway_path_not_allowed",
        ),
        (
            "declared body too large".into(),
            invoke(p, "", &"x".repeat(2048)),
            413,
            "body_too_large",
        ),
        (
            "chunked body too large".into(),
            format!(
                "POST {p} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
                "y".repeat(2048)
            )
            .into_bytes(),
            413,
            "body_too_large",
        ),
    ];
    let mut failures = Vec::new();
    for (name, req, status, reason) in &cases {
        let r = raw(s.tp.addr, req).await;
        if r.status != *status || r.reason() != Some(*reason) {
            failures.push(format!(
                "{name}: got {} {:?}, want {status} {reason}",
                r.status,
                r.reason()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(s.upstream.recorded().is_empty(), "nothing reached Bedrock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_fail_closed() {
    #[derive(Debug)]
    struct None_;
    impl ProvideCredentials for None_ {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded("no source"),
            ))
        }
    }
    let s = setup(SharedCredentialsProvider::new(None_), |_| {}).await;
    let r = raw(s.tp.addr, &invoke("/model/m:0/invoke", CLIENT_JUNK, "{}")).await;
    assert_eq!(
        (r.status, r.reason()),
        (502, Some("credentials_unavailable"))
    );
    assert!(s.upstream.recorded().is_empty());
}
