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

/// The tenant of an authenticated request and whether its token is an admin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub admin: bool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).map(|t| Caller {
            tenant: t.tenant.clone(),
            admin: t.admin,
        })
    }
}

/// An authenticated request whose token may change fleet-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(pub String);

/// Finds the configured token equal to `presented`.
pub fn token_for<'a>(tokens: &'a [TokenConfig], presented: &[u8]) -> Option<&'a TokenConfig> {
    let mut found = None;
    for t in tokens {
        let eq: bool = t.token.as_bytes().ct_eq(presented).into();
        if eq && found.is_none() {
            found = Some(t);
        }
    }
    found
}

/// Finds the tenant whose token equals `presented`.
pub fn tenant_for(tokens: &[TokenConfig], presented: &[u8]) -> Option<String> {
    token_for(tokens, presented).map(|t| t.tenant.clone())
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).map(|t| Tenant(t.tenant.clone()))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let t = authenticate(parts, state)?;
        if !t.admin {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "this token may not change fleet-wide settings",
            ));
        }
        Ok(Admin(t.tenant.clone()))
    }
}

fn authenticate<'a>(parts: &Parts, state: &'a AppState) -> Result<&'a TokenConfig, ApiError> {
    {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match presented.and_then(|p| token_for(&state.tokens, p.as_bytes())) {
            Some(t) => Ok(t),
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
                admin: false,
            },
            TokenConfig {
                tenant: "b".into(),
                token: "bbbbbbbbbbbbbbbb".into(),
                admin: true,
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
