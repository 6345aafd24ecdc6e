//! File routes: relayed to the conversation's agent, which confines every path to the
//! workspace root (its 400/404/413 answers are passed through). Reads, lists and
//! deletes need an existing workspace; a write creates the workspace on first use.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, Method, StatusCode},
    response::Response,
};
use http_body_util::{BodyExt, Limited};
use wire::{self, FileQuery};

use super::{
    auth::Tenant,
    error::ApiError,
    extract::{ApiPath, ApiQuery},
    AppState,
};
use crate::{
    agent_client::AgentClient,
    fleet::Fleet,
    store::{ConversationKey, WorkspaceRecord},
    telemetry::{FleetEvent, RequestContext, Subject},
};

#[derive(Debug, serde::Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub recursive: Option<bool>,
}

fn agent_uri(route: &str, q: &PathQuery, require_path: bool) -> Result<String, ApiError> {
    let path = match (&q.path, require_path) {
        (Some(p), _) => p.clone(),
        (None, false) => String::new(),
        (None, true) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                "the query parameter `path` is required",
            ))
        }
    };
    let fq = FileQuery {
        path,
        recursive: q.recursive.unwrap_or(false),
    };
    let qs = serde_urlencoded::to_string(&fq)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.to_string()))?;
    Ok(format!("{route}?{qs}"))
}

fn key(tenant: &str, conversation_id: &str) -> Result<ConversationKey, ApiError> {
    Ok(Fleet::key(tenant, conversation_id)?)
}

/// Audits a file operation on a workspace.
fn audit(st: &AppState, rec: &WorkspaceRecord, ctx: &RequestContext, event: FleetEvent) {
    st.services
        .fleet
        .telemetry
        .emit(&Subject::record(rec), ctx, event);
}

/// Relays an agent response (status, content type, streaming body).
async fn relay(
    client: &AgentClient,
    method: Method,
    uri: &str,
    ct: Option<&str>,
    body: Body,
) -> Result<Response, ApiError> {
    let resp = client.forward(method, uri, ct, body).await?;
    let resp = client.error_for_status(resp).await?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for h in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(v) = parts.headers.get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    Ok(out)
}

/// A `GET` of an agent file route in the conversation's existing workspace; a read
/// of a file is audited (lists are not: they reveal names only).
async fn relay_get(
    st: &AppState,
    tenant: &str,
    conversation_id: &str,
    route: &str,
    q: &PathQuery,
    ctx: &RequestContext,
) -> Result<Response, ApiError> {
    let key = key(tenant, conversation_id)?;
    let read = route == wire::routes::FILES;
    let uri = agent_uri(route, q, read)?;
    let (rec, client) = st.services.lifecycle.client_for_existing(&key).await?;
    let resp = relay(&client, Method::GET, &uri, None, Body::empty()).await?;
    if read {
        let path = q.path.clone().unwrap_or_default();
        audit(st, &rec, ctx, FleetEvent::FileRead { path });
    }
    Ok(resp)
}

/// `GET /v1/conversations/{id}/files?path=`: the file's bytes.
pub async fn read(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> Result<Response, ApiError> {
    relay_get(
        &st,
        &tenant,
        &conversation_id,
        wire::routes::FILES,
        &q,
        &ctx,
    )
    .await
}

/// `GET /v1/conversations/{id}/files/list?path=&recursive=`.
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> Result<Response, ApiError> {
    relay_get(
        &st,
        &tenant,
        &conversation_id,
        wire::routes::FILES_LIST,
        &q,
        &ctx,
    )
    .await
}

/// `PUT /v1/conversations/{id}/files?path=`: writes the body atomically.
pub async fn write(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PathQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let key = key(&tenant, &conversation_id)?;
    let uri = agent_uri(wire::routes::FILES, &q, true)?;
    let bytes = read_body(&st, req).await?;
    let size = bytes.len() as u64;
    let (rec, client) = st.services.lifecycle.client_for(&key, &ctx).await?;
    let resp = relay(
        &client,
        Method::PUT,
        &uri,
        Some("application/octet-stream"),
        Body::from(bytes),
    )
    .await?;
    let path = q.path.clone().unwrap_or_default();
    audit(
        &st,
        &rec,
        &ctx,
        FleetEvent::FileWritten { path, bytes: size },
    );
    Ok(resp)
}

/// `DELETE /v1/conversations/{id}/files?path=`.
pub async fn delete(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> Result<Response, ApiError> {
    let key = key(&tenant, &conversation_id)?;
    let uri = agent_uri(wire::routes::FILES, &q, true)?;
    let (rec, client) = st.services.lifecycle.client_for_existing(&key).await?;
    let resp = relay(&client, Method::DELETE, &uri, None, Body::empty()).await?;
    let path = q.path.clone().unwrap_or_default();
    audit(&st, &rec, &ctx, FleetEvent::FileDeleted { path });
    Ok(resp)
}

/// Reads a request body of at most `max_body_bytes`, buffered so an oversized body is
/// a clean 413 (never a torn write).
async fn read_body(st: &AppState, req: Request) -> Result<bytes::Bytes, ApiError> {
    let limit = st.services.fleet.cfg.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    Ok(Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large()
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "body_error", e.to_string())
            }
        })?
        .to_bytes())
}

/// `GET /v1/conversations/{id}/archive`: a tar of the whole workspace.
pub async fn export_archive(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let key = key(&tenant, &conversation_id)?;
    let (rec, client) = st.services.lifecycle.client_for_existing(&key).await?;
    let resp = relay(
        &client,
        Method::GET,
        wire::routes::ARCHIVE,
        None,
        Body::empty(),
    )
    .await?;
    audit(&st, &rec, &ctx, FleetEvent::ArchiveExported);
    Ok(resp)
}

/// `PUT /v1/conversations/{id}/archive`: extracts a tar into the workspace (created on
/// first use). An archive with any entry escaping the root is refused whole (400).
pub async fn import_archive(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let key = key(&tenant, &conversation_id)?;
    let bytes = read_body(&st, req).await?;
    let (rec, client) = st.services.lifecycle.client_for(&key, &ctx).await?;
    let resp = client
        .forward(
            Method::PUT,
            wire::routes::ARCHIVE,
            Some("application/x-tar"),
            Body::from(bytes),
        )
        .await?;
    let resp = client.error_for_status(resp).await?;
    // The agent's answer is small JSON (`ImportResult`): read it, bounded (the agent
    // is sandbox-controlled), for the audit line.
    let body = Limited::new(resp.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| ApiError::from(crate::agent_client::AgentError::Http(e.to_string())))?
        .to_bytes();
    let result: wire::ImportResult = serde_json::from_slice(&body)
        .map_err(|e| ApiError::from(crate::agent_client::AgentError::Protocol(e.to_string())))?;
    audit(
        &st,
        &rec,
        &ctx,
        FleetEvent::ArchiveImported {
            entries: result.entries,
            bytes: result.bytes,
        },
    );
    let mut out = Response::new(Body::from(body));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(out)
}
