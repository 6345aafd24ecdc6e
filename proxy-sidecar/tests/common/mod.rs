//! Test harness: a test CA, local HTTP(S) upstreams that record what they receive, a
//! fake DNS server, a raw HTTP/1.1 client, and helpers to start a proxy.
#![allow(dead_code)]

pub mod sigv4ref;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use proxy_sidecar::{
    AuditRecord, AuditSink, ListenerContext, Policy, PolicyConfig, Proxy, ProxyConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::UnboundedReceiver;

// ------------------------------------------------------------------ TLS

/// A throw-away CA that signs leaf certificates for test upstreams (the one of
/// `bedrock-standin`, which the control plane's Claude Code tests also use).
pub struct TestCa {
    pub pem: String,
    ca: bedrock_standin::TestCa,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca = bedrock_standin::TestCa::new().expect("test CA");
        TestCa {
            pem: ca.pem().to_string(),
            ca,
        }
    }

    /// A rustls server config with a leaf certificate for `names`.
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        self.ca.server_config(names).expect("leaf certificate")
    }

    /// Write the CA certificate to `dir/ca.pem`.
    pub fn write_pem(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.pem).unwrap();
        p
    }
}

// ------------------------------------------------------------------ upstreams

pub type TestBody = BoxBody<Bytes, std::io::Error>;

/// A request as an upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub tls: bool,
    pub sni: Option<String>,
    pub conn: u64,
}

pub type Handler = Arc<dyn Fn(&Recorded) -> Response<TestBody> + Send + Sync>;

pub fn body(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// Default handler: 200 with a JSON description of the request.
pub fn echo_handler() -> Handler {
    Arc::new(|r: &Recorded| {
        let mut headers: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in &r.headers {
            headers
                .entry(k.as_str().to_string())
                .or_default()
                .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
        let j = serde_json::json!({
            "method": r.method,
            "target": r.target,
            "headers": headers,
            "body_len": r.body.len(),
            "tls": r.tls,
            "sni": r.sni,
        });
        Response::builder()
            .header("content-type", "application/json")
            .body(body(j.to_string()))
            .unwrap()
    })
}

/// A local HTTP or HTTPS server recording every request.
pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    pub connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

pub async fn spawn_upstream(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicU64::new(0));
    let (reqs, conns) = (requests.clone(), connections.clone());
    let task = tokio::spawn(async move {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let conn_id = conns.fetch_add(1, Ordering::SeqCst) + 1;
            let handler = handler.clone();
            let reqs = reqs.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(acc) => {
                        let Ok(tls) = acc.accept(stream).await else {
                            return;
                        };
                        let sni = tls.get_ref().1.server_name().map(String::from);
                        serve_one(tls, true, sni, conn_id, handler, reqs).await
                    }
                    None => serve_one(stream, false, None, conn_id, handler, reqs).await,
                }
            });
        }
    });
    Upstream {
        addr,
        requests,
        connections,
        task,
    }
}

async fn serve_one<S>(
    io: S,
    tls: bool,
    sni: Option<String>,
    conn: u64,
    handler: Handler,
    reqs: Arc<Mutex<Vec<Recorded>>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        let reqs = reqs.clone();
        let sni = sni.clone();
        async move {
            let (parts, b) = req.into_parts();
            let body = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let rec = Recorded {
                method: parts.method.to_string(),
                target: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
                headers: parts.headers,
                body,
                tls,
                sni,
                conn,
            };
            reqs.lock().unwrap().push(rec.clone());
            Ok::<_, Infallible>(handler(&rec))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// A TCP server that accepts and never answers (upstream timeout tests).
pub async fn spawn_silent() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

/// A TCP echo server: echoes bytes; on EOF from the client writes `bye` and closes.
pub async fn spawn_tcp_echo() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = s.write_all(b"bye").await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// An address on which nothing listens.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

// ------------------------------------------------------------------ DNS

/// A UDP DNS server: A answers from `answers`, NXDOMAIN for other names, and no
/// answer at all for names starting with `slow`.
pub async fn spawn_dns(
    answers: HashMap<String, std::net::Ipv4Addr>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let (addr, task, _) = spawn_dns_counting(answers).await;
    (addr, task)
}

/// [`spawn_dns`] plus a count of A queries received.
pub async fn spawn_dns_counting(
    answers: HashMap<String, std::net::Ipv4Addr>,
) -> (SocketAddr, tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            // Count A queries (the NODATA answers for AAAA carry no SOA, so a
            // resolver cannot cache them).
            if dns_qtype(&buf[..n]) == Some(1) {
                c.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(resp) = dns_answer(&buf[..n], &answers) {
                let _ = sock.send_to(&resp, peer).await;
            }
        }
    });
    (addr, task, count)
}

fn dns_qtype(q: &[u8]) -> Option<u16> {
    let mut i = 12;
    while *q.get(i)? != 0 {
        i += 1 + *q.get(i)? as usize;
    }
    Some(u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]))
}

fn dns_answer(q: &[u8], answers: &HashMap<String, std::net::Ipv4Addr>) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    while i < q.len() && q[i] != 0 {
        let l = q[i] as usize;
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + l)?).to_ascii_lowercase());
        i += 1 + l;
    }
    let qend = i + 5; // zero byte + qtype + qclass
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let name = labels.join(".");
    if name.starts_with("slow") {
        return None;
    }
    let mut r = Vec::new();
    r.extend_from_slice(&q[0..2]);
    let known = answers.get(&name);
    let rcode = if known.is_some() { 0 } else { 3 };
    r.extend_from_slice(&[0x81, 0x80 | rcode]);
    r.extend_from_slice(&[0, 1]);
    let answer = known.filter(|_| qtype == 1);
    r.extend_from_slice(&[0, answer.is_some() as u8, 0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..qend)?);
    if let Some(ip) = answer {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}

// ------------------------------------------------------------------ raw client

/// A parsed response head plus body (by content-length or until close).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn reason(&self) -> Option<&str> {
        self.header("x-proxy-reason")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Read one response head from `s`; for non-CONNECT responses also read the body
/// (content-length or chunked). Bytes after it stay unread.
pub async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    head_only: bool,
) -> std::io::Result<RawResponse> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {} bytes: {:?}",
                    buf.len(),
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.push(byte[0]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&buf)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let status = resp.code.unwrap_or(0);
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut out = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(out);
    }
    if let Some(len) = out
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await?;
        out.body = body;
    } else if out
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        out.body = read_chunked(s).await?;
    }
    Ok(out)
}

async fn read_line<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if s.read(&mut b).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(b[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Read one chunk of a chunked body; `None` at the last chunk.
pub async fn read_chunk<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let size_line = read_line(s).await?;
    let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if size == 0 {
        // trailers until empty line
        loop {
            if read_line(s).await?.is_empty() {
                return Ok(None);
            }
        }
    }
    let mut data = vec![0u8; size + 2];
    s.read_exact(&mut data).await?;
    data.truncate(size);
    Ok(Some(data))
}

async fn read_chunked<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(c) = read_chunk(s).await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// Send raw bytes on a new connection and read one response.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let head_only = request.starts_with(b"CONNECT");
    tokio::time::timeout(Duration::from_secs(20), read_response(&mut s, head_only))
        .await
        .expect("response in time")
        .unwrap_or_else(|e| {
            panic!(
                "reading response to {:?}: {e}",
                String::from_utf8_lossy(&request[..request.len().min(200)])
            )
        })
}

/// `GET <url>` through the proxy, absolute-form.
pub async fn get_via(proxy: SocketAddr, url: &str, host_header: &str) -> RawResponse {
    raw(
        proxy,
        format!("GET {url} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
}

/// `CONNECT <authority>` through the proxy; returns the response and the stream.
pub async fn connect_via(proxy: SocketAddr, authority: &str) -> (RawResponse, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let r = read_response(&mut s, true).await.unwrap();
    (r, s)
}

// ------------------------------------------------------------------ proxy

pub fn policy(toml_text: &str) -> Policy {
    let cfg: PolicyConfig = toml::from_str(toml_text).unwrap();
    Policy::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"))
}

pub fn ctx(ws: &str) -> ListenerContext {
    ListenerContext {
        workspace_id: ws.into(),
        conversation_id: format!("conv-{ws}"),
        tenant_id: "tenant-1".into(),
    }
}

/// A proxy on a TCP port with an audit channel.
pub struct TestProxy {
    pub proxy: Proxy,
    pub handle: Option<proxy_sidecar::ListenerHandle>,
    pub addr: SocketAddr,
    pub audit: UnboundedReceiver<AuditRecord>,
}

impl TestProxy {
    /// Audit records emitted so far.
    pub fn drain_audit(&mut self) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        while let Ok(r) = self.audit.try_recv() {
            out.push(r);
        }
        out
    }
}

/// Start a proxy on 127.0.0.1:0. `configure` gets the bound address (for overrides
/// that point at the proxy itself).
pub async fn start_proxy(
    configure: impl FnOnce(&mut ProxyConfig, SocketAddr),
    policy: Policy,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = ProxyConfig::default();
    configure(&mut cfg, addr);
    let (sink, audit) = AuditSink::channel();
    let mut b = Proxy::builder(cfg).audit_sink(sink);
    if let Some(c) = credentials {
        b = b.credentials_provider(c);
    }
    let proxy = b.build().unwrap_or_else(|e| panic!("{e}"));
    let handle = proxy
        .serve_tcp_listener(listener, ctx("ws-test"), policy)
        .unwrap();
    TestProxy {
        proxy,
        handle: Some(handle),
        addr,
        audit,
    }
}

// ------------------------------------------------------------------ metrics

/// What Prometheus would scrape.
pub fn scrape(tp: &TestProxy) -> String {
    let mut reg = Registry::default();
    tp.proxy.register_metrics(&mut reg);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    text
}

/// (count, sum) of histogram `name` for the series `labels` (as encoded, e.g.
/// `mode="forward"`); (0, 0) when the series does not exist.
pub fn histogram(text: &str, name: &str, labels: &str) -> (u64, f64) {
    let value = |suffix: &str| {
        let key = format!("workspace_proxy_{name}_seconds_{suffix}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .map(|v| v.parse::<f64>().unwrap())
    };
    match (value("count"), value("sum")) {
        (Some(n), Some(s)) => (n as u64, s),
        _ => (0, 0.0),
    }
}

/// The proxy's own overhead for `mode`.
pub fn overhead(text: &str, mode: &str) -> (u64, f64) {
    histogram(text, "request_duration", &format!("mode=\"{mode}\""))
}

/// The whole exchange for `mode` and `decision`.
pub fn exchange(text: &str, mode: &str, decision: &str) -> (u64, f64) {
    histogram(
        text,
        "exchange_duration",
        &format!("mode=\"{mode}\",decision=\"{decision}\""),
    )
}

/// Parse the echo handler's JSON.
pub fn echo_json(r: &RawResponse) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not echo JSON ({e}): {}", r.text()))
}

pub fn status_of(s: StatusCode) -> u16 {
    s.as_u16()
}

/// Fail unless an external tool exists; with `PROXY_TESTS_SKIP_EXTERNAL=1` return false
/// instead (the caller then skips).
pub fn require_tool(cmd: &str, package: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var("PROXY_TESTS_SKIP_EXTERNAL").as_deref() == Ok("1") {
        eprintln!("SKIPPED: `{cmd}` not found (PROXY_TESTS_SKIP_EXTERNAL=1)");
        return false;
    }
    panic!(
        "`{cmd}` is required for this test: install the Debian/npm package `{package}` \
         (or set PROXY_TESTS_SKIP_EXTERNAL=1 to skip tests that need external tools)"
    );
}
