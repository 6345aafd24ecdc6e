//! The API's error type and its one mapping to an HTTP status and a
//! [`crate::wire::ErrorBody`]: client mistakes are 4xx with a stable `code`, never 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::confine::FsError;
use crate::wire::ErrorBody;

/// An error answered by the agent API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A malformed or invalid request (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A turn resumes a Claude Code session that another turn is running (409).
    #[error("{0}")]
    SessionBusy(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("no space left in the workspace")]
    NoSpace,
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::SessionBusy(_) => StatusCode::CONFLICT,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::SessionBusy(_) => "session_busy",
            ApiError::Forbidden(_) => "permission_denied",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::NoSpace => "no_space",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<FsError> for ApiError {
    fn from(e: FsError) -> Self {
        let message = e.to_string();
        match e {
            FsError::InvalidPath { .. } | FsError::Escapes { .. } | FsError::Loop { .. } => {
                ApiError::bad_request("invalid_path", message)
            }
            FsError::NotFound { .. } => ApiError::NotFound(message),
            FsError::IsDir { .. } => ApiError::bad_request("is_a_directory", message),
            FsError::NotDir { .. } => ApiError::bad_request("not_a_directory", message),
            FsError::NotFile { .. } => ApiError::bad_request("not_a_regular_file", message),
            FsError::Conflict { .. } => ApiError::Conflict(message),
            FsError::PermissionDenied { .. } => ApiError::Forbidden(message),
            FsError::NoSpace => ApiError::NoSpace,
            FsError::TooLarge(m) => ApiError::TooLarge(m),
            FsError::Io { .. } => ApiError::Internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "request failed");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request refused");
        }
        (status, Json(ErrorBody::new(self.code(), self.to_string()))).into_response()
    }
}
