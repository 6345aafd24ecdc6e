//! Shared harness of the control plane's tests against the real Docker engine: starts a
//! control plane on a free port with its own fleet label and socket root, talks to it
//! over HTTP, reads SSE streams, and removes every container of its fleet at the end.
//!
//! Requirements: a running Docker engine and the offline workspace image
//! (`deployment/images/build-offline.sh`); `scripts/test.sh` provides both. Without
//! them these tests fail with a message saying so (set WORKSPACE_TESTS_SKIP_DOCKER=1 to
//! skip them deliberately).

#![allow(dead_code)]

pub mod claude;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use bollard::{query_parameters::ListContainersOptionsBuilder, Docker};
use control_plane::{
    config::{Config, TokenConfig},
    runtime::Runtime,
    server::Server,
    store::{memory::MemoryStore, StateStore},
};
use futures::StreamExt;
use wire::{CommandSpec, Event, ExecResult, ExecuteRequest, SseDecoder};

pub const IMAGE: &str = "workspace-offline:latest";
pub const TOKEN_ACME: &str = "acme-token-0123456789abcdef";
pub const TOKEN_GLOBEX: &str = "globex-token-0123456789abcdef";

/// Returns false (and the test should return early) only when the developer asked to
/// skip Docker tests; otherwise a missing engine or image is a test failure.
pub fn docker_tests_enabled() -> bool {
    if std::env::var("WORKSPACE_TESTS_SKIP_DOCKER").as_deref() == Ok("1") {
        eprintln!("WORKSPACE_TESTS_SKIP_DOCKER=1: skipping a Docker test");
        return false;
    }
    true
}

pub async fn docker() -> Docker {
    let d = Docker::connect_with_local_defaults()
        .expect("Docker client (run scripts/setup.sh to start dockerd)");
    let d = d
        .negotiate_version()
        .await
        .expect("Docker engine is not answering: run scripts/setup.sh");
    if d.inspect_image(IMAGE).await.is_err() {
        panic!("image {IMAGE} is missing: run deployment/images/build-offline.sh");
    }
    d
}

/// A base configuration for tests: free port, a fresh fleet, its own socket root,
/// small resource limits.
pub fn test_config(fleet: &str) -> Config {
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        fleet: fleet.to_string(),
        tokens: vec![
            TokenConfig {
                tenant: "acme".into(),
                token: TOKEN_ACME.into(),
                admin: true,
            },
            TokenConfig {
                tenant: "globex".into(),
                token: TOKEN_GLOBEX.into(),
                admin: false,
            },
        ],
        keepalive_secs: 1,
        shutdown_grace_secs: 1,
        ..Config::default()
    };
    // Tests that want a warm pool or the reaper turn them on themselves.
    cfg.pool.min = 0;
    cfg.pool.max = 0;
    cfg.gc.enabled = false;
    // Synced files go to a directory of this test's own.
    cfg.sync.local_dir = format!("/tmp/cpt/{fleet}-objects").into();
    cfg.docker.image = IMAGE.into();
    cfg.docker.socket_root = PathBuf::from(format!("/tmp/cpt/{fleet}"));
    cfg.docker.memory_bytes = 256 * 1024 * 1024;
    cfg.docker.cpus = 1.0;
    cfg.docker.pids_limit = 64;
    cfg.docker.workspace_size = "32m".into();
    cfg.docker.tmp_size = "16m".into();
    cfg.docker.home_size = "16m".into();
    cfg
}

pub fn new_fleet(tag: &str) -> String {
    format!(
        "t{}-{}",
        tag,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A running control plane for one test.
pub struct Plane {
    pub server: Option<Server>,
    pub base: String,
    pub http: reqwest::Client,
    pub fleet: String,
    pub cfg: Config,
    pub store: Arc<dyn StateStore>,
}

impl Plane {
    pub async fn start(tag: &str) -> Plane {
        Self::start_cfg(test_config(&new_fleet(tag))).await
    }

    pub async fn start_cfg(cfg: Config) -> Plane {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        Self::start_with_store(cfg, store).await
    }

    pub async fn start_with_store(cfg: Config, store: Arc<dyn StateStore>) -> Plane {
        init_logs();
        let _ = docker().await;
        let runtime = control_plane::server::build_runtime(&cfg)
            .await
            .expect("runtime");
        let server = Server::start_with(cfg.clone(), runtime, store.clone())
            .await
            .expect("control plane starts");
        let base = format!("http://{}", server.addr);
        Plane {
            server: Some(server),
            base,
            http: reqwest::Client::new(),
            fleet: cfg.fleet.clone(),
            cfg,
            store,
        }
    }

    pub fn runtime(&self) -> Arc<dyn Runtime> {
        self.server.as_ref().unwrap().services.fleet.runtime.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path, token)
    }

    pub fn put(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, path, token)
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path, token)
    }

    pub fn delete(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, path, token)
    }

    pub fn patch(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PATCH, path, token)
    }

    /// A request to the API with a bearer token.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// Runs an execute request and collects all events (with a safety timeout).
    pub async fn execute(&self, token: &str, conv: &str, req: &ExecuteRequest) -> Vec<Event> {
        let resp = self
            .post(&format!("/v1/conversations/{conv}/execute"), token)
            .json(req)
            .send()
            .await
            .expect("execute request");
        assert_eq!(
            resp.status(),
            200,
            "execute failed: {}",
            resp.text().await.unwrap_or_default()
        );
        collect_events(resp, Duration::from_secs(120)).await
    }

    /// Runs a shell command string (`sh -c`) and returns (stdout, stderr, result).
    pub async fn sh(&self, conv: &str, script: &str) -> (String, String, ExecResult) {
        let events = self
            .execute(TOKEN_ACME, conv, &sh_request(script, None))
            .await;
        split_output(&events)
    }

    /// Stops the server without cleaning its containers (they stay for a restart).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// The plane's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics body")
    }

    /// The value of one exact sample (`name{labels}` as exposed) of `/metrics`; 0
    /// when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        sample_value(&self.metrics_text().await, sample)
    }

    /// Number of containers of this fleet on the engine.
    pub async fn container_count(&self) -> usize {
        fleet_containers(&self.fleet).await.len()
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        cleanup_fleet(
            &self.fleet,
            &[
                self.cfg.docker.socket_root.clone(),
                self.cfg.sync.local_dir.clone(),
            ],
        );
    }
}

/// Removes every container of `fleet` and the given directories; for `Drop`
/// implementations (a separate thread with its own runtime: `Drop` is synchronous).
pub fn cleanup_fleet(fleet: &str, dirs: &[PathBuf]) {
    let (fleet, dirs) = (fleet.to_string(), dirs.to_vec());
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(remove_fleet(&fleet));
        for d in dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    })
    .join();
}

/// The value of one exact sample in a `/metrics` text; 0 when absent.
pub fn sample_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse::<f64>().ok())?
        })
        .unwrap_or(0.0)
}

pub fn sh_request(script: &str, timeout_secs: Option<u64>) -> ExecuteRequest {
    ExecuteRequest::Command(CommandSpec {
        argv: vec![script.to_string()],
        shell: true,
        timeout_secs,
        ..Default::default()
    })
}

pub fn cmd_request(argv: &[&str]) -> ExecuteRequest {
    ExecuteRequest::Command(CommandSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::new(),
        ..Default::default()
    })
}

/// Reads SSE events until the stream ends (or `limit` passes, which fails the test).
pub async fn collect_events(resp: reqwest::Response, limit: Duration) -> Vec<Event> {
    let fut = async {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.expect("stream chunk");
            for ev in dec.push(&chunk) {
                out.push(ev.expect("valid SSE event"));
            }
        }
        out
    };
    tokio::time::timeout(limit, fut)
        .await
        .expect("the event stream did not end in time")
}

/// Concatenated stdout, stderr and the result of an event list.
pub fn split_output(events: &[Event]) -> (String, String, ExecResult) {
    let mut out = String::new();
    let mut err = String::new();
    let mut result = None;
    for e in events {
        match e {
            Event::Stdout { data } => out.push_str(data),
            Event::Stderr { data } => err.push_str(data),
            Event::Result(r) => result = Some(r.clone()),
            Event::Error { code, message } => panic!("error event {code}: {message}"),
            _ => {}
        }
    }
    (
        out,
        err,
        result.unwrap_or_else(|| panic!("no result event in {events:?}")),
    )
}

pub fn workspace_id_of(events: &[Event]) -> String {
    match events.first() {
        Some(Event::Workspace { workspace_id, .. }) => workspace_id.clone(),
        other => panic!("first event is not `workspace`: {other:?}"),
    }
}

pub async fn fleet_containers(fleet: &str) -> Vec<bollard::models::ContainerSummary> {
    let d = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("io.agent-workspace.fleet={fleet}")],
    )]);
    d.list_containers(Some(
        ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build(),
    ))
    .await
    .unwrap()
}

pub async fn remove_fleet(fleet: &str) {
    let d = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    for c in fleet_containers(fleet).await {
        if let Some(id) = c.id {
            let _ = d
                .remove_container(
                    &id,
                    Some(
                        bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                            .force(true)
                            .build(),
                    ),
                )
                .await;
        }
    }
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CP_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A `redis-server` on a free loopback port for one test, killed on drop.
#[allow(unused_imports)] // not every test file uses it
pub use test_support::RedisServer as TestRedis;
