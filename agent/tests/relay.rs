//! The TCP relay against a real Unix-socket echo server: bytes both ways with
//! half-close, and a clean 503 when the proxy socket is absent or refuses.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use agent::config::RelayListen;
use common::TestAgent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};

const GUARD: Duration = Duration::from_secs(30);

async fn relay_agent(proxy_socket: PathBuf) -> TestAgent {
    TestAgent::start_with(move |c| {
        c.relay_listen = RelayListen::On("127.0.0.1:0".parse().unwrap());
        c.proxy_socket = proxy_socket;
    })
    .await
}

/// An echo server on a Unix socket: echoes until EOF, then closes.
fn echo_server(path: &std::path::Path) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_bytes_both_ways_with_half_close() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("proxy.sock");
    let server = echo_server(&sock);
    let a = relay_agent(sock).await;
    let addr = a.relay_addr.expect("relay bound");
    assert!(addr.ip().is_loopback());

    let mut c = TcpStream::connect(addr).await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let (mut r, mut w) = c.split();
    let writer = async {
        w.write_all(&payload).await.unwrap();
        w.shutdown().await.unwrap(); // half-close: the echo only ends after this
    };
    let reader = async {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        got
    };
    let (_, got) = tokio::time::timeout(GUARD, async { tokio::join!(writer, reader) })
        .await
        .expect("relay hung");
    assert_eq!(got.len(), payload.len());
    assert!(got == payload);

    // Several connections at once.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&[i; 10]).await.unwrap();
            c.shutdown().await.unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, vec![i; 10]);
        }));
    }
    for t in tasks {
        tokio::time::timeout(GUARD, t).await.unwrap().unwrap();
    }
    server.abort();
}

async fn expect_503(addr: std::net::SocketAddr) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(GUARD, c.read_to_end(&mut got))
        .await
        .expect("refusal must close, not hang")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.contains("Connection: close"), "{text}");
    assert!(text.ends_with("\r\n\r\negress proxy unavailable"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_or_refusing_proxy_socket_gives_503() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("proxy.sock");
    let a = relay_agent(sock.clone()).await;
    let addr = a.relay_addr.unwrap();
    expect_503(addr).await;
    expect_503(addr).await;

    // A stale socket file nobody listens on: ECONNREFUSED, same answer.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    expect_503(addr).await;

    // Once the proxy appears, the same relay works.
    std::fs::remove_file(&sock).unwrap();
    let server = echo_server(&sock);
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"ping").await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(GUARD, c.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"ping");
    server.abort();
}
