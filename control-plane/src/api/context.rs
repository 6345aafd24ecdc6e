//! Request ids: every API request carries one — the caller's `X-Request-Id` when it is
//! a sane token (1–128 of `[A-Za-z0-9._:-]`), else a new one — in its response header,
//! its log span, the `workspace` SSE event and every audit line it causes.

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request's id, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Middleware: assigns the id, runs the request in a span carrying it, and echoes it.
pub async fn assign_request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4().simple()));
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn caller_ids_are_kept_only_when_harmless() {
        assert!(acceptable("abc-123_x.y:z"));
        for bad in ["", "a b", "a\nb", "ü", &"x".repeat(129), "a/b"] {
            assert!(!acceptable(bad), "{bad:?}");
        }
    }
}
