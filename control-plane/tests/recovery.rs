//! Nothing is lost, through the API, on the real Docker engine with S3 on moto: a
//! file written by a command is in S3 after the execute; a turn cut by a container
//! crash ends with `error`, never a hang; the next request gets a fresh workspace
//! restored from the last sync and says so (`container_recovered`); a delete syncs
//! first and a later workspace restores; forced syncs are incremental.

mod support;

use std::time::Duration;

use control_plane::{
    api::types::{SyncResult, WorkspaceInfo},
    sync::SyncBackend,
};
use futures::StreamExt;
use support::*;
use test_support::MotoServer;
use wire::{Event, SseDecoder, WorkspaceSource};

const BUCKET: &str = "workspace-recovery-test";

async fn s3_plane(tag: &str, moto: &MotoServer) -> Plane {
    // moto accepts any credentials; the control plane takes them from the standard
    // chain (here the environment), the sandbox never sees them.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");
    moto.create_bucket(BUCKET, true).await.unwrap();
    let mut cfg = test_config(&new_fleet(tag));
    cfg.sync.backend = SyncBackend::S3;
    cfg.sync.s3_bucket = BUCKET.into();
    cfg.sync.s3_prefix = cfg.fleet.clone();
    cfg.sync.s3_endpoint_url = Some(moto.endpoint.clone());
    cfg.sync.s3_force_path_style = true;
    cfg.sync.s3_region = Some("us-east-1".into());
    Plane::start_cfg(cfg).await
}

async fn object(moto: &MotoServer, key: &str) -> Option<Vec<u8>> {
    let out = moto
        .s3_client()
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(out.body.collect().await.ok()?.into_bytes().to_vec())
}

#[tokio::test]
async fn files_survive_a_container_crash() {
    if !docker_tests_enabled() {
        return;
    }
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let plane = s3_plane("crash", &moto).await;
    let prefix = format!("{}/acme/crashy/files", plane.fleet);

    let events = plane
        .execute(
            TOKEN_ACME,
            "crashy",
            &sh_request(
                "echo precious > keep.txt && mkdir -p d && echo deep > d/y",
                None,
            ),
        )
        .await;
    let first = workspace_id_of(&events);
    // The execute is followed by a sync: the file is in S3.
    let mut stored = None;
    for _ in 0..100 {
        stored = object(&moto, &format!("{prefix}/keep.txt")).await;
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored.as_deref(), Some(&b"precious\n"[..]));
    // ...and the API reports when.
    let mut info: Option<WorkspaceInfo> = None;
    for _ in 0..50 {
        let i: WorkspaceInfo = plane
            .get("/v1/conversations/crashy/workspace", TOKEN_ACME)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if i.last_synced_at.is_some() {
            info = Some(i);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(info.is_some(), "last_synced_at is reported");

    // A turn in progress when the container dies ends with `error`, not a hang.
    let resp = plane
        .post("/v1/conversations/crashy/execute", TOKEN_ACME)
        .json(&sh_request("echo started; sleep 120", Some(300)))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut dec = SseDecoder::new();
    let mut events = Vec::new();
    'started: while let Some(chunk) = body.next().await {
        for ev in dec.push(&chunk.unwrap()) {
            let ev = ev.unwrap();
            let is_started = matches!(&ev, Event::Stdout { .. });
            events.push(ev);
            if is_started {
                break 'started;
            }
        }
    }
    let d = docker().await;
    d.kill_container(
        &first,
        None::<bollard::query_parameters::KillContainerOptions>,
    )
    .await
    .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            for ev in dec.push(&chunk) {
                events.push(ev.unwrap());
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream hung after the crash");
    match events.last() {
        Some(Event::Error { code, .. }) => assert_eq!(code, "workspace_lost"),
        other => panic!("expected an error event, got {other:?}"),
    }

    // The next request: a fresh workspace, restored, and the stream says so.
    let events = plane
        .execute(TOKEN_ACME, "crashy", &sh_request("cat keep.txt d/y", None))
        .await;
    assert!(
        matches!(
            events[0],
            Event::Workspace {
                source: WorkspaceSource::Recovered,
                ..
            }
        ),
        "{:?}",
        events[0]
    );
    match &events[1] {
        Event::ContainerRecovered {
            previous_workspace_id,
            last_synced_at,
            workspace_id,
        } => {
            assert_eq!(previous_workspace_id, &first);
            assert_ne!(workspace_id, &first);
            assert!(last_synced_at.is_some());
        }
        other => panic!("expected container_recovered, got {other:?}"),
    }
    assert_eq!(split_output(&events).0, "precious\ndeep\n");
    let m = plane.metrics_text().await;
    assert!(m.contains("workspace_container_crashes_total 1"), "{m}");
}

#[tokio::test]
async fn delete_syncs_first_and_forced_syncs_are_incremental() {
    if !docker_tests_enabled() {
        return;
    }
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let plane = s3_plane("delsync", &moto).await;
    let sync = || async {
        let r = plane
            .post("/v1/conversations/d1/sync", TOKEN_ACME)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<SyncResult>().await.unwrap()
    };
    let (_, _, r) = plane
        .sh("d1", "for i in 1 2 3 4 5; do echo $i > f$i.txt; done")
        .await;
    assert_eq!(r.exit_code, Some(0));
    // The execute's own sync runs in the background; once it is done a forced sync
    // finds nothing to do.
    let _ = sync().await;
    let unchanged = sync().await;
    assert_eq!((unchanged.uploaded, unchanged.deleted), (0, 0));
    // Change one file and delete another through the files API (which does not sync
    // by itself): the next sync moves exactly those.
    let r = plane
        .put("/v1/conversations/d1/files?path=f2.txt", TOKEN_ACME)
        .body("changed\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = plane
        .delete("/v1/conversations/d1/files?path=f5.txt", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let changed = sync().await;
    assert_eq!((changed.uploaded, changed.deleted), (1, 1), "{changed:?}");
    let stored = object(&moto, &format!("{}/acme/d1/files/f2.txt", plane.fleet)).await;
    assert_eq!(stored.as_deref(), Some(&b"changed\n"[..]));
    assert!(
        object(&moto, &format!("{}/acme/d1/files/f5.txt", plane.fleet))
            .await
            .is_none()
    );

    // Unsynced work is saved by the delete itself.
    let _ = plane.sh("d1", "echo last-minute > late.txt").await;
    let r = plane
        .delete("/v1/conversations/d1/workspace", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A new workspace for the conversation starts from the stored files.
    let events = plane
        .execute(
            TOKEN_ACME,
            "d1",
            &sh_request("cat late.txt f1.txt; ls", None),
        )
        .await;
    assert!(matches!(
        events[0],
        Event::Workspace {
            source: WorkspaceSource::Cold,
            ..
        }
    ));
    let (out, _, _) = split_output(&events);
    assert!(out.starts_with("last-minute\n1\n"), "{out}");

    // Without a workspace there is nothing to sync.
    let r = plane
        .post("/v1/conversations/nobody/sync", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
