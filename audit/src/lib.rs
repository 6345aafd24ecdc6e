//! The platform's audit log: one JSON schema for every audit line, whoever writes it
//! (the control plane's lifecycle and API events, the egress proxy's requests and
//! tunnels), and the sinks the lines go to.
//!
//! Schema (one JSON object per line; every key always present, `null` when unknown):
//! `time` (RFC 3339 UTC), `event`, `tenant_id`, `conversation_id`, `workspace_id`,
//! `actor` (who caused it: a token id `token:<tenant>#<n>`, `sandbox`, `system:<task>`;
//! never a token), `request_id`, `outcome` (`ok`, `refused`, `error`, or an event's own
//! word such as `allowed`/`blocked`), `detail` (an object, event-specific; never file
//! content, header values, query strings or credentials).
//!
//! This crate must never block its callers on I/O: file and stdout sinks write from a
//! dedicated thread.
#![forbid(unsafe_code)]

mod sink;

pub use sink::{AuditSink, LineWriter, AUDIT_TARGET};

use serde::{Deserialize, Serialize};

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: String,
    pub event: String,
    pub tenant_id: Option<String>,
    pub conversation_id: Option<String>,
    pub workspace_id: Option<String>,
    pub actor: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
    pub detail: serde_json::Value,
}

/// The keys of every line, in order (for schema checks).
pub const SCHEMA_KEYS: [&str; 9] = [
    "time",
    "event",
    "tenant_id",
    "conversation_id",
    "workspace_id",
    "actor",
    "request_id",
    "outcome",
    "detail",
];

impl AuditRecord {
    /// A record stamped now, with every optional field empty and an empty detail.
    pub fn now(event: impl Into<String>, outcome: impl Into<String>) -> Self {
        Self {
            time: now_rfc3339(),
            event: event.into(),
            tenant_id: None,
            conversation_id: None,
            workspace_id: None,
            actor: None,
            request_id: None,
            outcome: outcome.into(),
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn to_json_line(&self) -> String {
        // Plain data: serialising cannot fail; never panic in an audit path.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// Checks that `line` is one record of this schema: every key present (and no
    /// other), `time` in RFC 3339, `detail` an object. Used by tests of every writer.
    pub fn check_line(line: &str) -> Result<AuditRecord, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON: {e}: {line}"))?;
        let obj = v
            .as_object()
            .ok_or_else(|| format!("not an object: {line}"))?;
        for k in SCHEMA_KEYS {
            if !obj.contains_key(k) {
                return Err(format!("missing key {k:?}: {line}"));
            }
        }
        if let Some(extra) = obj.keys().find(|k| !SCHEMA_KEYS.contains(&k.as_str())) {
            return Err(format!("unknown key {extra:?}: {line}"));
        }
        if !obj["detail"].is_object() {
            return Err(format!("detail is not an object: {line}"));
        }
        let rec: AuditRecord =
            serde_json::from_value(v).map_err(|e| format!("wrong types: {e}: {line}"))?;
        time::OffsetDateTime::parse(&rec.time, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("time {:?}: {e}", rec.time))?;
        Ok(rec)
    }
}

/// The current UTC time in RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let ms = now.replace_nanosecond(now.millisecond() as u32 * 1_000_000);
    ms.unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_the_schema_check() {
        let mut r = AuditRecord::now("container_created", "ok");
        r.tenant_id = Some("t1".into());
        r.detail = serde_json::json!({"source": "cold"});
        let back = AuditRecord::check_line(&r.to_json_line()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn the_schema_check_refuses_missing_extra_and_mistyped_keys() {
        let good = AuditRecord::now("x", "ok").to_json_line();
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v.as_object_mut().unwrap().remove("request_id");
        assert!(AuditRecord::check_line(&v.to_string()).is_err());
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["token"] = "secret".into();
        assert!(AuditRecord::check_line(&v.to_string()).is_err());
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["detail"] = "text".into();
        assert!(AuditRecord::check_line(&v.to_string()).is_err());
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v["time"] = "yesterday".into();
        assert!(AuditRecord::check_line(&v.to_string()).is_err());
    }
}
