//! Telemetry against the real engine: every audit event type is triggered through the
//! API (or the reaper) and read back as the exact line in the audit file, checked
//! against the platform's one schema, together with the delta of the seed metric it
//! drives; a caller's request id reaches the response, the first SSE event and the
//! turn's audit lines; and two replicas on one Redis report the same fleet gauges.
//! Needs Docker and the offline image (see `support`); the Redis test starts its own
//! `redis-server`.

mod support;

use std::{path::PathBuf, sync::Arc, time::Duration};

use audit::AuditRecord;
use control_plane::{
    gc::Reaper,
    store::{redis::RedisStore, StateStore},
};
use support::*;
use wire::Event;

/// The audit log of one plane: lines are read from its file as they arrive.
struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    fn of(cfg: &mut control_plane::config::Config) -> AuditLog {
        let path = PathBuf::from(format!("/tmp/cpt/{}-audit.log", cfg.fleet));
        let _ = std::fs::create_dir_all("/tmp/cpt");
        let _ = std::fs::remove_file(&path);
        cfg.audit = path.to_string_lossy().into_owned();
        AuditLog { path }
    }

    fn lines(&self) -> Vec<AuditRecord> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .map(|l| AuditRecord::check_line(l).unwrap_or_else(|e| panic!("schema: {e}")))
            .collect()
    }

    /// Waits (the sink writes from a background thread) for a line matching `f`.
    async fn find(&self, what: &str, f: impl Fn(&AuditRecord) -> bool) -> AuditRecord {
        for _ in 0..200 {
            if let Some(r) = self.lines().into_iter().find(|r| f(r)) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no audit line {what}; lines: {:#?}", self.lines());
    }

    async fn event(&self, event: &str, detail_key: &str, detail_value: &str) -> AuditRecord {
        self.find(&format!("{event} {detail_key}={detail_value}"), |r| {
            r.event == event
                && (detail_key.is_empty()
                    || r.detail[detail_key].as_str() == Some(detail_value)
                    || r.detail[detail_key]
                        == detail_value
                            .parse::<serde_json::Value>()
                            .unwrap_or_default())
        })
        .await
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn metric(plane: &Plane, sample: &str) -> f64 {
    plane.metric(sample).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_turn_and_every_api_action_write_their_audit_lines_and_metrics() {
    if !docker_tests_enabled() {
        return;
    }
    let mut cfg = test_config(&new_fleet("tel"));
    let log = AuditLog::of(&mut cfg);
    let plane = Plane::start_cfg(cfg).await;

    // A turn with the caller's request id.
    let requests_before = metric(&plane, r#"workspace_requests_total{status="success"}"#).await;
    let resp = plane
        .post("/v1/conversations/c1/execute", TOKEN_ACME)
        .header("x-request-id", "req-telemetry-1")
        .json(&cmd_request(&["sh", "-c", "echo hi > out.txt"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-telemetry-1");
    let events = collect_events(resp, Duration::from_secs(60)).await;
    assert!(
        matches!(&events[0], Event::Workspace { request_id: Some(r), .. } if r == "req-telemetry-1"),
        "{:?}",
        events[0]
    );
    let ws = workspace_id_of(&events);
    for event in [
        "container_created",
        "agent_execution_started",
        "agent_execution_completed",
    ] {
        let line = log
            .find(event, |r| {
                r.event == event && r.workspace_id.as_deref() == Some(&ws)
            })
            .await;
        assert_eq!(
            line.request_id.as_deref(),
            Some("req-telemetry-1"),
            "{event}"
        );
        assert_eq!(line.actor.as_deref(), Some("token:acme#0"), "{event}");
        assert_eq!(line.tenant_id.as_deref(), Some("acme"));
        assert_eq!(line.conversation_id.as_deref(), Some("c1"));
    }
    assert_eq!(
        log.event("container_created", "source", "cold")
            .await
            .outcome,
        "ok"
    );
    let synced = log
        .event("file_sync_from_container", "trigger", "after_execute")
        .await;
    assert_eq!(synced.outcome, "ok");
    assert_eq!(synced.actor.as_deref(), Some("system:sync"));
    assert_eq!(
        metric(&plane, r#"workspace_requests_total{status="success"}"#).await,
        requests_before + 1.0
    );
    assert_eq!(
        metric(
            &plane,
            r#"workspace_containers_created_total{source="cold"}"#
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &plane,
            r#"workspace_container_startup_seconds_count{source="cold"}"#
        )
        .await,
        1.0
    );
    assert!(metric(&plane, "workspace_s3_syncs_total").await >= 1.0);
    assert!(metric(&plane, "workspace_s3_sync_duration_seconds_count").await >= 1.0);
    assert_eq!(metric(&plane, "workspace_active_containers").await, 1.0);
    assert_eq!(metric(&plane, "workspace_active_executions").await, 0.0);
    assert_eq!(metric(&plane, "workspace_max_workspaces").await, 200.0);
    assert!(
        metric(
            &plane,
            r#"workspace_http_responses_total{route="/v1/conversations/{conversation_id}/execute",code="200"}"#
        )
        .await
            >= 1.0
    );
    assert!(metric(&plane, "workspace_host_memory_percent").await > 0.0);

    // A failed execution (timed out).
    let timeouts = metric(&plane, r#"workspace_requests_total{status="timeout"}"#).await;
    plane
        .execute(TOKEN_ACME, "c1", &sh_request("sleep 30", Some(1)))
        .await;
    let failed = log
        .event("agent_execution_failed", "outcome", "timeout")
        .await;
    assert_eq!(failed.outcome, "error");
    assert_eq!(
        metric(&plane, r#"workspace_requests_total{status="timeout"}"#).await,
        timeouts + 1.0
    );

    // Files: write, read, delete, archive export and import.
    let status = |r: reqwest::Response| r.status().as_u16();
    let files = "/v1/conversations/c1/files?path=notes.txt";
    assert_eq!(
        status(
            plane
                .put(files, TOKEN_ACME)
                .body("abc")
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(plane.get(files, TOKEN_ACME).send().await.unwrap()),
        200
    );
    assert_eq!(
        status(plane.delete(files, TOKEN_ACME).send().await.unwrap()),
        204
    );
    let tar = plane
        .get("/v1/conversations/c1/archive", TOKEN_ACME)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        status(
            plane
                .put("/v1/conversations/c1/archive", TOKEN_ACME)
                .body(tar)
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        log.event("file_written", "path", "notes.txt").await.detail["bytes"],
        3
    );
    log.event("file_read", "path", "notes.txt").await;
    log.event("file_deleted", "path", "notes.txt").await;
    log.event("archive_exported", "", "").await;
    let imported = log.event("archive_imported", "", "").await;
    assert!(imported.detail["entries"].as_u64().unwrap() >= 1);

    // A forced sync.
    assert_eq!(
        status(
            plane
                .post("/v1/conversations/c1/sync", TOKEN_ACME)
                .send()
                .await
                .unwrap()
        ),
        200
    );
    log.event("file_sync_from_container", "trigger", "forced")
        .await;

    // Refused authentication, with the peer and the route.
    let refused = metric(&plane, "workspace_auth_failures_total").await;
    let r = plane
        .get("/v1/workspaces", "not-a-valid-token-at-all")
        .header("x-request-id", "req-bad-token")
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    let line = log.event("auth_refused", "route", "/v1/workspaces").await;
    assert_eq!(line.outcome, "refused");
    assert_eq!(line.request_id.as_deref(), Some("req-bad-token"));
    assert!(line.detail["peer"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(!std::fs::read_to_string(&log.path)
        .unwrap()
        .contains("not-a-valid-token"));
    assert_eq!(
        metric(&plane, "workspace_auth_failures_total").await,
        refused + 1.0
    );

    // Egress policy and pool changes.
    let r = plane
        .put("/v1/conversations/c1/egress", TOKEN_ACME)
        .json(&serde_json::json!({"allow": ["pypi.org"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    log.event("egress_policy_changed", "action", "set").await;
    let r = plane
        .put("/v1/pool", TOKEN_ACME)
        .json(&serde_json::json!({"min": 0, "max": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    assert_eq!(log.event("pool_resized", "max", "1").await.outcome, "ok");
    // With a pool allowed but empty (min 0), a new conversation's claim finds none.
    plane
        .execute(TOKEN_ACME, "c2", &cmd_request(&["true"]))
        .await;
    assert_eq!(
        metric(&plane, "workspace_warm_pool_exhausted_total").await,
        1.0
    );

    // Delete: synced first, then destroyed.
    let deleted = metric(&plane, r#"workspace_gc_destroyed_total{reason="deleted"}"#).await;
    assert_eq!(
        status(
            plane
                .delete("/v1/conversations/c1/workspace", TOKEN_ACME)
                .send()
                .await
                .unwrap()
        ),
        200
    );
    log.event("file_sync_from_container", "trigger", "before_destroy")
        .await;
    let gone = log.event("container_destroyed", "reason", "deleted").await;
    assert_eq!(gone.outcome, "ok");
    assert_eq!(gone.workspace_id.as_deref(), Some(ws.as_str()));
    assert_eq!(
        metric(&plane, r#"workspace_gc_destroyed_total{reason="deleted"}"#).await,
        deleted + 1.0
    );
    // c2 remains.
    assert_eq!(metric(&plane, "workspace_active_containers").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_workspaces_are_counted_as_crashes_wherever_they_are_found() {
    if !docker_tests_enabled() {
        return;
    }
    let mut cfg = test_config(&new_fleet("crash"));
    cfg.sync.max_files = 50;
    let log = AuditLog::of(&mut cfg);
    let plane = Plane::start_cfg(cfg).await;
    let runtime = plane.runtime();

    // Found by a request: replaced, restored, reported.
    let a = workspace_id_of(
        &plane
            .execute(TOKEN_ACME, "a", &sh_request("echo x > kept", None))
            .await,
    );
    log.event("file_sync_from_container", "trigger", "after_execute")
        .await;
    kill(&a).await;
    let events = plane
        .execute(TOKEN_ACME, "a", &cmd_request(&["cat", "kept"]))
        .await;
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::ContainerRecovered { .. })));
    let crash = log
        .find("container_crashed by request", |r| {
            r.event == "container_crashed" && r.workspace_id.as_deref() == Some(a.as_str())
        })
        .await;
    assert_eq!(crash.detail["found_by"], "request");
    assert_eq!(
        log.event("container_destroyed", "reason", "crashed")
            .await
            .outcome,
        "ok"
    );
    log.event("file_sync_to_container", "", "").await;
    assert_eq!(
        metric(&plane, "workspace_container_crashes_total").await,
        1.0
    );

    // Found by the reaper.
    let b = workspace_id_of(
        &plane
            .execute(TOKEN_ACME, "b", &cmd_request(&["true"]))
            .await,
    );
    kill(&b).await;
    let services = &plane.server.as_ref().unwrap().services;
    let reaper = Reaper::new(services.lifecycle.clone(), services.membership.clone());
    let report = reaper.sweep().await;
    assert_eq!(report.errors, 0, "{report:?}");
    let crash = log
        .find("container_crashed by gc", |r| {
            r.event == "container_crashed" && r.workspace_id.as_deref() == Some(b.as_str())
        })
        .await;
    assert_eq!(crash.detail["found_by"], "gc");
    assert_eq!(
        metric(&plane, "workspace_container_crashes_total").await,
        2.0
    );
    assert_eq!(
        metric(&plane, r#"workspace_gc_cycles_total{result="success"}"#).await,
        1.0
    );
    assert!(runtime.inspect(&b).await.unwrap().is_none(), "removed");

    // A sync that fails (the workspace is over the file limit): refused, counted by
    // kind, audited with the error.
    let errors = r#"workspace_s3_sync_errors_total{kind="too_large"}"#;
    plane
        .sh(
            "big",
            "mkdir m && cd m && for i in $(seq 1 80); do : > f$i; done",
        )
        .await;
    let r = plane
        .post("/v1/conversations/big/sync", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let failed = log
        .find("a forced sync that failed", |r| {
            r.event == "file_sync_from_container"
                && r.outcome == "error"
                && r.detail["trigger"] == "forced"
        })
        .await;
    assert_eq!(failed.detail["kind"], "too_large");
    assert!(metric(&plane, errors).await >= 1.0);
}

/// Stops a workspace's container from outside (a crash).
async fn kill(workspace_id: &str) {
    let d = docker().await;
    d.kill_container(
        workspace_id,
        None::<bollard::query_parameters::KillContainerOptions>,
    )
    .await
    .expect("kill the container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_redis_report_the_same_gauges() {
    if !docker_tests_enabled() {
        return;
    }
    let redis = TestRedis::start();
    let fleet = new_fleet("gauge");
    let store = |fleet: String| {
        let url = redis.url.clone();
        async move { Arc::new(RedisStore::connect(&url, &fleet).await.unwrap()) as Arc<dyn StateStore> }
    };
    let mut cfg_a = test_config(&fleet);
    cfg_a.pool.min = 2;
    cfg_a.pool.max = 2;
    cfg_a.pool.poll_interval_ms = 200;
    let a = Plane::start_with_store(cfg_a, store(fleet.clone()).await).await;
    // Replicas of one fleet share their configuration (B differs only in its sink).
    let mut cfg_b = a.cfg.clone();
    cfg_b.listen = "127.0.0.1:0".parse().unwrap();
    cfg_b.audit = format!("/tmp/cpt/{fleet}-b-audit.log");
    let log_b = AuditLog {
        path: cfg_b.audit.clone().into(),
    };
    let b = Plane::start_with_store(cfg_b, store(fleet.clone()).await).await;

    // The pool fills (whichever replica holds the fill lease): both read 2.
    for _ in 0..300 {
        if metric(&a, "workspace_warm_pool_size").await == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for plane in [&a, &b] {
        assert_eq!(metric(plane, "workspace_warm_pool_size").await, 2.0);
        assert_eq!(metric(plane, "workspace_active_containers").await, 2.0);
    }
    assert_eq!(
        metric(&a, r#"workspace_containers_created_total{source="pool"}"#).await
            + metric(&b, r#"workspace_containers_created_total{source="pool"}"#).await,
        2.0
    );

    // A claim through replica B is seen by both; its audit line says `warm`.
    let events = b.execute(TOKEN_ACME, "warm", &cmd_request(&["true"])).await;
    assert!(matches!(
        events[0],
        Event::Workspace {
            source: wire::WorkspaceSource::Warm,
            ..
        }
    ));
    assert_eq!(metric(&b, "workspace_warm_pool_hits_total").await, 1.0);
    assert_eq!(
        metric(&b, "workspace_warm_pool_acquire_seconds_count").await,
        1.0
    );
    let claimed = log_b.event("container_claimed", "source", "warm").await;
    assert_eq!(claimed.conversation_id.as_deref(), Some("warm"));
    assert_eq!(claimed.actor.as_deref(), Some("token:acme#0"));
    let (pa, pb) = (
        metric(&a, "workspace_warm_pool_size").await,
        metric(&b, "workspace_warm_pool_size").await,
    );
    assert_eq!(pa, pb, "both replicas read the pool from the store");
    assert_eq!(
        metric(&a, "workspace_active_containers").await,
        metric(&b, "workspace_active_containers").await
    );
}

/// A workspace whose sync keeps failing (here: more files than the sync allows) is not
/// immortal: a plain delete refuses (nothing would be saved) but a forced one destroys
/// it, and the reaper destroys it once past its absolute TTL plus the grace; both are
/// audited `destroyed_without_sync`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workspace_whose_sync_keeps_failing_is_not_immortal() {
    if !docker_tests_enabled() {
        return;
    }
    let mut cfg = test_config(&new_fleet("immortal"));
    cfg.sync.max_files = 50;
    cfg.gc.absolute_ttl_secs = 1;
    cfg.gc.sync_grace_secs = 1;
    let log = AuditLog::of(&mut cfg);
    let plane = Plane::start_cfg(cfg).await;
    let many = "mkdir m && cd m && for i in $(seq 1 80); do : > f$i; done";

    let doomed = workspace_id_of(
        &plane
            .execute(TOKEN_ACME, "del", &sh_request(many, None))
            .await,
    );
    let r = plane
        .delete("/v1/conversations/del/workspace", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "a plain delete keeps what it cannot save");
    let r = plane
        .delete("/v1/conversations/del/workspace?force=true", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = log
        .event("container_destroyed", "reason", "force_deleted")
        .await;
    assert_eq!(line.outcome, "destroyed_without_sync");
    assert_eq!(line.workspace_id.as_deref(), Some(doomed.as_str()));

    let old = workspace_id_of(
        &plane
            .execute(TOKEN_ACME, "ttl", &sh_request(many, None))
            .await,
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let services = &plane.server.as_ref().unwrap().services;
    let reaper = Reaper::new(services.lifecycle.clone(), services.membership.clone());
    assert_eq!(reaper.sweep().await.suspected, 1);
    let report = reaper.sweep().await;
    assert_eq!(report.destroyed_ids(), vec![old.as_str()], "{report:?}");
    let line = log.event("container_destroyed", "reason", "expired").await;
    assert_eq!(line.outcome, "destroyed_without_sync");
    assert!(plane.runtime().inspect(&old).await.unwrap().is_none());
}
