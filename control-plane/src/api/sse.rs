//! Turns an execution's events into a `text/event-stream` response with keep-alive
//! comments during silence. When the server's stream-cancel token fires (shutdown
//! grace elapsed) the stream ends with an `error` event; when the caller goes away
//! the stream is dropped, which closes the agent connection and kills the process.

use std::{convert::Infallible, time::Duration};

use axum::{body::Body, http::HeaderValue, response::Response};
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use wire::{Event, SSE_KEEPALIVE};

use crate::execution::ExecutionStream;

/// The SSE response of an execution.
pub fn sse_response(
    events: ExecutionStream,
    keepalive: Duration,
    cancel: CancellationToken,
) -> Response {
    let stream = futures::stream::unfold((events, false), move |(mut events, done)| {
        let cancel = cancel.clone();
        async move {
            if done {
                return None;
            }
            tokio::select! {
                biased;
                ev = events.next() => match ev {
                    Some(ev) => {
                        let end = ev.is_terminal();
                        Some((frame(&ev), (events, end)))
                    }
                    None => None,
                },
                _ = cancel.cancelled() => {
                    let ev = Event::Error {
                        code: "shutting_down".into(),
                        message: "the control plane is shutting down; the execution was cancelled".into(),
                    };
                    Some((frame(&ev), (events, true)))
                }
                _ = tokio::time::sleep(keepalive) => {
                    Some((Ok(Bytes::from_static(SSE_KEEPALIVE.as_bytes())), (events, false)))
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    for (name, value) in wire::sse::RESPONSE_HEADERS {
        resp.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    resp
}

fn frame(ev: &Event) -> Result<Bytes, Infallible> {
    Ok(Bytes::from(ev.to_sse_frame()))
}
