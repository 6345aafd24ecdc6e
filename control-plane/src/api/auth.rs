//! Bearer-token authentication: each configured token is bound to one tenant; tokens
//! are compared in constant time, and every configured token is compared on every
//! request so timing reveals neither which token nor how much of it matched. An
//! authenticated request also yields its [`RequestContext`]: the actor (the token's
//! id `token:<tenant>#<n>`, never the token) and the request id. Refusals are audited
//! with the peer address and the route.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts, MatchedPath},
    http::request::Parts,
};
use subtle::ConstantTimeEq;

use super::{context::RequestId, error::ApiError, AppState};
use crate::{
    config::TokenConfig,
    telemetry::{FleetEvent, RequestContext, Subject},
};

/// The tenant of an authenticated request, and the request's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String, pub RequestContext);

/// The tenant of an authenticated request, whether its token is an admin's, and the
/// request's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub admin: bool,
    pub ctx: RequestContext,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (t, ctx) = authenticate(parts, state)?;
        Ok(Caller {
            tenant: t.tenant.clone(),
            admin: t.admin,
            ctx,
        })
    }
}

/// An authenticated request whose token may change fleet-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(pub String, pub RequestContext);

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
        authenticate(parts, state).map(|(t, ctx)| Tenant(t.tenant.clone(), ctx))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (t, ctx) = authenticate(parts, state)?;
        if !t.admin {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "this token may not change fleet-wide settings",
            ));
        }
        Ok(Admin(t.tenant.clone(), ctx))
    }
}

fn authenticate<'a>(
    parts: &Parts,
    state: &'a AppState,
) -> Result<(&'a TokenConfig, RequestContext), ApiError> {
    let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
    let presented = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let found = presented.and_then(|p| {
        let t = token_for(&state.tokens, p.as_bytes())?;
        let n = state.tokens.iter().position(|x| std::ptr::eq(x, t))?;
        Some((t, n))
    });
    match found {
        Some((t, n)) => Ok((
            t,
            RequestContext {
                actor: Some(format!("token:{}#{n}", t.tenant)),
                request_id,
            },
        )),
        None => {
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.to_string());
            let route = parts
                .extensions
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| parts.uri.path().chars().take(200).collect());
            let ctx = RequestContext {
                actor: Some(
                    if presented.is_some() {
                        "bad_token"
                    } else {
                        "no_token"
                    }
                    .into(),
                ),
                request_id,
            };
            state.services.fleet.telemetry.emit(
                &Subject::none(),
                &ctx,
                FleetEvent::AuthRefused { peer, route },
            );
            Err(ApiError::unauthorized())
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
