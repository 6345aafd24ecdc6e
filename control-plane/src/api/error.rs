//! The API's error: the one place where domain errors become status codes and the
//! JSON body `{"error":{"code","message"}}`. Client mistakes are 4xx, never 500.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use wire::ErrorBody;

use crate::{agent_client::AgentError, error::Error};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::InvalidConversationId => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_conversation_id", msg)
            }
            Error::BadRequest(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_request", msg),
            Error::InvalidRequest(i) => Self::new(StatusCode::BAD_REQUEST, i.code, msg),
            Error::WorkspaceNotFound => {
                Self::new(StatusCode::NOT_FOUND, "workspace_not_found", msg)
            }
            Error::CapacityExhausted(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "capacity_exhausted", msg)
            }
            Error::AgentNotReady(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "workspace_not_ready", msg)
            }
            Error::IncompatibleAgent(_) => {
                tracing::error!(error = %msg, "workspace image speaks another wire version");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "incompatible_workspace",
                    msg,
                )
            }
            Error::ShuttingDown => Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg),
            Error::Runtime(_) => {
                tracing::error!(error = %msg, "runtime failure");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "runtime_unavailable", msg)
            }
            Error::Store(_) => {
                tracing::error!(error = %msg, "state store failure");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", msg)
            }
            Error::Sync(_) => {
                tracing::error!(error = %msg, "file sync failure");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "sync_failed", msg)
            }
            Error::Agent(a) => a.into(),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            // The agent's own refusals (bad path, missing file, too large) are the
            // caller's: relay them as they are.
            AgentError::Status { status, body } if status.is_client_error() => {
                Self { status, body }
            }
            AgentError::Status { status, body } => Self::new(
                StatusCode::BAD_GATEWAY,
                "agent_error",
                format!(
                    "the workspace agent failed ({status}): {}",
                    body.error.message
                ),
            ),
            AgentError::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "agent_timeout",
                "the workspace agent did not answer in time",
            ),
            other => Self::new(
                StatusCode::BAD_GATEWAY,
                "agent_unreachable",
                other.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}
