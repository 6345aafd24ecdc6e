//! Turns an execution's event channel into an SSE response body: one frame per event
//! ([`Event::to_sse_frame`]), a keep-alive comment after each period of silence, and
//! exactly one terminal event. Dropping the body (the client left) drops the
//! receiver, which the execution notices and kills its process.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream;
use tokio::sync::mpsc;

use crate::wire::{Event, SSE_KEEPALIVE};

struct State {
    rx: mpsc::Receiver<Event>,
    keepalive: Duration,
    done: bool,
}

/// The SSE response for `rx`.
pub fn response(rx: mpsc::Receiver<Event>, keepalive: Duration) -> Response {
    let state = State {
        rx,
        keepalive,
        done: false,
    };
    let body = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let frame = tokio::select! {
            ev = st.rx.recv() => match ev {
                Some(ev) => {
                    st.done = ev.is_terminal();
                    Bytes::from(ev.to_sse_frame())
                }
                None => {
                    // The execution ended without a terminal event (a bug or a panic):
                    // still end the stream properly.
                    st.done = true;
                    Bytes::from(
                        Event::Error {
                            code: "internal".into(),
                            message: "the execution ended without a result".into(),
                        }
                        .to_sse_frame(),
                    )
                }
            },
            _ = tokio::time::sleep(st.keepalive) => Bytes::from_static(SSE_KEEPALIVE.as_bytes()),
        };
        Some((Ok::<_, Infallible>(frame), st))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(body)).into_response();
    for (name, value) in crate::wire::sse::RESPONSE_HEADERS {
        resp.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    resp
}
