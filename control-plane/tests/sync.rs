//! File sync against real parts: the workspace agent (in-process on a Unix socket, and
//! inside real containers on the Docker engine), a real `moto_server` for S3, and the
//! local-directory store.
//!
//! In-process tests (no Docker): round trip and incremental sync on the local store,
//! the restore guard, batching with large files, limits, tampered manifests, the
//! debounced schedule. Docker tests (`docker_*`, need the engine and the offline image):
//! a file written by a command is in S3 after a sync; 5,000 files with 3 changed upload
//! exactly 3 objects (SyncReport and moto's version listing); a deleted file's object is
//! gone; a restore into a fresh workspace reproduces content, modes and symlinks
//! (including a venv's absolute one); a tampered manifest is refused and writes
//! nothing; the limits give `TooLarge`.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use bytes::Bytes;
use control_plane::{
    agent_client::AgentClient,
    runtime::Endpoint,
    store::ConversationKey,
    sync::{
        ConversationLayout, Limit, LocalDirStore, ObjectKey, ObjectStore, S3Store, Sse, SyncConfig,
        SyncError, Syncer,
    },
};
use support::*;
use test_support::MotoServer;
use tokio_util::sync::CancellationToken;
use wire::{ManifestEntry, ManifestKind};

// ---------------------------------------------------------------------------------
// In-process agent

struct LocalAgent {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    client: AgentClient,
    shutdown: CancellationToken,
}

impl LocalAgent {
    async fn start() -> LocalAgent {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let sock = tmp.path().join("agent.sock");
        let mut cfg = agent::config::Config::with_root(&root);
        cfg.listen = agent::config::ListenAddr::Unix(sock.clone());
        cfg.relay_listen = agent::config::RelayListen::Off;
        cfg.tmp_dir = Some(tmp.path().to_path_buf());
        cfg.validate().unwrap();
        let root = cfg.root.clone();
        let shutdown = CancellationToken::new();
        let bound = agent::server::bind(cfg, shutdown.clone()).await.unwrap();
        tokio::spawn(bound.serve());
        LocalAgent {
            _tmp: tmp,
            root,
            client: AgentClient::new(Endpoint::Unix(sock)),
            shutdown,
        }
    }
}

impl Drop for LocalAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Relative path -> (kind, mode, content or link target) of everything below `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            if md.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, ('l', 0, t.to_string_lossy().as_bytes().to_vec()));
            } else if md.is_dir() {
                out.insert(rel, ('d', mode, Vec::new()));
                walk(base, &p, out);
            } else {
                out.insert(rel, ('f', mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn populate(root: &Path) {
    std::fs::create_dir_all(root.join("proj/src/deep")).unwrap();
    std::fs::create_dir_all(root.join(".venv/bin")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("proj/src/main.py"), "print('hi')\n").unwrap();
    std::fs::write(root.join("proj/run.sh"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(root.join("proj/run.sh"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(root.join("proj/private"), "secret").unwrap();
    std::fs::set_permissions(root.join("proj/private"), PermissionsExt::from_mode(0o600)).unwrap();
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(root.join("proj/src/deep/blob.bin"), blob).unwrap();
    std::fs::write(
        root.join(format!("proj/{}", "long".repeat(40))),
        "long name",
    )
    .unwrap();
    std::fs::write(root.join("proj/empty.txt"), "").unwrap();
    std::fs::set_permissions(root.join("proj/src"), PermissionsExt::from_mode(0o750)).unwrap();
    symlink("/usr/bin/python3", root.join(".venv/bin/python")).unwrap();
    symlink("../../proj/src/main.py", root.join(".venv/bin/main")).unwrap();
    symlink("../../../../etc/passwd", root.join("proj/escape")).unwrap();
    symlink("missing-target", root.join("dangling")).unwrap();
}

fn local_syncer(dir: &Path, tweak: impl FnOnce(&mut SyncConfig)) -> Syncer {
    let mut cfg = SyncConfig {
        local_dir: dir.to_path_buf(),
        ..SyncConfig::default()
    };
    tweak(&mut cfg);
    Syncer::new(Arc::new(LocalDirStore::new(dir).with_fsync(false)), &cfg).unwrap()
}

fn key(conv: &str) -> ConversationKey {
    ConversationKey::new("acme", conv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_round_trip_incremental_and_guard() {
    let objects = tempfile::tempdir().unwrap();
    let syncer = local_syncer(objects.path(), |_| {});
    let k = key("c1");
    syncer.probe().await.unwrap();
    let a = LocalAgent::start().await;
    populate(&a.root);
    assert!(!syncer.has_state(&k).await.unwrap());
    assert_eq!(syncer.last_synced(&k), None);

    let r = syncer.sync(&k, &a.client).await.unwrap();
    assert_eq!(r.uploaded, 6, "{r:?}");
    assert_eq!(r.deleted, 0);
    assert!(r.manifest_written);
    assert_eq!(r.entries, 16);
    assert!(syncer.has_state(&k).await.unwrap());
    assert_eq!(syncer.last_synced(&k), Some(r.synced_at));
    let store = syncer.store().clone();
    let listed = store
        .list(&ObjectKey::new("acme/c1").unwrap())
        .await
        .unwrap();
    assert_eq!(listed.len(), 7, "6 files and the manifest: {listed:?}");

    // Unchanged: nothing moves, nothing is written.
    let r = syncer.sync(&k, &a.client).await.unwrap();
    assert_eq!((r.uploaded, r.deleted, r.manifest_written), (0, 0, false));

    // One changed, one added, one deleted, one mode-only change, one retargeted link.
    std::fs::write(a.root.join("proj/src/main.py"), "print('changed')\n").unwrap();
    std::fs::write(a.root.join("proj/new.txt"), "new").unwrap();
    std::fs::remove_file(a.root.join("proj/private")).unwrap();
    std::fs::set_permissions(
        a.root.join("proj/empty.txt"),
        PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    std::fs::remove_file(a.root.join("dangling")).unwrap();
    symlink("elsewhere", a.root.join("dangling")).unwrap();
    let r = syncer.sync(&k, &a.client).await.unwrap();
    assert_eq!((r.uploaded, r.deleted), (2, 1), "{r:?}");
    assert!(r.manifest_written);
    let layout = ConversationLayout::new(&k).unwrap();
    assert_eq!(
        store
            .head(&layout.file("proj/private").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get(&layout.file("proj/src/main.py").unwrap(), 100)
            .await
            .unwrap()
            .unwrap(),
        &b"print('changed')\n"[..]
    );

    // A fresh workspace: syncing it before a restore is refused (it would wipe the
    // stored files); the restore reproduces everything.
    let b = LocalAgent::start().await;
    let err = syncer.sync(&k, &b.client).await.unwrap_err();
    assert!(matches!(err, SyncError::NotRestored { .. }), "{err}");
    assert!(err.to_string().contains("restore it first"), "{err}");
    let rep = syncer.restore(&k, &b.client).await.unwrap().unwrap();
    assert!(
        rep.missing.is_empty() && rep.mismatched.is_empty(),
        "{rep:?}"
    );
    assert_eq!(rep.files, 6);
    assert_eq!(snapshot(&b.root), snapshot(&a.root));
    // Now syncing the new workspace moves nothing.
    let r = syncer.sync(&k, &b.client).await.unwrap();
    assert_eq!(
        (r.uploaded, r.deleted, r.manifest_written),
        (0, 0, false),
        "{r:?}"
    );

    // A second syncer (a restarted control plane) reads the stored state.
    let again = local_syncer(objects.path(), |_| {});
    assert!(again.has_state(&k).await.unwrap());
    let r = again.sync(&k, &b.client).await.unwrap();
    assert_eq!((r.uploaded, r.manifest_written), (0, false));
    // Nothing stored for another conversation: restore says so.
    let c = LocalAgent::start().await;
    assert!(syncer
        .restore(&key("none"), &c.client)
        .await
        .unwrap()
        .is_none());
    // Purge removes every object of the conversation.
    assert_eq!(syncer.purge(&k).await.unwrap(), 7);
    assert!(!syncer.has_state(&k).await.unwrap());
    assert!(store
        .list(&ObjectKey::new("acme").unwrap())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_large_files_and_stale_objects() {
    let objects = tempfile::tempdir().unwrap();
    let syncer = local_syncer(objects.path(), |c| c.archive_batch_bytes = 1 << 20);
    let k = key("big");
    let a = LocalAgent::start().await;
    let big: Vec<u8> = (0..9_500_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(a.root.join("big.bin"), &big).unwrap();
    for i in 0..5 {
        std::fs::write(a.root.join(format!("m{i}")), vec![i as u8; 600_000]).unwrap();
    }
    let r = syncer.sync(&k, &a.client).await.unwrap();
    assert_eq!(r.uploaded, 6);
    assert_eq!(r.bytes_uploaded, 9_500_000 + 3_000_000);

    // A sync that uploaded an object but died before writing its manifest: the object
    // is newer than the manifest. The restore uses it and says so.
    let layout = ConversationLayout::new(&k).unwrap();
    syncer
        .store()
        .put(&layout.file("m0").unwrap(), Bytes::from_static(b"newer"))
        .await
        .unwrap();
    let b = LocalAgent::start().await;
    let rep = syncer.restore(&k, &b.client).await.unwrap().unwrap();
    assert!(rep.archives >= 3, "{rep:?}");
    assert_eq!(rep.mismatched, ["m0"]);
    assert_eq!(std::fs::read(b.root.join("big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(b.root.join("m0")).unwrap(), b"newer");
    assert_eq!(
        std::fs::read(b.root.join("m4")).unwrap(),
        vec![4u8; 600_000]
    );

    // A missing object: the rest is restored and the report names it.
    syncer
        .store()
        .delete(&layout.file("m1").unwrap())
        .await
        .unwrap();
    let c = LocalAgent::start().await;
    let rep = syncer.restore(&k, &c.client).await.unwrap().unwrap();
    assert_eq!(rep.missing, ["m1"]);
    assert!(!c.root.join("m1").exists());
    assert!(c.root.join("m2").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_objects_are_refreshed_and_missing_ones_uploaded_again() {
    let objects = tempfile::tempdir().unwrap();
    let k = key("old");
    let layout = ConversationLayout::new(&k).unwrap();
    let a = LocalAgent::start().await;
    for i in 0..4 {
        std::fs::write(a.root.join(format!("f{i}")), format!("content {i}")).unwrap();
    }
    let syncer = local_syncer(objects.path(), |_| {});
    syncer.sync(&k, &a.client).await.unwrap();
    // Within `refresh_after_days`: nothing is refreshed.
    let r = syncer.sync(&k, &a.client).await.unwrap();
    assert_eq!((r.refreshed, r.manifest_written), (0, false));

    // The objects were last refreshed 61 days ago, and one of them is lost.
    let store = LocalDirStore::new(objects.path());
    let mut m: serde_json::Value = serde_json::from_slice(
        &store
            .get(&layout.manifest(), 1 << 20)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    m["refreshed_at"] = "2020-01-01T00:00:00Z".into();
    store
        .put(&layout.manifest(), Bytes::from(m.to_string()))
        .await
        .unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(86_400 * 61);
    for i in 0..4 {
        let p = store.path_of(&layout.file(&format!("f{i}")).unwrap());
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    store.delete(&layout.file("f3").unwrap()).await.unwrap();
    std::fs::write(a.root.join("f0"), "changed").unwrap();

    let restarted = local_syncer(objects.path(), |_| {});
    let r = restarted.sync(&k, &a.client).await.unwrap();
    assert_eq!(r.refreshed, 2, "f1 and f2 (f0 was uploaded anyway): {r:?}");
    assert_eq!(r.uploaded, 2, "f0 changed, f3 was missing: {r:?}");
    assert!(r.manifest_written);
    for i in 0..4 {
        let p = store.path_of(&layout.file(&format!("f{i}")).unwrap());
        let age = std::fs::metadata(&p).unwrap().modified().unwrap().elapsed();
        assert!(age.map(|a| a.as_secs() < 3600).unwrap_or(true), "f{i}");
    }
    let m: serde_json::Value = serde_json::from_slice(
        &store
            .get(&layout.manifest(), 1 << 20)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_ne!(m["refreshed_at"], "2020-01-01T00:00:00Z");
    let r = restarted.sync(&k, &a.client).await.unwrap();
    assert_eq!((r.refreshed, r.uploaded, r.manifest_written), (0, 0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_too_large_and_upload_nothing() {
    let objects = tempfile::tempdir().unwrap();
    let a = LocalAgent::start().await;
    for i in 0..20 {
        std::fs::write(a.root.join(format!("f{i}")), "0123456789").unwrap();
    }
    let by_count = local_syncer(objects.path(), |c| c.max_files = 10);
    let err = by_count.sync(&key("lim"), &a.client).await.unwrap_err();
    match &err {
        SyncError::TooLarge {
            limit: Limit::MaxFiles,
            actual: 20,
            allowed: 10,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("sync.max_files"), "{err}");
    let by_size = local_syncer(objects.path(), |c| c.max_total_bytes = 150);
    let err = by_size.sync(&key("lim"), &a.client).await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::TooLarge {
                limit: Limit::MaxTotalBytes,
                actual: 200,
                allowed: 150,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!objects.path().join("d.acme").exists(), "nothing stored");
}

/// Writes a manifest straight into the store, as an attacker with store access would.
async fn plant_manifest(store: &dyn ObjectStore, k: &ConversationKey, entries: Vec<ManifestEntry>) {
    let m = serde_json::json!({
        "format": 1,
        "tenant_id": k.tenant_id,
        "conversation_id": k.conversation_id,
        "synced_at": "2024-01-01T00:00:00Z",
        "entries": entries,
    });
    let layout = ConversationLayout::new(k).unwrap();
    store
        .put(
            &layout.manifest(),
            Bytes::from(serde_json::to_vec(&m).unwrap()),
        )
        .await
        .unwrap();
}

fn entry(path: &str, kind: ManifestKind, target: Option<&str>) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        kind,
        size: if kind == ManifestKind::File { 1 } else { 0 },
        mtime_ms: 0,
        mode: 0o644,
        // sha256("x")
        sha256: (kind == ManifestKind::File)
            .then(|| "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881".into()),
        target: target.map(String::from),
    }
}

fn tampered_manifests() -> Vec<(&'static str, Vec<ManifestEntry>)> {
    use ManifestKind::*;
    vec![
        ("`..`", vec![entry("../escape", File, None)]),
        (
            "`..`",
            vec![entry("d", Dir, None), entry("d/../../escape", File, None)],
        ),
        ("absolute", vec![entry("/etc/cron.d/x", File, None)]),
        (
            "not a directory",
            vec![
                entry("l", Symlink, Some("/tmp")),
                entry("l/planted", File, None),
            ],
        ),
        ("not in the manifest", vec![entry("nodir/x", File, None)]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_manifests_are_refused_and_write_nothing() {
    let objects = tempfile::tempdir().unwrap();
    let syncer = local_syncer(objects.path(), |_| {});
    let a = LocalAgent::start().await;
    for (i, (why, entries)) in tampered_manifests().into_iter().enumerate() {
        let k = key(&format!("t{i}"));
        plant_manifest(syncer.store().as_ref(), &k, entries).await;
        let err = syncer.restore(&k, &a.client).await.unwrap_err();
        assert!(
            matches!(err, SyncError::UnsafeManifest { .. }),
            "{why}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(why) && msg.contains("object store"),
            "{why}: {msg}"
        );
        assert!(snapshot(&a.root).is_empty(), "{why}: nothing written");
        // The unrestored workspace cannot overwrite the stored state either.
        assert!(syncer.sync(&k, &a.client).await.is_err());
    }
    assert!(!Path::new("/tmp/planted").exists());
    // A manifest of another conversation copied here is refused.
    let k = key("copy");
    let layout = ConversationLayout::new(&k).unwrap();
    let m = serde_json::json!({"format":1,"tenant_id":"globex","conversation_id":"copy",
        "synced_at":"2024-01-01T00:00:00Z","entries":[]});
    syncer
        .store()
        .put(&layout.manifest(), Bytes::from(m.to_string()))
        .await
        .unwrap();
    let err = syncer.restore(&k, &a.client).await.unwrap_err();
    assert!(err.to_string().contains("belongs to globex/copy"), "{err}");
    // Garbage is a corrupt manifest, not a panic.
    syncer
        .store()
        .put(&layout.manifest(), Bytes::from_static(b"{not json"))
        .await
        .unwrap();
    let err = syncer.restore(&k, &a.client).await.unwrap_err();
    assert!(matches!(err, SyncError::CorruptManifest { .. }), "{err:?}");
}

/// The coordinator's debouncer: five file-changing tools in quick succession make one
/// sync, which is recorded like every other sync (a `file_sync_from_container` audit
/// line with its trigger, and the record's sync time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_syncs_are_debounced_into_one() {
    use control_plane::{
        metrics::Metrics,
        store::{memory::MemoryStore, StateStore, WorkspaceRecord, WorkspaceState},
        sync::coordinator::SyncCoordinator,
        telemetry::Telemetry,
    };
    let objects = tempfile::tempdir().unwrap();
    let syncer = Arc::new(local_syncer(objects.path(), |c| c.debounce_ms = 300));
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let (sink, mut audit) = audit::AuditSink::channel();
    let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
    let coordinator = Arc::new(SyncCoordinator::new(
        syncer,
        store.clone(),
        Telemetry::new(metrics, sink),
    ));
    let a = LocalAgent::start().await;
    let k = key("deb");
    let rec = WorkspaceRecord {
        workspace_id: "ws-deb".into(),
        tenant_id: Some(k.tenant_id.clone()),
        conversation_id: Some(k.conversation_id.clone()),
        endpoint: a.client.endpoint().clone(),
        created_at_ms: 1,
        last_active_ms: 1,
        last_synced_ms: None,
        source: wire::WorkspaceSource::Cold,
        state: WorkspaceState::Bound,
        created_by: "test".into(),
        egress_socket: None,
    };
    store.put_record(&rec).await.unwrap();
    for i in 0..5 {
        std::fs::write(a.root.join(format!("f{i}")), "x").unwrap();
        coordinator.schedule(&rec);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(coordinator.is_scheduled(&k));
    let line = tokio::time::timeout(Duration::from_secs(10), audit.recv())
        .await
        .expect("a sync within the debounce delay")
        .unwrap();
    let line = audit::AuditRecord::check_line(&line.to_json_line()).unwrap();
    assert_eq!(line.event, "file_sync_from_container");
    assert_eq!(line.detail["trigger"], "scheduled");
    assert_eq!(line.detail["uploaded"], 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(audit.try_recv().is_err(), "exactly one sync");
    assert!(!coordinator.is_scheduled(&k));
    let stored = store.record("ws-deb").await.unwrap().unwrap();
    assert!(stored.last_synced_ms.is_some(), "the sync time is recorded");
}

// ---------------------------------------------------------------------------------
// Real containers and moto S3

const BUCKET: &str = "workspace-sync-test";
const PREFIX: &str = "workspaces";

fn moto() -> MotoServer {
    MotoServer::start()
        .unwrap_or_else(|e| panic!("moto_server is required for the S3 sync tests: {e}"))
}

fn s3_syncer(m: &MotoServer, tweak: impl FnOnce(&mut SyncConfig)) -> Syncer {
    let mut cfg = SyncConfig {
        backend: control_plane::sync::SyncBackend::S3,
        s3_bucket: BUCKET.into(),
        s3_prefix: PREFIX.into(),
        ..SyncConfig::default()
    };
    tweak(&mut cfg);
    let store = S3Store::from_client(m.s3_client(), BUCKET, PREFIX, Sse::Aes256);
    Syncer::new(Arc::new(store), &cfg).unwrap()
}

async fn sync_plane(tag: &str) -> Plane {
    let mut cfg = test_config(&new_fleet(tag));
    cfg.docker.workspace_size = "128m".into();
    cfg.docker.tmp_size = "64m".into();
    cfg.docker.memory_bytes = 512 * 1024 * 1024;
    Plane::start_cfg(cfg).await
}

async fn agent_of(plane: &Plane, conv: &str) -> AgentClient {
    let rec = plane
        .server
        .as_ref()
        .unwrap()
        .services
        .lifecycle
        .existing(&key(conv))
        .await
        .unwrap()
        .expect("the conversation has a workspace");
    AgentClient::new(rec.endpoint)
}

/// Keys (without the store prefix) of live objects below `prefix`.
async fn s3_keys(c: &Client, prefix: &str) -> Vec<String> {
    let mut pages = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(format!("{PREFIX}/{prefix}"))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(p) = pages.next().await {
        for o in p.unwrap().contents() {
            out.push(
                o.key()
                    .unwrap()
                    .trim_start_matches(&format!("{PREFIX}/"))
                    .to_string(),
            );
        }
    }
    out
}

/// Object versions (not delete markers) below `prefix`: every upload is one.
async fn s3_versions(c: &Client, prefix: &str) -> usize {
    let mut n = 0;
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let out = c
            .list_object_versions()
            .bucket(BUCKET)
            .prefix(format!("{PREFIX}/{prefix}"))
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        n += out.versions().len();
        if out.is_truncated() != Some(true) {
            return n;
        }
        key_marker = out.next_key_marker().map(String::from);
        version_marker = out.next_version_id_marker().map(String::from);
    }
}

async fn s3_get(c: &Client, key: &str) -> Option<Vec<u8>> {
    match c
        .get_object()
        .bucket(BUCKET)
        .key(format!("{PREFIX}/{key}"))
        .send()
        .await
    {
        Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_incremental_sync_to_s3() {
    if !docker_tests_enabled() {
        return;
    }
    let m = moto();
    m.create_bucket(BUCKET, true).await.unwrap();
    let s3 = m.s3_client();
    let syncer = s3_syncer(&m, |_| {});
    syncer.probe().await.unwrap();
    let missing_bucket = S3Store::from_client(m.s3_client(), "no-such-bucket", PREFIX, Sse::Aes256);
    let err = Syncer::new(Arc::new(missing_bucket), &SyncConfig::default())
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
    let plane = sync_plane("sync").await;
    let conv = "sync-5000";
    let k = key(conv);

    // A file written by a command is in S3 after a sync.
    let (_, _, r) = plane
        .sh(conv, "echo 'hello from the sandbox' > notes.txt")
        .await;
    assert_eq!(r.exit_code, Some(0));
    let agent = agent_of(&plane, conv).await;
    let rep = syncer.sync(&k, &agent).await.unwrap();
    assert_eq!(rep.uploaded, 1);
    assert_eq!(
        s3_get(&s3, &format!("acme/{conv}/files/notes.txt"))
            .await
            .as_deref(),
        Some(&b"hello from the sandbox\n"[..])
    );
    assert!(s3_get(&s3, &format!("acme/{conv}/manifest.json"))
        .await
        .is_some());

    // 5,000 files (50 directories of 100).
    let (_, err, r) = plane
        .sh(
            conv,
            "for d in $(seq 0 49); do mkdir d$d; for f in $(seq 0 99); do echo \"$d/$f\" > d$d/f$f; done; done",
        )
        .await;
    assert_eq!(r.exit_code, Some(0), "{err}");
    let rep = syncer.sync(&k, &agent).await.unwrap();
    assert_eq!(rep.uploaded, 5000, "{rep:?}");
    assert_eq!(rep.entries, 5051);
    let files_prefix = format!("acme/{conv}/files/");
    assert_eq!(s3_versions(&s3, &files_prefix).await, 5001);

    // 3 changed: exactly 3 objects uploaded (the report and moto agree).
    let (_, _, r) = plane
        .sh(
            conv,
            "echo changed > d1/f1; echo changed > d20/f7; echo x >> d49/f99",
        )
        .await;
    assert_eq!(r.exit_code, Some(0));
    let rep = syncer.sync(&k, &agent).await.unwrap();
    assert_eq!((rep.uploaded, rep.deleted), (3, 0), "{rep:?}");
    assert_eq!(s3_versions(&s3, &files_prefix).await, 5004);
    assert_eq!(
        s3_get(&s3, &format!("acme/{conv}/files/d20/f7"))
            .await
            .as_deref(),
        Some(&b"changed\n"[..])
    );

    // Unchanged: nothing uploaded, no manifest written.
    let manifest_versions = s3_versions(&s3, &format!("acme/{conv}/manifest.json")).await;
    let rep = syncer.sync(&k, &agent).await.unwrap();
    assert_eq!((rep.uploaded, rep.manifest_written), (0, false));
    assert_eq!(
        s3_versions(&s3, &format!("acme/{conv}/manifest.json")).await,
        manifest_versions
    );

    // A deleted file's object is gone after the next sync.
    let (_, _, r) = plane.sh(conv, "rm d3/f3 notes.txt").await;
    assert_eq!(r.exit_code, Some(0));
    let rep = syncer.sync(&k, &agent).await.unwrap();
    assert_eq!((rep.uploaded, rep.deleted), (0, 2), "{rep:?}");
    let keys = s3_keys(&s3, &files_prefix).await;
    assert_eq!(keys.len(), 4999);
    assert!(!keys.contains(&format!("acme/{conv}/files/d3/f3")));
    assert!(s3_get(&s3, &format!("acme/{conv}/files/notes.txt"))
        .await
        .is_none());

    // Limits: refused with TooLarge, nothing uploaded.
    let before = s3_versions(&s3, &files_prefix).await;
    let (_, _, r) = plane.sh(conv, "echo more > d0/new").await;
    assert_eq!(r.exit_code, Some(0));
    let small = s3_syncer(&m, |c| c.max_files = 1000);
    let err = small.sync(&k, &agent).await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::TooLarge {
                limit: Limit::MaxFiles,
                actual: 5050,
                allowed: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    let small = s3_syncer(&m, |c| c.max_total_bytes = 10_000);
    let err = small.sync(&k, &agent).await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::TooLarge {
                limit: Limit::MaxTotalBytes,
                allowed: 10_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("sync.max_total_bytes"), "{err}");
    assert_eq!(s3_versions(&s3, &files_prefix).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restore_into_a_fresh_workspace() {
    if !docker_tests_enabled() {
        return;
    }
    let m = moto();
    m.create_bucket(BUCKET, false).await.unwrap();
    let syncer = s3_syncer(&m, |_| {});
    let plane = sync_plane("restore").await;
    let conv = "restore-1";
    let k = key(conv);
    let setup = r#"
        set -e
        mkdir -p proj/src/deep .venv/bin empty
        printf 'print(1)\n' > proj/src/main.py
        printf '#!/bin/sh\necho run\n' > proj/run.sh && chmod 755 proj/run.sh
        printf 'secret' > proj/private && chmod 600 proj/private
        head -c 300000 /dev/urandom > proj/src/deep/blob.bin
        : > proj/empty.txt
        chmod 750 proj/src
        ln -s /usr/bin/python3 .venv/bin/python
        ln -s ../../proj/src/main.py .venv/bin/main
        ln -s ../../../../etc/passwd proj/escape
    "#;
    let (_, err, r) = plane.sh(conv, setup).await;
    assert_eq!(r.exit_code, Some(0), "{err}");
    let describe = "find . | sort | while read -r p; do \
        if [ -L \"$p\" ]; then echo \"L $p -> $(readlink \"$p\")\"; \
        elif [ -d \"$p\" ]; then echo \"D $(stat -c %a \"$p\") $p\"; \
        else echo \"F $(stat -c %a \"$p\") $(sha256sum < \"$p\" | cut -c1-64) $p\"; fi; done";
    let (before, _, _) = plane.sh(conv, describe).await;
    assert!(
        before.contains("L ./.venv/bin/python -> /usr/bin/python3"),
        "{before}"
    );
    let old_agent = agent_of(&plane, conv).await;
    let rep = syncer.sync(&k, &old_agent).await.unwrap();
    assert_eq!(rep.uploaded, 5);

    // Destroy the workspace; the next request gets a new one.
    let resp = plane
        .delete(&format!("/v1/conversations/{conv}/workspace"), TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let acquired = plane
        .server
        .as_ref()
        .unwrap()
        .services
        .lifecycle
        .acquire(
            &k,
            &control_plane::telemetry::RequestContext::system("test"),
        )
        .await
        .unwrap();
    let agent = AgentClient::new(acquired.record.endpoint.clone());
    assert_ne!(
        agent.endpoint().to_string(),
        old_agent.endpoint().to_string()
    );

    // Syncing the empty new workspace before restoring it is refused.
    let err = syncer.sync(&k, &agent).await.unwrap_err();
    assert!(matches!(err, SyncError::NotRestored { .. }), "{err:?}");

    let rep = syncer
        .restore(&k, &agent)
        .await
        .unwrap()
        .expect("stored state");
    assert!(
        rep.missing.is_empty() && rep.mismatched.is_empty(),
        "{rep:?}"
    );
    assert_eq!(rep.files, 5);
    let (after, _, _) = plane.sh(conv, describe).await;
    assert_eq!(after, before);
    let (out, _, _) = plane.sh(conv, "./proj/run.sh").await;
    assert_eq!(out, "run\n");
    // And the restored workspace syncs as unchanged.
    let rep = syncer.sync(&k, &agent).await.unwrap();
    assert_eq!(
        (rep.uploaded, rep.deleted, rep.manifest_written),
        (0, 0, false),
        "{rep:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_tampered_manifest_is_refused() {
    if !docker_tests_enabled() {
        return;
    }
    let m = moto();
    m.create_bucket(BUCKET, false).await.unwrap();
    let syncer = s3_syncer(&m, |_| {});
    let plane = sync_plane("tamper").await;
    for (i, (why, entries)) in tampered_manifests().into_iter().enumerate() {
        let conv = format!("tamper-{i}");
        let k = key(&conv);
        plant_manifest(syncer.store().as_ref(), &k, entries).await;
        let acquired = plane
            .server
            .as_ref()
            .unwrap()
            .services
            .lifecycle
            .acquire(
                &k,
                &control_plane::telemetry::RequestContext::system("test"),
            )
            .await
            .unwrap();
        let agent = AgentClient::new(acquired.record.endpoint.clone());
        let err = syncer.restore(&k, &agent).await.unwrap_err();
        assert!(
            matches!(err, SyncError::UnsafeManifest { .. }),
            "{why}: {err:?}"
        );
        assert!(err.to_string().contains(why), "{why}: {err}");
        let (out, _, _) = plane
            .sh(
                &conv,
                "find . -mindepth 1 | wc -l; test -e /tmp/planted && echo planted",
            )
            .await;
        assert_eq!(out.trim(), "0", "{why}: nothing written");
    }
}

/// The public archive route must not reach the restore's `links=preserve`: whatever
/// query the caller adds, a tar with a symlink pointing outside is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_public_archive_route_cannot_preserve_links() {
    if !docker_tests_enabled() {
        return;
    }
    let plane = sync_plane("pubarch").await;
    let conv = "pubarch";
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    tar.append_link(&mut h, "python", "/usr/bin/python3")
        .unwrap();
    let body = tar.into_inner().unwrap();
    for q in ["", "?links=preserve", "?links=preserve&path=x"] {
        let resp = plane
            .put(&format!("/v1/conversations/{conv}/archive{q}"), TOKEN_ACME)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 400, "{q}: {text}");
        assert!(text.contains("invalid_archive"), "{q}: {text}");
    }
    let (out, _, _) = plane.sh(conv, "ls -A | wc -l").await;
    assert_eq!(out.trim(), "0");
}
