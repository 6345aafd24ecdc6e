//! What the benchmarks share: timing an execute's event stream, and percentiles.

use std::time::{Duration, Instant};

use futures::StreamExt;
use wire::{Event, ExecResult, SseDecoder};

/// Reads an execute's SSE stream to its `result`: (time from `t0` to the first event
/// matching `first`, if any, time to the `result`, the result). An `error` event or a
/// stream without a result fails the benchmark.
pub async fn time_events(
    t0: Instant,
    resp: reqwest::Response,
    first: impl Fn(&Event) -> bool,
) -> (Option<Duration>, Duration, ExecResult) {
    assert_eq!(resp.status(), 200);
    let mut seen = None;
    let mut dec = SseDecoder::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        for ev in dec.push(&chunk.expect("chunk")) {
            let ev = ev.expect("event");
            if seen.is_none() && first(&ev) {
                seen = Some(t0.elapsed());
            }
            match ev {
                Event::Result(r) => return (seen, t0.elapsed(), r),
                Event::Error { code, message } => panic!("{code}: {message}"),
                _ => {}
            }
        }
    }
    panic!("stream ended without a result");
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
