//! HTTP client for a workspace's agent, over its Unix socket (local) or TCP (ECS):
//! health, execute (decoding the agent's SSE into [`Event`]s), and pass-through of
//! file requests. One HTTP/1.1 connection per request: dropping a response closes its
//! connection, which is how a caller's disconnect reaches the agent.

use std::{pin::Pin, time::Duration};

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use wire::{self, AgentHealth, ErrorBody, Event, ExecuteRequest, SseDecoder};

use crate::runtime::Endpoint;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot connect to the agent at {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    #[error("agent connection failed: {0}")]
    Http(String),
    /// The agent answered with an error status; its body is relayed to the caller.
    #[error("agent answered {status}: {}", body.error.message)]
    Status { status: StatusCode, body: ErrorBody },
    #[error("unexpected answer from the agent: {0}")]
    Protocol(String),
    #[error("timed out talking to the agent")]
    Timeout,
}

/// A stream of events decoded from the agent's SSE answer.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, AgentError>> + Send>>;

/// Client of one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    endpoint: Endpoint,
    connect_timeout: Duration,
}

impl AgentClient {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            connect_timeout: Duration::from_secs(5),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one request on a fresh connection and returns the response head with its
    /// streaming body.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, AgentError> {
        let connect_err = |message: String| AgentError::Connect {
            endpoint: self.endpoint.to_string(),
            message,
        };
        let fut = async {
            match &self.endpoint {
                Endpoint::Unix(path) => {
                    let s = connect_unix_nofollow(path)
                        .await
                        .map_err(|e| connect_err(e.to_string()))?;
                    handshake(s).await
                }
                Endpoint::Tcp(addr) => {
                    let s = TcpStream::connect(addr)
                        .await
                        .map_err(|e| connect_err(e.to_string()))?;
                    let _ = s.set_nodelay(true);
                    handshake(s).await
                }
            }
        };
        let mut sender = tokio::time::timeout(self.connect_timeout, fut)
            .await
            .map_err(|_| AgentError::Timeout)??;
        sender
            .send_request(req)
            .await
            .map_err(|e| AgentError::Http(e.to_string()))
    }

    fn request(
        method: Method,
        path_and_query: &str,
        body: Body,
    ) -> Result<Request<Body>, AgentError> {
        Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, "workspace-agent")
            .body(body)
            .map_err(|e| AgentError::Protocol(e.to_string()))
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<AgentHealth, AgentError> {
        let resp = self
            .send(Self::request(
                Method::GET,
                wire::routes::HEALTH,
                Body::empty(),
            )?)
            .await?;
        let resp = error_for_status(resp).await?;
        let bytes = collect(resp.into_body()).await?;
        serde_json::from_slice(&bytes).map_err(|e| AgentError::Protocol(e.to_string()))
    }

    /// `POST /execute`: the agent's events, as they come.
    pub async fn execute(&self, req: &ExecuteRequest) -> Result<EventStream, AgentError> {
        let body = serde_json::to_vec(req).map_err(|e| AgentError::Protocol(e.to_string()))?;
        let mut r = Self::request(Method::POST, wire::routes::EXECUTE, Body::from(body))?;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let resp = error_for_status(self.send(r).await?).await?;
        Ok(decode_events(resp.into_body()))
    }

    /// Forwards a request (file routes) and returns the agent's response as is.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<Response<Incoming>, AgentError> {
        let mut r = Self::request(method, path_and_query, body)?;
        if let Some(ct) = content_type.and_then(|c| http::HeaderValue::from_str(c).ok()) {
            r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
        }
        self.send(r).await
    }

    /// Polls `/health` until it answers or `timeout` passes.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<AgentHealth, AgentError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut delay = Duration::from_millis(5);
        loop {
            match self.health().await {
                Ok(h) => return Ok(h),
                Err(e) if tokio::time::Instant::now() + delay >= deadline => {
                    tracing::debug!(error = %e, "agent not healthy before the deadline");
                    return Err(AgentError::Timeout);
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    /// `GET /manifest` (file sync): the workspace's entries with content hashes; the
    /// agent stops listing past the limits in `query` and answers the totals.
    pub async fn manifest(
        &self,
        query: &wire::ManifestQuery,
    ) -> Result<wire::Manifest, AgentError> {
        let qs =
            serde_urlencoded::to_string(query).map_err(|e| AgentError::Protocol(e.to_string()))?;
        let uri = if qs.is_empty() {
            wire::routes::MANIFEST.to_string()
        } else {
            format!("{}?{qs}", wire::routes::MANIFEST)
        };
        let resp = self
            .send(Self::request(Method::GET, &uri, Body::empty())?)
            .await?;
        let resp = error_for_status(resp).await?;
        let bytes = collect(resp.into_body()).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| AgentError::Protocol(format!("invalid manifest: {e}")))
    }

    /// `POST /archive/export` (file sync): a tar of exactly `paths`, as a streaming body.
    pub async fn export_entries(&self, paths: &[String]) -> Result<Incoming, AgentError> {
        let body = serde_json::to_vec(&wire::ExportRequest {
            paths: paths.to_vec(),
        })
        .map_err(|e| AgentError::Protocol(e.to_string()))?;
        let mut r = Self::request(Method::POST, wire::routes::ARCHIVE_EXPORT, Body::from(body))?;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let resp = error_for_status(self.send(r).await?).await?;
        Ok(resp.into_body())
    }

    /// `PUT /archive?links=preserve` (the restore of a synced workspace): symlinks that
    /// point outside the root are created as they are; nothing is written through a
    /// symlink. Only the control plane builds this URI; the public archive route never
    /// passes a query to the agent.
    pub async fn import_archive_preserving_links(
        &self,
        tar: Body,
    ) -> Result<wire::ImportResult, AgentError> {
        let qs = serde_urlencoded::to_string(wire::ArchiveImportQuery {
            links: wire::LinkPolicy::Preserve,
        })
        .map_err(|e| AgentError::Protocol(e.to_string()))?;
        let uri = format!("{}?{qs}", wire::routes::ARCHIVE);
        let mut r = Self::request(Method::PUT, &uri, tar)?;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-tar"),
        );
        let resp = error_for_status(self.send(r).await?).await?;
        let bytes = collect(resp.into_body()).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| AgentError::Protocol(format!("invalid import answer: {e}")))
    }
}

/// Connects to a Unix socket without following a symlink at its last component: the
/// directory holding an agent's socket is writable by the sandbox, which could swap
/// the socket for a symlink to a host socket (the Docker engine's). The socket inode
/// is pinned with `O_PATH | O_NOFOLLOW`, checked to be a socket, and connected
/// through `/proc/self/fd`, so no swap between check and connect can redirect us.
pub async fn connect_unix_nofollow(path: &std::path::Path) -> std::io::Result<UnixStream> {
    use std::os::unix::{
        fs::{FileTypeExt, OpenOptionsExt},
        io::AsRawFd,
    };
    let pinned = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let kind = pinned.metadata()?.file_type();
    if !kind.is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is not a socket ({}); refusing to connect",
                path.display(),
                if kind.is_symlink() {
                    "a symlink"
                } else {
                    "another kind of file"
                }
            ),
        ));
    }
    let via = format!("/proc/self/fd/{}", pinned.as_raw_fd());
    let stream = UnixStream::connect(&via).await;
    drop(pinned);
    stream
}

async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Body>, AgentError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AgentError::Http(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "agent connection ended");
        }
    });
    Ok(sender)
}

/// Turns an error status into [`AgentError::Status`] with the agent's error body.
pub async fn error_for_status(resp: Response<Incoming>) -> Result<Response<Incoming>, AgentError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let bytes = collect(resp.into_body()).await.unwrap_or_default();
    let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| {
        ErrorBody::new(
            "agent_error",
            String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
        )
    });
    Err(AgentError::Status { status, body })
}

async fn collect(body: Incoming) -> Result<Bytes, AgentError> {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| AgentError::Http(e.to_string()))
}

fn decode_events(body: Incoming) -> EventStream {
    let frames = http_body_util::BodyDataStream::new(body);
    let stream = futures::stream::unfold(
        (frames, SseDecoder::new(), std::collections::VecDeque::new()),
        |(mut frames, mut dec, mut pending)| async move {
            loop {
                if let Some(item) = pending.pop_front() {
                    return Some((item, (frames, dec, pending)));
                }
                match frames.next().await {
                    Some(Ok(chunk)) => {
                        for r in dec.push(&chunk) {
                            pending.push_back(r.map_err(|e| AgentError::Protocol(e.to_string())));
                        }
                    }
                    Some(Err(e)) => {
                        return Some((Err(AgentError::Http(e.to_string())), (frames, dec, pending)))
                    }
                    None => return None,
                }
            }
        },
    );
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::connect_unix_nofollow;

    #[tokio::test]
    async fn connects_to_a_socket_but_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.sock");
        let listener = tokio::net::UnixListener::bind(&real).unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        connect_unix_nofollow(&real)
            .await
            .expect("a real socket connects");
        accept.await.unwrap().unwrap();

        // The sandbox swaps its socket for a symlink to another socket (e.g. the
        // Docker engine's): refused, although following it would connect.
        let link = dir.path().join("agent.sock");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = connect_unix_nofollow(&link).await.unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");

        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(connect_unix_nofollow(&file).await.is_err());
    }
}
