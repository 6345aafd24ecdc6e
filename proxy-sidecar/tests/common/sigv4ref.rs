//! An independent SigV4 verifier for test upstreams (HMAC-SHA256 as documented by
//! AWS), so signatures made by the proxy with `aws-sigv4` are checked by code that
//! does not share its canonicalisation.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Recorded;

/// Test secret for an access key id.
pub fn secret_for(akid: &str) -> String {
    format!("secret-for-{akid}")
}

pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.' | '~')
            || (keep_slash && c == '/')
        {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Recompute the signature of a received request from scratch (AWS SigV4, as
/// documented: the received path is URI-encoded once more for non-S3 services).
/// Returns the access key id on success.
pub fn verify_sigv4(r: &Recorded) -> Result<String, String> {
    let auth = r
        .headers
        .get("authorization")
        .ok_or("no authorization")?
        .to_str()
        .map_err(|e| e.to_string())?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut fields = BTreeMap::new();
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=').ok_or("bad auth field")?;
        fields.insert(k.to_string(), v.to_string());
    }
    let credential = &fields["Credential"];
    let signed_headers = &fields["SignedHeaders"];
    let signature = &fields["Signature"];
    let parts: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, term] = parts[..] else {
        return Err(format!("bad credential scope {credential}"));
    };
    if region != "us-east-1" || service != "bedrock" || term != "aws4_request" {
        return Err(format!("wrong scope {credential}"));
    }
    let amz_date = r
        .headers
        .get("x-amz-date")
        .ok_or("no x-amz-date")?
        .to_str()
        .unwrap();
    if !amz_date.starts_with(date) {
        return Err("date mismatch".into());
    }
    let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
    let canonical_uri = uri_encode(path, true);
    let mut q: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(k, false), uri_encode(v, false))
        })
        .collect();
    q.sort();
    let canonical_query = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = r
            .headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str()
                    .unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} missing"));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = hex::encode(Sha256::digest(&r.body));
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        r.method, canonical_uri, canonical_query, canonical_headers, signed_headers, payload_hash
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k = hmac(
        format!("AWS4{}", secret_for(akid)).as_bytes(),
        date.as_bytes(),
    );
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    let expected = hex::encode(hmac(&k, sts.as_bytes()));
    if &expected != signature {
        return Err(format!(
            "signature mismatch; canonical request was:\n{canonical_request}"
        ));
    }
    Ok(akid.to_string())
}
