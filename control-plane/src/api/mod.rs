//! The HTTP API (axum): routes under `/v1` behind bearer auth, health and metrics
//! outside it, JSON errors everywhere (unknown routes and methods included).

pub mod auth;
pub mod context;
pub mod egress;
pub mod error;
pub mod extract;
pub mod files;
pub mod pool;
pub mod sse;
pub mod types;
pub mod workspaces;

use std::sync::Arc;

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::{
    config::TokenConfig,
    metrics::{self, RouteLabels},
    services::Services,
};
use error::ApiError;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub registry: Arc<Registry>,
    pub tokens: Arc<Vec<TokenConfig>>,
    /// Cancelled when running streams must end (shutdown grace elapsed).
    pub streams_cancel: CancellationToken,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route(
            "/conversations/{conversation_id}/execute",
            post(workspaces::execute).layer(DefaultBodyLimit::max(
                state.services.fleet.cfg.max_json_bytes,
            )),
        )
        .route(
            "/conversations/{conversation_id}/files",
            get(files::read).put(files::write).delete(files::delete),
        )
        .route(
            "/conversations/{conversation_id}/files/list",
            get(files::list),
        )
        .route(
            "/conversations/{conversation_id}/archive",
            get(files::export_archive).put(files::import_archive),
        )
        .route(
            "/conversations/{conversation_id}/egress",
            get(egress::get).put(egress::put).delete(egress::delete),
        )
        .route(
            "/conversations/{conversation_id}/sync",
            post(workspaces::sync),
        )
        .route(
            "/conversations/{conversation_id}/workspace",
            get(workspaces::get_for_conversation).delete(workspaces::delete_for_conversation),
        )
        .route("/workspaces", get(workspaces::list))
        .route("/pool", get(pool::get).put(pool::put))
        .route(
            "/workspaces/{workspace_id}",
            get(workspaces::get_by_id).delete(workspaces::delete_by_id),
        );

    Router::new()
        .nest("/v1", v1)
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn(context::assign_request_id))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the runtime and the state store both answer.
async fn ready(State(st): State<AppState>) -> Response {
    let fleet = &st.services.fleet;
    let runtime = fleet.runtime.ping().await;
    let store = fleet.store.ping().await;
    let sync = match &fleet.sync {
        Some(s) => s.syncer().probe().await.map_err(|e| e.to_string()),
        None => Ok(()),
    };
    let body = serde_json::json!({
        "status": if runtime.is_ok() && store.is_ok() && sync.is_ok() { "ok" } else { "unavailable" },
        "runtime": { "name": fleet.runtime.name(), "ok": runtime.is_ok(),
                     "error": runtime.err().map(|e| e.to_string()) },
        "store": { "name": fleet.store.kind(), "ok": store.is_ok(),
                   "error": store.err().map(|e| e.to_string()) },
        "sync": { "enabled": fleet.sync.is_some(), "ok": sync.is_ok(), "error": sync.err() },
    });
    let ok = body["status"] == "ok";
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    st.services.fleet.refresh_gauges().await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::render(&st.registry),
    )
        .into_response()
}

/// Counts responses by route template and status.
async fn count_responses(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    st.services
        .fleet
        .telemetry
        .metrics()
        .http_responses
        .get_or_create(&RouteLabels {
            route,
            code: resp.status().as_u16(),
        })
        .inc();
    resp
}
