//! A conversation's egress policy at run time: read it, set it (it applies to the
//! conversation's current workspace right away and to every later one), clear it
//! (back to the tenant's or the default policy).
//!
//! A policy set through the API is the tenant's word, so it may not widen what the
//! operator allows: no `allow_private` (private and metadata addresses stay
//! unreachable), no `{ env = … }` header values (they would read the control plane's
//! own environment), no Bedrock endpoint override — unless the token is an admin's.

use axum::{extract::State, http::StatusCode, Json};
use proxy_sidecar::{AllowEntryConfig, Policy, PolicyConfig, SecretSource};
use serde::{Deserialize, Serialize};

use super::{
    auth::Caller,
    error::ApiError,
    extract::{ApiJson, ApiPath},
    AppState,
};
use crate::{
    fleet::Fleet,
    telemetry::{FleetEvent, RequestContext, Subject},
};

/// Answer of the egress routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EgressPolicy {
    /// `conversation` (set through the API), `tenant` or `default` (configuration).
    pub source: String,
    pub policy: PolicyConfig,
}

fn egress_of(st: &AppState) -> Result<&std::sync::Arc<crate::egress::Egress>, ApiError> {
    st.services.fleet.egress.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "egress_disabled",
            "this control plane does not serve egress proxies (egress.enabled = false or a sidecar runtime)",
        )
    })
}

/// Refuses what an API caller may not set. For every caller, admins included: an
/// injected header may read only the environment variables the operator listed
/// (`egress.api_secret_env`), and no allow entry may name a loopback destination (the
/// control plane's own ports, Redis). Only admins may set `allow_private` (VPC
/// addresses) or override the Bedrock endpoint.
pub fn check_api_policy(
    p: &PolicyConfig,
    admin: bool,
    secret_env: &[String],
) -> Result<(), String> {
    for r in &p.inject {
        for (name, v) in &r.headers {
            if let SecretSource::Env { env } = v {
                if !secret_env.iter().any(|allowed| allowed == env) {
                    return Err(format!(
                        "inject rule {:?}, header {name}: {env:?} is not one of the secrets the operator lists in egress.api_secret_env",
                        r.host
                    ));
                }
            }
        }
    }
    for a in &p.allow {
        let host = match a {
            AllowEntryConfig::Host(h) => h.as_str(),
            AllowEntryConfig::Detailed { host, .. } => host.as_str(),
        };
        if names_loopback(host) {
            return Err(format!(
                "allow entry {host:?}: loopback destinations are never reachable through a policy set by the API"
            ));
        }
    }
    if admin {
        return Ok(());
    }
    for a in &p.allow {
        if let AllowEntryConfig::Detailed {
            allow_private: true,
            host,
        } = a
        {
            return Err(format!(
                "allow entry {host:?}: allow_private needs an admin token"
            ));
        }
    }
    for r in &p.inject {
        if r.allow_private {
            return Err(format!(
                "inject rule {:?}: allow_private needs an admin token",
                r.host
            ));
        }
    }
    if p.bedrock.endpoint.is_some() || p.bedrock.allow_private {
        return Err("bedrock.endpoint and bedrock.allow_private need an admin token".into());
    }
    Ok(())
}

/// True for `localhost`, `*.localhost` and loopback or unspecified address literals
/// (with or without a port), using the proxy's own host parser and address guard.
fn names_loopback(entry: &str) -> bool {
    use proxy_sidecar::{
        guard::{classify, AddressClass},
        host::{parse_host, Host},
    };
    // The parser takes IPv6 literals bracketed, without a port.
    let host = match entry.find(']') {
        Some(end) if entry.starts_with('[') => &entry[..=end],
        _ => match entry.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => entry,
        },
    };
    match parse_host(host) {
        Ok(Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Ok(h) => h
            .ip()
            .and_then(classify)
            .is_some_and(|c| matches!(c, AddressClass::Loopback | AddressClass::Unspecified)),
        Err(_) => false,
    }
}

async fn effective(
    st: &AppState,
    tenant: &str,
    conversation_id: &str,
) -> Result<EgressPolicy, ApiError> {
    let egress = egress_of(st)?;
    let key = Fleet::key(tenant, conversation_id)?;
    if let Some(policy) = egress.conversation_policy(&key).await? {
        return Ok(EgressPolicy {
            source: "conversation".into(),
            policy,
        });
    }
    let (source, policy) = egress.configured_policy(tenant);
    Ok(EgressPolicy {
        source: source.into(),
        policy,
    })
}

/// Stores (or clears) the conversation's policy, applies it to its current workspace
/// if any, and audits the change.
async fn store_and_apply(
    st: &AppState,
    caller: &Caller,
    conversation_id: &str,
    policy: Option<&PolicyConfig>,
) -> Result<(), ApiError> {
    let egress = egress_of(st)?;
    let key = Fleet::key(&caller.tenant, conversation_id)?;
    egress.set_conversation_policy(&key, policy).await?;
    let rec = st.services.lifecycle.existing(&key).await?;
    if let Some(rec) = &rec {
        egress.ensure(rec).await?;
    }
    audit_change(st, &key, rec.as_ref(), &caller.ctx, policy.is_some());
    Ok(())
}

fn audit_change(
    st: &AppState,
    key: &crate::store::ConversationKey,
    rec: Option<&crate::store::WorkspaceRecord>,
    ctx: &RequestContext,
    set: bool,
) {
    st.services.fleet.telemetry.emit(
        &Subject::conversation(key, rec.map(|r| r.workspace_id.as_str())),
        ctx,
        FleetEvent::EgressPolicyChanged {
            action: if set { "set" } else { "cleared" },
        },
    );
}

/// `GET /v1/conversations/{id}/egress`.
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(conversation_id): ApiPath<String>,
) -> Result<Json<EgressPolicy>, ApiError> {
    Ok(Json(
        effective(&st, &caller.tenant, &conversation_id).await?,
    ))
}

/// `PUT /v1/conversations/{id}/egress` with a policy (`allow`, `deny`, `inject`,
/// `bedrock`).
pub async fn put(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(conversation_id): ApiPath<String>,
    ApiJson(policy): ApiJson<PolicyConfig>,
) -> Result<Json<EgressPolicy>, ApiError> {
    egress_of(&st)?;
    Fleet::key(&caller.tenant, &conversation_id)?;
    let secret_env = &st.services.fleet.cfg.egress.api_secret_env;
    check_api_policy(&policy, caller.admin, secret_env)
        .map_err(|m| ApiError::new(StatusCode::FORBIDDEN, "policy_not_allowed", m))?;
    Policy::from_config(&policy)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_policy", e.to_string()))?;
    store_and_apply(&st, &caller, &conversation_id, Some(&policy)).await?;
    Ok(Json(
        effective(&st, &caller.tenant, &conversation_id).await?,
    ))
}

/// `DELETE /v1/conversations/{id}/egress`: back to the configured policy.
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(conversation_id): ApiPath<String>,
) -> Result<Json<EgressPolicy>, ApiError> {
    store_and_apply(&st, &caller, &conversation_id, None).await?;
    Ok(Json(
        effective(&st, &caller.tenant, &conversation_id).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> PolicyConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn tenants_cannot_widen_the_operators_policy() {
        for bad in [
            r#"{"allow":[{"host":"10.0.0.5","allow_private":true}]}"#,
            r#"{"inject":[{"host":"mcp.example.com","headers":{"Authorization":{"env":"AWS_SECRET_ACCESS_KEY"}}}]}"#,
            r#"{"inject":[{"host":"mcp.example.com","headers":{},"allow_private":true}]}"#,
            r#"{"bedrock":{"enabled":true,"region":"us-east-1","endpoint":"evil.example.com"}}"#,
        ] {
            assert!(check_api_policy(&policy(bad), false, &[]).is_err(), "{bad}");
        }
        let ok = r#"{"allow":["pypi.org"],"inject":[{"host":"mcp.example.com","headers":{"Authorization":"Bearer x"}}]}"#;
        assert!(check_api_policy(&policy(ok), false, &[]).is_ok());
    }

    #[test]
    fn no_caller_can_read_the_environment_or_reach_loopback() {
        let env = r#"{"inject":[{"host":"mcp.example.com","headers":{"Authorization":{"env":"CP_API_TOKENS"}}}]}"#;
        assert!(check_api_policy(&policy(env), true, &[]).is_err());
        assert!(check_api_policy(&policy(env), true, &["OTHER".into()]).is_err());
        assert!(check_api_policy(&policy(env), true, &["CP_API_TOKENS".into()]).is_ok());
        for lo in [
            r#"{"allow":[{"host":"127.0.0.1:6379","allow_private":true}]}"#,
            r#"{"allow":[{"host":"localhost","allow_private":true}]}"#,
            r#"{"allow":[{"host":"[::1]:8700","allow_private":true}]}"#,
            r#"{"allow":["127.0.0.5"]}"#,
        ] {
            assert!(check_api_policy(&policy(lo), true, &[]).is_err(), "{lo}");
        }
        let vpc = r#"{"allow":[{"host":"10.0.0.5","allow_private":true}]}"#;
        assert!(check_api_policy(&policy(vpc), true, &[]).is_ok());
        assert!(check_api_policy(&policy(vpc), false, &[]).is_err());
    }
}
