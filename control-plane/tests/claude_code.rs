//! Agent mode with the real Claude Code CLI (the pinned native binary in the
//! `workspace-claude` image) inside a hardened workspace on the real Docker engine.
//! The CLI reaches "Bedrock" only through the workspace's egress proxy, which signs
//! every request with SigV4; the Bedrock stand-in (`bedrock-standin`, TLS with a test
//! CA the proxy trusts) verifies each signature and answers with scripted replies in
//! Bedrock's event-stream framing. An MCP stand-in on another TLS host gets its
//! credential from the proxy. The sandbox itself never holds a credential.
//!
//! Needs the image: `deployment/images/build-offline.sh --claude` (the test command
//! builds it; the CLI comes from the cache in ~/.cache/agent-workspaces).

mod support;

use std::time::Duration;

use bedrock_standin::{Script, ToolCall};
use futures::StreamExt;
use serde_json::json;
use support::{claude::*, *};
use wire::{AgentSpec, Event, ExecuteRequest, McpServer, PermissionMode, SseDecoder};

/// The headline story: a turn with per-turn options streams text, runs the model's
/// Bash command inside the sandbox (its file is then readable through the files API),
/// returns the tool's result and ends with a result carrying usage; every request
/// Bedrock saw was signed by the proxy; the CLI got the options; the MCP server got
/// the injected token; and the sandbox holds none of the credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_claude_code_turn_completes_through_the_gateway() {
    if !docker_tests_enabled() {
        return;
    }
    let s = secrets();
    let marker = format!("STANDIN-SYSTEM-{}", uuid::Uuid::new_v4().simple());
    let r = rig(
        "claude",
        Script {
            before: "Creating the proof file now.".into(),
            tool: Some(ToolCall::Bash {
                command: "echo made-by-claude > proof.txt && id -u >> proof.txt".into(),
            }),
            after: "The proof file is written.".into(),
            ..Default::default()
        },
    )
    .await;
    let req = turn("Write the proof file.", |a| {
        a.allowed_tools = vec!["Bash".into(), "mcp__docs__lookup".into()];
        a.disallowed_tools = vec!["WebFetch".into()];
        a.permission_mode = Some(PermissionMode::AcceptEdits);
        a.append_system_prompt = Some(marker.clone());
        a.mcp_servers.insert(
            "docs".into(),
            McpServer {
                url: format!("http://{MCP_HOST}/mcp"),
                transport: Default::default(),
            },
        );
    });
    let events = r.plane.execute(TOKEN_ACME, "cc-1", &req).await;

    // The stream: text, the tool call, its result, the final result with usage. Text
    // streams word by word (partial messages) and is never duplicated by the
    // finished message that follows.
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deltas.concat(),
        "Creating the proof file now.The proof file is written.",
        "{events:#?}"
    );
    assert!(deltas.len() >= 10, "text was not streamed: {deltas:?}");
    let (tool_id, input) = events
        .iter()
        .find_map(|e| match e {
            Event::ToolUse { id, name, input } if name == "Bash" => {
                Some((id.clone(), input.clone()))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Bash tool_use in {events:#?}"));
    assert_eq!(
        input["command"],
        "echo made-by-claude > proof.txt && id -u >> proof.txt"
    );
    assert!(
        events.iter().any(|e| matches!(e,
            Event::ToolResult { tool_use_id, is_error: false, .. } if *tool_use_id == tool_id)),
        "no successful tool_result for {tool_id}: {events:#?}"
    );
    let res = result_of(&events);
    assert!(!res.is_error, "{res:?}");
    assert_eq!(res.exit_code, Some(0));
    let tokens = res.tokens.expect("normalised token usage");
    assert!(
        tokens.input_tokens >= 2400 && tokens.output_tokens >= 80,
        "{tokens:?}"
    );
    assert!(res.session_id.is_some());

    // The command ran in the sandbox, as uid 1000, in the workspace root.
    let proof = r
        .plane
        .get("/v1/conversations/cc-1/files?path=proof.txt", TOKEN_ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(proof.status(), 200);
    assert_eq!(proof.text().await.unwrap(), "made-by-claude\n1000\n");

    // Every request that reached "Bedrock" came through the gateway, correctly signed.
    let seen = r.bedrock.seen();
    assert!(!seen.is_empty());
    for req in &seen {
        assert_eq!(req.signature, Ok(()), "{} {}", req.method, req.path);
        assert!(req.headers.get("x-api-key").is_none());
    }
    assert!(seen
        .iter()
        .any(|q| q.operation == "invoke-with-response-stream"));
    // The options reached the CLI: the main requests use the model, offer Bash and the
    // MCP server's tool but not WebFetch, and carry the appended system prompt.
    let main: Vec<_> = seen.iter().filter(|q| !q.tool_names().is_empty()).collect();
    assert!(main.len() >= 2, "tool-use round trip expected: {seen:#?}");
    for q in &main {
        let tools = q.tool_names();
        assert_eq!(q.model, MODEL);
        assert!(tools.iter().any(|t| t == "Bash"), "{tools:?}");
        // MCP tools are deferred by this CLI: named in a system reminder, their schema
        // loaded through ToolSearch.
        assert!(
            tools.iter().any(|t| t == "mcp__docs__lookup")
                || q.body["messages"].to_string().contains("mcp__docs__lookup"),
            "the MCP server's tool was not offered: {tools:?}"
        );
        assert!(!tools.iter().any(|t| t == "WebFetch"), "{tools:?}");
        assert!(
            q.system_text().contains(&marker),
            "system prompt lacks the marker"
        );
    }

    // The MCP server saw the proxy's token on every request.
    let mcp = r.mcp.seen();
    assert!(
        mcp.iter().any(|m| m.rpc.as_deref() == Some("tools/list")),
        "{mcp:?}"
    );
    let bearer = format!("Bearer {}", s.mcp_token);
    for m in &mcp {
        assert_eq!(
            m.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some(bearer.as_str())
        );
    }

    // The tokens were counted for the tenant.
    let metrics = r.plane.metrics_text().await;
    let line = format!(
        "workspace_agent_tokens_total{{tenant=\"acme\",kind=\"input\"}} {}",
        tokens.input_tokens
    );
    assert!(metrics.contains(&line), "{line} not in /metrics");

    // Nothing in the sandbox holds a credential: its environment, every process's
    // command line and environment, and every file the sandbox can write.
    let (dump, _, _) = r
        .plane
        .sh(
            "cc-1",
            "env; for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline; echo; tr '\\0' '\\n' <$p/environ; done 2>/dev/null; \
             find /home/appuser /tmp /workspace /run -type f 2>/dev/null | while read -r f; do head -c 4000000 \"$f\"; echo; done",
        )
        .await;
    // The dump is real: it holds the agent's region and the CLI's transcript.
    assert!(
        dump.contains("AWS_REGION=us-east-1"),
        "environment not dumped"
    );
    let session = res.session_id.as_deref().unwrap_or_default();
    assert!(
        dump.contains("made-by-claude") && dump.contains(session),
        "the workspace's files or the CLI's transcript in its home were not dumped"
    );
    for secret in [&s.secret_access_key, &s.access_key_id, &s.mcp_token] {
        assert!(
            !dump.contains(secret.as_str()),
            "the sandbox holds a credential"
        );
    }
    assert!(!dump.contains("AWS_SECRET_ACCESS_KEY") && !dump.contains("AWS_ACCESS_KEY_ID"));
}

/// Opens an execute stream and reads it until `pred` matches; returns the events so
/// far and the rest of the stream.
async fn open_until(
    plane: &Plane,
    conv: &str,
    req: &ExecuteRequest,
    pred: impl Fn(&Event) -> bool,
) -> (Vec<Event>, reqwest::Response, SseDecoder) {
    let mut resp = plane
        .post(&format!("/v1/conversations/{conv}/execute"), TOKEN_ACME)
        .json(req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut dec = SseDecoder::new();
    let mut out = Vec::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.expect("stream") {
            for ev in dec.push(&chunk) {
                let ev = ev.expect("valid event");
                let hit = pred(&ev);
                out.push(ev);
                if hit {
                    return;
                }
            }
        }
        panic!("the stream ended before the awaited event: {out:#?}");
    };
    tokio::time::timeout(Duration::from_secs(180), read)
        .await
        .expect("awaited event in time");
    (out, resp, dec)
}

/// Two turns resuming one session at once would interleave one transcript: while a
/// turn runs session S, a turn resuming S is refused with 409 `session_busy`, and
/// once the first has ended, S can be resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_a_session_that_is_still_running_is_409() {
    if !docker_tests_enabled() {
        return;
    }
    let r = rig(
        "claude409",
        Script {
            tool: Some(ToolCall::Bash {
                command: "sleep 4; echo slept".into(),
            }),
            ..Default::default()
        },
    )
    .await;
    let allow = |a: &mut AgentSpec| a.allowed_tools = vec!["Bash".into()];
    let first = r
        .plane
        .execute(TOKEN_ACME, "cc-2", &turn("Sleep.", allow))
        .await;
    let session = result_of(&first).session_id.clone().expect("a session id");

    let resume = turn("Sleep again.", |a| {
        allow(a);
        a.resume_session_id = Some(session.clone());
    });
    let (_, rest, mut dec) = open_until(&r.plane, "cc-2", &resume, |e| {
        matches!(e, Event::ToolUse { .. })
    })
    .await;
    let busy = r
        .plane
        .post("/v1/conversations/cc-2/execute", TOKEN_ACME)
        .json(&resume)
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 409);
    let body: serde_json::Value = busy.json().await.unwrap();
    assert_eq!(body["error"]["code"], "session_busy", "{body}");

    // The running turn is unaffected and ends with a result in the same session.
    let mut events = Vec::new();
    let mut body = rest.bytes_stream();
    while let Some(chunk) = body.next().await {
        for ev in dec.push(&chunk.expect("stream")) {
            events.push(ev.expect("valid event"));
        }
    }
    let res = result_of(&events);
    assert!(!res.is_error, "{res:?}");
    // Now it may be resumed.
    let again = r.plane.execute(TOKEN_ACME, "cc-2", &resume).await;
    assert!(!result_of(&again).is_error);
}

/// The permission mode reaches the CLI and decides: the same scripted `Write` is
/// refused in the default mode (a headless turn has nobody to ask) and done with
/// `acceptEdits`, the file then readable through the files API.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_permission_mode_decides_whether_the_model_may_write() {
    if !docker_tests_enabled() {
        return;
    }
    let r = rig(
        "claudewrite",
        Script {
            tool: Some(ToolCall::Write {
                file_path: "/workspace/notes/written.txt".into(),
                content: "written by the model\n".into(),
            }),
            ..Default::default()
        },
    )
    .await;
    let write_result = |events: &[Event]| {
        events
            .iter()
            .find_map(|e| match e {
                Event::ToolResult { is_error, .. } => Some(*is_error),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no tool_result: {events:#?}"))
    };
    let read = || async {
        r.plane
            .get(
                "/v1/conversations/cc-3/files?path=notes/written.txt",
                TOKEN_ACME,
            )
            .send()
            .await
            .unwrap()
    };

    let refused = r
        .plane
        .execute(TOKEN_ACME, "cc-3", &turn("Write the notes.", |_| {}))
        .await;
    assert!(
        write_result(&refused),
        "a write without permission succeeded"
    );
    assert_eq!(read().await.status(), 404);

    let accepted = r
        .plane
        .execute(
            TOKEN_ACME,
            "cc-3",
            &turn("Write the notes.", |a| {
                a.permission_mode = Some(PermissionMode::AcceptEdits)
            }),
        )
        .await;
    assert!(!write_result(&accepted), "{accepted:#?}");
    assert!(!result_of(&accepted).is_error);
    let file = read().await;
    assert_eq!(file.status(), 200);
    assert_eq!(file.text().await.unwrap(), "written by the model\n");

    // max_turns reaches it too: one turn allows the tool call but no answer after it
    // (the same turn without the cap ended without error above).
    let capped = r
        .plane
        .execute(
            TOKEN_ACME,
            "cc-3",
            &turn("Write the notes.", |a| {
                a.permission_mode = Some(PermissionMode::AcceptEdits);
                a.max_turns = Some(1);
            }),
        )
        .await;
    let capped = result_of(&capped);
    assert!(capped.is_error, "{capped:?}");
    assert_eq!(
        capped.usage.as_ref().map(|u| u["subtype"].clone()),
        Some(json!("error_max_turns"))
    );
}
