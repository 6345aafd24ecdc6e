//! The TCP relay: a listener inside the sandbox (`127.0.0.1:8080` by default) whose
//! connections are copied byte for byte, both ways, to the egress proxy's Unix socket,
//! so `HTTP_PROXY=http://127.0.0.1:8080` works in a container without a network. When
//! the socket is absent or refuses, the client gets a clean
//! `503 Service Unavailable` (`egress proxy unavailable`) and the connection closes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

/// The answer when the proxy socket cannot be reached.
pub const UNAVAILABLE_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain\r\n\
Content-Length: 24\r\n\
Connection: close\r\n\
\r\n\
egress proxy unavailable";

/// How often (at most) a proxy-unreachable failure is logged at `warn`; the others go
/// to `debug`.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// How long the request of a refused client is drained so that closing does not reset
/// the connection before it read the 503.
const DRAIN_AFTER_REFUSAL: Duration = Duration::from_secs(2);

/// A bound relay listener.
#[derive(Debug)]
pub struct Relay {
    listener: TcpListener,
    proxy_socket: PathBuf,
}

impl Relay {
    /// Binds the listener.
    pub async fn bind(addr: SocketAddr, proxy_socket: PathBuf) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Relay {
            listener,
            proxy_socket,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and relays connections until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) {
        let limiter = std::sync::Arc::new(WarnLimiter::default());
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = shutdown.cancelled() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let path = self.proxy_socket.clone();
                    let limiter = limiter.clone();
                    tokio::spawn(async move { relay_one(tcp, peer, &path, &limiter).await });
                }
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "relay accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn relay_one(mut tcp: TcpStream, peer: SocketAddr, proxy: &Path, limiter: &WarnLimiter) {
    let _ = tcp.set_nodelay(true);
    match UnixStream::connect(proxy).await {
        Ok(mut unix) => match tokio::io::copy_bidirectional(&mut tcp, &mut unix).await {
            Ok((up, down)) => tracing::debug!(%peer, up, down, "relay connection closed"),
            Err(e) => tracing::debug!(%peer, error = %e, "relay connection ended with an error"),
        },
        Err(e) => {
            limiter.log(&e, proxy);
            refuse(tcp).await;
        }
    }
}

/// Writes the 503, half-closes, and drains what the client still sends for a moment.
async fn refuse(mut tcp: TcpStream) {
    if tcp.write_all(UNAVAILABLE_RESPONSE).await.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::sleep(DRAIN_AFTER_REFUSAL);
    tokio::pin!(deadline);
    let mut drained = 0usize;
    loop {
        tokio::select! {
            r = tcp.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    drained += n;
                    if drained > 1024 * 1024 {
                        break;
                    }
                }
            },
            _ = &mut deadline => break,
        }
    }
}

/// Logs a proxy-unreachable failure at `warn` at most every [`WARN_EVERY`], with the
/// number of failures suppressed since.
#[derive(Debug, Default)]
struct WarnLimiter {
    state: Mutex<(Option<Instant>, u64)>,
}

impl WarnLimiter {
    fn log(&self, e: &std::io::Error, proxy: &Path) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        let due = st.0.is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
        if due {
            tracing::warn!(socket = %proxy.display(), error = %e, suppressed = st.1,
                "egress proxy unavailable; answering 503");
            *st = (Some(now), 0);
        } else {
            st.1 += 1;
            tracing::debug!(socket = %proxy.display(), error = %e, "egress proxy unavailable");
        }
    }
}
