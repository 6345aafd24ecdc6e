//! Agent mode with the real Claude Code CLI, for tests and the agent-mode benchmark:
//! a control plane whose workspaces run the `workspace-claude` image, whose egress
//! proxy trusts a throw-away CA and routes Bedrock's host name and an MCP host to the
//! stand-ins of `bedrock-standin`, and the credentials the sandbox must never see.

use std::sync::OnceLock;

use bedrock_standin::{sigv4::Key, BedrockStandIn, McpStandIn, Script, TestCa};
use control_plane::config::Config;
use proxy_sidecar::PolicyConfig;
use serde_json::json;
use wire::{AgentSpec, Event, ExecuteRequest};

use super::{docker, new_fleet, test_config, Plane};

pub const CLAUDE_IMAGE: &str = "workspace-claude:latest";
pub const REGION: &str = "us-east-1";
pub const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
pub const MCP_HOST: &str = "mcp.test";

/// The control plane's AWS key (its proxy signs with it) and the MCP server's token:
/// what the sandbox must never see. Set once in this process's environment, where the
/// proxy's credential chain reads it; no container inherits the test's environment.
pub struct Secrets {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub mcp_token: String,
}

pub fn secrets() -> &'static Secrets {
    static S: OnceLock<Secrets> = OnceLock::new();
    S.get_or_init(|| {
        let n = uuid::Uuid::new_v4().simple().to_string();
        let s = Secrets {
            access_key_id: format!("AKIASTANDIN{}", &n[..9].to_uppercase()),
            secret_access_key: format!("standin-secret-{n}"),
            mcp_token: format!("mcp-token-{}", &n[..16]),
        };
        std::env::set_var("AWS_ACCESS_KEY_ID", &s.access_key_id);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", &s.secret_access_key);
        std::env::remove_var("AWS_SESSION_TOKEN");
        s
    })
}

/// Everything a test needs: the CA, both stand-ins, and a control plane whose
/// workspaces run the real CLI and whose proxy trusts the CA and routes the two host
/// names to the stand-ins.
pub struct Rig {
    pub bedrock: BedrockStandIn,
    pub mcp: McpStandIn,
    pub plane: Plane,
}

pub async fn rig(tag: &str, script: Script) -> Rig {
    rig_with(tag, script, |_| {}).await
}

/// [`rig`] with a last change to the control plane's configuration.
pub async fn rig_with(tag: &str, script: Script, tweak: impl FnOnce(&mut Config)) -> Rig {
    let s = secrets();
    let ca = TestCa::new().expect("test CA");
    let key = Key {
        access_key_id: s.access_key_id.clone(),
        secret_access_key: s.secret_access_key.clone(),
        session_token: None,
        region: REGION.into(),
    };
    let bedrock = BedrockStandIn::start(&ca, key, script)
        .await
        .expect("Bedrock stand-in");
    let mcp = McpStandIn::start(&ca, MCP_HOST)
        .await
        .expect("MCP stand-in");

    let d = docker().await;
    if d.inspect_image(CLAUDE_IMAGE).await.is_err() {
        panic!("image {CLAUDE_IMAGE} is missing: run deployment/images/build-offline.sh --claude");
    }
    let mut cfg = test_config(&new_fleet(tag));
    cfg.docker.image = CLAUDE_IMAGE.into();
    // The CLI is a 400 MB binary with a JavaScript heap: room for it, its threads and
    // its files in the sandbox's (still sized) tmpfs mounts.
    cfg.docker.memory_bytes = 1536 * 1024 * 1024;
    cfg.docker.pids_limit = 256;
    cfg.docker.home_size = "64m".into();
    cfg.docker.tmp_size = "64m".into();
    cfg.docker.workspace_size = "64m".into();
    cfg.agent_ready_timeout_secs = 60;
    cfg.egress.proxy.tls.extra_ca_pem = vec![ca.pem().to_string()];
    cfg.egress.proxy.test_resolve_overrides = [
        (bedrock.host.clone(), bedrock.addr),
        (MCP_HOST.to_string(), mcp.addr),
    ]
    .into();
    cfg.egress.default_policy = serde_json::from_value::<PolicyConfig>(json!({
        "bedrock": { "enabled": true, "region": REGION, "allow_private": true },
        "inject": [{
            "host": MCP_HOST,
            "headers": { "Authorization": format!("Bearer {}", s.mcp_token) },
            "allow_private": true
        }]
    }))
    .expect("policy");
    tweak(&mut cfg);
    let plane = Plane::start_cfg(cfg).await;
    Rig {
        bedrock,
        mcp,
        plane,
    }
}

/// An agent turn with the test model, a few turns at most and a timeout.
pub fn turn(prompt: &str, f: impl FnOnce(&mut AgentSpec)) -> ExecuteRequest {
    let mut a = AgentSpec {
        prompt: prompt.into(),
        model: Some(MODEL.into()),
        max_turns: Some(4),
        timeout_secs: Some(240),
        ..Default::default()
    };
    f(&mut a);
    ExecuteRequest::Agent(a)
}

/// The final `result` of a turn (panics, showing the events, if there is none).
pub fn result_of(events: &[Event]) -> &wire::ExecResult {
    match events.last() {
        Some(Event::Result(r)) => r,
        other => panic!("the turn did not end with a result: {other:?}\nall events: {events:#?}"),
    }
}
