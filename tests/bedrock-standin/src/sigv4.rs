//! Verifies a request's SigV4 signature the way Bedrock does: parse `Authorization`,
//! check the credential scope (key, region, service `bedrock`) and the clock, then
//! recompute the signature over exactly the headers the request says it signed, with
//! `aws-sigv4` (AWS's signer; the SDKs' settings: path URI-encoded twice and
//! normalised, payload hashed), and compare.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::serve::Received;

/// The key a stand-in accepts.
#[derive(Clone, Debug)]
pub struct Key {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

/// Largest clock difference accepted (Bedrock: 5 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// `Ok` when `req` carries a valid signature by `key`; otherwise why not.
pub fn verify(req: &Received, key: &Key) -> Result<(), String> {
    let header = |name: &str| -> Result<&str, String> {
        req.headers
            .get(name)
            .ok_or_else(|| format!("no {name} header"))?
            .to_str()
            .map_err(|_| format!("{name} is not ASCII"))
    };
    let auth = header("authorization")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("authorization is not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(format!("unexpected authorization field {part:?}")),
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err("authorization lacks Credential, SignedHeaders or Signature".into());
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, "aws4_request"] = scope[..] else {
        return Err(format!("malformed credential scope {credential:?}"));
    };
    if akid != key.access_key_id {
        return Err(format!("unknown access key {akid:?}"));
    }
    if region != key.region || service != "bedrock" {
        return Err(format!("wrong scope {region}/{service}"));
    }
    let amz_date = header("x-amz-date")?;
    if !amz_date.starts_with(date) {
        return Err("x-amz-date does not match the credential scope's date".into());
    }
    let time = parse_amz_date(amz_date)?;
    let now = SystemTime::now();
    let skew = now
        .duration_since(time)
        .or_else(|_| time.duration_since(now))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(format!("request time {amz_date} is {skew:?} off"));
    }
    if key.session_token.is_some()
        != signed_headers
            .split(';')
            .any(|h| h == "x-amz-security-token")
    {
        return Err("x-amz-security-token signed or missing".into());
    }
    // The signer adds x-amz-date and x-amz-security-token itself.
    let mut signed = Vec::new();
    for name in signed_headers.split(';') {
        if name == "x-amz-date" || name == "x-amz-security-token" {
            continue;
        }
        let values: Vec<&str> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().map_err(|_| format!("{name} is not ASCII")))
            .collect::<Result<_, _>>()?;
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        signed.push((name, values.join(",")));
    }
    let host = header("host")?;
    let identity = Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        key.session_token.clone(),
        None,
        "bedrock-standin",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&key.region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        req.method.as_str(),
        format!("https://{host}{}", req.target),
        signed.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(&req.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, expected) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let ours = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    if !ours.contains(&format!("SignedHeaders={signed_headers},")) {
        return Err(format!(
            "signed header list {signed_headers:?} is not what the signer would sign ({ours})"
        ));
    }
    if expected != signature {
        return Err("signature mismatch".into());
    }
    Ok(())
}

/// `YYYYMMDD'T'HHMMSS'Z'` to a time.
fn parse_amz_date(s: &str) -> Result<SystemTime, String> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(s, &fmt).map_err(|e| format!("x-amz-date: {e}"))?;
    Ok(t.assume_utc().into())
}

/// A request to `target` signed by `key` the way the proxy's gateway signs (for tests).
#[cfg(test)]
pub(crate) fn signed_request(key: &Key, target: &str, body: &[u8]) -> Received {
    let identity =
        Credentials::new(&key.access_key_id, &key.secret_access_key, None, None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&key.region)
        .name("bedrock")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let host = format!("bedrock-runtime.{}.amazonaws.com", key.region);
    let hdrs = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
    ];
    let signable = SignableRequest::new(
        "POST",
        format!("https://{host}{target}"),
        hdrs.into_iter(),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instr, _) = sign(signable, &params).expect("signature").into_parts();
    let mut headers = http::HeaderMap::new();
    for (k, v) in hdrs.into_iter().chain(instr.headers()) {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), v.parse()) {
            headers.insert(k, v);
        }
    }
    Received {
        method: http::Method::POST,
        target: target.into(),
        headers,
        body: bytes::Bytes::copy_from_slice(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            access_key_id: "AKIDSTANDIN".into(),
            secret_access_key: "standin-secret".into(),
            session_token: None,
            region: "us-east-1".into(),
        }
    }

    fn signed(key: &Key, body: &[u8]) -> Received {
        signed_request(key, "/model/us.anthropic.claude-x-v1%3A0/invoke", body)
    }

    #[test]
    fn a_good_signature_passes_and_every_tampering_fails() {
        let k = key();
        assert_eq!(verify(&signed(&k, b"{}"), &k), Ok(()));

        let mut body = signed(&k, b"{}");
        body.body = bytes::Bytes::from_static(b"{\"x\":1}");
        assert_eq!(verify(&body, &k), Err("signature mismatch".into()));

        let mut path = signed(&k, b"{}");
        path.target = "/model/other/invoke".into();
        assert!(verify(&path, &k).is_err());

        let mut header = signed(&k, b"{}");
        header
            .headers
            .insert("content-type", "text/plain".parse().unwrap());
        assert!(verify(&header, &k).is_err());

        let other = Key {
            secret_access_key: "wrong".into(),
            ..key()
        };
        assert!(verify(&signed(&other, b"{}"), &k).is_err());

        let mut unsigned = signed(&k, b"{}");
        unsigned.headers.remove("authorization");
        assert!(verify(&unsigned, &k).is_err());
    }
}
