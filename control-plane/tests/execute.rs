//! Executions through the API against the real Docker engine: output streams as it
//! is produced, exit codes and stdin, timeouts and client disconnects kill the whole
//! process group (nothing left in the container), and agent mode maps the recorded
//! Claude Code stream-json to the event vocabulary.

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::*;
use wire::{AgentSpec, CommandSpec, Event, ExecuteRequest, SseDecoder};

/// Processes in the workspace whose command line contains `needle`.
async fn processes_matching(plane: &Plane, conv: &str, needle: &str) -> Vec<String> {
    let (out, _, _) = plane.sh(conv, "ps -o pid,args").await;
    // Only the processes themselves, not the shell whose script mentions them.
    out.lines()
        .filter(|l| l.contains(needle) && !l.contains("ps -o") && !l.contains("sh -c"))
        .map(str::to_string)
        .collect()
}

async fn wait_no_processes(plane: &Plane, conv: &str, needle: &str) -> Vec<String> {
    let mut left = Vec::new();
    for _ in 0..50 {
        left = processes_matching(plane, conv, needle).await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    left
}

#[tokio::test]
async fn output_streams_while_the_command_runs() {
    if !docker_tests_enabled() {
        return;
    }
    let plane = Plane::start("stream").await;
    // The command waits for a file that the test writes only after it has seen the
    // first line: the line must have been streamed while the command still ran.
    let script =
        "echo one; while [ ! -f /workspace/go ]; do sleep 0.05; done; echo two >&2; exit 3";
    let resp = plane
        .post("/v1/conversations/s1/execute", TOKEN_ACME)
        .json(&sh_request(script, Some(60)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut dec = SseDecoder::new();
    let mut events = Vec::new();
    let mut released = false;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), body.next())
        .await
        .expect("stream stalled")
    {
        for ev in dec.push(&chunk.unwrap()) {
            let ev = ev.unwrap();
            if matches!(&ev, Event::Stdout { data } if data.contains("one")) && !released {
                assert!(
                    !events.iter().any(|e: &Event| e.is_terminal()),
                    "no result before release"
                );
                let r = plane
                    .put("/v1/conversations/s1/files?path=go", TOKEN_ACME)
                    .body("")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                released = true;
            }
            events.push(ev);
        }
    }
    assert!(released, "the first line never arrived: {events:?}");
    let (out, err, res) = split_output(&events);
    assert_eq!(out, "one\n");
    assert_eq!(err, "two\n");
    assert_eq!(res.exit_code, Some(3));
    assert!(!res.timed_out);
    assert!(events.last().unwrap().is_terminal());

    // argv without a shell, env, cwd and stdin.
    let req = ExecuteRequest::Command(CommandSpec {
        argv: vec!["sh".into(), "-c".into(), "pwd; echo $GREETING; cat".into()],
        env: [("GREETING".to_string(), "hello".to_string())].into(),
        cwd: Some("sub".into()),
        stdin: Some("from stdin".into()),
        ..Default::default()
    });
    let _ = plane.sh("s1", "mkdir -p /workspace/sub").await;
    let events = plane.execute(TOKEN_ACME, "s1", &req).await;
    let (out, _, res) = split_output(&events);
    assert_eq!(out, "/workspace/sub\nhello\nfrom stdin");
    assert_eq!(res.exit_code, Some(0));
    // No shell unless asked: metacharacters are plain arguments.
    let events = plane
        .execute(TOKEN_ACME, "s1", &cmd_request(&["echo", "$HOME;", "id"]))
        .await;
    assert_eq!(split_output(&events).0, "$HOME; id\n");
}

#[tokio::test]
async fn timeout_and_disconnect_kill_the_whole_process_group() {
    if !docker_tests_enabled() {
        return;
    }
    let plane = Plane::start("kill").await;
    // Timeout: the command and its background children all die.
    let events = plane
        .execute(
            TOKEN_ACME,
            "k1",
            &sh_request("sleep 301 & sleep 302 & echo started; wait", Some(2)),
        )
        .await;
    let (out, _, res) = split_output(&events);
    assert_eq!(out, "started\n");
    assert!(res.timed_out, "{res:?}");
    assert_eq!(res.exit_code, None);
    let left = wait_no_processes(&plane, "k1", "sleep 30").await;
    assert!(left.is_empty(), "left after timeout: {left:?}");

    // Client disconnect: drop the stream once the command runs.
    let resp = plane
        .post("/v1/conversations/k1/execute", TOKEN_ACME)
        .json(&sh_request(
            "sleep 303 & sleep 304 & echo started; wait",
            Some(600),
        ))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut dec = SseDecoder::new();
    'outer: while let Some(chunk) = body.next().await {
        for ev in dec.push(&chunk.unwrap()) {
            if matches!(ev.unwrap(), Event::Stdout { .. }) {
                break 'outer;
            }
        }
    }
    assert_eq!(processes_matching(&plane, "k1", "sleep 30").await.len(), 2);
    drop(body);
    let left = wait_no_processes(&plane, "k1", "sleep 30").await;
    assert!(left.is_empty(), "left after disconnect: {left:?}");
}

#[tokio::test]
async fn agent_mode_maps_the_recorded_stream_json() {
    if !docker_tests_enabled() {
        return;
    }
    let fixture_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures");
    let script = std::fs::read(fixture_dir.join("fake-claude.sh")).expect("fake CLI fixture");
    let ndjson = std::fs::read(fixture_dir.join("stream.ndjson")).expect("stream-json fixture");

    let mut cfg = test_config(&new_fleet("agentmode"));
    cfg.docker.extra_env.insert(
        "WORKSPACE_AGENT_CLAUDE_PATH".into(),
        "/workspace/.fake/claude".into(),
    );
    cfg.docker.extra_env.insert(
        "WORKSPACE_AGENT_CLAUDE_ARGS".into(),
        "--fixture /workspace/.fake/stream.ndjson".into(),
    );
    let plane = Plane::start_cfg(cfg).await;
    for (path, body) in [(".fake/claude", script), (".fake/stream.ndjson", ndjson)] {
        let r = plane
            .put(
                &format!("/v1/conversations/am/files?path={path}"),
                TOKEN_ACME,
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (_, _, r) = plane.sh("am", "chmod +x /workspace/.fake/claude").await;
    assert_eq!(r.exit_code, Some(0));

    let events = plane
        .execute(
            TOKEN_ACME,
            "am",
            &ExecuteRequest::Agent(AgentSpec {
                prompt: "list the files".into(),
                ..Default::default()
            }),
        )
        .await;
    // The same recorded stream the agent's own test maps (agent/tests/exec.rs), now
    // through the container and the control plane: the event sequence is exact.
    let names: Vec<&str> = events.iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        vec![
            "workspace",
            "text_delta",
            "text_delta",
            "tool_use",
            "tool_result",
            "stdout",
            "stderr",
            "tool_use",
            "tool_result",
            "stdout",
            "text_delta",
            "text_delta",
            "text_delta",
            "result"
        ],
        "{events:#?}"
    );
    assert!(
        matches!(&events[3], Event::ToolUse { id, name, .. } if id == "toolu_bdrk_01XyZ" && name == "Bash")
    );
    assert!(matches!(
        &events[8],
        Event::ToolResult { is_error: true, .. }
    ));
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(text.starts_with("I'll list the files"), "{text}");
    match events.last().unwrap() {
        Event::Result(r) => {
            assert_eq!(
                r.session_id.as_deref(),
                Some("8f0c1f5e-5d2a-4c59-9a43-0f8e2c1d7b11")
            );
            assert_eq!(r.exit_code, Some(0));
            assert!(!r.is_error);
        }
        other => panic!("{other:?}"),
    }
    // The CLI ran headless with Bedrock through the egress proxy, and no credential.
    let (out, _, _) = plane
        .sh(
            "am",
            "cat /workspace/.fake-claude-args /workspace/.fake-claude-env",
        )
        .await;
    for needle in [
        "-p",
        "stream-json",
        "--verbose",
        "CLAUDE_CODE_USE_BEDROCK=1",
        "CLAUDE_CODE_SKIP_BEDROCK_AUTH=1",
        "ANTHROPIC_BEDROCK_BASE_URL=http://127.0.0.1:8080",
    ] {
        assert!(out.contains(needle), "{needle} missing in {out}");
    }
}
