//! Bearer-token authentication: each configured token is bound to one tenant; tokens
//! are compared in constant time, and every configured token is compared on every
//! request so timing reveals neither which token nor how much of it matched.

use axum::{extract::FromRequestParts, http::request::Parts};
use subtle::ConstantTimeEq;

use super::{error::ApiError, AppState};
use crate::{
    audit::{self, AuditEvent},
    config::TokenConfig,
};

/// The tenant of an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

/// Finds the tenant whose token equals `presented`.
pub fn tenant_for(tokens: &[TokenConfig], presented: &[u8]) -> Option<String> {
    let mut found: Option<String> = None;
    for t in tokens {
        let eq: bool = t.token.as_bytes().ct_eq(presented).into();
        if eq && found.is_none() {
            found = Some(t.tenant.clone());
        }
    }
    found
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match presented.and_then(|p| tenant_for(&state.tokens, p.as_bytes())) {
            Some(tenant) => Ok(Tenant(tenant)),
            None => {
                state.orch.metrics().auth_failures.inc();
                audit::record(
                    AuditEvent::AuthRefused,
                    "",
                    "",
                    "",
                    if presented.is_some() {
                        "bad token"
                    } else {
                        "no token"
                    },
                );
                Err(ApiError::unauthorized())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_tenant_of_a_token_and_nothing_else() {
        let tokens = vec![
            TokenConfig {
                tenant: "a".into(),
                token: "aaaaaaaaaaaaaaaa".into(),
            },
            TokenConfig {
                tenant: "b".into(),
                token: "bbbbbbbbbbbbbbbb".into(),
            },
        ];
        assert_eq!(
            tenant_for(&tokens, b"bbbbbbbbbbbbbbbb").as_deref(),
            Some("b")
        );
        assert_eq!(tenant_for(&tokens, b"bbbbbbbbbbbbbbb"), None);
        assert_eq!(tenant_for(&tokens, b"bbbbbbbbbbbbbbbbb"), None);
        assert_eq!(tenant_for(&tokens, b""), None);
    }
}
