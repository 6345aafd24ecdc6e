//! Load generator and loopback upstreams for `scripts/bench-proxy.sh`.
//!
//! ```text
//! bench upstream --http 127.0.0.1:P --source 127.0.0.1:Q   # run the upstreams
//! bench latency  --target 127.0.0.1:P [--proxy ADDR] --seconds 5
//! bench rps      --target 127.0.0.1:P [--proxy ADDR] --conns 16 --seconds 5
//! bench tunnel   --target 127.0.0.1:Q [--proxy ADDR] --seconds 5
//! ```
//!
//! Each measurement prints one JSON line. Requests are keep-alive HTTP/1.1 `GET`s
//! (absolute-form when a proxy is given); the tunnel test reads from a source server
//! that writes as fast as it can, directly or through `CONNECT`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a free loopback TCP port.
    FreePort,
    /// Serve a fixed 64-byte HTTP response and a byte source until killed.
    Upstream {
        #[arg(long)]
        http: SocketAddr,
        #[arg(long)]
        source: SocketAddr,
    },
    /// Sequential requests on one connection: latency percentiles.
    Latency {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        proxy: Option<SocketAddr>,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Concurrent keep-alive connections: requests per second.
    Rps {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        proxy: Option<SocketAddr>,
        #[arg(long, default_value_t = 16)]
        conns: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Download throughput from the source server, directly or via CONNECT.
    Tunnel {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        proxy: Option<SocketAddr>,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

const BODY: &[u8; 64] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";

fn main() {
    let args = Args::parse();
    match args.cmd {
        Cmd::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            println!("{}", l.local_addr().unwrap().port());
        }
        Cmd::Upstream { http, source } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(upstream(http, source));
        }
        cmd => {
            // The client uses one thread, whatever it measures.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let line = rt.block_on(async move {
                match cmd {
                    Cmd::Latency {
                        target,
                        proxy,
                        seconds,
                    } => latency(target, proxy, seconds).await,
                    Cmd::Rps {
                        target,
                        proxy,
                        conns,
                        seconds,
                    } => rps(target, proxy, conns, seconds).await,
                    Cmd::Tunnel {
                        target,
                        proxy,
                        seconds,
                    } => tunnel(target, proxy, seconds).await,
                    Cmd::Upstream { .. } | Cmd::FreePort => unreachable!(),
                }
            });
            println!("{line}");
        }
    }
}

async fn upstream(http: SocketAddr, source: SocketAddr) {
    let h = TcpListener::bind(http).await.unwrap();
    let s = TcpListener::bind(source).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = s.accept().await {
            let _ = c.set_nodelay(true);
            tokio::spawn(async move {
                let buf = vec![0x5au8; 256 * 1024];
                while c.write_all(&buf).await.is_ok() {}
            });
        }
    });
    while let Ok((c, _)) = h.accept().await {
        let _ = c.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(BODY))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(c), svc)
                .await;
        });
    }
}

fn request(target: SocketAddr, proxy: Option<SocketAddr>) -> Vec<u8> {
    let path = if proxy.is_some() {
        format!("http://{target}/")
    } else {
        "/".to_string()
    };
    format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
        .into_bytes()
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    req: Vec<u8>,
    addr: SocketAddr,
    /// The server said it will close (tinyproxy does not keep client connections).
    reconnect: bool,
    reconnects: u64,
}

impl Conn {
    async fn new(target: SocketAddr, proxy: Option<SocketAddr>) -> Conn {
        let addr = proxy.unwrap_or(target);
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).unwrap();
        Conn {
            s,
            buf: Vec::with_capacity(8192),
            req: request(target, proxy),
            addr,
            reconnect: false,
            reconnects: 0,
        }
    }

    async fn reopen(&mut self) {
        self.s = TcpStream::connect(self.addr).await.expect("reconnect");
        self.s.set_nodelay(true).unwrap();
        self.reconnect = false;
        self.reconnects += 1;
    }

    /// One request/response exchange. A server that closes idle keep-alive
    /// connections (tinyproxy closes after every response) costs a reconnect.
    async fn exchange(&mut self) {
        if self.reconnect {
            self.reopen().await;
        }
        if self.try_exchange().await {
            return;
        }
        self.reopen().await;
        assert!(
            self.try_exchange().await,
            "connection closed on a fresh connection"
        );
    }

    /// `false` when the connection turned out to be closed before any response byte.
    async fn try_exchange(&mut self) -> bool {
        if self.s.write_all(&self.req).await.is_err() {
            return false;
        }
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match self.s.read(&mut chunk).await {
                Ok(n) => n,
                Err(_) if self.buf.is_empty() => return false,
                Err(e) => panic!("read: {e}"),
            };
            if n == 0 {
                assert!(self.buf.is_empty(), "connection closed mid-response");
                return false;
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = resp.parse(&self.buf) {
                assert_eq!(resp.code, Some(200), "status");
                self.reconnect = resp.headers.iter().any(|h| {
                    (h.name.eq_ignore_ascii_case("connection")
                        || h.name.eq_ignore_ascii_case("proxy-connection"))
                        && h.value.eq_ignore_ascii_case(b"close")
                });
                let len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .expect("content-length");
                while self.buf.len() < head + len {
                    let n = self.s.read(&mut chunk).await.expect("read body");
                    assert!(n > 0);
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return true;
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

async fn latency(target: SocketAddr, proxy: Option<SocketAddr>, seconds: f64) -> String {
    let mut c = Conn::new(target, proxy).await;
    for _ in 0..200 {
        c.exchange().await; // warm-up
    }
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut samples = Vec::new();
    while Instant::now() < end {
        let t = Instant::now();
        c.exchange().await;
        samples.push(t.elapsed());
    }
    samples.sort();
    format!(
        "{{\"kind\":\"latency\",\"reconnects\":{},\"n\":{},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        c.reconnects,
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99)
    )
}

async fn rps(target: SocketAddr, proxy: Option<SocketAddr>, conns: usize, seconds: f64) -> String {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(target, proxy).await;
            let mut n = 0u64;
            while Instant::now() < end {
                c.exchange().await;
                n += 1;
            }
            (n, c.reconnects)
        }));
    }
    let (mut total, mut reconnects) = (0, 0);
    for t in tasks {
        let (n, r) = t.await.unwrap();
        total += n;
        reconnects += r;
    }
    let secs = start.elapsed().as_secs_f64();
    format!(
        "{{\"kind\":\"rps\",\"requests\":{total},\"reconnects\":{reconnects},\"rps\":{:.0}}}",
        total as f64 / secs
    )
}

async fn tunnel(target: SocketAddr, proxy: Option<SocketAddr>, seconds: f64) -> String {
    let mut s = TcpStream::connect(proxy.unwrap_or(target))
        .await
        .expect("connect");
    s.set_nodelay(true).unwrap();
    if proxy.is_some() {
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert!(s.read(&mut b).await.unwrap() > 0, "proxy closed");
            head.push(b[0]);
        }
        let line = String::from_utf8_lossy(&head);
        assert!(
            line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200"),
            "{line}"
        );
    }
    let mut buf = vec![0u8; 256 * 1024];
    // Warm-up.
    let warm = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warm {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "source closed");
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut total = 0u64;
    while Instant::now() < end {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        total += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    format!(
        "{{\"kind\":\"tunnel\",\"bytes\":{total},\"mib_s\":{:.1}}}",
        total as f64 / secs / (1024.0 * 1024.0)
    )
}
