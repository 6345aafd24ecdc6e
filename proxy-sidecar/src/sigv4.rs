//! Bedrock gateway requests: what is accepted, which client headers survive, and
//! SigV4 signing with `aws-sigv4`.
//!
//! Accepted: `POST /model/{modelId}/{invoke|invoke-with-response-stream|converse|
//! converse-stream|count-tokens}`; the model id is one path segment and may contain `:`
//! and percent-escapes (`%3A`, `%2F` in ARNs). The path bytes are forwarded exactly as
//! received and signed the way the AWS SDKs sign them (each segment URI-encoded again,
//! service `bedrock`, region from the endpoint host).
//!
//! Refused: presigned requests (`X-Amz-Signature`/`X-Amz-Credential`/... in the query),
//! streaming-signed bodies (`x-amz-content-sha256: STREAMING-*`, `Content-Encoding:
//! aws-chunked`, `x-amz-decoded-content-length`) and SigV4A (`AWS4-ECDSA-P256-SHA256`,
//! `x-amz-region-set`): the proxy is the only signer.
//!
//! Before signing, the client's `Authorization`, every `x-amz-*`, every `proxy-*`
//! and every hop-by-hop header is removed. Only [`SIGNED_HEADERS`] (plus `x-amzn-bedrock-*`)
//! are signed; other remaining headers are forwarded unsigned.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};

use crate::headers::strip_hop_by_hop;
use crate::reason::Reason;

/// Signing name of Bedrock (runtime) requests.
pub const SIGNING_NAME: &str = "bedrock";

/// Client headers that are signed when present (besides `host`).
pub const SIGNED_HEADERS: &[&str] = &["content-type", "accept"];

const ACTIONS: &[&str] = &[
    "invoke",
    "invoke-with-response-stream",
    "converse",
    "converse-stream",
    "count-tokens",
];

/// Whether `path` (without query) is a Bedrock runtime invocation path.
pub fn is_gateway_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/model/") else {
        return false;
    };
    let Some((model, action)) = rest.split_once('/') else {
        return false;
    };
    if !ACTIONS.contains(&action) {
        return false;
    }
    !model.is_empty()
        && model != "."
        && model != ".."
        && model.len() <= 2048
        && model.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%' | b'~' | b'+')
        })
        && valid_escapes(model)
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Refuse requests that carry their own AWS signature in a form the proxy cannot
/// (and must not) pass through.
pub fn check_client_signing(query: Option<&str>, headers: &HeaderMap) -> Result<(), Reason> {
    if let Some(q) = query {
        for pair in q.split('&') {
            let key = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
            if matches!(
                key.as_str(),
                "x-amz-signature"
                    | "x-amz-credential"
                    | "x-amz-algorithm"
                    | "x-amz-security-token"
                    | "x-amz-signedheaders"
                    | "x-amz-date"
                    | "x-amz-expires"
            ) {
                let alg = pair.split_once('=').map(|(_, v)| v).unwrap_or("");
                if alg.contains("ECDSA") {
                    return Err(Reason::Sigv4aRequest);
                }
                return Err(Reason::PresignedRequest);
            }
            if key == "x-amz-region-set" {
                return Err(Reason::Sigv4aRequest);
            }
        }
    }
    let text = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_uppercase())
            .collect::<Vec<_>>()
    };
    if headers.contains_key("x-amz-region-set")
        || text("authorization")
            .iter()
            .any(|v| v.starts_with("AWS4-ECDSA"))
    {
        return Err(Reason::Sigv4aRequest);
    }
    if text("x-amz-content-sha256")
        .iter()
        .any(|v| v.starts_with("STREAMING-"))
        || text("content-encoding")
            .iter()
            .any(|v| v.split(',').any(|e| e.trim() == "AWS-CHUNKED"))
        || headers.contains_key("x-amz-decoded-content-length")
    {
        return Err(Reason::StreamingSignedRequest);
    }
    Ok(())
}

/// Client headers as they will be forwarded to Bedrock (before signing).
pub fn forwardable_headers(client: &HeaderMap) -> HeaderMap {
    let mut h = client.clone();
    strip_hop_by_hop(&mut h);
    let names: Vec<HeaderName> = h.keys().cloned().collect();
    for name in names {
        let n = name.as_str();
        if n.starts_with("x-amz-")
            || n == "authorization"
            || n == "host"
            || n == "content-length"
            || n == "expect"
            || n == "cookie"
        {
            h.remove(&name);
        }
    }
    h
}

fn is_signed(name: &str) -> bool {
    SIGNED_HEADERS.contains(&name) || name.starts_with("x-amzn-bedrock-")
}

/// What is signed besides the headers.
#[derive(Debug, Clone, Copy)]
pub struct SigningInput<'a> {
    pub method: &'a Method,
    /// `host[:port]` as sent to the upstream.
    pub host_header: &'a str,
    /// Path and query exactly as received from the client.
    pub path_and_query: &'a str,
    pub body: &'a [u8],
    pub region: &'a str,
    pub time: SystemTime,
}

/// Sign in place: adds `authorization`, `x-amz-date` and, for temporary credentials,
/// `x-amz-security-token` to `headers`, and sets `host`.
pub fn sign_request(
    req: SigningInput<'_>,
    headers: &mut HeaderMap,
    credentials: &Credentials,
) -> Result<(), String> {
    let SigningInput {
        method,
        host_header,
        path_and_query,
        body,
        region,
        time,
    } = req;
    headers.insert(
        header::HOST,
        HeaderValue::from_str(host_header).map_err(|e| e.to_string())?,
    );
    let mut signed: Vec<(&str, &str)> = Vec::new();
    for (name, value) in headers.iter() {
        if name == header::HOST || is_signed(name.as_str()) {
            let v = value
                .to_str()
                .map_err(|_| format!("header {name} is not visible ASCII"))?;
            signed.push((name.as_str(), v));
        }
    }
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let uri = format!("https://{host_header}{path_and_query}");
    let signable = SignableRequest::new(
        method.as_str(),
        uri,
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (new_headers, _params) = instructions.into_parts();
    for h in new_headers {
        let mut v = HeaderValue::from_str(h.value()).map_err(|e| e.to_string())?;
        v.set_sensitive(h.sensitive() || h.name().eq_ignore_ascii_case("authorization"));
        let name = HeaderName::from_bytes(h.name().as_bytes()).map_err(|e| e.to_string())?;
        headers.insert(name, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_paths() {
        for ok in [
            "/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",
            "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream",
            "/model/us.anthropic.claude-sonnet-4-20250514-v1:0/converse",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x/converse-stream",
            "/model/m/count-tokens",
        ] {
            assert!(is_gateway_path(ok), "{ok}");
        }
        for bad in [
            "/",
            "/model/",
            "/model//invoke",
            "/model/../invoke",
            "/model/a/b/invoke",
            "/model/a/delete",
            "/model/a%zz/invoke",
            "/model/a%4/invoke",
            "/model/a%/invoke",
            "/foundation-models",
            "/model/a/invoke/",
            "/model/a b/invoke",
        ] {
            assert!(!is_gateway_path(bad), "{bad}");
        }
    }

    #[test]
    fn client_signing_refused() {
        let h = HeaderMap::new();
        assert_eq!(
            check_client_signing(
                Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab"),
                &h
            ),
            Err(Reason::PresignedRequest)
        );
        assert_eq!(
            check_client_signing(Some("X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256"), &h),
            Err(Reason::Sigv4aRequest)
        );
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        );
        assert_eq!(
            check_client_signing(None, &h),
            Err(Reason::StreamingSignedRequest)
        );
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("AWS4-ECDSA-P256-SHA256 Credential=x"),
        );
        assert_eq!(check_client_signing(None, &h), Err(Reason::Sigv4aRequest));
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"),
        );
        h.insert("x-amz-date", HeaderValue::from_static("20240101T000000Z"));
        assert_eq!(check_client_signing(Some("a=b"), &h), Ok(()));
        let f = forwardable_headers(&h);
        assert!(f.is_empty());
    }
}
