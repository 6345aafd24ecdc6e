//! The built `workspace-agent` binary: configuration from the environment, socket
//! handling (stale socket replaced, mode 0660, removed on SIGTERM), no agent variables
//! leaked to commands, a clear failure on bad configuration, and `probe`.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_workspace-agent");

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Running {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "WORKSPACE_AGENT_LISTEN",
            format!("unix:{}", dir.join("agent.sock").display()),
        )
        .env("WORKSPACE_AGENT_ROOT", &root)
        .env("WORKSPACE_AGENT_RELAY_LISTEN", "off")
        .env("WORKSPACE_AGENT_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    Running {
        child: cmd.spawn().expect("start the agent binary"),
    }
}

/// Waits (hang guard) until the agent answers /health.
async fn wait_healthy(sock: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if sock.exists() && tokio::net::UnixStream::connect(sock).await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "agent did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_the_configured_socket_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    // A stale socket from a previous run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let mut agent = start(
        dir.path(),
        &[("WORKSPACE_AGENT_DEFAULT_TIMEOUT_SECS", "30")],
    );
    wait_healthy(&sock).await;
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    let r = send(&sock, "GET", "/health", full("")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["wire_version"], agent::wire::WIRE_VERSION);
    assert!(r.headers.contains_key(agent::wire::WIRE_VERSION_HEADER));

    // The agent's own configuration is not passed to commands.
    let mut s = EventStream::open(&sock, json!({"mode":"command","argv":["env"]})).await;
    let ev = s.collect(Duration::from_secs(60)).await;
    let env = stdout_of(&ev);
    assert!(env.contains("PATH="), "{env}");
    assert!(!env.contains("WORKSPACE_AGENT_"), "{env}");

    // SIGTERM: exits 0 and removes its socket.
    let pid = agent.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = agent.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(!sock.exists(), "socket removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_running_executions() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let mut agent = start(dir.path(), &[("WORKSPACE_AGENT_SHUTDOWN_GRACE_SECS", "20")]);
    wait_healthy(&sock).await;
    let mut s = EventStream::open(
        &sock,
        json!({"mode":"command","shell":true,"argv":["sleep 300 & echo pid=$$; wait"]}),
    )
    .await;
    let head = s
        .until(
            Duration::from_secs(60),
            |e| matches!(e, agent::wire::Event::Stdout { data } if data.contains("pid=")),
        )
        .await;
    let sid: i32 = stdout_of(&head)
        .trim()
        .trim_start_matches("pid=")
        .parse()
        .unwrap();
    let pid = agent.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let rest = s.collect(Duration::from_secs(60)).await;
    match terminal(&rest) {
        agent::wire::Event::Error { code, .. } => assert_eq!(code, "shutting_down"),
        other => panic!("{other:?}"),
    }
    let left = wait_session_gone(sid, Duration::from_secs(20)).await;
    cleanup_session(sid);
    assert!(left.is_empty(), "{left:?}");
    let _ = agent.child.wait();
}

#[test]
fn invalid_configuration_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec![("WORKSPACE_AGENT_ROOT", "/nonexistent/workspace")],
            "WORKSPACE_AGENT_ROOT",
        ),
        (
            vec![("WORKSPACE_AGENT_LISTEN", "http://x")],
            "unix:<path> or tcp:",
        ),
        (
            vec![("WORKSPACE_AGENT_MAX_TIMEOUT_SECS", "10")],
            "WORKSPACE_AGENT_MAX_TIMEOUT_SECS",
        ),
        (
            vec![("WORKSPACE_AGENT_CLAUDE_ARGS", "--x 'unterminated")],
            "cannot split",
        ),
        (vec![("WORKSPACE_AGENT_RELAY_LISTEN", "8080")], "or off"),
    ];
    for (env, needle) in cases {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env(
                "WORKSPACE_AGENT_LISTEN",
                format!("unix:{}", dir.path().join("a.sock").display()),
            )
            .env("WORKSPACE_AGENT_ROOT", dir.path())
            .env("WORKSPACE_AGENT_RELAY_LISTEN", "off");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{env:?}: {err}");
    }
}

#[test]
fn probe_prints_one_json_object() {
    let out = Command::new(BIN).arg("probe").env_clear().output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("probe JSON");
    for key in [
        "uid",
        "gid",
        "cap_eff",
        "no_new_privs",
        "seccomp",
        "interfaces",
        "root_writable",
        "mounts",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    let uid: u32 = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(v["uid"], uid);
    assert!(v["cap_eff"]
        .as_str()
        .unwrap()
        .chars()
        .all(|c| c.is_ascii_hexdigit()));
    assert!(v["interfaces"].as_array().unwrap().contains(&json!("lo")));
}
