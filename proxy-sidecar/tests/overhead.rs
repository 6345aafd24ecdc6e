//! The latency SLO measures the proxy, not the upstream: a streaming response or a
//! long tunnel is long in `workspace_proxy_exchange_duration_seconds` and short in
//! `workspace_proxy_request_duration_seconds` (the proxy's own overhead, which
//! ProxyLatencyHigh watches), and a request refused before any upstream was reached
//! adds no overhead sample for a dial that never happened.
//!
//! No wall-clock thresholds: the upstream (or the client) waits [`HOLD`] only after
//! the proxy has handed the request over (or established the tunnel), so the whole
//! exchange is at least [`HOLD`] longer than the overhead however slow the machine is.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use proxy_sidecar::AuditRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOLD: Duration = Duration::from_secs(2);

/// Upstream answering at once with a first chunk, and ending the body [`HOLD`] later
/// (a streaming model call in miniature).
fn slow_body_handler() -> Handler {
    Arc::new(|_r: &Recorded| {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"first ")).await;
            tokio::time::sleep(HOLD).await;
            let _ = tx.send(Bytes::from_static(b"last")).await;
        });
        let stream =
            futures_util::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), |b| {
                Ok::<_, std::io::Error>(hyper::body::Frame::data(b))
            });
        Response::new(StreamBody::new(stream).boxed())
    })
}

/// The next audit record; it is emitted after the request's metrics, so once it
/// is here they are too.
async fn next_audit(tp: &mut TestProxy) -> AuditRecord {
    tokio::time::timeout(Duration::from_secs(20), tp.audit.recv())
        .await
        .expect("audit record in time")
        .expect("audit channel open")
}

/// Whole exchange minus overhead, in seconds, must cover the hold (1 ms of slack
/// for float rounding only).
fn assert_hold_outside_overhead(total: f64, overhead: f64) {
    assert!(
        total - overhead >= HOLD.as_secs_f64() - 0.001,
        "the {HOLD:?} upstream hold must be in the exchange ({total} s) and not in the overhead ({overhead} s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_streaming_response_is_exchange_time_not_proxy_overhead() {
    let upstream = spawn_upstream(None, slow_body_handler()).await;
    let dead = closed_port().await;
    let mut tp = start_proxy(
        |c, _| {
            c.test_resolve_overrides
                .insert("slow.test".into(), upstream.addr);
            c.test_resolve_overrides.insert("dead.test".into(), dead);
        },
        policy(
            r#"allow = [{ host = "slow.test", allow_private = true },
                        { host = "dead.test", allow_private = true }]"#,
        ),
        None,
    )
    .await;

    let r = get_via(tp.addr, "http://slow.test/stream", "slow.test").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "first last");
    let a = next_audit(&mut tp).await;
    assert_eq!(a.decision, "allowed");

    let m = &scrape(&tp);
    let (overhead_n, overhead_s) = overhead(m, "forward");
    let (total_n, total_s) = exchange(m, "forward", "allowed");
    assert_eq!(
        (overhead_n, total_n),
        (1, 1),
        "one sample in each histogram"
    );
    assert!(total_s >= HOLD.as_secs_f64(), "total {total_s} s");
    assert_hold_outside_overhead(total_s, overhead_s);
    let overhead_ms = a.overhead_ms.expect("audit line carries the overhead");
    assert!(
        overhead_ms <= a.total_ms - HOLD.as_millis() as f64 + 1.0,
        "{a:?}"
    );

    // Blocked by policy: no upstream, no overhead sample; the refusal is an exchange.
    let r = get_via(tp.addr, "http://unlisted.test/", "unlisted.test").await;
    assert_eq!(r.status, 403);
    let a = next_audit(&mut tp).await;
    assert_eq!((a.decision.as_str(), a.overhead_ms), ("blocked", None));
    // Allowed, but the dial fails: nothing was handed upstream either.
    let r = get_via(tp.addr, "http://dead.test/", "dead.test").await;
    assert_eq!(r.reason(), Some("connect_failed"));
    let a = next_audit(&mut tp).await;
    assert_eq!((a.decision.as_str(), a.overhead_ms), ("error", None));

    let m = &scrape(&tp);
    assert_eq!(
        overhead(m, "forward").0,
        1,
        "refusals add no overhead sample"
    );
    assert_eq!(exchange(m, "forward", "blocked").0, 1);
    assert_eq!(exchange(m, "forward", "error").0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_tunnel_is_exchange_time_not_proxy_overhead() {
    let (echo, _e) = spawn_tcp_echo().await;
    let port = echo.port();
    let mut tp = start_proxy(
        |c, _| {
            c.test_resolve_overrides.insert("echo.test".into(), echo);
        },
        policy(&format!(
            r#"allow = [{{ host = "echo.test:{port}", allow_private = true }}]"#
        )),
        None,
    )
    .await;

    let (r, mut tunnel) = connect_via(tp.addr, &format!("echo.test:{port}")).await;
    assert_eq!(r.status, 200);
    // The overhead is known as soon as the tunnel is up, long before it closes.
    let m = &scrape(&tp);
    assert_eq!(overhead(m, "connect").0, 1);
    assert_eq!(exchange(m, "connect", "allowed").0, 0);

    tunnel.write_all(b"ping").await.unwrap();
    tokio::time::sleep(HOLD).await;
    tunnel.shutdown().await.unwrap();
    let mut echoed = Vec::new();
    tunnel.read_to_end(&mut echoed).await.unwrap();
    assert_eq!(echoed, b"pingbye");
    let a = next_audit(&mut tp).await;
    assert_eq!(a.mode, "connect");

    let m = &scrape(&tp);
    let (overhead_n, overhead_s) = overhead(m, "connect");
    let (total_n, total_s) = exchange(m, "connect", "allowed");
    assert_eq!((overhead_n, total_n), (1, 1));
    assert_hold_outside_overhead(total_s, overhead_s);
    assert!(a.overhead_ms.is_some(), "{a:?}");

    // A tunnel refused by policy dials nothing and adds no overhead sample.
    let (r, _) = connect_via(tp.addr, "unlisted.test:443").await;
    assert_eq!(r.status, 403);
    let a = next_audit(&mut tp).await;
    assert_eq!(a.overhead_ms, None);
    let m = &scrape(&tp);
    assert_eq!(overhead(m, "connect").0, 1);
    assert_eq!(exchange(m, "connect", "blocked").0, 1);
}
