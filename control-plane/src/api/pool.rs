//! Warm-pool status and sizing (admin tokens only). A new sizing is stored in the
//! state store, where every replica's filler picks it up.

use axum::{extract::State, http::StatusCode, Json};

use super::{auth::Admin, error::ApiError, extract::ApiJson, types::PoolStatus, AppState};
use crate::store::{PoolSizing, WorkspaceState};

async fn status(st: &AppState) -> Result<PoolStatus, ApiError> {
    let orch = &st.orch;
    let sizing = orch.pool_sizing().await;
    let store = orch.store();
    let members = store
        .pool_members()
        .await
        .map_err(crate::error::Error::from)?;
    let starting = store
        .records()
        .await
        .map_err(crate::error::Error::from)?
        .iter()
        .filter(|r| r.state == WorkspaceState::Starting && r.tenant_id.is_none())
        .count();
    Ok(PoolStatus {
        min: sizing.min,
        max: sizing.max,
        size: members.len(),
        starting,
        max_workspaces: orch.config().max_workspaces,
    })
}

/// `GET /v1/pool`.
pub async fn get(State(st): State<AppState>, _admin: Admin) -> Result<Json<PoolStatus>, ApiError> {
    Ok(Json(status(&st).await?))
}

/// `PUT /v1/pool` with `{"min": n, "max": m}`.
pub async fn put(
    State(st): State<AppState>,
    _admin: Admin,
    ApiJson(sizing): ApiJson<PoolSizing>,
) -> Result<Json<PoolStatus>, ApiError> {
    let cap = st.orch.config().max_workspaces;
    if sizing.min > sizing.max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "min must not exceed max",
        ));
    }
    if sizing.max > cap {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("max must not exceed the workspace cap ({cap})"),
        ));
    }
    st.orch
        .store()
        .set_pool_sizing(sizing)
        .await
        .map_err(crate::error::Error::from)?;
    st.orch.pool_notify().notify_one();
    Ok(Json(status(&st).await?))
}
