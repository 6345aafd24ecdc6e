//! The one validator of an [`ExecuteRequest`] beyond its JSON shape, with one set of
//! codes and messages: the control plane calls it before it finds a workspace (so a bad
//! request never creates one) and the agent calls it again before it spawns anything
//! (the agent must not trust its caller either). Limits that are an agent's own
//! configuration (its maximum timeout) are checked by the agent alone.

use crate::types::{AgentSpec, CommandSpec, ExecuteRequest};

/// Most tools in `allowed_tools` or in `disallowed_tools`.
pub const MAX_TOOLS: usize = 64;
/// Longest tool name or pattern.
pub const MAX_TOOL_LEN: usize = 256;
/// Longest `append_system_prompt` (bytes).
pub const MAX_APPEND_SYSTEM_PROMPT: usize = 64 * 1024;
/// Most MCP servers of a turn.
pub const MAX_MCP_SERVERS: usize = 16;
/// Longest MCP server URL.
pub const MAX_MCP_URL_LEN: usize = 2048;
/// Largest `max_turns`.
pub const MAX_TURNS: u32 = 1000;

/// A request refused as a client mistake (HTTP 400 at both ends).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Stable machine-readable code (`invalid_request`, `invalid_env`, `invalid_timeout`).
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

impl ExecuteRequest {
    /// Checks everything about the request that does not depend on a workspace.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.timeout_secs() == Some(0) {
            return Err(invalid(
                "invalid_timeout",
                "timeout_secs must be greater than 0",
            ));
        }
        match self {
            ExecuteRequest::Command(c) => validate_command(c),
            ExecuteRequest::Agent(a) => validate_agent(a),
        }
    }
}

fn validate_command(c: &CommandSpec) -> Result<(), Invalid> {
    if c.argv.first().is_none_or(|p| p.is_empty()) {
        return Err(invalid("invalid_request", "argv must name a program"));
    }
    if c.argv.iter().any(|a| a.contains('\0')) {
        return Err(invalid(
            "invalid_request",
            "argv must not contain NUL bytes",
        ));
    }
    if c.shell && c.argv.len() != 1 {
        return Err(invalid(
            "invalid_request",
            "with shell: true, argv must hold exactly one string (the script for /bin/sh -c)",
        ));
    }
    for (k, v) in &c.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(invalid(
                "invalid_env",
                format!("invalid environment variable {k:?}: names must be non-empty without '=' or NUL, values without NUL"),
            ));
        }
    }
    Ok(())
}

fn validate_agent(a: &AgentSpec) -> Result<(), Invalid> {
    if a.prompt.trim().is_empty() {
        return Err(invalid("invalid_request", "prompt must not be empty"));
    }
    let fields = [
        Some(a.prompt.as_str()),
        a.resume_session_id.as_deref(),
        a.model.as_deref(),
    ];
    if fields.iter().flatten().any(|f| f.contains('\0')) {
        return Err(invalid(
            "invalid_request",
            "fields must not contain NUL bytes",
        ));
    }
    if let Some(id) = &a.resume_session_id {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "invalid_request",
                "resume_session_id must be made of letters, digits, '-' and '_'",
            ));
        }
    }
    if a.model
        .as_deref()
        .is_some_and(|m| m.is_empty() || m.starts_with('-'))
    {
        return Err(invalid("invalid_request", "model must be a model id"));
    }
    if a.max_turns.is_some_and(|n| n == 0 || n > MAX_TURNS) {
        return Err(invalid(
            "invalid_request",
            format!("max_turns must be between 1 and {MAX_TURNS}"),
        ));
    }
    for (field, tools) in [
        ("allowed_tools", &a.allowed_tools),
        ("disallowed_tools", &a.disallowed_tools),
    ] {
        validate_tools(field, tools)?;
    }
    if let Some(p) = &a.append_system_prompt {
        if p.len() > MAX_APPEND_SYSTEM_PROMPT || p.contains('\0') {
            return Err(invalid(
                "invalid_request",
                format!("append_system_prompt must be at most {MAX_APPEND_SYSTEM_PROMPT} bytes without NUL"),
            ));
        }
    }
    if a.mcp_servers.len() > MAX_MCP_SERVERS {
        return Err(invalid(
            "invalid_request",
            format!("at most {MAX_MCP_SERVERS} mcp_servers"),
        ));
    }
    for (name, server) in &a.mcp_servers {
        validate_mcp_server(name, &server.url)?;
    }
    Ok(())
}

/// Tool names and patterns (`Edit`, `Bash(git *)`, `mcp__docs__lookup`): each is its
/// own argv element after the option, so one starting with `-` would be read as an
/// option by the CLI, and a comma or a control character would split or garble it.
fn validate_tools(field: &str, tools: &[String]) -> Result<(), Invalid> {
    if tools.len() > MAX_TOOLS {
        return Err(invalid(
            "invalid_request",
            format!("{field}: at most {MAX_TOOLS} entries"),
        ));
    }
    for t in tools {
        if t.trim().is_empty()
            || t.len() > MAX_TOOL_LEN
            || t.starts_with('-')
            || t.contains(',')
            || t.chars().any(char::is_control)
        {
            return Err(invalid(
                "invalid_request",
                format!("{field}: {t:?} is not a tool name or pattern (1 to {MAX_TOOL_LEN} characters, not starting with '-', no commas or control characters)"),
            ));
        }
    }
    Ok(())
}

/// An MCP server: a name of letters, digits, `-` and `_` (it becomes part of tool names,
/// `mcp__<name>__<tool>`), and a plain `http://host[:port]/path` URL without user info:
/// the egress proxy is the only way out and adds the server's credentials, so the URL
/// never carries one and the hop beyond the proxy is TLS.
fn validate_mcp_server(name: &str, url: &str) -> Result<(), Invalid> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "invalid_request",
            format!("mcp_servers: name {name:?} must be 1 to 64 letters, digits, '-' or '_'"),
        ));
    }
    let bad = |why: &str| invalid("invalid_request", format!("mcp_servers.{name}.url: {why}"));
    if url.len() > MAX_MCP_URL_LEN || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            "must be a URL of at most 2048 characters without spaces or control characters",
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(bad("must start with http:// (the egress proxy makes the TLS connection and adds the credentials)"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("must name a host and carry no user info"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(argv: &[&str]) -> ExecuteRequest {
        ExecuteRequest::Command(CommandSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    fn agent(f: impl FnOnce(&mut AgentSpec)) -> ExecuteRequest {
        let mut a = AgentSpec {
            prompt: "hello".into(),
            ..Default::default()
        };
        f(&mut a);
        ExecuteRequest::Agent(a)
    }

    #[test]
    fn accepts_ordinary_requests() {
        assert_eq!(cmd(&["ls", "-la"]).validate(), Ok(()));
        assert_eq!(agent(|_| {}).validate(), Ok(()));
        assert_eq!(
            agent(|a| a.resume_session_id = Some("abc-123_x".into())).validate(),
            Ok(())
        );
        assert_eq!(
            agent(|a| {
                a.allowed_tools = vec!["Bash(git *)".into(), "Edit".into()];
                a.disallowed_tools = vec!["WebFetch".into()];
                a.append_system_prompt = Some("- be brief\n- no emojis".into());
                a.max_turns = Some(MAX_TURNS);
                mcp(a, "docs_1", "http://mcp.example.com:8443/mcp?x=1");
            })
            .validate(),
            Ok(())
        );
    }

    fn mcp(a: &mut AgentSpec, name: &str, url: &str) {
        a.mcp_servers.insert(
            name.into(),
            crate::types::McpServer {
                url: url.into(),
                transport: Default::default(),
            },
        );
    }

    #[test]
    fn permission_modes_are_the_clis_and_mcp_headers_do_not_exist() {
        let ok: ExecuteRequest = serde_json::from_str(
            r#"{"mode":"agent","prompt":"p","permission_mode":"acceptEdits","mcp_servers":{"d":{"url":"http://h/","type":"sse"}}}"#,
        )
        .unwrap();
        assert_eq!(ok.validate(), Ok(()));
        for bad in [
            r#"{"mode":"agent","prompt":"p","permission_mode":"yolo"}"#,
            r#"{"mode":"agent","prompt":"p","mcp_servers":{"d":{"url":"http://h/","headers":{"Authorization":"x"}}}}"#,
        ] {
            assert!(
                serde_json::from_str::<ExecuteRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_each_client_mistake_with_its_code() {
        let cases: Vec<(ExecuteRequest, &str)> = vec![
            (cmd(&[]), "invalid_request"),
            (cmd(&[""]), "invalid_request"),
            (cmd(&["a\0b"]), "invalid_request"),
            (
                ExecuteRequest::Command(CommandSpec {
                    argv: vec!["a".into(), "b".into()],
                    shell: true,
                    ..Default::default()
                }),
                "invalid_request",
            ),
            (
                ExecuteRequest::Command(CommandSpec {
                    argv: vec!["a".into()],
                    env: [("A=B".to_string(), "x".to_string())].into(),
                    ..Default::default()
                }),
                "invalid_env",
            ),
            (
                ExecuteRequest::Command(CommandSpec {
                    argv: vec!["a".into()],
                    timeout_secs: Some(0),
                    ..Default::default()
                }),
                "invalid_timeout",
            ),
            (agent(|a| a.prompt = "  ".into()), "invalid_request"),
            (
                agent(|a| a.resume_session_id = Some("../x".into())),
                "invalid_request",
            ),
            (
                agent(|a| a.model = Some("--help".into())),
                "invalid_request",
            ),
            (agent(|a| a.max_turns = Some(0)), "invalid_request"),
            (
                agent(|a| a.max_turns = Some(MAX_TURNS + 1)),
                "invalid_request",
            ),
            (
                agent(|a| a.allowed_tools = vec!["--dangerously-skip-permissions".into()]),
                "invalid_request",
            ),
            (
                agent(|a| a.disallowed_tools = vec!["Bash,Edit".into()]),
                "invalid_request",
            ),
            (
                agent(|a| a.allowed_tools = vec!["Bash\n".into()]),
                "invalid_request",
            ),
            (
                agent(|a| a.allowed_tools = vec!["Read".into(); MAX_TOOLS + 1]),
                "invalid_request",
            ),
            (
                agent(|a| a.append_system_prompt = Some("x".repeat(MAX_APPEND_SYSTEM_PROMPT + 1))),
                "invalid_request",
            ),
            (
                agent(|a| mcp(a, "docs", "https://mcp.example.com/")),
                "invalid_request",
            ),
            (
                agent(|a| mcp(a, "docs", "http://user:pw@mcp.example.com/")),
                "invalid_request",
            ),
            (agent(|a| mcp(a, "docs", "http:///x")), "invalid_request"),
            (agent(|a| mcp(a, "docs", "http://a b/")), "invalid_request"),
            (
                agent(|a| mcp(a, "../x", "http://mcp.example.com/")),
                "invalid_request",
            ),
        ];
        for (req, code) in cases {
            let err = req.validate().expect_err(&format!("{req:?}"));
            assert_eq!(err.code, code, "{req:?}");
        }
    }
}
