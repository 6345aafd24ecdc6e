//! Audit records: one JSON object per request or tunnel, and where they go.
//!
//! Records never contain header values, query strings, bodies or credentials; the
//! host is the canonical one that was matched and dialled.

use std::io::Write;
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

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
    pub total_ms: f64,
    /// False when the client or upstream went away before the exchange finished.
    pub complete: bool,
}

impl AuditRecord {
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// The background writer behind [`AuditSink::writer`].
#[derive(Debug)]
pub struct LineWriter {
    tx: RwLock<Option<mpsc::Sender<String>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Where audit records go.
#[derive(Clone, Debug, Default)]
pub enum AuditSink {
    /// An INFO event on target [`AUDIT_TARGET`] whose message is the JSON line.
    #[default]
    Tracing,
    /// JSON lines written by a background thread to a writer (file, stdout).
    Lines(Arc<LineWriter>),
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
        let (tx, rx) = mpsc::channel::<String>();
        let thread = std::thread::Builder::new()
            .name("proxy-audit".into())
            .spawn(move || {
                let mut w = std::io::BufWriter::new(writer);
                while let Ok(line) = rx.recv() {
                    let mut ok = writeln!(w, "{line}").is_ok();
                    while let Ok(more) = rx.try_recv() {
                        ok &= writeln!(w, "{more}").is_ok();
                    }
                    if !(ok && w.flush().is_ok()) {
                        eprintln!("proxy-sidecar: writing audit log failed");
                    }
                    // Batch: under load, lines queue up while this thread sleeps, so
                    // request handling does not pay a thread wake-up per line.
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = w.flush();
            });
        match thread {
            Ok(handle) => AuditSink::Lines(Arc::new(LineWriter {
                tx: RwLock::new(Some(tx)),
                thread: Mutex::new(Some(handle)),
            })),
            Err(_) => AuditSink::Tracing,
        }
    }

    /// Flush and stop a [`AuditSink::writer`] sink (no-op for the others). Records
    /// emitted afterwards are dropped.
    pub fn close(&self) {
        if let AuditSink::Lines(w) = self {
            if let Ok(mut tx) = w.tx.write() {
                tx.take();
            }
            let handle = w.thread.lock().ok().and_then(|mut h| h.take());
            if let Some(h) = handle {
                let _ = h.join();
            }
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
            AuditSink::Lines(w) => {
                if let Ok(tx) = w.tx.read() {
                    if let Some(tx) = tx.as_ref() {
                        let _ = tx.send(record.to_json_line());
                    }
                }
            }
            AuditSink::Channel(tx) => {
                let _ = tx.send(record);
            }
            AuditSink::Disabled => {}
        }
    }
}
