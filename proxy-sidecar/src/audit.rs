//! Audit records: one per request or tunnel, and where they go. The proxy's typed
//! record is written as the platform's one audit schema (`audit::AuditRecord`): the
//! envelope (time, event, tenant, conversation, workspace, actor `sandbox`, outcome =
//! the decision) plus the request's facts under `detail`.
//!
//! Records never contain header values, query strings, bodies or credentials; the
//! host is the canonical one that was matched and dialled.

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

/// `tracing` target of audit lines when the sink is [`AuditSink::Tracing`].
pub const AUDIT_TARGET: &str = "workspace_proxy::audit";

/// One audit record (the JSON line's schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC time the request arrived.
    pub time: String,
    /// `proxy_request_allowed` or `proxy_request_blocked`.
    pub event: String,
    pub workspace_id: String,
    pub conversation_id: String,
    pub tenant_id: String,
    /// `forward`, `connect`, `gateway`, `inject` or `local` (health).
    pub mode: String,
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<u16>,
    /// The vetted address that was dialled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolved: Option<String>,
    /// `allowed`, `blocked` (policy) or `error` (client error, upstream failure).
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub status: u16,
    /// Bytes from the client to the upstream (request body / tunnel upload).
    pub bytes_out: u64,
    /// Bytes from the upstream to the client (response body / tunnel download).
    pub bytes_in: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub connect_ms: Option<f64>,
    /// The proxy's own overhead (arrival to request handed upstream / tunnel
    /// established); absent when no upstream was reached.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub overhead_ms: Option<f64>,
    pub total_ms: f64,
    /// False when the client or upstream went away before the exchange finished.
    pub complete: bool,
}

impl AuditRecord {
    /// The record in the platform's audit schema.
    pub fn to_common(&self) -> audit::AuditRecord {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        audit::AuditRecord {
            time: self.time.clone(),
            event: self.event.clone(),
            tenant_id: some(&self.tenant_id),
            conversation_id: some(&self.conversation_id),
            workspace_id: some(&self.workspace_id),
            actor: Some("sandbox".into()),
            request_id: None,
            outcome: self.decision.clone(),
            detail: serde_json::json!({
                "mode": self.mode,
                "method": self.method,
                "host": self.host,
                "port": self.port,
                "resolved": self.resolved,
                "reason": self.reason,
                "status": self.status,
                "bytes_out": self.bytes_out,
                "bytes_in": self.bytes_in,
                "dns_ms": self.dns_ms,
                "connect_ms": self.connect_ms,
                "overhead_ms": self.overhead_ms,
                "total_ms": self.total_ms,
                "complete": self.complete,
            }),
        }
    }

    /// The JSON line written to the audit log (the common schema).
    pub fn to_json_line(&self) -> String {
        self.to_common().to_json_line()
    }
}

/// Where audit records go.
#[derive(Clone, Debug, Default)]
pub enum AuditSink {
    /// An INFO event on target [`AUDIT_TARGET`] whose message is the JSON line.
    #[default]
    Tracing,
    /// JSON lines written by a background thread to a writer (file, stdout).
    Lines(Arc<audit::LineWriter>),
    /// Records sent to a channel (the control plane's own audit log, tests).
    Channel(UnboundedSender<AuditRecord>),
    /// Nothing (benchmarks).
    Disabled,
}

impl AuditSink {
    /// JSON lines to `writer`, written and flushed by a dedicated thread so request
    /// handling never blocks on I/O. Call [`AuditSink::close`] before exiting to
    /// flush what is still queued.
    pub fn writer<W: Write + Send + 'static>(writer: W) -> AuditSink {
        match audit::LineWriter::spawn(writer, "proxy-audit") {
            Ok(w) => AuditSink::Lines(Arc::new(w)),
            Err(_) => AuditSink::Tracing,
        }
    }

    /// Flush and stop a [`AuditSink::writer`] sink (no-op for the others). Records
    /// emitted afterwards are dropped.
    pub fn close(&self) {
        if let AuditSink::Lines(w) = self {
            w.close();
        }
    }

    /// Records to an unbounded channel.
    pub fn channel() -> (AuditSink, tokio::sync::mpsc::UnboundedReceiver<AuditRecord>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (AuditSink::Channel(tx), rx)
    }

    pub fn emit(&self, record: AuditRecord) {
        match self {
            AuditSink::Tracing => {
                tracing::info!(
                    target: AUDIT_TARGET,
                    workspace_id = %record.workspace_id,
                    conversation_id = %record.conversation_id,
                    tenant_id = %record.tenant_id,
                    "{}",
                    record.to_json_line()
                );
            }
            AuditSink::Lines(w) => w.send(record.to_json_line()),
            AuditSink::Channel(tx) => {
                let _ = tx.send(record);
            }
            AuditSink::Disabled => {}
        }
    }
}
