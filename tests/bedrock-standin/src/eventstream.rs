//! Bedrock's streamed answer: each Anthropic Messages stream event wrapped as a `chunk`
//! event-stream message (`{"bytes": base64(json)}`), framed by `aws-smithy-eventstream`.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::Bytes;

/// One `chunk` message carrying `event` (an Anthropic Messages stream event).
pub fn chunk(event: &serde_json::Value) -> Message {
    let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    Message::new(Bytes::from(
        serde_json::json!({ "bytes": bytes }).to_string(),
    ))
    .add_header(Header::new(
        ":event-type",
        HeaderValue::String("chunk".into()),
    ))
    .add_header(Header::new(
        ":content-type",
        HeaderValue::String("application/json".into()),
    ))
    .add_header(Header::new(
        ":message-type",
        HeaderValue::String("event".into()),
    ))
}

/// The framed bytes of `events`, one message each, in order.
pub fn encode(events: &[serde_json::Value]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for ev in events {
        aws_smithy_eventstream::frame::write_message_to(&chunk(ev), &mut out)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Decodes framed bytes back into the events' JSON (checks both CRCs); for tests.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let msg = aws_smithy_eventstream::frame::read_message_from(&mut bytes)
            .map_err(|e| e.to_string())?;
        let payload: serde_json::Value =
            serde_json::from_slice(msg.payload()).map_err(|e| e.to_string())?;
        let b64 = payload["bytes"].as_str().ok_or("no bytes field")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| e.to_string())?;
        out.push(serde_json::from_slice(&raw).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_flipped_byte_fails_the_crc() {
        let events = vec![
            serde_json::json!({"type": "message_start"}),
            serde_json::json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hé"}}),
        ];
        let mut bytes = encode(&events).unwrap();
        assert_eq!(decode(&bytes).unwrap(), events);
        // Prelude: total length (u32 BE) equals the first frame's length.
        let total = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert!(total < bytes.len());
        let last = bytes.len() - 5;
        bytes[last] ^= 0xff;
        assert!(
            decode(&bytes).is_err(),
            "a corrupted payload passed the CRC"
        );
    }
}
