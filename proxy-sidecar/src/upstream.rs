//! Upstream connections: dialling a vetted address (TCP_NODELAY, timeout, optional
//! TLS) and a keep-alive pool of HTTP/1.1 connections.
//!
//! The pool is keyed by (vetted socket address, TLS server name), not by host name:
//! every request is resolved and vetted first, and only then may it reuse a connection
//! to exactly that address. hyper-util's pooled client keys by URI authority and dials
//! by itself, which would bypass the per-request address guard, so this small pool
//! sits on hyper's connection-level client API instead. Connections go back to the pool
//! only once hyper reports them ready for another request (response body fully read).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::UpstreamBody;
use crate::host::Host;
use crate::metrics::{Metrics, TlsLabel};
use crate::reason::Reason;

/// Why talking to the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("HTTP handshake failed: {0}")]
    Handshake(hyper::Error),
    #[error("request failed: {0}")]
    Request(hyper::Error),
    #[error("no response head in time")]
    ResponseTimeout,
}

impl UpstreamError {
    pub fn reason(&self) -> Reason {
        match self {
            UpstreamError::ConnectTimeout => Reason::ConnectTimeout,
            UpstreamError::Connect(_) => Reason::ConnectFailed,
            UpstreamError::Tls(_) => Reason::TlsFailed,
            UpstreamError::Handshake(_) | UpstreamError::Request(_) => Reason::UpstreamError,
            UpstreamError::ResponseTimeout => Reason::UpstreamTimeout,
        }
    }
}

/// Where to send a request.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Canonical host (TLS server name when `tls`).
    pub host: &'a Host,
    /// A vetted address.
    pub addr: SocketAddr,
    pub tls: bool,
}

/// How the request's connection was obtained, and when the request went out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnInfo {
    pub reused: bool,
    /// TCP connect (+ TLS) time for a new connection.
    pub connect: Option<Duration>,
    /// When the request was handed to a ready connection (the last attempt, if a
    /// pooled connection turned out closed); `None` if no connection was ready.
    pub handed_over: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    addr: SocketAddr,
    tls_name: Option<String>,
}

type Sender = http1::SendRequest<UpstreamBody>;

struct PoolState {
    idle: HashMap<PoolKey, Vec<(Sender, Instant)>>,
    last_sweep: Instant,
}

struct PoolInner {
    state: Mutex<PoolState>,
    max_idle: usize,
    idle_timeout: Duration,
}

const SWEEP_EVERY: Duration = Duration::from_secs(30);

impl PoolInner {
    fn sweep(&self, st: &mut PoolState, now: Instant) {
        st.idle.retain(|_, list| {
            list.retain(|(s, t)| !s.is_closed() && now.duration_since(*t) < self.idle_timeout);
            !list.is_empty()
        });
        st.last_sweep = now;
    }

    fn checkout(&self, key: &PoolKey) -> Option<Sender> {
        let now = Instant::now();
        let mut st = self.state.lock().ok()?;
        if now.duration_since(st.last_sweep) > SWEEP_EVERY {
            self.sweep(&mut st, now);
        }
        let list = st.idle.get_mut(key)?;
        while let Some((s, t)) = list.pop() {
            if !s.is_closed() && now.duration_since(t) < self.idle_timeout {
                return Some(s);
            }
        }
        None
    }

    fn put(&self, key: PoolKey, sender: Sender) {
        let now = Instant::now();
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let list = st.idle.entry(key).or_default();
        if list.len() < self.max_idle {
            list.push((sender, now));
        }
    }

    fn idle_count(&self) -> usize {
        self.state
            .lock()
            .map(|st| st.idle.values().map(Vec::len).sum())
            .unwrap_or(0)
    }
}

/// Dialler and connection pool shared by all listeners.
pub struct Upstream {
    tls: TlsConnector,
    pool: Arc<PoolInner>,
    connect_timeout: Duration,
    metrics: Metrics,
}

/// A connected upstream stream, plain or TLS.
pub type UpstreamStream =
    tokio_util::either::Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// TCP connect with timeout and `TCP_NODELAY`.
pub async fn dial_tcp(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(TcpStream, Duration), UpstreamError> {
    let start = Instant::now();
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)?
        .map_err(UpstreamError::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok((stream, start.elapsed()))
}

impl Upstream {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
        metrics: Metrics,
    ) -> Upstream {
        Upstream {
            tls: TlsConnector::from(tls),
            pool: Arc::new(PoolInner {
                state: Mutex::new(PoolState {
                    idle: HashMap::new(),
                    last_sweep: Instant::now(),
                }),
                max_idle,
                idle_timeout,
            }),
            connect_timeout,
            metrics,
        }
    }

    /// Idle pooled connections (for tests and diagnostics).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Dial `target` (TCP, then TLS when asked), bounded by the connect timeout.
    pub async fn connect(
        &self,
        target: Target<'_>,
    ) -> Result<(UpstreamStream, Duration), UpstreamError> {
        let start = Instant::now();
        let (tcp, _) = dial_tcp(target.addr, self.connect_timeout).await?;
        let stream = if target.tls {
            let name = match target.host {
                Host::Domain(d) => ServerName::try_from(d.clone())
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?,
                other => match other.ip() {
                    Some(ip) => ServerName::IpAddress(ip.into()),
                    None => return Err(UpstreamError::Tls("no server name".into())),
                },
            };
            let left = self
                .connect_timeout
                .checked_sub(start.elapsed())
                .unwrap_or_default();
            let tls = tokio::time::timeout(left, self.tls.connect(name, tcp))
                .await
                .map_err(|_| UpstreamError::ConnectTimeout)?
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            tokio_util::either::Either::Right(tls)
        } else {
            tokio_util::either::Either::Left(tcp)
        };
        let elapsed = start.elapsed();
        self.metrics
            .connect_duration
            .get_or_create(&TlsLabel {
                tls: if target.tls { "true" } else { "false" },
            })
            .observe(elapsed.as_secs_f64());
        Ok((stream, elapsed))
    }

    async fn new_sender(&self, target: Target<'_>) -> Result<(Sender, Duration), UpstreamError> {
        let (stream, elapsed) = self.connect(target).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok((sender, elapsed))
    }

    /// Send `req` (origin-form URI, `Host` set) to `target`, reusing a pooled
    /// connection to the same vetted address when one is idle. The returned
    /// [`PoolReturn`] gives the connection back once the caller has relayed the whole
    /// response body. The [`ConnInfo`] comes back whatever the outcome: a request
    /// that failed after it was handed over still cost its overhead.
    pub async fn send(
        &self,
        target: Target<'_>,
        mut req: Request<UpstreamBody>,
        response_timeout: Duration,
    ) -> (
        ConnInfo,
        Result<(Response<Incoming>, PoolReturn), UpstreamError>,
    ) {
        let key = PoolKey {
            addr: target.addr,
            tls_name: target.tls.then(|| target.host.to_string()),
        };
        let mut info = ConnInfo {
            reused: true,
            ..ConnInfo::default()
        };
        // Pooled connections may have been closed by the server while idle; hyper
        // hands the unsent request back in that case and it is sent on a new one.
        while let Some(mut sender) = self.pool.checkout(&key) {
            if !sender.is_ready() {
                match tokio::time::timeout(Duration::from_secs(1), sender.ready()).await {
                    Ok(Ok(())) => {}
                    _ => continue,
                }
            }
            info.handed_over = Some(Instant::now());
            let sent = tokio::time::timeout(response_timeout, sender.try_send_request(req)).await;
            let result = match sent {
                Err(_) => Err(UpstreamError::ResponseTimeout),
                Ok(Ok(resp)) => Ok((resp, self.pool_return(key, sender))),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(back) => {
                        req = back;
                        continue;
                    }
                    None => Err(UpstreamError::Request(e.into_error())),
                },
            };
            return (info, result);
        }
        info = ConnInfo::default();
        let (mut sender, elapsed) = match self.new_sender(target).await {
            Ok(s) => s,
            Err(e) => return (info, Err(e)),
        };
        info.connect = Some(elapsed);
        info.handed_over = Some(Instant::now());
        let result = tokio::time::timeout(response_timeout, sender.send_request(req))
            .await
            .map_err(|_| UpstreamError::ResponseTimeout)
            .and_then(|r| r.map_err(UpstreamError::Request))
            .map(|resp| (resp, self.pool_return(key, sender)));
        (info, result)
    }

    fn pool_return(&self, key: PoolKey, sender: Sender) -> PoolReturn {
        PoolReturn {
            pool: self.pool.clone(),
            key,
            sender,
        }
    }
}

/// A connection lent to one request; [`PoolReturn::give_back`] after the response
/// body ended returns it to the pool, dropping it closes it.
pub struct PoolReturn {
    pool: Arc<PoolInner>,
    key: PoolKey,
    sender: Sender,
}

impl PoolReturn {
    pub fn give_back(self) {
        if !self.sender.is_closed() {
            self.pool.put(self.key, self.sender);
        }
    }
}
