//! HTTP client for a workspace's agent, over its Unix socket (local) or TCP (ECS):
//! health, execute (decoding the agent's SSE into [`Event`]s), and pass-through of
//! file requests. One HTTP/1.1 connection per request: dropping a response closes its
//! connection, which is how a caller's disconnect reaches the agent.
//!
//! The agent runs as the sandbox's uid, so everything it answers is hostile input:
//! every call has deadlines (connect, response head, a whole small body, silence on a
//! stream) and every body read into memory has a size cap ([`Limits`]). An agent that
//! misses them fails the call with [`AgentError::Timeout`] or
//! [`AgentError::TooLarge`]; the callers treat that as a lost workspace.

use std::{pin::Pin, time::Duration};

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use wire::{self, AgentHealth, ErrorBody, Event, ExecuteRequest, SseDecodeError, SseDecoder};

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
    /// The agent sent more than the call's cap (a body, or one SSE frame).
    #[error("the agent's answer exceeds {0} bytes")]
    TooLarge(u64),
}

/// Deadlines and size caps of the calls to an agent.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connect and HTTP handshake.
    pub connect: Duration,
    /// From the request sent to the response head (the agent answers an execute's head
    /// at once; an archive import's after extracting it).
    pub head: Duration,
    /// The head of an execute's answer (sent once the process is started).
    pub execute_head: Duration,
    /// A whole small answer: health, error bodies, import results.
    pub small_body: Duration,
    /// A manifest answer (the agent hashes the workspace first).
    pub manifest: Duration,
    /// Silence on a stream (SSE or an export) before it is given up; the agent sends
    /// a keep-alive every 10 s.
    pub idle: Duration,
    /// Largest small answer read into memory.
    pub small_bytes: u64,
    /// Largest manifest read into memory.
    pub manifest_bytes: u64,
    /// Largest SSE frame.
    pub sse_frame_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            head: Duration::from_secs(600),
            execute_head: Duration::from_secs(30),
            small_body: Duration::from_secs(10),
            manifest: Duration::from_secs(600),
            idle: Duration::from_secs(60),
            small_bytes: 64 * 1024,
            manifest_bytes: 256 * 1024 * 1024,
            sse_frame_bytes: wire::sse::DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// A stream of events decoded from the agent's SSE answer.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, AgentError>> + Send>>;

/// Client of one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    endpoint: Endpoint,
    limits: Limits,
}

impl AgentClient {
    pub fn new(endpoint: Endpoint) -> Self {
        Self::with_limits(endpoint, Limits::default())
    }

    pub fn with_limits(endpoint: Endpoint, limits: Limits) -> Self {
        Self { endpoint, limits }
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
        let mut sender = tokio::time::timeout(self.limits.connect, fut)
            .await
            .map_err(|_| AgentError::Timeout)??;
        tokio::time::timeout(self.limits.head, sender.send_request(req))
            .await
            .map_err(|_| AgentError::Timeout)?
            .map_err(|e| AgentError::Http(e.to_string()))
    }

    /// Reads a whole small body within the small-body deadline and cap.
    async fn small(&self, resp: Response<Incoming>) -> Result<Bytes, AgentError> {
        let resp = self.error_for_status(resp).await?;
        collect(
            resp.into_body(),
            self.limits.small_bytes,
            self.limits.small_body,
        )
        .await
    }

    /// Turns an error status into [`AgentError::Status`] with the agent's error body
    /// (read bounded).
    pub async fn error_for_status(
        &self,
        resp: Response<Incoming>,
    ) -> Result<Response<Incoming>, AgentError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = collect(
            resp.into_body(),
            self.limits.small_bytes,
            self.limits.small_body,
        )
        .await
        .unwrap_or_default();
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| {
            ErrorBody::new(
                "agent_error",
                String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            )
        });
        Err(AgentError::Status { status, body })
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

    /// `GET /health`, the whole exchange within the small-body deadline.
    pub async fn health(&self) -> Result<AgentHealth, AgentError> {
        let call = async {
            let resp = self
                .send(Self::request(
                    Method::GET,
                    wire::routes::HEALTH,
                    Body::empty(),
                )?)
                .await?;
            self.small(resp).await
        };
        let bytes = tokio::time::timeout(self.limits.small_body, call)
            .await
            .map_err(|_| AgentError::Timeout)??;
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
        // The agent answers an execute's head as soon as the process is started.
        let resp = tokio::time::timeout(self.limits.execute_head, self.send(r))
            .await
            .map_err(|_| AgentError::Timeout)??;
        let resp = self.error_for_status(resp).await?;
        Ok(decode_events(resp.into_body(), self.limits))
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
        let resp = self.error_for_status(resp).await?;
        let bytes = collect(
            resp.into_body(),
            self.limits.manifest_bytes,
            self.limits.manifest,
        )
        .await?;
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
        let resp = self.error_for_status(self.send(r).await?).await?;
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
        let resp = self.send(r).await?;
        let bytes = self.small(resp).await?;
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

/// Reads a whole body of at most `max` bytes within `deadline`.
async fn collect(body: Incoming, max: u64, deadline: Duration) -> Result<Bytes, AgentError> {
    let limited = http_body_util::Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    match tokio::time::timeout(deadline, limited.collect()).await {
        Err(_) => Err(AgentError::Timeout),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(AgentError::TooLarge(max))
        }
        Ok(Err(e)) => Err(AgentError::Http(e.to_string())),
    }
}

/// Decodes the agent's SSE body: frames bounded by `limits.sse_frame_bytes` (decoded in
/// linear time), and no more than `limits.idle` of silence between chunks (the agent
/// sends keep-alives), so a stopped or hostile agent ends the stream with an error.
fn decode_events(body: Incoming, limits: Limits) -> EventStream {
    let frames = http_body_util::BodyDataStream::new(body);
    let dec = SseDecoder::with_max_frame(limits.sse_frame_bytes);
    let stream = futures::stream::unfold(
        (frames, dec, std::collections::VecDeque::new(), false),
        move |(mut frames, mut dec, mut pending, done)| async move {
            loop {
                if let Some(item) = pending.pop_front() {
                    return Some((item, (frames, dec, pending, done)));
                }
                if done {
                    return None;
                }
                match tokio::time::timeout(limits.idle, frames.next()).await {
                    Err(_) => {
                        return Some((Err(AgentError::Timeout), (frames, dec, pending, true)))
                    }
                    Ok(Some(Ok(chunk))) => {
                        for r in dec.push(&chunk) {
                            let done_now = matches!(r, Err(SseDecodeError::TooLarge { .. }));
                            pending.push_back(r.map_err(|e| match e {
                                SseDecodeError::TooLarge { limit } => {
                                    AgentError::TooLarge(limit as u64)
                                }
                                other => AgentError::Protocol(other.to_string()),
                            }));
                            if done_now {
                                return pending
                                    .pop_front()
                                    .map(|item| (item, (frames, dec, pending, true)));
                            }
                        }
                    }
                    Ok(Some(Err(e))) => {
                        return Some((
                            Err(AgentError::Http(e.to_string())),
                            (frames, dec, pending, true),
                        ))
                    }
                    Ok(None) => return None,
                }
            }
        },
    );
    Box::pin(stream)
}

#[cfg(test)]
mod hostile_tests {
    //! A fake agent on a Unix socket that stalls, floods or never ends a frame: every
    //! call ends within its deadline or cap instead of hanging or buffering without
    //! bound.
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    use super::*;

    enum Behaviour {
        /// Accept, read the request, never answer.
        Stall,
        /// A 200 head, then an endless body.
        Flood,
        /// An SSE head, then one frame that never ends.
        EndlessFrame,
        /// An SSE head, then silence.
        SilentStream,
    }

    async fn fake_agent(b: Behaviour) -> (tempfile::TempDir, AgentClient) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                match b {
                    Behaviour::Stall => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Behaviour::Flood => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                            .await;
                        let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
                        while s.write_all(chunk.as_bytes()).await.is_ok() {}
                    }
                    Behaviour::EndlessFrame | Behaviour::SilentStream => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                            .await;
                        if matches!(b, Behaviour::EndlessFrame) {
                            let head = "data: {\"type\":\"stdout\",\"data\":\"";
                            let _ = s
                                .write_all(format!("{:x}\r\n{head}\r\n", head.len()).as_bytes())
                                .await;
                            let chunk = format!("{:x}\r\n{}\r\n", 65536, "y".repeat(65536));
                            while s.write_all(chunk.as_bytes()).await.is_ok() {}
                        } else {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                    }
                }
            }
        });
        let limits = Limits {
            head: Duration::from_millis(500),
            execute_head: Duration::from_millis(500),
            small_body: Duration::from_millis(500),
            manifest: Duration::from_millis(500),
            idle: Duration::from_millis(500),
            small_bytes: 1024,
            manifest_bytes: 1024 * 1024,
            sse_frame_bytes: 256 * 1024,
            ..Limits::default()
        };
        let client = AgentClient::with_limits(Endpoint::Unix(path), limits);
        (dir, client)
    }

    fn cmd() -> ExecuteRequest {
        ExecuteRequest::Command(wire::CommandSpec {
            argv: vec!["true".into()],
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_stalled_agent_times_out_every_call() {
        let (_d, client) = fake_agent(Behaviour::Stall).await;
        let t = Instant::now();
        assert!(matches!(client.health().await, Err(AgentError::Timeout)));
        assert!(matches!(
            client.manifest(&wire::ManifestQuery::default()).await,
            Err(AgentError::Timeout)
        ));
        assert!(matches!(
            client.execute(&cmd()).await,
            Err(AgentError::Timeout)
        ));
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "bounded by the deadlines"
        );
    }

    #[tokio::test]
    async fn a_flooding_agent_is_cut_at_the_cap() {
        let (_d, client) = fake_agent(Behaviour::Flood).await;
        assert!(matches!(
            client.health().await,
            Err(AgentError::TooLarge(1024))
        ));
        assert!(matches!(
            client.manifest(&wire::ManifestQuery::default()).await,
            Err(AgentError::TooLarge(_)) | Err(AgentError::Timeout)
        ));
    }

    #[tokio::test]
    async fn a_frame_that_never_ends_ends_the_stream_at_the_cap() {
        let (_d, client) = fake_agent(Behaviour::EndlessFrame).await;
        let mut events = client.execute(&cmd()).await.expect("the head arrives");
        let first = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("decided before the test's deadline");
        assert!(
            matches!(first, Some(Err(AgentError::TooLarge(_)))),
            "{first:?}"
        );
        assert!(events.next().await.is_none(), "nothing after the refusal");
    }

    #[tokio::test]
    async fn a_silent_stream_times_out() {
        let (_d, client) = fake_agent(Behaviour::SilentStream).await;
        let mut events = client.execute(&cmd()).await.expect("the head arrives");
        let first = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("decided before the test's deadline");
        assert!(matches!(first, Some(Err(AgentError::Timeout))), "{first:?}");
    }
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
