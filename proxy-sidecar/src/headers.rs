//! Hop-by-hop and proxy header handling shared by every forwarding mode.

use http::header::{self, HeaderMap, HeaderName};

/// Headers that describe one connection and never travel further (RFC 9110 §7.6.1),
/// plus the non-standard ones clients still send to proxies.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Remove hop-by-hop headers, headers named in `Connection`, `Keep-Alive` and every
/// `Proxy-*` header.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // A message framed by Transfer-Encoding has no meaningful Content-Length (RFC 9112
    // §6.3); the body is re-framed on the next hop, so a stale length must not survive
    // (request smuggling).
    if h.contains_key(header::TRANSFER_ENCODING) {
        h.remove(header::CONTENT_LENGTH);
    }
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        h.remove(name);
    }
    for name in HOP_BY_HOP {
        h.remove(name);
    }
    h.remove("keep-alive");
    let proxy: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        h.remove(name);
    }
}

/// Size of the request head as the client sent it (approximately: request line plus
/// `name: value\r\n` per header).
pub fn head_size(uri_len: usize, h: &HeaderMap) -> usize {
    let mut n = uri_len + 16;
    for (k, v) in h {
        n += k.as_str().len() + v.len() + 4;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn strips() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("content-length", HeaderValue::from_static("4"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }
}
