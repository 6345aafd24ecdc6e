//! The HTTPS accept loop both stand-ins share: TLS with a [`crate::TestCa`] leaf,
//! HTTP/1.1 by hyper, one task per connection, a bounded request body.

use std::{future::Future, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinHandle};

/// Largest request body read (Claude Code's requests with a long history stay far below).
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// A request with its body read.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: http::Method,
    /// Path and query exactly as sent.
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

#[cfg(test)]
impl Received {
    /// The same request without its `authorization` header.
    pub(crate) fn clone_without_auth(&self) -> Received {
        let mut r = self.clone();
        r.headers.remove(http::header::AUTHORIZATION);
        r
    }
}

/// A running server: its address; it stops when dropped.
pub struct Serving {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTPS on a fresh loopback port until the returned [`Serving`] is dropped.
pub async fn serve<F, Fut>(tls: Arc<rustls::ServerConfig>, handle: F) -> std::io::Result<Serving>
where
    F: Fn(Received) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, handle) = (acceptor.clone(), handle.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: Request<Incoming>| {
                    let handle = handle.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(e) => {
                                let mut r = Response::new(Full::new(Bytes::from(e.to_string())));
                                *r.status_mut() = http::StatusCode::BAD_REQUEST;
                                return Ok::<_, std::convert::Infallible>(r);
                            }
                        };
                        let target = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_else(|| "/".into());
                        Ok(handle(Received {
                            method: parts.method,
                            target,
                            headers: parts.headers,
                            body,
                        })
                        .await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Serving { addr, task })
}

/// A response with a status, a content type and a body.
pub fn respond(
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
