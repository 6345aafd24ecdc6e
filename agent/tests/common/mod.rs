//! Shared test harness: a real agent server on a temporary Unix socket with a
//! temporary root (and a sibling `outside` directory for escape checks), and a small
//! HTTP/1 client over the socket.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::config::{Config, ListenAddr, RelayListen};
use agent::wire::{Event, SseDecoder};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A running agent.
pub struct TestAgent {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub outside: PathBuf,
    pub socket: PathBuf,
    pub relay_addr: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestAgent {
    pub async fn start() -> TestAgent {
        Self::start_with(|_| {}).await
    }

    /// Starts an agent; `tweak` may change the config (root, socket and relay are
    /// preset: relay off).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestAgent {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "outside secret").unwrap();
        let socket = tmp.path().join("agent.sock");
        let mut config = Config::with_root(&root);
        config.listen = ListenAddr::Unix(socket.clone());
        config.relay_listen = RelayListen::Off;
        config.tmp_dir = Some(tmp.path().to_path_buf());
        tweak(&mut config);
        config.validate().expect("valid config");
        let root = config.root.clone();
        let shutdown = CancellationToken::new();
        let bound = agent::server::bind(config, shutdown.clone())
            .await
            .expect("bind");
        let relay_addr = bound.relay_addr();
        let task = tokio::spawn(bound.serve());
        TestAgent {
            tmp,
            root,
            outside,
            socket,
            relay_addr,
            shutdown,
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    }

    pub async fn request(&self, method: &str, uri: &str, body: impl Into<Bytes>) -> Resp {
        send(&self.socket, method, uri, full(body)).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.request("GET", uri, Bytes::new()).await
    }

    pub async fn execute(&self, req: serde_json::Value) -> EventStream {
        EventStream::open(&self.socket, req).await
    }

    /// Runs to the end and returns all events.
    pub async fn execute_all(&self, req: serde_json::Value) -> Vec<Event> {
        let mut s = self.execute(req).await;
        assert_eq!(
            s.status,
            StatusCode::OK,
            "execute failed: {:?}",
            s.error_body
        );
        s.collect(Duration::from_secs(60)).await
    }

    /// Recursive snapshot of the `outside` directory (paths and contents).
    pub fn outside_snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        snapshot(&self.outside)
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Paths (relative, with a trailing `/` for directories and `@` for symlinks) and file
/// contents below `dir`.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(format!("{rel}@"), t.to_string_lossy().as_bytes().to_vec());
            } else if ft.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(base, &p, out);
            } else if ft.is_file() {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            } else {
                out.insert(format!("{rel}?"), Vec::new()); // FIFO, socket, device
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {:?}", String::from_utf8_lossy(&self.body)))
            .to_string()
    }
}

async fn connect(
    socket: &Path,
) -> (
    hyper::client::conn::http1::SendRequest<Body>,
    JoinHandle<()>,
) {
    let stream = UnixStream::connect(socket).await.expect("connect to agent");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

async fn response(
    socket: &Path,
    req: Request<Body>,
) -> (hyper::Response<Incoming>, JoinHandle<()>) {
    let (mut sender, task) = connect(socket).await;
    let resp = sender.send_request(req).await.expect("send request");
    (resp, task)
}

pub async fn send(socket: &Path, method: &str, uri: &str, body: Body) -> Resp {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "agent")
        .body(body)
        .unwrap();
    send_req(socket, req).await
}

pub async fn send_req(socket: &Path, req: Request<Body>) -> Resp {
    let (resp, task) = response(socket, req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    task.abort();
    Resp {
        status,
        headers,
        body,
    }
}

/// An execute response read incrementally. Dropping it closes the connection.
pub struct EventStream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub error_body: Option<serde_json::Value>,
    body: Option<Incoming>,
    decoder: SseDecoder,
    pending: VecDeque<Event>,
    task: JoinHandle<()>,
    pub keepalives: usize,
}

impl EventStream {
    pub async fn open(socket: &Path, req: serde_json::Value) -> EventStream {
        let req = Request::builder()
            .method("POST")
            .uri("/execute")
            .header("host", "agent")
            .header("content-type", "application/json")
            .body(full(serde_json::to_vec(&req).unwrap()))
            .unwrap();
        let (resp, task) = response(socket, req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut s = EventStream {
            status,
            headers,
            error_body: None,
            body: Some(resp.into_body()),
            decoder: SseDecoder::new(),
            pending: VecDeque::new(),
            task,
            keepalives: 0,
        };
        if status != StatusCode::OK {
            let body = s.body.take().unwrap().collect().await.unwrap().to_bytes();
            s.error_body = serde_json::from_slice(&body).ok();
        }
        s
    }

    /// The next event, or `None` at the end of the stream. Panics after `limit` (a
    /// hang guard, not a timing assertion).
    pub async fn next(&mut self, limit: Duration) -> Option<Event> {
        tokio::time::timeout(limit, self.next_inner())
            .await
            .expect("no event within the hang guard")
    }

    /// Reads (buffering events) until a keep-alive comment arrives; false if the
    /// stream ended first. Panics after `limit` (hang guard).
    pub async fn wait_keepalive(&mut self, limit: Duration) -> bool {
        let seen = self.keepalives;
        tokio::time::timeout(limit, async {
            while self.keepalives == seen {
                if !self.read_frame().await {
                    return false;
                }
            }
            true
        })
        .await
        .expect("no keep-alive within the hang guard")
    }

    /// Reads one body frame into the buffers; false at the end of the stream.
    async fn read_frame(&mut self) -> bool {
        let Some(body) = self.body.as_mut() else {
            return false;
        };
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.keepalives += data
                        .windows(b": keep-alive".len())
                        .filter(|w| *w == b": keep-alive")
                        .count();
                    for ev in self.decoder.push(data) {
                        self.pending.push_back(ev.expect("valid SSE event"));
                    }
                }
                true
            }
            Some(Err(e)) => panic!("stream error: {e}"),
            None => {
                self.body = None;
                false
            }
        }
    }

    async fn next_inner(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if !self.read_frame().await && self.pending.is_empty() {
                return None;
            }
        }
    }

    /// All remaining events until the end of the stream.
    pub async fn collect(&mut self, limit: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next(limit).await {
            out.push(e);
        }
        out
    }

    /// Reads until an event matches; returns the events read (including it).
    pub async fn until(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            match self.next(limit).await {
                Some(e) => {
                    let hit = pred(&e);
                    out.push(e);
                    if hit {
                        return out;
                    }
                }
                None => panic!("stream ended before the expected event; got {out:?}"),
            }
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Concatenated stdout of events.
pub fn stdout_of(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Stdout { data } => Some(data.as_str()),
            _ => None,
        })
        .collect()
}

pub fn stderr_of(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Stderr { data } => Some(data.as_str()),
            _ => None,
        })
        .collect()
}

/// The terminal event, asserting it is last and unique.
pub fn terminal(events: &[Event]) -> &Event {
    let n = events.iter().filter(|e| e.is_terminal()).count();
    assert_eq!(n, 1, "expected exactly one terminal event: {events:?}");
    let last = events.last().unwrap();
    assert!(last.is_terminal(), "terminal event is not last: {events:?}");
    last
}

/// Waits (bounded by a hang guard) until no live process remains in session/group
/// `sid`; returns the leftovers if some remain.
pub async fn wait_session_gone(sid: i32, guard: Duration) -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + guard;
    loop {
        let left = agent::exec::process::session_members(sid);
        if left.is_empty() || tokio::time::Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills what a failed test left behind.
pub fn cleanup_session(sid: i32) {
    for p in agent::exec::process::session_members(sid) {
        unsafe_kill(p);
    }
}

fn unsafe_kill(pid: i32) {
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status();
}
