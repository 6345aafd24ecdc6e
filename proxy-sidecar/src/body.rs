//! Body wrappers: byte counting, and a completion hook that runs exactly once when a
//! relayed body ends or is dropped (that is when a request's audit line is written).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use prometheus_client::metrics::counter::Counter;

/// Called once with (bytes relayed, whether the body reached its end).
pub trait OnComplete: Send + 'static {
    fn complete(self: Box<Self>, bytes: u64, finished: bool);
}

/// A body that counts data bytes into a shared counter and a metric, and calls an
/// [`OnComplete`] at its end or when dropped.
pub struct Metered<B: Body> {
    inner: B,
    bytes: Arc<AtomicU64>,
    metric: Option<Counter>,
    done: Option<Box<dyn OnComplete>>,
}

impl<B: Body> Metered<B> {
    pub fn new(
        inner: B,
        bytes: Arc<AtomicU64>,
        metric: Option<Counter>,
        done: Option<Box<dyn OnComplete>>,
    ) -> Self {
        Metered {
            inner,
            bytes,
            metric,
            done,
        }
    }

    fn finish(&mut self, finished: bool) {
        if let Some(done) = self.done.take() {
            done.complete(self.bytes.load(Ordering::Relaxed), finished);
        }
    }
}

impl<B: Body> Drop for Metered<B> {
    fn drop(&mut self) {
        // A body that was empty from the start may never be polled.
        let ended = self.inner.is_end_stream();
        self.finish(ended);
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.bytes.fetch_add(n, Ordering::Relaxed);
                    if let Some(m) = &this.metric {
                        m.inc_by(n);
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the proxy sends to clients: a relayed upstream body, or its own short body.
pub type ProxyBody = Either<Metered<hyper::body::Incoming>, Full<Bytes>>;

/// What the proxy sends upstream: the client's streamed body, or a buffered one
/// (gateway requests, which must be hashed for signing).
pub type UpstreamBody = Either<Metered<hyper::body::Incoming>, Full<Bytes>>;

/// A short body produced by the proxy itself.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Either::Right(Full::new(bytes.into()))
}
