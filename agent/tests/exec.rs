//! `POST /execute` against a real agent on a Unix socket: command streaming, exit
//! codes, stdin, env, cwd confinement, shell mode, timeout and disconnect kills with
//! no process left behind, and agent mode with a fake Claude Code CLI.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::wire::{Event, ExecResult};
use common::*;
use hyper::StatusCode;
use serde_json::json;

const GUARD: Duration = Duration::from_secs(60);

fn result_of(events: &[Event]) -> ExecResult {
    match terminal(events) {
        Event::Result(r) => r.clone(),
        other => panic!("expected a result, got {other:?} in {events:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_streamed_while_the_process_runs() {
    let a = TestAgent::start().await;
    let go = a.root.join("go");
    // The command prints, then blocks until the test creates `go`: the first chunk can
    // only reach the test while the process is still running.
    let mut s = a
        .execute(json!({"mode":"command","shell":true,
            "argv":["echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"],
            "timeout_secs": 120}))
        .await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.headers.get("content-type").unwrap(), "text/event-stream");
    assert!(s.headers.get(agent::wire::WIRE_VERSION_HEADER).is_some());
    let first = s
        .until(
            GUARD,
            |e| matches!(e, Event::Stdout { data } if data.contains("first")),
        )
        .await;
    assert!(first.iter().all(|e| !e.is_terminal()));
    assert!(!go.exists(), "the process cannot have finished yet");
    std::fs::write(&go, "").unwrap();
    let rest = s.collect(GUARD).await;
    assert!(stdout_of(&rest).contains("second"));
    let r = result_of(&rest);
    assert_eq!(r.exit_code, Some(0));
    assert!(!r.timed_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_signals_and_stderr() {
    let a = TestAgent::start().await;
    let ev = a
        .execute_all(json!({"mode":"command","argv":["sh","-c","echo out; echo err >&2; exit 7"]}))
        .await;
    assert_eq!(stdout_of(&ev), "out\n");
    assert_eq!(stderr_of(&ev), "err\n");
    let r = result_of(&ev);
    assert_eq!((r.exit_code, r.signal, r.timed_out), (Some(7), None, false));

    let ev = a
        .execute_all(json!({"mode":"command","argv":["false"]}))
        .await;
    assert_eq!(result_of(&ev).exit_code, Some(1));

    let ev = a
        .execute_all(json!({"mode":"command","argv":["sh","-c","kill -TERM $$"]}))
        .await;
    let r = result_of(&ev);
    assert_eq!((r.exit_code, r.signal), (None, Some(15)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_env_and_shell_mode() {
    let a = TestAgent::start().await;
    let ev = a
        .execute_all(json!({"mode":"command","argv":["cat"],"stdin":"hello\nworld\n"}))
        .await;
    assert_eq!(stdout_of(&ev), "hello\nworld\n");
    // Without stdin the child reads /dev/null (it must not hang).
    let ev = a
        .execute_all(json!({"mode":"command","argv":["cat"]}))
        .await;
    assert_eq!(stdout_of(&ev), "");
    assert_eq!(result_of(&ev).exit_code, Some(0));

    let ev = a
        .execute_all(
            json!({"mode":"command","argv":["sh","-c","printf '%s|%s' \"$FOO\" \"$PATH\""],
            "env":{"FOO":"bar baz"}}),
        )
        .await;
    let out = stdout_of(&ev);
    assert!(out.starts_with("bar baz|"), "{out}");
    assert!(
        out.len() > "bar baz|".len(),
        "PATH inherited from the agent: {out}"
    );

    let ev = a
        .execute_all(
            json!({"mode":"command","shell":true,"argv":["echo a && echo b >&2; echo $((6*7))"]}),
        )
        .await;
    assert_eq!(stdout_of(&ev), "a\n42\n");
    assert_eq!(stderr_of(&ev), "b\n");

    // argv is not interpreted by a shell unless asked.
    let ev = a
        .execute_all(json!({"mode":"command","argv":["echo","$HOME; touch pwned"]}))
        .await;
    assert_eq!(stdout_of(&ev), "$HOME; touch pwned\n");
    assert!(!a.root.join("pwned").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multibyte_characters_are_not_split() {
    let a = TestAgent::start().await;
    let ev = a
        .execute_all(json!({"mode":"command","argv":["sh","-c",
            "printf '\\342'; sleep 0.3; printf '\\202\\254 \\360\\237'; sleep 0.3; printf '\\230\\200\\n'"]}))
        .await;
    assert_eq!(stdout_of(&ev), "€ 😀\n");
    for e in &ev {
        if let Event::Stdout { data } = e {
            assert!(!data.contains('\u{FFFD}'), "{ev:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cwd_is_confined_to_the_root() {
    let a = TestAgent::start().await;
    std::fs::create_dir_all(a.root.join("sub/dir")).unwrap();
    std::os::unix::fs::symlink(&a.outside, a.root.join("link_out")).unwrap();
    std::os::unix::fs::symlink("sub/dir", a.root.join("link_in")).unwrap();
    std::fs::write(a.root.join("file"), "x").unwrap();

    let ev = a
        .execute_all(json!({"mode":"command","argv":["pwd"],"cwd":"sub/dir"}))
        .await;
    assert_eq!(
        stdout_of(&ev).trim(),
        a.root.join("sub/dir").to_str().unwrap()
    );
    let ev = a
        .execute_all(json!({"mode":"command","argv":["pwd"],"cwd":"link_in"}))
        .await;
    assert_eq!(
        stdout_of(&ev).trim(),
        a.root.join("sub/dir").to_str().unwrap()
    );
    let ev = a
        .execute_all(json!({"mode":"command","argv":["pwd"]}))
        .await;
    assert_eq!(stdout_of(&ev).trim(), a.root.to_str().unwrap());

    for cwd in [
        "../outside",
        "sub/../..",
        "/tmp",
        "link_out",
        "missing",
        "file",
        "a\u{0}b",
    ] {
        let s = a
            .execute(json!({"mode":"command","argv":["touch","escaped"],"cwd":cwd}))
            .await;
        assert_eq!(s.status, StatusCode::BAD_REQUEST, "cwd {cwd:?}");
        let body = s.error_body.clone().unwrap();
        assert_eq!(body["error"]["code"], "invalid_cwd", "{body}");
    }
    assert_eq!(a.outside_snapshot().len(), 1, "nothing written outside");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_400_before_any_stream() {
    let a = TestAgent::start_with(|c| {
        c.max_timeout_secs = 100;
        c.default_timeout_secs = 50;
        c.max_request_bytes = 4096;
    })
    .await;
    let cases = [
        (json!({"mode":"command","argv":[]}), "invalid_request"),
        (json!({"mode":"command","argv":[""]}), "invalid_request"),
        (
            json!({"mode":"command","argv":["a","b"],"shell":true}),
            "invalid_request",
        ),
        (
            json!({"mode":"command","argv":["true"],"timeout_secs":101}),
            "invalid_timeout",
        ),
        (
            json!({"mode":"command","argv":["true"],"timeout_secs":0}),
            "invalid_timeout",
        ),
        (
            json!({"mode":"command","argv":["true"],"env":{"A=B":"x"}}),
            "invalid_env",
        ),
        (
            json!({"mode":"command","argv":["true"],"bogus":1}),
            "invalid_request",
        ),
        (json!({"mode":"telepathy"}), "invalid_request"),
        (json!({"mode":"agent","prompt":"  "}), "invalid_request"),
        (
            json!({"mode":"agent","prompt":"hi","resume_session_id":"x; rm -rf /"}),
            "invalid_request",
        ),
    ];
    for (req, code) in cases {
        let s = a.execute(req.clone()).await;
        assert_eq!(s.status, StatusCode::BAD_REQUEST, "{req}");
        assert_eq!(
            s.error_body.as_ref().unwrap()["error"]["code"],
            code,
            "{req}"
        );
    }
    let r = a.request("POST", "/execute", "{not json").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let big = json!({"mode":"command","argv":["true"],"stdin":"x".repeat(10_000)});
    let r = a
        .request("POST", "/execute", serde_json::to_vec(&big).unwrap())
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_failure_is_a_terminal_error_event() {
    let a = TestAgent::start().await;
    let ev = a
        .execute_all(json!({"mode":"command","argv":["/nonexistent/program","x"]}))
        .await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    match &ev[0] {
        Event::Error { code, message } => {
            assert_eq!(code, "spawn_failed");
            assert!(message.contains("/nonexistent/program"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

/// A command whose children survive their parent in several ways: background jobs
/// in the same group, and one that moved to its own process group (same session);
/// `pid=` is printed once that move has happened.
const SPAWNS_SLEEPERS: &str = "sleep 300 & sleep 300 & \
    perl -e 'setpgrp(0,0); open(my $f, \">\", \"moved\") or die; close $f; sleep 300' & \
    while [ ! -e moved ]; do sleep 0.02; done; echo pid=$$; wait";

/// Asserts the scenario really holds: at least three live members of the session,
/// one of them in a process group of its own.
fn assert_sleepers_running(sid: i32) {
    let members = agent::exec::process::session_members(sid);
    assert!(members.len() >= 3, "{members:?}");
    let moved = members.iter().any(|p| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| agent::exec::process::parse_stat(&s))
            .is_some_and(|(_, pgrp, session)| session == sid && pgrp != sid)
    });
    assert!(
        moved,
        "no member moved to another process group: {members:?}"
    );
}

fn pid_from(events: &[Event]) -> i32 {
    let out = stdout_of(events);
    out.trim()
        .strip_prefix("pid=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_whole_session() {
    let a = TestAgent::start().await;
    let mut s = a
        .execute(json!({"mode":"command","shell":true,"argv":[SPAWNS_SLEEPERS],"timeout_secs":2}))
        .await;
    let head = s
        .until(
            GUARD,
            |e| matches!(e, Event::Stdout { data } if data.contains("pid=")),
        )
        .await;
    let sid = pid_from(&head);
    assert_sleepers_running(sid);
    let rest = s.collect(GUARD).await;
    let r = result_of(&rest);
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.signal, Some(9));
    let left = wait_session_gone(sid, Duration::from_secs(20)).await;
    cleanup_session(sid);
    assert!(left.is_empty(), "processes left after timeout: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_kills_the_whole_session() {
    // A long keep-alive: the kill must not depend on a keep-alive write failing.
    let a = TestAgent::start_with(|c| c.keepalive_secs = 3600).await;
    let mut s = a
        .execute(json!({"mode":"command","shell":true,"argv":[SPAWNS_SLEEPERS]}))
        .await;
    let head = s
        .until(
            GUARD,
            |e| matches!(e, Event::Stdout { data } if data.contains("pid=")),
        )
        .await;
    let sid = pid_from(&head);
    assert_sleepers_running(sid);
    drop(s);
    let left = wait_session_gone(sid, Duration::from_secs(30)).await;
    cleanup_session(sid);
    assert!(left.is_empty(), "processes left after disconnect: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stragglers_are_killed_when_the_command_exits() {
    let a = TestAgent::start().await;
    let ev = a
        .execute_all(json!({"mode":"command","shell":true,
            "argv":["sleep 300 >/dev/null 2>&1 & echo pid=$$"]}))
        .await;
    let sid = pid_from(&ev);
    assert_eq!(result_of(&ev).exit_code, Some(0));
    let left = wait_session_gone(sid, Duration::from_secs(20)).await;
    cleanup_session(sid);
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_are_sent_during_silence() {
    let a = TestAgent::start_with(|c| c.keepalive_secs = 1).await;
    let mut s = a
        .execute(json!({"mode":"command","argv":["sh","-c","while [ ! -e go ]; do sleep 0.05; done"],"timeout_secs":60}))
        .await;
    // The command only ends once the test has seen a keep-alive.
    assert!(
        s.wait_keepalive(GUARD).await,
        "stream ended without a keep-alive"
    );
    std::fs::write(a.root.join("go"), "").unwrap();
    let ev = s.collect(GUARD).await;
    assert_eq!(result_of(&ev).exit_code, Some(0));
    assert!(s.keepalives >= 1, "no keep-alive comment seen");
}

// ---------------------------------------------------------------------------------
// Agent mode

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies the fake CLI next to the agent (executable even if the checkout lost the
/// mode bit) and returns its path.
fn fake_cli(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-claude");
    std::fs::copy(fixture("fake-claude.sh"), &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// An agent whose Claude CLI is the fake one, given `args` as extra flags (the temp
/// dir holding the fake CLI lives as long as the returned guard).
async fn agent_with_fixture(args: &[String]) -> (TestAgent, tempfile::TempDir) {
    let bin = tempfile::tempdir().unwrap();
    let cli = fake_cli(bin.path());
    let args = args.to_vec();
    let a = TestAgent::start_with(move |c| {
        c.claude_path = cli.to_string_lossy().into_owned();
        c.claude_args = agent::config::ShellArgs(args);
    })
    .await;
    (a, bin)
}

/// The arguments of every headless turn, before the per-turn options.
const CLI_BASE_ARGS: [&str; 5] = [
    "-p",
    "--output-format",
    "stream-json",
    "--verbose",
    "--include-partial-messages",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_maps_the_recorded_stream() {
    let fx = fixture("stream.ndjson").to_string_lossy().into_owned();
    let (a, _cli) = agent_with_fixture(&[
        "--include-partial-messages".into(),
        "--fixture".into(),
        fx.clone(),
    ])
    .await;
    let ev = a
        .execute_all(
            json!({"mode":"agent","prompt":"list the files","model":"sonnet",
            "max_turns":5,"resume_session_id":"8f0c1f5e-5d2a-4c59-9a43-0f8e2c1d7b11"}),
        )
        .await;
    let sid = "8f0c1f5e-5d2a-4c59-9a43-0f8e2c1d7b11";
    let expected = vec![
        Event::TextDelta { text: "I'll list ".into() },
        Event::TextDelta { text: "the files — “quickly”.".into() },
        Event::ToolUse {
            id: "toolu_bdrk_01XyZ".into(),
            name: "Bash".into(),
            input: json!({"command":"ls -la","description":"List files"}),
        },
        Event::ToolResult {
            tool_use_id: "toolu_bdrk_01XyZ".into(),
            content: json!("total 8\ndrwxr-xr-x 2 appuser appuser 60 Jan  1 00:00 .\n-rw-r--r-- 1 appuser appuser 12 Jan  1 00:00 notes.txt"),
            is_error: false,
        },
        Event::Stdout {
            data: r#"{"type":"future_event_kind","detail":{"note":"a line type this agent does not know"},"session_id":"8f0c1f5e-5d2a-4c59-9a43-0f8e2c1d7b11"}"#.into(),
        },
        Event::Stderr { data: r#"this line is not JSON {"type":"#.into() },
        Event::ToolUse {
            id: "toolu_bdrk_02Read".into(),
            name: "Read".into(),
            input: json!({"file_path":"/etc/shadow"}),
        },
        Event::ToolResult {
            tool_use_id: "toolu_bdrk_02Read".into(),
            content: json!([{"type":"text","text":"EACCES: permission denied, open '/etc/shadow'"}]),
            is_error: true,
        },
        Event::Stdout {
            data: r#"{"type":"system","subtype":"compact_boundary","session_id":"8f0c1f5e-5d2a-4c59-9a43-0f8e2c1d7b11","uuid":"d4b3a6d5-8f4b-4cad-8eab-000000000020","compact_metadata":{"trigger":"auto","pre_tokens":160000}}"#.into(),
        },
        Event::TextDelta { text: "There is one file: ".into() },
        Event::TextDelta { text: "notes.txt.".into() },
        Event::TextDelta { text: "Done.".into() },
    ];
    assert_eq!(&ev[..ev.len() - 1], &expected[..]);
    let r = result_of(&ev);
    assert_eq!(
        ExecResult {
            duration_ms: 0,
            ..r.clone()
        },
        ExecResult {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            duration_ms: 0,
            is_error: false,
            session_id: Some(sid.into()),
            text: Some("There is one file: notes.txt.\n\nDone.".into()),
            tokens: Some(wire::TokenUsage {
                input_tokens: 10,
                output_tokens: 128,
                cache_creation_input_tokens: 1950,
                cache_read_input_tokens: 39350,
            }),
            usage: Some(json!({
                "usage": {"input_tokens":10,"cache_creation_input_tokens":1950,"cache_read_input_tokens":39350,
                          "output_tokens":128,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"},
                "total_cost_usd": 0.0123456,
                "num_turns": 3,
                "duration_ms": 5123,
                "duration_api_ms": 4810,
                "subtype": "success",
                "model_usage": {"claude-sonnet-4-20250514":{"inputTokens":10,"outputTokens":128,
                    "cacheReadInputTokens":39350,"cacheCreationInputTokens":1950,"webSearchRequests":0,"costUSD":0.0123456}},
            })),
        }
    );
    // The CLI got the documented arguments and environment, in the root.
    let args = std::fs::read_to_string(a.root.join(".fake-claude-args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args,
        [
            &CLI_BASE_ARGS[..],
            &[
                &format!("--resume={sid}"),
                "--model=sonnet",
                "--max-turns=5",
                "--include-partial-messages",
                "--fixture",
                &fx,
                "--",
                "list the files",
            ]
        ]
        .concat()
    );
    let env = std::fs::read_to_string(a.root.join(".fake-claude-env")).unwrap();
    for line in [
        "ANTHROPIC_BEDROCK_BASE_URL=http://127.0.0.1:8080",
        "CLAUDE_CODE_SKIP_BEDROCK_AUTH=1",
        "CLAUDE_CODE_USE_BEDROCK=1",
        "DISABLE_AUTOUPDATER=1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from {env}");
    }
}

/// Per-turn options become argv elements (never a shell string), the MCP servers a
/// private file the CLI reads, removed when the turn ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_passes_per_turn_options_as_arguments() {
    let fx = fixture("stream.ndjson").to_string_lossy().into_owned();
    let (a, _cli) = agent_with_fixture(&["--fixture".into(), fx.clone()]).await;
    let ev = a
        .execute_all(json!({"mode":"agent","prompt":"go; rm -rf /",
            "allowed_tools":["Bash(git *)","Write"],"disallowed_tools":["WebFetch"],
            "permission_mode":"acceptEdits","append_system_prompt":"$(id) `id` -- be brief",
            "mcp_servers":{"docs":{"url":"http://mcp.test/mcp"}}}))
        .await;
    assert!(matches!(terminal(&ev), Event::Result(_)), "{ev:?}");
    let args = std::fs::read_to_string(a.root.join(".fake-claude-args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let mcp_arg = args
        .iter()
        .find_map(|a| a.strip_prefix("--mcp-config="))
        .expect("an --mcp-config argument");
    assert_eq!(
        args,
        [
            &CLI_BASE_ARGS[..],
            &[
                "--permission-mode=acceptEdits",
                "--append-system-prompt=$(id) `id` -- be brief",
                &format!("--mcp-config={mcp_arg}"),
                "--allowedTools",
                "Bash(git *)",
                "Write",
                "--disallowedTools",
                "WebFetch",
                "--fixture",
                &fx,
                "--",
                "go; rm -rf /",
            ]
        ]
        .concat()
    );
    let mcp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.root.join(".fake-claude-mcp.json")).unwrap())
            .unwrap();
    assert_eq!(
        mcp,
        json!({"mcpServers": {"docs": {"type": "http", "url": "http://mcp.test/mcp"}}})
    );
    assert!(
        !std::path::Path::new(mcp_arg).exists(),
        "the MCP config file outlived the turn"
    );
    // The CLI waits for the servers before its first model request.
    let env = std::fs::read_to_string(a.root.join(".fake-claude-env")).unwrap();
    assert!(
        env.lines().any(|l| l == "MCP_CONNECTION_NONBLOCKING=false"),
        "{env}"
    );
}

/// Two CLIs appending to one session's transcript would corrupt it: while a turn
/// runs a session, a turn resuming that session is 409 `session_busy`; afterwards it
/// may resume it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_refuses_to_resume_a_running_session() {
    let fx = fixture("stream.ndjson").to_string_lossy().into_owned();
    let (a, _cli) =
        agent_with_fixture(&["--fixture".into(), fx, "--sleep".into(), "3".into()]).await;
    let sid = "8f0c1f5e-5d2a-4c59-9a43-0f8e2c1d7b11";
    // A new turn: its session becomes busy once the CLI announces it.
    let mut first = a.execute(json!({"mode":"agent","prompt":"a"})).await;
    assert_eq!(first.status, 200);
    first
        .until(Duration::from_secs(10), |e| {
            matches!(e, Event::TextDelta { .. })
        })
        .await;
    let busy = a
        .execute(json!({"mode":"agent","prompt":"b","resume_session_id":sid}))
        .await;
    assert_eq!(busy.status, 409);
    assert_eq!(
        busy.error_body.as_ref().map(|b| b["error"]["code"].clone()),
        Some(json!("session_busy"))
    );
    // Another session is not affected.
    let other = a
        .execute(json!({"mode":"agent","prompt":"c","resume_session_id":"other-1"}))
        .await;
    assert_eq!(other.status, 200);
    drop(other);
    let rest = first.collect(Duration::from_secs(30)).await;
    assert!(matches!(terminal(&rest), Event::Result(_)), "{rest:?}");
    let again = a
        .execute(json!({"mode":"agent","prompt":"d","resume_session_id":sid}))
        .await;
    assert_eq!(again.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_cli_exiting_without_result_is_an_error() {
    let fx = fixture("no-result.ndjson").to_string_lossy().into_owned();
    let (a, _cli) = agent_with_fixture(&[
        "--fixture".into(),
        fx,
        "--stderr".into(),
        "Error: Bedrock endpoint unreachable".into(),
        "--exit".into(),
        "3".into(),
    ])
    .await;
    let ev = a.execute_all(json!({"mode":"agent","prompt":"hi"})).await;
    assert!(
        ev.contains(&Event::TextDelta {
            text: "Starting…".into()
        }),
        "{ev:?}"
    );
    assert!(ev.contains(&Event::Stderr {
        data: "Error: Bedrock endpoint unreachable".into()
    }));
    match terminal(&ev) {
        Event::Error { code, message } => {
            assert_eq!(code, "agent_exited");
            assert!(message.contains("exit code 3"), "{message}");
            assert!(
                message.contains("Bedrock endpoint unreachable"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_error_result_and_missing_cli() {
    let fx = fixture("error-result.ndjson")
        .to_string_lossy()
        .into_owned();
    let (a, _cli) =
        agent_with_fixture(&["--fixture".into(), fx, "--exit".into(), "1".into()]).await;
    let ev = a
        .execute_all(json!({"mode":"agent","prompt":"-starts with a dash"}))
        .await;
    let r = result_of(&ev);
    assert!(r.is_error);
    assert_eq!(r.exit_code, Some(1));
    assert_eq!(
        r.session_id.as_deref(),
        Some("5e5e5e5e-2222-4c59-9a43-0f8e2c1d7b33")
    );
    assert_eq!(r.usage.as_ref().unwrap()["subtype"], "error_max_turns");
    let args = std::fs::read_to_string(a.root.join(".fake-claude-args")).unwrap();
    assert!(args.ends_with("--\n-starts with a dash\n"), "{args}");

    let b = TestAgent::start_with(|c| c.claude_path = "/nonexistent/claude".into()).await;
    let ev = b.execute_all(json!({"mode":"agent","prompt":"hi"})).await;
    assert!(
        matches!(&ev[..], [Event::Error { code, .. }] if code == "spawn_failed"),
        "{ev:?}"
    );
}
