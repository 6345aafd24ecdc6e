//! The HTTP API (axum on hyper) over a Unix socket or TCP: routes, request parsing,
//! body limits, the wire-version header, JSON 404/405, binding the listeners (API and
//! relay) and graceful shutdown.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::archive::{self, ArchiveError};
use crate::config::{Config, ListenAddr, RelayListen};
use crate::confine::{FsError, RelPath, Root};
use crate::error::ApiError;
use crate::exec::Executor;
use crate::files::{self, FinalLink};
use crate::manifest::{self, HashCache};
use crate::relay::Relay;
use crate::sse;
use crate::wire::{
    routes, AgentHealth, ArchiveImportQuery, ExecuteRequest, ExportRequest, FileList, Manifest,
    ManifestQuery, WriteResult, WIRE_VERSION, WIRE_VERSION_HEADER,
};

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub root: Arc<Root>,
    pub executor: Arc<Executor>,
    /// File hashes of the last `GET /manifest`.
    pub hash_cache: Arc<HashCache>,
}

/// Failure to start the agent.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the workspace root {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("cannot start the relay on {addr}: {source}")]
    Relay { addr: SocketAddr, source: io::Error },
}

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Invalid(m) => ApiError::bad_request("invalid_archive", m),
            ArchiveError::Fs(f) => f.into(),
        }
    }
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let max_request = usize::try_from(state.config.max_request_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route(routes::HEALTH, get(health))
        .route(
            routes::EXECUTE,
            post(execute).layer(DefaultBodyLimit::max(max_request)),
        )
        .route(
            routes::FILES,
            get(file_get)
                .put(file_put)
                .delete(file_delete)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(routes::FILES_LIST, get(file_list))
        .route(
            routes::ARCHIVE,
            get(archive_get)
                .put(archive_put)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(routes::MANIFEST, get(manifest_get))
        .route(
            routes::ARCHIVE_EXPORT,
            post(archive_export).layer(DefaultBodyLimit::max(max_request)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(common_layer))
        .with_state(state)
}

/// Adds the wire-version header and logs each request.
async fn common_layer(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        WIRE_VERSION_HEADER,
        HeaderValue::from_str(&WIRE_VERSION.to_string()).unwrap_or(HeaderValue::from_static("1")),
    );
    tracing::debug!(%method, %path, status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("method {method} not allowed on {}", uri.path()))
}

async fn health() -> Json<AgentHealth> {
    Json(AgentHealth {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        wire_version: WIRE_VERSION,
    })
}

/// Decodes a JSON request body read with a size limit: 413 beyond `limit` (with
/// `hint` appended to the message), 400 when it is not a valid `what` request.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: u64,
    what: &str,
    hint: &str,
) -> Result<T, ApiError> {
    let body = body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!("request body exceeds {limit} bytes{hint}"))
        } else {
            ApiError::bad_request("invalid_request", rej.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_request", format!("invalid {what} request: {e}"))
    })
}

async fn execute(
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ExecuteRequest = json_body(body, st.config.max_request_bytes, "execute", "")?;
    let rx = st.executor.start(req).await?;
    Ok(sse::response(
        rx,
        Duration::from_secs(st.config.keepalive_secs),
    ))
}

#[derive(Debug, Deserialize)]
struct PathParams {
    path: Option<String>,
    recursive: Option<String>,
}

fn params(q: Result<Query<PathParams>, QueryRejection>) -> Result<PathParams, ApiError> {
    q.map(|Query(p)| p)
        .map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))
}

fn required_path(p: &PathParams) -> Result<RelPath, ApiError> {
    let raw = p.path.as_deref().unwrap_or("");
    Ok(RelPath::parse_non_root(raw)?)
}

fn parse_bool(v: Option<&str>) -> Result<bool, ApiError> {
    match v.unwrap_or("") {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(ApiError::bad_request(
            "invalid_request",
            format!("recursive must be true or false, got {other:?}"),
        )),
    }
}

/// Runs blocking file-system work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

async fn file_get(
    State(st): State<AppState>,
    q: Result<Query<PathParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let path = required_path(&params(q)?)?;
    let root = st.root.clone();
    let opened = blocking(move || Ok(files::open_read(&root, &path)?)).await?;
    let file = tokio::fs::File::from_std(opened.file);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(opened.size));
    Ok(resp)
}

/// Refuses early when the declared length is over `limit`.
fn check_content_length(headers: &HeaderMap, limit: u64, what: &str) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(ApiError::TooLarge(format!(
            "{what} of {n} bytes exceeds the limit of {limit} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Copies `body` into `out`, refusing with 413 past `limit` bytes.
async fn copy_body(
    body: Body,
    out: &mut tokio::fs::File,
    limit: u64,
    what: &str,
) -> Result<u64, ApiError> {
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "invalid_request",
                format!("reading the request body failed: {e}"),
            )
        })?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(ApiError::TooLarge(format!(
                "{what} exceeds the limit of {limit} bytes"
            )));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::from(FsError::from_io(what, e)))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::from(FsError::from_io(what, e)))?;
    Ok(total)
}

async fn file_put(
    State(st): State<AppState>,
    q: Result<Query<PathParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WriteResult>, ApiError> {
    let path = required_path(&params(q)?)?;
    let limit = st.config.max_file_bytes;
    check_content_length(&headers, limit, "file")?;
    let shown = path.display();
    let root = st.root.clone();
    let mut pending =
        blocking(move || Ok(files::begin_write(&root, &path, FinalLink::Follow)?)).await?;
    let clone = pending
        .file()
        .try_clone()
        .map_err(|e| ApiError::from(FsError::from_io(&shown, e)))?;
    let mut out = tokio::fs::File::from_std(clone);
    copy_body(body, &mut out, limit, "file").await?;
    drop(out);
    let size = blocking(move || Ok(pending.commit()?)).await?;
    tracing::debug!(path = %shown, size, "file written");
    Ok(Json(WriteResult { path: shown, size }))
}

async fn file_delete(
    State(st): State<AppState>,
    q: Result<Query<PathParams>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let path = required_path(&params(q)?)?;
    let root = st.root.clone();
    blocking(move || Ok(files::delete(&root, &path)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn file_list(
    State(st): State<AppState>,
    q: Result<Query<PathParams>, QueryRejection>,
) -> Result<Json<FileList>, ApiError> {
    let p = params(q)?;
    let recursive = parse_bool(p.recursive.as_deref())?;
    let path = RelPath::parse(p.path.as_deref().unwrap_or(""))?;
    let root = st.root.clone();
    let entries = blocking(move || Ok(files::list(&root, &path, recursive)?)).await?;
    Ok(Json(FileList { entries }))
}

/// `Write` adapter sending 64 KiB chunks to an async body.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    const CHUNK: usize = 64 * 1024;

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(Self::CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

async fn archive_get(State(st): State<AppState>) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(8);
    let root = st.root.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(ChannelWriter::CHUNK),
        };
        let result = archive::export(&root, &[], writer)
            .and_then(|mut w| w.flush().map_err(|e| FsError::from_io("(archive)", e)));
        if let Err(e) = result {
            tracing::warn!(error = %e, "archive export failed");
            // Abort the body so the client sees a failed transfer, not a short tar.
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    resp
}

async fn archive_put(
    State(st): State<AppState>,
    q: Result<Query<ArchiveImportQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<crate::wire::ImportResult>, ApiError> {
    let links = q
        .map(|Query(q)| q.links)
        .map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let limit = st.config.max_archive_bytes;
    check_content_length(&headers, limit, "archive")?;
    let tmp_dir = st.config.tmp_dir();
    let buffer = blocking(move || {
        tempfile::tempfile_in(&tmp_dir).map_err(|e| {
            ApiError::Internal(format!(
                "cannot buffer the archive in {}: {e}",
                tmp_dir.display()
            ))
        })
    })
    .await?;
    let clone = buffer
        .try_clone()
        .map_err(|e| ApiError::Internal(format!("cannot buffer the archive: {e}")))?;
    let mut out = tokio::fs::File::from_std(clone);
    let size = copy_body(body, &mut out, limit, "archive").await?;
    drop(out);
    let root = st.root.clone();
    let result = blocking(move || {
        let mut buffer = buffer;
        Ok(archive::import_with(&root, &mut buffer, links)?)
    })
    .await?;
    tracing::info!(
        archive_bytes = size,
        links = ?links,
        entries = result.entries,
        bytes = result.bytes,
        "archive imported"
    );
    Ok(Json(result))
}

/// `GET /manifest`: the whole workspace, hashed (see [`crate::manifest`]).
async fn manifest_get(
    State(st): State<AppState>,
    q: Result<Query<ManifestQuery>, QueryRejection>,
) -> Result<Json<Manifest>, ApiError> {
    let Query(query) = q.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let root = st.root.clone();
    let cache = st.hash_cache.clone();
    let cap = st.config.max_manifest_entries;
    let started = Instant::now();
    let (m, stats) = blocking(move || Ok(manifest::build(&root, &query, cap, &cache)?)).await?;
    tracing::info!(
        entries = m.entries.len(),
        total_entries = m.total_entries,
        total_file_bytes = m.total_file_bytes,
        over_limit = m.over_limit,
        skipped = m.skipped.len(),
        hashed_files = stats.hashed_files,
        hashed_bytes = stats.hashed_bytes,
        cached_files = stats.cached_files,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "manifest built"
    );
    Ok(Json(m))
}

/// `POST /archive/export`: a tar of exactly the requested entries.
async fn archive_export(
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ExportRequest = json_body(
        body,
        st.config.max_request_bytes,
        "export",
        "; export fewer paths at a time",
    )?;
    let paths = req
        .paths
        .iter()
        .map(|p| RelPath::parse_non_root(p))
        .collect::<Result<Vec<_>, _>>()?;
    let root = st.root.clone();
    let paths = blocking(move || {
        archive::check_export_paths(&root, &paths)?;
        Ok(paths)
    })
    .await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(8);
    let root = st.root.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(ChannelWriter::CHUNK),
        };
        let result = archive::export_entries(&root, &paths, writer).and_then(|(mut w, n)| {
            w.flush()
                .map(|()| n)
                .map_err(|e| FsError::from_io("(archive)", e))
        });
        match result {
            Ok(n) => tracing::debug!(requested = paths.len(), exported = n, "entries exported"),
            Err(e) => {
                tracing::warn!(error = %e, "entry export failed");
                // Abort the body so the client sees a failed transfer, not a short tar.
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// The bound API listener.
#[derive(Debug)]
enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

/// An agent with its sockets bound, ready to serve.
#[derive(Debug)]
pub struct BoundAgent {
    listener: Listener,
    relay: Option<Relay>,
    state: AppState,
    shutdown: CancellationToken,
}

/// Opens the root and binds the API and relay listeners. `config` must have been
/// validated ([`Config::validate`]). `shutdown` cancels executions and stops serving.
pub async fn bind(config: Config, shutdown: CancellationToken) -> Result<BoundAgent, StartError> {
    let root = Arc::new(Root::open(&config.root).map_err(|source| StartError::Root {
        path: config.root.clone(),
        source,
    })?);
    let listener = match &config.listen {
        ListenAddr::Unix(path) => {
            let addr = config.listen.to_string();
            let listen_err = |source| StartError::Listen {
                addr: addr.clone(),
                source,
            };
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_socket() => {
                    std::fs::remove_file(path).map_err(listen_err)?;
                }
                Ok(_) => {
                    return Err(listen_err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the path exists and is not a socket",
                    )))
                }
                Err(_) => {}
            }
            let l = UnixListener::bind(path).map_err(listen_err)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.socket_mode.0))
                .map_err(listen_err)?;
            Listener::Unix(l, path.clone())
        }
        ListenAddr::Tcp(addr) => Listener::Tcp(TcpListener::bind(addr).await.map_err(
            |source| StartError::Listen {
                addr: config.listen.to_string(),
                source,
            },
        )?),
    };
    let relay = match config.relay_listen {
        RelayListen::Off => None,
        RelayListen::On(addr) => Some(
            Relay::bind(addr, config.proxy_socket.clone())
                .await
                .map_err(|source| StartError::Relay { addr, source })?,
        ),
    };
    let executor = Arc::new(Executor::new(&config, root.clone(), shutdown.clone()));
    Ok(BoundAgent {
        listener,
        relay,
        state: AppState {
            config: Arc::new(config),
            root,
            executor,
            hash_cache: Arc::new(HashCache::new()),
        },
        shutdown,
    })
}

impl BoundAgent {
    /// Where the API listens (with the actual port for `tcp:…:0`).
    pub fn listen_addr(&self) -> ListenAddr {
        match &self.listener {
            Listener::Unix(_, p) => ListenAddr::Unix(p.clone()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => ListenAddr::Tcp(a),
                Err(_) => self.state.config.listen.clone(),
            },
        }
    }

    /// Where the relay listens, if on.
    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.relay.as_ref().and_then(|r| r.local_addr().ok())
    }

    /// Serves until the shutdown token fires, then gives in-flight requests the
    /// configured grace period.
    pub async fn serve(self) -> io::Result<()> {
        let BoundAgent {
            listener,
            relay,
            state,
            shutdown,
        } = self;
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        tracing::info!(
            listen = %state.config.listen,
            root = %state.root.path().display(),
            relay = ?relay.as_ref().and_then(|r| r.local_addr().ok()),
            proxy_socket = %state.config.proxy_socket.display(),
            "workspace agent serving"
        );
        if let Some(relay) = relay {
            tokio::spawn(relay.serve(shutdown.clone()));
        }
        let app = router(state);
        let signal = {
            let s = shutdown.clone();
            async move { s.cancelled().await }
        };
        let deadline = {
            let s = shutdown.clone();
            async move {
                s.cancelled().await;
                tokio::time::sleep(grace).await;
            }
        };
        let (result, socket) = match listener {
            Listener::Unix(l, path) => {
                let serve = axum::serve(l, app).with_graceful_shutdown(signal);
                let r = tokio::select! {
                    r = serve => r,
                    _ = deadline => { tracing::warn!("shutdown grace period elapsed"); Ok(()) }
                };
                (r, Some(path))
            }
            Listener::Tcp(l) => {
                let serve = axum::serve(l, app).with_graceful_shutdown(signal);
                let r = tokio::select! {
                    r = serve => r,
                    _ = deadline => { tracing::warn!("shutdown grace period elapsed"); Ok(()) }
                };
                (r, None)
            }
        };
        if let Some(path) = socket {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("workspace agent stopped");
        result
    }
}
