//! SSE framing of [`Event`]s, both directions: one frame per event (`event: <name>`,
//! `data: <json>`), keep-alive comments, the response headers, and a decoder for the
//! reading side.
//!
//! The decoder reads bytes that a sandbox controls (the control plane decodes agent
//! streams), so it is hostile-input code: it scans each byte once (linear in the
//! input, however the stream is chunked), holds at most one frame of at most
//! `max_frame` bytes, and after an oversized frame refuses everything that follows
//! instead of buffering it.

use crate::types::Event;

/// SSE comment line sent periodically so proxies and clients keep the stream open.
pub const SSE_KEEPALIVE: &str = ": keep-alive\n\n";

/// Headers of every SSE response (agent and control plane).
pub const RESPONSE_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];

/// Default bound of one decoded frame: a `tool_result` of a large file read fits, a
/// stream that never ends a frame does not.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

impl Event {
    /// Renders this event as one SSE frame: `event: <name>\ndata: <json>\n\n`.
    pub fn to_sse_frame(&self) -> String {
        // Serialising these plain data types cannot fail; fall back to an error frame
        // rather than panicking if it ever did.
        let data = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","code":"serialize","message":"{e}"}}"#)
        });
        format!("event: {}\ndata: {}\n\n", self.name(), data)
    }
}

/// A decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseDecodeError {
    /// A complete frame whose data is not an [`Event`].
    #[error("invalid SSE frame: {0}")]
    Invalid(String),
    /// A frame grew past the decoder's bound; the stream is not read further.
    #[error("an SSE frame exceeds {limit} bytes")]
    TooLarge { limit: usize },
}

/// Incremental parser for an SSE byte stream carrying [`Event`]s. Comments
/// (keep-alives) are skipped; `data:` lines are joined; a frame ends at a blank line
/// (`\n\n` or `\r\n\r\n`).
#[derive(Debug)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a frame end.
    scanned: usize,
    max_frame: usize,
    failed: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            max_frame,
            failed: false,
        }
    }

    /// Bytes held for an incomplete frame (never more than the bound plus one chunk).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds bytes; returns the events completed by them. After a
    /// [`SseDecodeError::TooLarge`] every later call returns nothing.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Event, SseDecodeError>> {
        let mut out = Vec::new();
        if self.failed {
            return out;
        }
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some((end, next)) = find_frame_end(&self.buf, start, self.scanned) {
            if let Some(ev) = decode_frame(&self.buf[start..end]) {
                out.push(ev);
            }
            start = next;
            self.scanned = next;
        }
        self.buf.drain(..start);
        // Keep the last 3 bytes unscanned: a separator may straddle two chunks.
        self.scanned = self.buf.len().saturating_sub(3);
        if self.buf.len() > self.max_frame {
            self.failed = true;
            self.buf = Vec::new();
            self.scanned = 0;
            out.push(Err(SseDecodeError::TooLarge {
                limit: self.max_frame,
            }));
        }
        out
    }
}

/// The end of the first frame at or after `start` (searching from `from`): the
/// frame's end offset and the offset after its separator.
fn find_frame_end(buf: &[u8], start: usize, from: usize) -> Option<(usize, usize)> {
    let from = from.max(start);
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if i > start
                && buf[i - 1] == b'\r'
                && buf.get(i + 1) == Some(&b'\r')
                && buf.get(i + 2) == Some(&b'\n')
            {
                return Some((i - 1, i + 3));
            }
        }
        i += 1;
    }
    None
}

fn decode_frame(frame: &[u8]) -> Option<Result<Event, SseDecodeError>> {
    let text = String::from_utf8_lossy(frame);
    let mut data = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    if data.is_empty() {
        return None; // comment-only frame (keep-alive) or event without data
    }
    let shown: String = data.chars().take(200).collect();
    Some(serde_json::from_str(&data).map_err(|e| SseDecodeError::Invalid(format!("{e}: {shown}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ExecResult, WorkspaceSource};
    use proptest::prelude::*;

    fn sample() -> Vec<Event> {
        vec![
            Event::Workspace {
                workspace_id: "ws-1".into(),
                source: WorkspaceSource::Warm,
                request_id: Some("req-1".into()),
            },
            Event::Stdout {
                data: "line1\nline2\n\r\n".into(),
            },
            Event::Result(ExecResult {
                exit_code: Some(0),
                duration_ms: 3,
                ..Default::default()
            }),
        ]
    }

    fn encode(events: &[Event], crlf: bool) -> Vec<u8> {
        let mut wire = String::new();
        for e in events {
            wire.push_str(SSE_KEEPALIVE);
            let f = e.to_sse_frame();
            wire.push_str(&if crlf { f.replace('\n', "\r\n") } else { f });
        }
        wire.into_bytes()
    }

    fn decode_in(chunks: &[&[u8]]) -> Vec<Event> {
        let mut dec = SseDecoder::new();
        chunks
            .iter()
            .flat_map(|c| dec.push(c))
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn round_trip_with_keepalive_and_split_chunks() {
        let events = sample();
        let wire = encode(&events, false);
        let chunks: Vec<&[u8]> = wire.chunks(7).collect();
        let got = decode_in(&chunks);
        assert_eq!(got, events);
        assert!(got[2].is_terminal());
        assert_eq!(got[1].name(), "stdout");
    }

    #[test]
    fn crlf_frames_decode_too() {
        let events = sample();
        let wire = encode(&events, true);
        let chunks: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_in(&chunks), events);
    }

    #[test]
    fn a_frame_that_never_ends_is_refused_at_the_bound() {
        let mut dec = SseDecoder::with_max_frame(64 * 1024);
        let chunk = vec![b'x'; 4096];
        let mut errors = 0;
        for _ in 0..1024 {
            for r in dec.push(&chunk) {
                assert_eq!(r, Err(SseDecodeError::TooLarge { limit: 64 * 1024 }));
                errors += 1;
            }
            assert!(dec.buffered() <= 64 * 1024 + 4096);
        }
        assert_eq!(errors, 1, "reported once, then the stream is ignored");
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn byte_by_byte_feeding_scans_each_byte_once() {
        // A 1 MiB frame fed one byte at a time: with a rescan per chunk this would be
        // ~5 * 10^11 byte comparisons; linear scanning makes it instant.
        let big = Event::Stdout {
            data: "y".repeat(1024 * 1024),
        };
        let wire = big.to_sse_frame().into_bytes();
        let mut dec = SseDecoder::new();
        let mut got = Vec::new();
        for b in wire.chunks(1) {
            got.extend(dec.push(b));
        }
        assert_eq!(got, vec![Ok(big)]);
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        let mut dec = SseDecoder::new();
        let got = dec.push(b"event: stdout\ndata: {not json\n\n");
        assert!(matches!(got.as_slice(), [Err(SseDecodeError::Invalid(_))]));
        // The stream goes on after a bad frame.
        let ok = dec.push(Event::Stdout { data: "a".into() }.to_sse_frame().as_bytes());
        assert_eq!(ok, vec![Ok(Event::Stdout { data: "a".into() })]);
    }

    proptest! {
        #[test]
        fn any_chunking_decodes_the_same_events(
            texts in proptest::collection::vec(".{0,40}", 1..8),
            cuts in proptest::collection::vec(1usize..50, 1..40),
            crlf in any::<bool>(),
        ) {
            let events: Vec<Event> = texts.into_iter().map(|t| Event::Stdout { data: t }).collect();
            let wire = encode(&events, crlf);
            let mut chunks = Vec::new();
            let mut rest: &[u8] = &wire;
            for c in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let n = (*c).min(rest.len());
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            prop_assert_eq!(decode_in(&chunks), events);
        }
    }
}
