//! The sandbox attacked from the inside, through the API, on the real Docker engine,
//! once with runc and once with gVisor (runsc), and once more in the agent-mode image
//! (the real Claude Code CLI and bash added): each check below fails if the
//! protection it names is removed from the runtime's container definition.

mod support;

use std::time::Duration;

use support::*;
use wire::Event;

const LEAK_MARKER: &str = "AKIAQWERTYLEAKTEST42";

async fn security_suite(oci_runtime: &str, image: &str) {
    // A credential in the control plane's own environment must never reach a sandbox.
    std::env::set_var("AWS_ACCESS_KEY_ID", LEAK_MARKER);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", format!("{LEAK_MARKER}-secret"));

    let mut cfg = test_config(&new_fleet(&format!("sec{oci_runtime}")));
    cfg.docker.oci_runtime = oci_runtime.to_string();
    if docker().await.inspect_image(image).await.is_err() {
        panic!("image {image} is missing: run deployment/images/build-offline.sh (--claude)");
    }
    cfg.docker.image = image.to_string();
    if oci_runtime == "runsc" {
        // Under gVisor the cgroup also counts the Sentry's own host threads.
        cfg.docker.pids_limit = 256;
    }
    let plane = Plane::start_cfg(cfg).await;
    let conv = "attacker";

    // Network: only the loopback interface exists.
    let (out, _, _) = plane.sh(conv, "ip -o link | cut -d: -f2").await;
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        vec!["lo"],
        "{out}"
    );

    // The probe reads the kernel's view of this process (prctl and /proc).
    let probe_events = plane
        .execute(
            TOKEN_ACME,
            conv,
            &cmd_request(&["/usr/local/bin/workspace-agent", "probe"]),
        )
        .await;
    let (out, err, r) = split_output(&probe_events);
    assert_eq!(r.exit_code, Some(0), "{err}");
    let probe: serde_json::Value = serde_json::from_str(&out).expect("probe JSON");
    assert_eq!(probe["uid"], 1000, "{probe}");
    assert_eq!(probe["gid"], 1000, "{probe}");
    let cap = probe["cap_eff"].as_str().unwrap_or("");
    assert!(
        u64::from_str_radix(cap.trim_start_matches("0x"), 16) == Ok(0),
        "CapEff must be 0: {probe}"
    );
    assert_eq!(probe["no_new_privs"], 1, "{probe}");
    // The host's view: the container's init (runc) or the gVisor sandbox process
    // (runsc) runs under a seccomp filter with no_new_privs.
    let ws = workspace_id_of(&probe_events);
    let pid = docker()
        .await
        .inspect_container(
            &ws,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap()
        .state
        .and_then(|s| s.pid)
        .expect("container pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.contains("\nSeccomp:\t2\n"),
        "host view of pid {pid}: {status}"
    );
    assert!(
        status.contains("\nNoNewPrivs:\t1\n"),
        "host view of pid {pid}: {status}"
    );
    if oci_runtime == "runsc" {
        // Inside gVisor the syscall filter is the Sentry itself (filtered on the host,
        // checked above); the OCI profile is not loaded inside (see docs/security.md).
    } else {
        assert_eq!(probe["seccomp"], 2, "{probe}");
    }
    assert_eq!(probe["root_writable"], false, "{probe}");

    // Root file system is read-only; /tmp is noexec.
    let (_, _, r) = plane.sh(conv, "touch /pwned").await;
    assert_ne!(r.exit_code, Some(0));
    let (_, _, r) = plane.sh(conv, "echo x > /usr/local/bin/pwned").await;
    assert_ne!(r.exit_code, Some(0));
    let (_, err, r) = plane
        .sh(
            conv,
            "cp /bin/busybox /tmp/busybox && chmod +x /tmp/busybox && /tmp/busybox true",
        )
        .await;
    assert_eq!(r.exit_code, Some(126), "exec from /tmp must fail: {err}");
    let (out, _, _) = plane.sh(conv, "id -u; id -g").await;
    assert_eq!(out, "1000\n1000\n");
    // The same binary runs from /workspace (exec allowed there), proving the 126
    // above came from noexec and not from the copy.
    let (_, _, r) = plane
        .sh(conv, "cp /bin/busybox /workspace/busybox && /workspace/busybox true && rm /workspace/busybox")
        .await;
    assert_eq!(r.exit_code, Some(0));

    // Writing beyond the /workspace size limit fails with ENOSPC.
    let (_, err, r) = plane
        .sh(conv, "dd if=/dev/zero of=/workspace/fill bs=1M count=64")
        .await;
    assert_ne!(r.exit_code, Some(0));
    assert!(err.contains("No space left on device"), "{err}");
    let (out, _, _) = plane
        .sh(
            conv,
            "grep ' /workspace ' /proc/mounts; rm -f /workspace/fill",
        )
        .await;
    assert!(
        out.contains("tmpfs"),
        "the workspace is not on the host disk: {out}"
    );

    // No credential anywhere in the sandbox's environment or files.
    let (out, _, _) = plane.sh(conv, "env").await;
    assert!(!out.contains(LEAK_MARKER), "{out}");
    for line in out.lines() {
        let name = line.split('=').next().unwrap_or("");
        assert!(
            !control_plane::config::looks_like_credential(name),
            "credential-like variable {name}"
        );
    }
    let (out, _, _) = plane
        .sh(conv, &format!("grep -rl {LEAK_MARKER} /etc /home /workspace /tmp /run /proc/1/environ 2>/dev/null; true"))
        .await;
    assert!(out.trim().is_empty(), "credential found in {out}");

    // Another workspace's socket directory is not visible from this one.
    let other = plane
        .execute(TOKEN_ACME, "neighbour", &cmd_request(&["true"]))
        .await;
    let other_ws = workspace_id_of(&other);
    let other_dir = plane.cfg.docker.socket_root.join(&other_ws);
    assert!(
        other_dir.join("agent/agent.sock").exists(),
        "host side exists"
    );
    let (out, _, _) = plane
        .sh(
            conv,
            &format!(
                "ls /run/workspace /run/egress; ls {} 2>&1; grep -c {other_ws} /proc/mounts; true",
                other_dir.display()
            ),
        )
        .await;
    assert!(
        !out.contains(&other_ws) || out.contains("No such file"),
        "{out}"
    );
    assert!(out.contains("No such file"), "{out}");
    assert!(
        out.lines().any(|l| l.trim() == "0"),
        "not mounted here: {out}"
    );

    // Its own agent's socket directory is the host's once the agent is up: the sandbox
    // can neither move the socket aside (to answer in the agent's place) nor put files
    // there (outside every size limit).
    let (out, _, _) = plane
        .sh(
            conv,
            "mv /run/workspace/agent.sock /run/workspace/x 2>&1; echo mv=$?; \
             echo x > /run/workspace/fill 2>&1; echo write=$?; \
             mkdir /run/workspace/d 2>&1; echo mkdir=$?",
        )
        .await;
    for op in ["mv", "write", "mkdir"] {
        assert!(
            !out.contains(&format!("{op}=0")),
            "{op} in the socket directory succeeded: {out}"
        );
    }
    assert_alive(&plane, conv).await;

    // Memory beyond the limit is OOM-killed. Under runc the kernel kills the
    // hungry process and the workspace lives on; under gVisor the cgroup's OOM kill
    // hits the sandbox itself, the stream ends with `error`, and the next request
    // gets a fresh workspace. Either way nothing outside the workspace is affected.
    let events = plane
        .execute(
            TOKEN_ACME,
            conv,
            &sh_request(
                "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}",
                Some(60),
            ),
        )
        .await;
    let outcome = events.last().cloned();
    eprintln!("memory hog under {oci_runtime:?}: {outcome:?}");
    match (&outcome, oci_runtime) {
        (Some(Event::Result(r)), _) if r.signal == Some(9) || r.exit_code == Some(137) => {}
        (Some(Event::Error { code, .. }), "runsc") if code == "workspace_lost" => {}
        other => panic!("expected an OOM kill under {oci_runtime:?}: {other:?}"),
    }
    assert_alive(&plane, conv).await;

    // A fork bomb is contained by the pids limit: forks fail, it is killed at its
    // timeout (or, under gVisor, may take its sandbox down with it), and the
    // conversation keeps being served.
    let events = plane
        .execute(
            TOKEN_ACME,
            conv,
            &sh_request("f() { f | f & }; f; sleep 5", Some(8)),
        )
        .await;
    eprintln!("fork bomb under {oci_runtime:?}: {:?}", events.last());
    match (events.last(), oci_runtime) {
        (Some(Event::Result(r)), _) => {
            let err: String = events
                .iter()
                .filter_map(|e| match e {
                    Event::Stderr { data } => Some(data.as_str()),
                    _ => None,
                })
                .collect();
            assert!(
                err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
                "the bomb never hit the limit: {r:?} {err}"
            );
        }
        (Some(Event::Error { code, .. }), "runsc") if code == "workspace_lost" => {}
        other => panic!("fork bomb under {oci_runtime:?}: {other:?}"),
    }
    assert_alive(&plane, conv).await;
}

/// The conversation answers a command again (its workspace, or a recovered one).
async fn assert_alive(plane: &Plane, conv: &str) {
    for _ in 0..30 {
        let events = plane
            .execute(TOKEN_ACME, conv, &cmd_request(&["echo", "alive"]))
            .await;
        if events
            .iter()
            .any(|e| matches!(e, Event::Stdout { data } if data == "alive\n"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the conversation is not served any more");
}

#[tokio::test]
async fn sandbox_holds_under_runc() {
    if !docker_tests_enabled() {
        return;
    }
    security_suite("", IMAGE).await;
}

#[tokio::test]
async fn sandbox_holds_in_the_claude_code_image() {
    if !docker_tests_enabled() {
        return;
    }
    security_suite("", support::claude::CLAUDE_IMAGE).await;
}

#[tokio::test]
async fn sandbox_holds_under_gvisor() {
    if !docker_tests_enabled() {
        return;
    }
    security_suite("runsc", IMAGE).await;
}
