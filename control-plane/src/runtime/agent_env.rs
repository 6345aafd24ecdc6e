//! The environment every runtime gives a workspace's agent (and so the commands and
//! the Claude Code CLI it starts) for reaching the outside: the egress proxy on
//! `127.0.0.1:8080` for HTTP(S) clients, and Bedrock through the proxy's gateway for
//! the CLI. Owns only names and values that are never secret: the proxy adds every
//! credential on the way out, so none may appear here (see `docs/security.md`).

/// The proxy as the sandbox sees it (the agent's relay locally, the sidecar on ECS).
pub const PROXY_URL: &str = "http://127.0.0.1:8080";

/// `HTTP(S)_PROXY` in both spellings, `NO_PROXY` for loopback (gateway requests go to
/// the proxy directly), and Node's switch to honour them.
pub fn proxy_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .into_iter()
        .map(|k| (k.to_string(), PROXY_URL.to_string()))
        .collect();
    for k in ["NO_PROXY", "no_proxy"] {
        env.push((k.to_string(), "localhost,127.0.0.1".to_string()));
    }
    env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    env
}

/// Claude Code on Bedrock through the gateway, without credentials: the region (the
/// CLI requires one; it must be the region of the egress policy's `bedrock`), the
/// gateway as the Bedrock endpoint, and `CLAUDE_CODE_SKIP_BEDROCK_AUTH` so the CLI
/// neither looks for nor sends AWS credentials (the proxy signs). Empty `region`: none
/// of it (a workspace without agent mode).
pub fn bedrock_env(region: &str) -> Vec<(String, String)> {
    if region.is_empty() {
        return Vec::new();
    }
    [
        ("AWS_REGION", region),
        ("CLAUDE_CODE_USE_BEDROCK", "1"),
        ("CLAUDE_CODE_SKIP_BEDROCK_AUTH", "1"),
        ("ANTHROPIC_BEDROCK_BASE_URL", PROXY_URL),
        ("DISABLE_AUTOUPDATER", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::looks_like_credential;

    #[test]
    fn the_agent_environment_holds_no_credential() {
        let env: Vec<_> = proxy_env()
            .into_iter()
            .chain(bedrock_env("us-east-1"))
            .collect();
        for (k, _) in &env {
            assert!(!looks_like_credential(k), "{k}");
        }
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AWS_REGION"), Some("us-east-1"));
        assert_eq!(get("ANTHROPIC_BEDROCK_BASE_URL"), Some(PROXY_URL));
        assert_eq!(get("CLAUDE_CODE_SKIP_BEDROCK_AUTH"), Some("1"));
        assert!(bedrock_env("").is_empty());
    }
}
