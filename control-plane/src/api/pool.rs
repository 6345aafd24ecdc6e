//! Warm-pool status and sizing (admin tokens only). A new sizing is stored in the
//! state store, where every replica's filler picks it up.

use axum::{extract::State, http::StatusCode, Json};

use super::{auth::Admin, error::ApiError, extract::ApiJson, types::PoolStatus, AppState};
use crate::store::PoolSizing;

pub async fn get(State(st): State<AppState>, _admin: Admin) -> Result<Json<PoolStatus>, ApiError> {
    Ok(Json(st.services.pool.status().await?))
}

pub async fn put(
    State(st): State<AppState>,
    Admin(_, ctx): Admin,
    ApiJson(sizing): ApiJson<PoolSizing>,
) -> Result<Json<PoolStatus>, ApiError> {
    let cap = st.services.fleet.cfg.max_workspaces;
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
    st.services.pool.resize(sizing, &ctx).await?;
    Ok(Json(st.services.pool.status().await?))
}
