//! The one validator of an [`ExecuteRequest`] beyond its JSON shape, with one set of
//! codes and messages: the control plane calls it before it finds a workspace (so a bad
//! request never creates one) and the agent calls it again before it spawns anything
//! (the agent must not trust its caller either). Limits that are an agent's own
//! configuration (its maximum timeout) are checked by the agent alone.

use crate::types::{AgentSpec, CommandSpec, ExecuteRequest};

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
    if a.max_turns == Some(0) {
        return Err(invalid(
            "invalid_request",
            "max_turns must be greater than 0",
        ));
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
        ];
        for (req, code) in cases {
            let err = req.validate().expect_err(&format!("{req:?}"));
            assert_eq!(err.code, code, "{req:?}");
        }
    }
}
