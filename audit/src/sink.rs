//! Where audit lines go: a dedicated file or stdout (written by a background thread,
//! so request handling never waits on I/O), the `tracing` target [`AUDIT_TARGET`], a
//! channel (tests read the exact lines), or nowhere. Chosen by one string in each
//! binary's configuration: `tracing`, `stdout`, `off` or a file path (appended).

use std::io::Write;
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::AuditRecord;

/// `tracing` target of audit lines when the sink is [`AuditSink::Tracing`].
pub const AUDIT_TARGET: &str = "audit";

/// A background thread writing lines to a writer, batching under load.
#[derive(Debug)]
pub struct LineWriter {
    tx: RwLock<Option<mpsc::Sender<String>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl LineWriter {
    /// Starts the thread `name` writing to `writer`.
    pub fn spawn<W: Write + Send + 'static>(writer: W, name: &str) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<String>();
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut w = std::io::BufWriter::new(writer);
                while let Ok(line) = rx.recv() {
                    let mut ok = writeln!(w, "{line}").is_ok();
                    while let Ok(more) = rx.try_recv() {
                        ok &= writeln!(w, "{more}").is_ok();
                    }
                    if !(ok && w.flush().is_ok()) {
                        tracing::error!(writer = %label, "writing the audit log failed");
                    }
                    // Batch: under load, lines queue up while this thread sleeps, so
                    // callers do not pay a thread wake-up per line.
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = w.flush();
            })?;
        Ok(Self {
            tx: RwLock::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues one line (dropped after [`LineWriter::close`]).
    pub fn send(&self, line: String) {
        if let Ok(tx) = self.tx.read() {
            if let Some(tx) = tx.as_ref() {
                let _ = tx.send(line);
            }
        }
    }

    /// Flushes what is queued and stops the thread.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.write() {
            tx.take();
        }
        let handle = self.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Where audit records go.
#[derive(Clone, Debug, Default)]
pub enum AuditSink {
    /// An INFO event on target [`AUDIT_TARGET`] whose message is the JSON line.
    #[default]
    Tracing,
    /// JSON lines written by a background thread (file, stdout).
    Lines(Arc<LineWriter>),
    /// Records sent to a channel (tests).
    Channel(UnboundedSender<AuditRecord>),
    /// Nothing (benchmarks).
    Disabled,
}

impl AuditSink {
    /// The sink named by a configuration string: `tracing`, `stdout`, `off`, or a file
    /// path opened for appending (created with mode 0600: audit lines name tenants).
    pub fn from_spec(spec: &str) -> Result<AuditSink, String> {
        Ok(match spec {
            "tracing" | "" => AuditSink::Tracing,
            "off" => AuditSink::Disabled,
            "stdout" => AuditSink::Lines(Arc::new(
                LineWriter::spawn(std::io::stdout(), "audit-stdout")
                    .map_err(|e| format!("audit writer thread: {e}"))?,
            )),
            path => {
                use std::os::unix::fs::OpenOptionsExt;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("opening audit log {path}: {e}"))?;
                AuditSink::Lines(Arc::new(
                    LineWriter::spawn(file, "audit-file")
                        .map_err(|e| format!("audit writer thread: {e}"))?,
                ))
            }
        })
    }

    /// Records to an unbounded channel.
    pub fn channel() -> (AuditSink, UnboundedReceiver<AuditRecord>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (AuditSink::Channel(tx), rx)
    }

    pub fn emit(&self, record: AuditRecord) {
        match self {
            AuditSink::Tracing => {
                tracing::info!(target: AUDIT_TARGET, "{}", record.to_json_line());
            }
            AuditSink::Lines(w) => w.send(record.to_json_line()),
            AuditSink::Channel(tx) => {
                let _ = tx.send(record);
            }
            AuditSink::Disabled => {}
        }
    }

    /// Flushes and stops a file or stdout sink (no-op for the others).
    pub fn close(&self) {
        if let AuditSink::Lines(w) = self {
            w.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sink_writes_one_schema_line_per_record_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = AuditSink::from_spec(path.to_str().unwrap()).unwrap();
        for i in 0..3 {
            let mut r = AuditRecord::now("file_written", "ok");
            r.detail = serde_json::json!({ "n": i });
            sink.emit(r);
        }
        sink.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for l in lines {
            AuditRecord::check_line(l).unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "not readable by others: {mode:o}");
    }

    #[test]
    fn unknown_places_are_a_clear_error() {
        let err = AuditSink::from_spec("/nonexistent-dir/x/audit.log").unwrap_err();
        assert!(err.contains("opening audit log"), "{err}");
    }
}
