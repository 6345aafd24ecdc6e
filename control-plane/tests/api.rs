//! The control plane's API against the real Docker engine: auth and error answers,
//! one workspace per conversation (also under concurrency), files and archives with
//! their confinement, restart adoption, clean shutdown, and the container's hardening
//! as `docker inspect` shows it.

mod support;

use std::collections::HashSet;

use bollard::query_parameters::InspectContainerOptions;
use control_plane::api::types::{WorkspaceInfo, WorkspaceList};
use support::*;
use wire::{Event, FileList, WorkspaceSource};

fn assert_json_error(body: &serde_json::Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(body["error"]["message"].is_string(), "body: {body}");
}

#[tokio::test]
async fn auth_and_error_answers() {
    if !docker_tests_enabled() {
        return;
    }
    let plane = Plane::start("auth").await;
    let http = &plane.http;

    // No token, malformed header, bad token: 401 JSON with a Bearer challenge.
    let r = http.get(plane.url("/v1/workspaces")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_json_error(&r.json().await.unwrap(), "unauthorized");
    for header in [
        "Bearer wrong-token-0123456789abcdef".to_string(),
        format!("Basic {TOKEN_ACME}"),
        format!("Bearer {}", &TOKEN_ACME[..TOKEN_ACME.len() - 1]),
        format!("Bearer {TOKEN_ACME}x"),
    ] {
        let r = http
            .get(plane.url("/v1/workspaces"))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header}");
    }

    // Invalid conversation ids: 400 before anything is created.
    for bad in ["a%20b", "bad*id", "x%2Fy", "%C3%A9", &"x".repeat(129)] {
        let r = plane
            .post(&format!("/v1/conversations/{bad}/execute"), TOKEN_ACME)
            .json(&cmd_request(&["true"]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_json_error(&r.json().await.unwrap(), "invalid_conversation_id");
    }

    // Malformed execute bodies: 400 with a JSON error.
    for body in [
        r#"{"mode":"shell","argv":["x"]}"#,
        r#"{"mode":"command"}"#,
        r#"{"mode":"command","argv":[]}"#,
        r#"{"mode":"command","argv":["a","b"],"shell":true}"#,
        r#"not json"#,
    ] {
        let r = plane
            .post("/v1/conversations/c1/execute", TOKEN_ACME)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let b: serde_json::Value = r.json().await.unwrap();
        assert!(b["error"]["code"].is_string(), "{b}");
    }

    // Oversized bodies: 413 JSON (execute JSON and file upload).
    let huge = format!(
        r#"{{"mode":"command","argv":["{}"]}}"#,
        "x".repeat(plane.cfg.max_json_bytes + 10)
    );
    let r = plane
        .post("/v1/conversations/c1/execute", TOKEN_ACME)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_json_error(&r.json().await.unwrap(), "body_too_large");

    // Unknown route and wrong method: JSON 404 / 405.
    let r = plane.get("/v1/nope", TOKEN_ACME).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_json_error(&r.json().await.unwrap(), "not_found");
    let r = plane
        .patch("/v1/workspaces", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_json_error(&r.json().await.unwrap(), "method_not_allowed");

    // A conversation of tenant acme is invisible to tenant globex: 404, not 403.
    let events = plane
        .execute(TOKEN_ACME, "secret-conv", &cmd_request(&["true"]))
        .await;
    let ws = workspace_id_of(&events);
    for path in [
        "/v1/conversations/secret-conv/workspace".to_string(),
        "/v1/conversations/secret-conv/files?path=x".to_string(),
        "/v1/conversations/secret-conv/files/list".to_string(),
        format!("/v1/workspaces/{ws}"),
    ] {
        let r = plane.get(&path, TOKEN_GLOBEX).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = plane
        .delete(&format!("/v1/workspaces/{ws}"), TOKEN_GLOBEX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let list: WorkspaceList = plane
        .get("/v1/workspaces", TOKEN_GLOBEX)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.workspaces.is_empty());
    // ... and acme still has it.
    let info: WorkspaceInfo = plane
        .get(&format!("/v1/workspaces/{ws}"), TOKEN_ACME)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info.conversation_id, "secret-conv");

    // Health and metrics are outside /v1 and need no token.
    let r = http.get(plane.url("/health/live")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(plane.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = plane.metrics_text().await;
    assert!(m.contains("workspace_auth_failures_total"), "{m}");
    assert!(m.contains("workspace_container_startup_seconds"), "{m}");
}

#[tokio::test]
async fn one_workspace_per_conversation_even_under_concurrency() {
    if !docker_tests_enabled() {
        return;
    }
    let plane = Plane::start("conc").await;

    let a1 = plane
        .execute(TOKEN_ACME, "conv-a", &cmd_request(&["true"]))
        .await;
    let a2 = plane
        .execute(TOKEN_ACME, "conv-a", &cmd_request(&["true"]))
        .await;
    assert_eq!(workspace_id_of(&a1), workspace_id_of(&a2));
    assert!(matches!(
        a1[0],
        Event::Workspace {
            source: WorkspaceSource::Cold,
            ..
        }
    ));
    assert!(matches!(
        a2[0],
        Event::Workspace {
            source: WorkspaceSource::Existing,
            ..
        }
    ));
    let b = plane
        .execute(TOKEN_ACME, "conv-b", &cmd_request(&["true"]))
        .await;
    assert_ne!(workspace_id_of(&a1), workspace_id_of(&b));
    // The same conversation id in another tenant is another workspace.
    let g = plane
        .execute(TOKEN_GLOBEX, "conv-a", &cmd_request(&["true"]))
        .await;
    assert_ne!(workspace_id_of(&a1), workspace_id_of(&g));
    assert_eq!(plane.container_count().await, 3);

    // 20 concurrent first requests for one new conversation: one container.
    let req = cmd_request(&["echo", "hi"]);
    let futs = (0..20).map(|_| plane.execute(TOKEN_ACME, "conv-burst", &req));
    let results = futures::future::join_all(futs).await;
    let ids: HashSet<String> = results.iter().map(|e| workspace_id_of(e)).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    for events in &results {
        let (out, _, res) = split_output(events);
        assert_eq!(out, "hi\n");
        assert_eq!(res.exit_code, Some(0));
    }
    assert_eq!(plane.container_count().await, 4);

    // Delete removes the container and its socket directory.
    let ws = workspace_id_of(&b);
    let sock_dir = plane.cfg.docker.socket_root.join(&ws);
    assert!(sock_dir.exists());
    let r = plane
        .delete("/v1/conversations/conv-b/workspace", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!sock_dir.exists());
    assert_eq!(plane.container_count().await, 3);
    let r = plane
        .get("/v1/conversations/conv-b/workspace", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn files_round_trip_and_confinement() {
    if !docker_tests_enabled() {
        return;
    }
    let plane = Plane::start("files").await;
    let http = &plane.http;
    let files = |q: &str| plane.url(&format!("/v1/conversations/f1/files?{q}"));

    // Reading before the workspace exists: 404.
    let r = http
        .get(files("path=a.txt"))
        .bearer_auth(TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Text and binary round trips; a write creates the workspace.
    let r = http
        .put(files("path=dir/a.txt"))
        .bearer_auth(TOKEN_ACME)
        .body("héllo\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let r = http
        .put(files("path=bin/blob.dat"))
        .bearer_auth(TOKEN_ACME)
        .body(binary.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = http
        .get(files("path=dir/a.txt"))
        .bearer_auth(TOKEN_ACME)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(got, "héllo\n");
    let got = http
        .get(files("path=bin/blob.dat"))
        .bearer_auth(TOKEN_ACME)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), binary.as_slice());
    let list: FileList = plane
        .get("/v1/conversations/f1/files/list?recursive=true", TOKEN_ACME)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<_> = list.entries.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"dir/a.txt") && paths.contains(&"bin/blob.dat"),
        "{paths:?}"
    );
    // The command sees what the API wrote.
    let (out, _, _) = plane.sh("f1", "cat /workspace/dir/a.txt").await;
    assert_eq!(out, "héllo\n");

    // Attacks: traversal, absolute paths, symlinks out of the root.
    let (_, _, r) = plane
        .sh(
            "f1",
            "ln -s /etc /workspace/etc-link && ln -s ../../tmp /workspace/dir/tmp-link",
        )
        .await;
    assert_eq!(r.exit_code, Some(0));
    for q in [
        "path=../x",
        "path=dir/../../x",
        "path=%2Fetc%2Fpasswd",
        "path=%2Ftmp%2Fpwned",
        "path=etc-link/passwd",
        "path=etc-link/pwned",
        "path=dir/tmp-link/pwned",
        "path=",
        "path=a%00b",
    ] {
        let r = http
            .put(files(q))
            .bearer_auth(TOKEN_ACME)
            .body("pwned")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "PUT {q}");
        let b: serde_json::Value = r.json().await.unwrap();
        assert!(b["error"]["code"].is_string());
        let r = http
            .get(files(q))
            .bearer_auth(TOKEN_ACME)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "GET {q}");
    }
    let r = http
        .get(files("path=etc-link/passwd"))
        .bearer_auth(TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Tar-slip: an archive with an escaping entry is refused whole.
    for evil in [evil_tar_dotdot(), evil_tar_symlink()] {
        let r = plane
            .put("/v1/conversations/f1/archive", TOKEN_ACME)
            .body(evil)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    // Nothing was written outside the root, and the valid entries of the evil
    // archives were not extracted either.
    let (out, _, _) = plane
        .sh(
            "f1",
            "ls /tmp/pwned /pwned /home/appuser/pwned /workspace/ok-before-evil 2>&1; true",
        )
        .await;
    assert!(out.contains("No such file"), "{out}");
    assert!(!out.contains("\n/tmp/pwned\n"), "{out}");
    for p in [
        "/tmp/pwned",
        "/pwned",
        "/home/appuser/pwned",
        "/workspace/ok-before-evil",
    ] {
        assert!(
            out.contains(&format!("{p}: No such file")),
            "{p} exists: {out}"
        );
    }

    // A valid archive round trip.
    let good = {
        let mut b = tar::Builder::new(Vec::new());
        let data = b"from tar\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "imported/readme.txt", &data[..])
            .unwrap();
        b.into_inner().unwrap()
    };
    let r = plane
        .put("/v1/conversations/f1/archive", TOKEN_ACME)
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let tar_bytes = plane
        .get("/v1/conversations/f1/archive", TOKEN_ACME)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut ar = tar::Archive::new(tar_bytes.as_ref());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "imported/readme.txt"),
        "{names:?}"
    );

    // Delete a file.
    let r = http
        .delete(files("path=dir/a.txt"))
        .bearer_auth(TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(files("path=dir/a.txt"))
        .bearer_auth(TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // An oversized upload is 413.
    let r = http
        .put(files("path=huge.bin"))
        .bearer_auth(TOKEN_ACME)
        .body(vec![0u8; plane.cfg.max_body_bytes + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

fn raw_tar_entry(name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Vec<u8> {
    // Builds a header by hand: tar::Builder refuses to write `..` paths itself.
    let mut h = tar::Header::new_old();
    {
        let bytes = h.as_old_mut();
        bytes.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            bytes.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn evil_tar_dotdot() -> Vec<u8> {
    let mut t = raw_tar_entry("ok-before-evil", tar::EntryType::Regular, None, b"x");
    t.extend(raw_tar_entry(
        "../../tmp/pwned",
        tar::EntryType::Regular,
        None,
        b"pwned",
    ));
    t.extend([0u8; 1024]);
    t
}

fn evil_tar_symlink() -> Vec<u8> {
    let mut t = raw_tar_entry("ok-before-evil", tar::EntryType::Regular, None, b"x");
    t.extend(raw_tar_entry(
        "escape",
        tar::EntryType::Symlink,
        Some("/home/appuser"),
        b"",
    ));
    t.extend(raw_tar_entry(
        "escape/pwned",
        tar::EntryType::Regular,
        None,
        b"pwned",
    ));
    t.extend([0u8; 1024]);
    t
}

#[tokio::test]
async fn restart_adopts_running_workspaces_and_cleanup_removes_them() {
    if !docker_tests_enabled() {
        return;
    }
    let mut plane = Plane::start("restart").await;
    let first = plane
        .execute(TOKEN_ACME, "keep", &cmd_request(&["true"]))
        .await;
    let ws = workspace_id_of(&first);
    let (_, _, r) = plane.sh("keep", "echo kept > /workspace/state.txt").await;
    assert_eq!(r.exit_code, Some(0));
    plane.stop().await;
    assert_eq!(plane.container_count().await, 1, "no clean-up configured");

    // A new process (fresh in-memory store), same fleet: adopts by label.
    let mut cfg = plane.cfg.clone();
    cfg.cleanup_on_shutdown = true;
    let mut again = Plane::start_cfg(cfg).await;
    let events = again
        .execute(
            TOKEN_ACME,
            "keep",
            &sh_request("cat /workspace/state.txt", None),
        )
        .await;
    assert_eq!(workspace_id_of(&events), ws);
    assert!(matches!(
        events[0],
        Event::Workspace {
            source: WorkspaceSource::Existing,
            ..
        }
    ));
    let (out, _, _) = split_output(&events);
    assert_eq!(out, "kept\n");

    // Graceful shutdown with clean-up leaves no container of this fleet.
    again.stop().await;
    assert_eq!(again.container_count().await, 0);
    assert!(!again.cfg.docker.socket_root.join(&ws).exists());
}

#[tokio::test]
async fn docker_inspect_shows_every_hardening_option() {
    if !docker_tests_enabled() {
        return;
    }
    let plane = Plane::start("inspect").await;
    let events = plane
        .execute(TOKEN_ACME, "hard", &cmd_request(&["true"]))
        .await;
    let ws = workspace_id_of(&events);
    let d = docker().await;
    let c = d
        .inspect_container(&ws, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let hc = c.host_config.unwrap();
    let cfg = c.config.unwrap();
    assert_eq!(hc.network_mode.as_deref(), Some("none"));
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
    assert!(hc.cap_add.unwrap_or_default().is_empty());
    let sec = hc.security_opt.unwrap();
    assert!(sec.iter().any(|s| s == "no-new-privileges:true"), "{sec:?}");
    let seccomp = sec
        .iter()
        .find_map(|s| s.strip_prefix("seccomp="))
        .expect("a seccomp profile");
    let profile: serde_json::Value = serde_json::from_str(seccomp).unwrap();
    assert_eq!(
        profile,
        serde_json::from_str::<serde_json::Value>(control_plane::config::EMBEDDED_SECCOMP_PROFILE)
            .unwrap()
    );
    assert_eq!(hc.pids_limit, Some(64));
    assert_eq!(hc.memory, Some(256 * 1024 * 1024));
    assert_eq!(hc.memory_swap, hc.memory, "swap disabled");
    assert_eq!(hc.nano_cpus, Some(1_000_000_000));
    assert_eq!(hc.ipc_mode.as_deref(), Some("private"));
    assert_eq!(hc.init, Some(true));
    assert_ne!(hc.privileged, Some(true));
    let tmpfs = hc.tmpfs.unwrap();
    assert!(tmpfs["/tmp"].contains("noexec") && tmpfs["/tmp"].contains("nosuid"));
    assert!(tmpfs["/tmp"].contains("size="));
    assert!(tmpfs["/home/appuser"].contains("size="));
    assert!(tmpfs["/run"].contains("size="));
    assert!(tmpfs["/workspace"].contains(&format!("size={}", 32 * 1024 * 1024)));
    let binds = hc.binds.unwrap();
    let own = plane.cfg.docker.socket_root.join(&ws);
    assert_eq!(
        binds,
        vec![
            format!("{}/agent:/run/workspace:rw", own.display()),
            format!("{}/egress:/run/egress:ro", own.display()),
        ],
        "only its own socket directories; the egress one read-only"
    );
    assert_eq!(cfg.user.as_deref(), Some("1000:1000"));
    let labels = cfg.labels.unwrap();
    assert_eq!(labels["io.agent-workspace.managed"], "true");
    assert_eq!(labels["io.agent-workspace.workspace-id"], ws);
    assert_eq!(labels["io.agent-workspace.tenant"], "acme");
    assert_eq!(labels["io.agent-workspace.conversation"], "hard");
    assert!(labels["io.agent-workspace.created-at"].ends_with('Z'));
    let env = cfg.env.unwrap();
    for e in &env {
        let name = e.split('=').next().unwrap();
        assert!(
            !control_plane::config::looks_like_credential(name),
            "credential-like variable in the container: {name}"
        );
    }
}
