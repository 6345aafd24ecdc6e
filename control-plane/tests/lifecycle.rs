//! Workspace lifecycle on the real Docker engine (and a real redis-server): the warm
//! pool (serving, refilling, exhaustion, sizing at run time), the reaper (idle,
//! running, orphan, unlabelled, failing destroy), and replicas sharing one Redis
//! (no double binding; surviving a SIGKILL).

mod support;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use control_plane::{
    api::types::PoolStatus,
    gc::Reaper,
    runtime::{Runtime, RuntimeError, RuntimeWorkspace, WorkspaceSpec},
    server::Server,
    store::{memory::MemoryStore, StateStore},
};
use support::*;
use wire::{Event, WorkspaceSource};

async fn pool_status(plane: &Plane) -> PoolStatus {
    plane
        .get("/v1/pool", TOKEN_ACME)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_pool_size(plane: &Plane, n: usize) -> PoolStatus {
    let mut st = pool_status(plane).await;
    for _ in 0..300 {
        if st.size == n && st.starting == 0 {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        st = pool_status(plane).await;
    }
    panic!("the pool did not reach {n}: {st:?}");
}

/// Waits for the fleet to have `n` containers (a trimmed member leaves the pool
/// before its container is removed).
async fn wait_container_count(plane: &Plane, n: usize) {
    let mut count = plane.container_count().await;
    for _ in 0..100 {
        if count == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        count = plane.container_count().await;
    }
    panic!("expected {n} containers, found {count}");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn warm_pool_serves_refills_and_counts_exhaustion() {
    if !docker_tests_enabled() {
        return;
    }
    let mut cfg = test_config(&new_fleet("pool"));
    cfg.pool.min = 3;
    cfg.pool.max = 3;
    cfg.pool.poll_interval_ms = 100;
    let plane = Plane::start_cfg(cfg).await;
    wait_pool_size(&plane, 3).await;

    // The first execute of a new conversation is served warm.
    let events = plane
        .execute(TOKEN_ACME, "w0", &cmd_request(&["echo", "hi"]))
        .await;
    assert!(
        matches!(
            events[0],
            Event::Workspace {
                source: WorkspaceSource::Warm,
                ..
            }
        ),
        "{:?}",
        events[0]
    );
    assert_eq!(split_output(&events).0, "hi\n");

    // Ten back-to-back new conversations are all served.
    let mut ids = HashSet::new();
    for i in 1..=10 {
        let events = plane
            .execute(TOKEN_ACME, &format!("w{i}"), &cmd_request(&["echo", "ok"]))
            .await;
        assert_eq!(split_output(&events).0, "ok\n");
        ids.insert(workspace_id_of(&events));
    }
    assert_eq!(ids.len(), 10, "every conversation has its own workspace");

    // The pool refills to 3 and never exceeds it.
    let st = wait_pool_size(&plane, 3).await;
    assert!(st.size <= st.max);
    assert_eq!(plane.container_count().await, 11 + 3);
    let m = plane.metrics_text().await;
    assert!(metric(&m, "workspace_warm_pool_hits_total") >= 3.0, "{m}");
    assert!(
        metric(&m, "workspace_warm_pool_exhausted_total") >= 1.0,
        "demand outran the pool: {m}"
    );
    assert!(m.contains("workspace_warm_pool_acquire_seconds_bucket"));
}

#[tokio::test]
async fn pool_sizing_changes_at_run_time() {
    if !docker_tests_enabled() {
        return;
    }
    let mut cfg = test_config(&new_fleet("size"));
    cfg.pool.min = 2;
    cfg.pool.max = 2;
    cfg.pool.poll_interval_ms = 100;
    let plane = Plane::start_cfg(cfg).await;
    wait_pool_size(&plane, 2).await;

    // Only admin tokens may change it; bad sizes are 400.
    let put = |token: &'static str, body: serde_json::Value| {
        plane.put("/v1/pool", token).json(&body).send()
    };
    assert_eq!(
        put(TOKEN_GLOBEX, serde_json::json!({"min": 1, "max": 1}))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        put(TOKEN_ACME, serde_json::json!({"min": 3, "max": 1}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        put(TOKEN_ACME, serde_json::json!({"min": 1, "max": 100000}))
            .await
            .unwrap()
            .status(),
        400
    );
    // Shrink: the surplus is trimmed; grow: it fills.
    let r = put(TOKEN_ACME, serde_json::json!({"min": 1, "max": 1}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_pool_size(&plane, 1).await;
    wait_container_count(&plane, 1).await;
    let r = put(TOKEN_ACME, serde_json::json!({"min": 4, "max": 4}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_pool_size(&plane, 4).await;
    wait_container_count(&plane, 4).await;
}

/// The real Docker runtime, except that destroying one chosen workspace fails.
struct FailingDestroy {
    inner: Arc<dyn Runtime>,
    fail: std::sync::Mutex<Option<String>>,
}

#[async_trait]
impl Runtime for FailingDestroy {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.inner.ping().await
    }
    async fn create(&self, spec: &WorkspaceSpec) -> Result<RuntimeWorkspace, RuntimeError> {
        self.inner.create(spec).await
    }
    async fn destroy(&self, workspace_id: &str) -> Result<(), RuntimeError> {
        if self.fail.lock().unwrap().as_deref() == Some(workspace_id) {
            return Err(RuntimeError::Destroy {
                workspace_id: workspace_id.into(),
                message: "injected failure".into(),
            });
        }
        self.inner.destroy(workspace_id).await
    }
    async fn list(&self) -> Result<Vec<RuntimeWorkspace>, RuntimeError> {
        self.inner.list().await
    }
    async fn inspect(&self, workspace_id: &str) -> Result<Option<RuntimeWorkspace>, RuntimeError> {
        self.inner.inspect(workspace_id).await
    }
}

#[tokio::test]
async fn reaper_destroys_idle_and_orphans_only() {
    if !docker_tests_enabled() {
        return;
    }
    let d = docker().await;
    let mut cfg = test_config(&new_fleet("gc"));
    cfg.gc.idle_ttl_secs = 2;
    cfg.gc.orphan_grace_secs = 1;
    cfg.agent_ready_timeout_secs = 30;
    let real = control_plane::server::build_runtime(&cfg).await.unwrap();
    let runtime = Arc::new(FailingDestroy {
        inner: real.clone(),
        fail: std::sync::Mutex::new(None),
    });
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let server = Server::start_with(cfg.clone(), runtime.clone(), store.clone())
        .await
        .unwrap();
    let plane = Plane {
        base: format!("http://{}", server.addr),
        server: Some(server),
        http: reqwest::Client::new(),
        fleet: cfg.fleet.clone(),
        cfg: cfg.clone(),
        store: store.clone(),
    };
    let services = &plane.server.as_ref().unwrap().services;
    let reaper = Reaper::new(services.lifecycle.clone(), services.membership.clone());

    let idle = workspace_id_of(
        &plane
            .execute(TOKEN_ACME, "idle", &cmd_request(&["true"]))
            .await,
    );
    // A file written without an execute (the files API does not sync by itself): the
    // reaper must sync it before destroying the workspace.
    let r = plane
        .put("/v1/conversations/idle/files?path=unsaved.txt", TOKEN_ACME)
        .body("keep me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let saved = control_plane::sync::LocalDirStore::new(cfg.sync.local_dir.clone())
        .path_of(&control_plane::sync::ObjectKey::new("acme/idle/files/unsaved.txt").unwrap());
    let failing = workspace_id_of(
        &plane
            .execute(TOKEN_ACME, "failing", &cmd_request(&["true"]))
            .await,
    );
    *runtime.fail.lock().unwrap() = Some(failing.clone());

    // A long execution keeps its workspace alive past the idle TTL.
    let busy_resp = plane
        .post("/v1/conversations/busy/execute", TOKEN_ACME)
        .json(&sh_request("echo started; sleep 60", Some(120)))
        .send()
        .await
        .unwrap();
    let mut busy_body = busy_resp.bytes_stream();
    let mut dec = wire::SseDecoder::new();
    let mut busy = None;
    'wait: while let Some(chunk) = futures::StreamExt::next(&mut busy_body).await {
        for ev in dec.push(&chunk.unwrap()) {
            match ev.unwrap() {
                Event::Workspace { workspace_id, .. } => busy = Some(workspace_id),
                Event::Stdout { .. } => break 'wait,
                _ => {}
            }
        }
    }
    let busy = busy.unwrap();

    // An unlabelled container, and one with our labels but no record (an orphan).
    let foreign = format!("foreign-{}", plane.fleet);
    let orphan = format!("ws-orphan-{}", plane.fleet);
    for (name, labels) in [
        (&foreign, HashMap::new()),
        (
            &orphan,
            HashMap::from([
                ("io.agent-workspace.managed".to_string(), "true".to_string()),
                ("io.agent-workspace.fleet".to_string(), plane.fleet.clone()),
                (
                    "io.agent-workspace.workspace-id".to_string(),
                    orphan.clone(),
                ),
                (
                    "io.agent-workspace.created-at".to_string(),
                    "2020-01-01T00:00:00Z".to_string(),
                ),
            ]),
        ),
    ] {
        d.create_container(
            Some(
                bollard::query_parameters::CreateContainerOptionsBuilder::default()
                    .name(name)
                    .build(),
            ),
            bollard::models::ContainerCreateBody {
                image: Some(IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                labels: Some(labels),
                host_config: Some(bollard::models::HostConfig {
                    network_mode: Some("none".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        d.start_container(name, None).await.unwrap();
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let first = reaper.sweep().await;
    assert!(
        first.destroyed_ids().contains(&orphan.as_str()),
        "{first:?}"
    );
    assert!(
        !first.destroyed_ids().contains(&idle.as_str()),
        "idleness is confirmed on a second pass: {first:?}"
    );
    let second = reaper.sweep().await;
    let gone: Vec<&str> = second.destroyed_ids();
    assert!(gone.contains(&idle.as_str()), "{second:?}");
    assert_eq!(
        std::fs::read(&saved).ok().as_deref(),
        Some(&b"keep me"[..]),
        "synced before the destroy"
    );
    assert!(
        !gone.contains(&busy.as_str()),
        "a running execution is activity: {second:?}"
    );
    assert!(!gone.contains(&failing.as_str()));
    assert_eq!(
        second.errors, 1,
        "the failing destroy is counted, the sweep went on"
    );
    assert!(
        d.inspect_container(
            &foreign,
            None::<bollard::query_parameters::InspectContainerOptions>
        )
        .await
        .is_ok(),
        "an unlabelled container is never touched"
    );
    assert!(d
        .inspect_container(
            &idle,
            None::<bollard::query_parameters::InspectContainerOptions>
        )
        .await
        .is_err());
    let r = plane
        .get("/v1/conversations/busy/workspace", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(busy_body);

    let _ = d
        .remove_container(
            &foreign,
            Some(
                bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
        )
        .await;
    *runtime.fail.lock().unwrap() = None;
}

/// A control-plane process started from the built binary.
struct Process {
    child: std::process::Child,
    base: String,
}

impl Process {
    fn spawn(fleet: &str, redis_url: &str, socket_root: &str, pool_min: usize) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_control-plane"))
            .env("CP_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "CP_API_TOKENS",
                format!("acme:{TOKEN_ACME}:admin,globex:{TOKEN_GLOBEX}"),
            )
            .env("CP_FLEET", fleet)
            .env("CP_STORE__KIND", "redis")
            .env("CP_STORE__REDIS_URL", redis_url)
            .env("CP_POOL__MIN", pool_min.to_string())
            .env("CP_POOL__MAX", (pool_min + 2).to_string())
            .env("CP_POOL__POLL_INTERVAL_MS", "100")
            .env("CP_POOL__DRAIN_ON_SHUTDOWN", "false")
            .env("CP_GC__ENABLED", "false")
            .env("CP_DOCKER__IMAGE", IMAGE)
            .env("CP_DOCKER__SOCKET_ROOT", socket_root)
            .env("CP_SYNC__LOCAL_DIR", format!("{socket_root}-objects"))
            .env("CP_DOCKER__MEMORY_BYTES", (256u64 << 20).to_string())
            .env("CP_DOCKER__PIDS_LIMIT", "64")
            .env("CP_LOG", "warn")
            .spawn()
            .expect("control-plane binary");
        let base = format!("http://127.0.0.1:{port}");
        Process { child, base }
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{}/health/ready", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("control plane at {} did not become ready", self.base);
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn exec_via(base: &str, conv: &str, req: &wire::ExecuteRequest) -> Vec<Event> {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/conversations/{conv}/execute"))
        .bearer_auth(TOKEN_ACME)
        .json(req)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    if status != 200 {
        panic!(
            "execute via {base}: {status} {}",
            resp.text().await.unwrap_or_default()
        );
    }
    collect_events(resp, Duration::from_secs(120)).await
}

/// Removes the fleet's containers and socket directories when the test ends.
struct FleetGuard(String, String);
impl Drop for FleetGuard {
    fn drop(&mut self) {
        let root = &self.1;
        cleanup_fleet(&self.0, &[root.into(), format!("{root}-objects").into()]);
    }
}

#[tokio::test]
async fn two_replicas_on_one_redis_bind_each_conversation_once() {
    if !docker_tests_enabled() {
        return;
    }
    let _ = docker().await;
    let redis = TestRedis::start();
    let fleet = new_fleet("repl");
    let root = format!("/tmp/cpt/{fleet}");
    let _guard = FleetGuard(fleet.clone(), root.clone());
    let a = Process::spawn(&fleet, &redis.url, &root, 3);
    let b = Process::spawn(&fleet, &redis.url, &root, 3);
    a.wait_ready().await;
    b.wait_ready().await;

    // 50 concurrent requests over 10 new conversations, alternating replicas.
    let bases = [a.base.clone(), b.base.clone()];
    let futs = (0..50).map(|i| {
        let base = bases[i % 2].clone();
        async move {
            let conv = format!("c{}", i % 10);
            let events = exec_via(&base, &conv, &cmd_request(&["echo", "x"])).await;
            (conv, workspace_id_of(&events), split_output(&events).0)
        }
    });
    let results = futures::future::join_all(futs).await;
    let mut by_conv: HashMap<String, HashSet<String>> = HashMap::new();
    for (conv, ws, out) in &results {
        assert_eq!(out, "x\n");
        by_conv.entry(conv.clone()).or_default().insert(ws.clone());
    }
    assert_eq!(by_conv.len(), 10);
    for (conv, set) in &by_conv {
        assert_eq!(
            set.len(),
            1,
            "{conv} was served by several workspaces: {set:?}"
        );
    }
    let all: HashSet<&String> = by_conv.values().flatten().collect();
    assert_eq!(all.len(), 10, "a workspace was bound to two conversations");

    // The store agrees: exactly 10 bindings, to 10 distinct workspaces.
    let store = control_plane::store::redis::RedisStore::connect(&redis.url, &fleet)
        .await
        .unwrap();
    let bindings = store.bindings().await.unwrap();
    assert_eq!(bindings.len(), 10, "{bindings:?}");
    let distinct: HashSet<_> = bindings.iter().map(|(_, w)| w).collect();
    assert_eq!(distinct.len(), 10);
    for (_, ws) in &bindings {
        assert!(!store.pool_members().await.unwrap().contains(ws));
    }
}

#[tokio::test]
async fn sigkill_mid_stream_leaves_no_orphan_and_keeps_bindings() {
    if !docker_tests_enabled() {
        return;
    }
    let d = docker().await;
    let redis = TestRedis::start();
    let fleet = new_fleet("kill9");
    let root = format!("/tmp/cpt/{fleet}");
    let _guard = FleetGuard(fleet.clone(), root.clone());
    let store = control_plane::store::redis::RedisStore::connect(&redis.url, &fleet)
        .await
        .unwrap();

    let mut first = Process::spawn(&fleet, &redis.url, &root, 2);
    first.wait_ready().await;
    for _ in 0..200 {
        if store.pool_members().await.unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bound = workspace_id_of(&exec_via(&first.base, "keepme", &cmd_request(&["true"])).await);

    // A stream in progress when the process dies.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/conversations/keepme/execute", first.base))
        .bearer_auth(TOKEN_ACME)
        .json(&sh_request("echo started; sleep 30", Some(60)))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let _ = futures::StreamExt::next(&mut body).await;
    first.kill9();
    drop(body);

    let second = Process::spawn(&fleet, &redis.url, &root, 2);
    second.wait_ready().await;
    // The binding is intact and serves the same workspace.
    let events = exec_via(&second.base, "keepme", &cmd_request(&["echo", "back"])).await;
    assert_eq!(workspace_id_of(&events), bound);
    assert!(matches!(
        events[0],
        Event::Workspace {
            source: WorkspaceSource::Existing,
            ..
        }
    ));
    // The pool is refilled, and every container of the fleet is accounted for.
    // (A member the dead process was still creating is settled once its liveness
    // mark expires, a few seconds.)
    let mut ok = false;
    for _ in 0..300 {
        let members = store.pool_members().await.unwrap();
        let records = store.records().await.unwrap();
        let recorded: HashSet<String> = records.iter().map(|r| r.workspace_id.clone()).collect();
        let containers = fleet_containers(&fleet).await;
        let all_recorded = containers.iter().all(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get("io.agent-workspace.workspace-id"))
                .is_some_and(|w| recorded.contains(w))
        });
        if members.len() == 2 && all_recorded && containers.len() == 3 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ok {
        let members = store.pool_members().await.unwrap();
        let records = store.records().await.unwrap();
        let containers: Vec<_> = fleet_containers(&fleet)
            .await
            .into_iter()
            .map(|c| (c.names, c.state))
            .collect();
        panic!(
            "pool not refilled to 2 or an orphan container remains:\nmembers {members:?}\nrecords {records:#?}\ncontainers {containers:?}"
        );
    }
    let _ = d;
}
