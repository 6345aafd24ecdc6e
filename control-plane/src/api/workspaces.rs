//! Handlers of execute and the workspace routes (get, list, delete).

use std::time::Duration;

use axum::{extract::State, response::Response, Json};
use wire::ExecuteRequest;

use super::{
    auth::Tenant,
    error::ApiError,
    extract::{ApiJson, ApiPath, ApiQuery},
    sse::sse_response,
    types::{Deleted, SyncResult, WorkspaceInfo, WorkspaceList},
    AppState,
};
use crate::{error::Error, fleet::Fleet, store::ConversationKey, telemetry::SyncTrigger};

/// `POST /v1/conversations/{id}/execute`: SSE stream of the execution's events.
pub async fn execute(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
    ApiJson(req): ApiJson<ExecuteRequest>,
) -> Result<Response, ApiError> {
    if st.streams_cancel.is_cancelled() {
        return Err(Error::ShuttingDown.into());
    }
    let events = st
        .services
        .execution
        .execute(&tenant, &conversation_id, req, &ctx)
        .await?;
    Ok(sse_response(
        events,
        Duration::from_secs(st.services.fleet.cfg.keepalive_secs),
        st.streams_cancel.clone(),
    ))
}

fn info(st: &AppState, r: &crate::store::WorkspaceRecord) -> WorkspaceInfo {
    WorkspaceInfo::from_record(r, st.services.execution.running(&r.workspace_id))
}

fn key(tenant: &str, conversation_id: &str) -> Result<ConversationKey, ApiError> {
    Ok(Fleet::key(tenant, conversation_id)?)
}

/// `POST /v1/conversations/{id}/sync`: syncs the workspace's files now.
pub async fn sync(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
) -> Result<Json<SyncResult>, ApiError> {
    let key = key(&tenant, &conversation_id)?;
    let rec = st
        .services
        .lifecycle
        .existing(&key)
        .await?
        .ok_or(Error::WorkspaceNotFound)?;
    let Some(sync) = &st.services.fleet.sync else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "sync_disabled",
            "file sync is not configured (sync.backend = \"none\")",
        ));
    };
    match sync.sync(&rec, SyncTrigger::Forced, &ctx).await? {
        Some(r) => Ok(Json(SyncResult {
            uploaded: r.uploaded,
            deleted: r.deleted,
            bytes_uploaded: r.bytes_uploaded,
            entries: r.entries,
            total_bytes: r.total_bytes,
            duration_ms: r.duration.as_millis() as u64,
            synced_at: crate::time_util::rfc3339(
                (r.synced_at.unix_timestamp_nanos() / 1_000_000) as i64,
            ),
        })),
        None => Err(Error::WorkspaceNotFound.into()),
    }
}

/// `GET /v1/conversations/{id}/workspace`.
pub async fn get_for_conversation(
    State(st): State<AppState>,
    Tenant(tenant, _): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
) -> Result<Json<WorkspaceInfo>, ApiError> {
    let key = key(&tenant, &conversation_id)?;
    let rec = st
        .services
        .lifecycle
        .existing(&key)
        .await?
        .ok_or(Error::WorkspaceNotFound)?;
    Ok(Json(info(&st, &rec)))
}

/// `DELETE /v1/conversations/{id}/workspace`.
/// `?force=true`: delete even when the final sync fails (the last stored files stay).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    #[serde(default)]
    pub force: bool,
}

pub async fn delete_for_conversation(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(conversation_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Json<Deleted>, ApiError> {
    let key = key(&tenant, &conversation_id)?;
    if st.services.lifecycle.delete(&key, q.force, &ctx).await? {
        Ok(Json(Deleted { deleted: true }))
    } else {
        Err(Error::WorkspaceNotFound.into())
    }
}

/// `GET /v1/workspaces`: the tenant's workspaces.
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant, _): Tenant,
) -> Result<Json<WorkspaceList>, ApiError> {
    let recs = st.services.lifecycle.list(&tenant).await?;
    Ok(Json(WorkspaceList {
        workspaces: recs.iter().map(|r| info(&st, r)).collect(),
    }))
}

/// `GET /v1/workspaces/{workspace_id}`.
pub async fn get_by_id(
    State(st): State<AppState>,
    Tenant(tenant, _): Tenant,
    ApiPath(workspace_id): ApiPath<String>,
) -> Result<Json<WorkspaceInfo>, ApiError> {
    let rec = st
        .services
        .lifecycle
        .get_by_id(&tenant, &workspace_id)
        .await?;
    Ok(Json(info(&st, &rec)))
}

/// `DELETE /v1/workspaces/{workspace_id}`.
pub async fn delete_by_id(
    State(st): State<AppState>,
    Tenant(tenant, ctx): Tenant,
    ApiPath(workspace_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Json<Deleted>, ApiError> {
    let rec = st
        .services
        .lifecycle
        .get_by_id(&tenant, &workspace_id)
        .await?;
    let conversation_id = rec.conversation_id.unwrap_or_default();
    let key = key(&tenant, &conversation_id)?;
    if st.services.lifecycle.delete(&key, q.force, &ctx).await? {
        Ok(Json(Deleted { deleted: true }))
    } else {
        Err(Error::WorkspaceNotFound.into())
    }
}
