//! The contract's version: sent by the agent in a header on every answer and in its
//! health body, and checked once by the control plane when a workspace is created or
//! claimed, so a workspace image built from another contract is refused before it
//! serves a turn.

use crate::types::AgentHealth;

/// Header carrying the version of the wire contract an agent speaks.
pub const WIRE_VERSION_HEADER: &str = "x-workspace-wire-version";
/// Current wire contract version. Bump it on any incompatible change of a type in
/// [`crate::types`] or of a route's meaning.
pub const WIRE_VERSION: u32 = 1;

/// An agent speaks another version of the contract than this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the workspace agent speaks wire version {found}, this control plane speaks {expected}")]
pub struct VersionMismatch {
    pub found: u32,
    pub expected: u32,
}

/// Accepts an agent's health answer only when it speaks [`WIRE_VERSION`].
pub fn check(health: &AgentHealth) -> Result<(), VersionMismatch> {
    if health.wire_version == WIRE_VERSION {
        Ok(())
    } else {
        Err(VersionMismatch {
            found: health.wire_version,
            expected: WIRE_VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(v: u32) -> AgentHealth {
        AgentHealth {
            status: "ok".into(),
            version: "0.1.0".into(),
            wire_version: v,
        }
    }

    #[test]
    fn only_the_same_version_is_accepted() {
        assert!(check(&health(WIRE_VERSION)).is_ok());
        let err = check(&health(WIRE_VERSION + 1)).unwrap_err();
        assert_eq!(err.found, WIRE_VERSION + 1);
        assert!(err.to_string().contains("wire version"));
    }
}
