//! Fleet telemetry: the one place where what happened to the fleet becomes metric
//! updates and an audit line. Services emit a typed [`FleetEvent`] with its
//! [`Subject`] (tenant, conversation, workspace) and the [`RequestContext`] (actor,
//! request id); nothing else in the control plane increments a counter or writes an
//! audit line. Gauges that describe the fleet (workspaces, pool members) are not kept
//! here from events: they are read from the shared store at scrape time
//! (`Fleet::refresh_gauges`), so every replica reports the same values.
//!
//! Audit lines follow the platform's one schema (`audit` crate) and never carry a
//! token, file content, header values or a credential.

use std::time::Duration;

use audit::{AuditRecord, AuditSink};

mod audit_line;
use audit_line::audit_line;

use crate::{
    metrics::{KindLabel, Metrics, ReasonLabel, ResultLabel, SourceLabel, StatusLabel},
    store::{ConversationKey, WorkspaceRecord},
};

/// Who asked and under which request id (from the API), or which background task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// `token:<tenant>#<n>` for API callers, `system:<task>` for background work.
    pub actor: Option<String>,
    pub request_id: Option<String>,
}

impl RequestContext {
    /// The context of background work (`gc`, `pool`, `reconcile`, `shutdown`, ...).
    pub fn system(task: &str) -> Self {
        Self {
            actor: Some(format!("system:{task}")),
            request_id: None,
        }
    }
}

/// What an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub tenant_id: Option<String>,
    pub conversation_id: Option<String>,
    pub workspace_id: Option<String>,
}

impl Subject {
    pub fn record(rec: &WorkspaceRecord) -> Self {
        Self {
            tenant_id: rec.tenant_id.clone(),
            conversation_id: rec.conversation_id.clone(),
            workspace_id: Some(rec.workspace_id.clone()),
        }
    }

    pub fn conversation(key: &ConversationKey, workspace_id: Option<&str>) -> Self {
        Self {
            tenant_id: Some(key.tenant_id.clone()),
            conversation_id: Some(key.conversation_id.clone()),
            workspace_id: workspace_id.map(str::to_string),
        }
    }

    pub fn tenant(tenant_id: &str) -> Self {
        Self {
            tenant_id: Some(tenant_id.to_string()),
            ..Self::default()
        }
    }

    pub fn none() -> Self {
        Self::default()
    }
}

/// Why a sync ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncTrigger {
    /// Right after an execution.
    AfterExecute,
    /// Debounced, after a file-changing tool.
    Scheduled,
    /// `POST …/sync`.
    Forced,
    /// Before the workspace is destroyed (delete, GC).
    BeforeDestroy,
    /// Graceful shutdown.
    Shutdown,
}

impl SyncTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncTrigger::AfterExecute => "after_execute",
            SyncTrigger::Scheduled => "scheduled",
            SyncTrigger::Forced => "forced",
            SyncTrigger::BeforeDestroy => "before_destroy",
            SyncTrigger::Shutdown => "shutdown",
        }
    }
}

/// Something that happened to the fleet.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetEvent {
    /// A workspace's agent answered for the first time. `source`: `cold`, `recovered`
    /// (for a conversation) or `pool` (a warm-pool member).
    Created {
        source: &'static str,
        startup: Duration,
    },
    /// A warm-pool member was bound to a conversation.
    Claimed {
        wait: Duration,
    },
    /// A claim found the warm pool empty.
    PoolExhausted,
    /// A workspace was destroyed; `synced` is false when files could not be saved
    /// first although they should have been (`destroyed_without_sync`).
    Destroyed {
        reason: String,
        synced: bool,
    },
    /// A workspace was found dead (by a request, the reaper or a relay).
    Crashed {
        found_by: &'static str,
    },
    /// An agent turn's model tokens (from its `result`), counted per tenant.
    TokensUsed {
        tokens: wire::TokenUsage,
    },
    ExecutionStarted {
        mode: &'static str,
    },
    /// `outcome`: success | timeout | error | cancelled.
    ExecutionEnded {
        mode: &'static str,
        outcome: &'static str,
    },
    FileRead {
        path: String,
    },
    FileWritten {
        path: String,
        bytes: u64,
    },
    FileDeleted {
        path: String,
    },
    ArchiveExported,
    ArchiveImported {
        entries: u64,
        bytes: u64,
    },
    Synced {
        trigger: SyncTrigger,
        uploaded: u64,
        deleted: u64,
        bytes: u64,
        duration: Duration,
    },
    SyncFailed {
        trigger: SyncTrigger,
        kind: &'static str,
        message: String,
    },
    Restored {
        files: u64,
        bytes: u64,
    },
    RestoreFailed {
        kind: &'static str,
        message: String,
    },
    AuthRefused {
        peer: Option<String>,
        route: String,
    },
    PoolResized {
        min: usize,
        max: usize,
    },
    EgressPolicyChanged {
        action: &'static str,
    },
    GcSweep {
        ok: bool,
    },
}

/// Turns events into metric updates and audit lines.
#[derive(Clone)]
pub struct Telemetry {
    metrics: Metrics,
    audit: AuditSink,
}

impl Telemetry {
    pub fn new(metrics: Metrics, audit: AuditSink) -> Self {
        Self { metrics, audit }
    }

    /// The metrics (for the gauges refreshed at scrape time).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn audit_sink(&self) -> &AuditSink {
        &self.audit
    }

    /// Handles one event: its metric updates, then its audit line (if it has one).
    pub fn emit(&self, subject: &Subject, ctx: &RequestContext, event: FleetEvent) {
        self.count(subject, &event);
        if let Some((name, outcome, detail)) = audit_line(&event) {
            let mut r = AuditRecord::now(name, outcome);
            r.tenant_id = subject.tenant_id.clone();
            r.conversation_id = subject.conversation_id.clone();
            r.workspace_id = subject.workspace_id.clone();
            r.actor = ctx.actor.clone();
            r.request_id = ctx.request_id.clone();
            r.detail = detail;
            self.audit.emit(r);
        }
    }

    fn count(&self, subject: &Subject, event: &FleetEvent) {
        let m = &self.metrics;
        match event {
            FleetEvent::Created { source, startup } => {
                let label = SourceLabel {
                    source: (*source).into(),
                };
                m.container_startup_seconds
                    .get_or_create(&label)
                    .observe(startup.as_secs_f64());
                m.containers_created.get_or_create(&label).inc();
            }
            FleetEvent::Claimed { wait } => {
                m.pool_hits.inc();
                m.pool_acquire_seconds.observe(wait.as_secs_f64());
            }
            FleetEvent::PoolExhausted => {
                m.pool_exhausted.inc();
            }
            FleetEvent::Destroyed { reason, .. } => {
                m.containers_destroyed
                    .get_or_create(&ReasonLabel {
                        reason: reason.clone(),
                    })
                    .inc();
            }
            FleetEvent::Crashed { .. } => {
                m.container_crashes.inc();
            }
            FleetEvent::ExecutionStarted { .. } => {
                m.active_executions.inc();
            }
            FleetEvent::TokensUsed { tokens } => {
                m.count_tokens(subject.tenant_id.as_deref().unwrap_or(""), tokens);
            }
            FleetEvent::ExecutionEnded { outcome, .. } => {
                m.active_executions.dec();
                m.requests
                    .get_or_create(&StatusLabel {
                        status: (*outcome).into(),
                    })
                    .inc();
            }
            FleetEvent::Synced {
                uploaded, duration, ..
            } => {
                m.syncs.inc();
                m.sync_duration_seconds.observe(duration.as_secs_f64());
                m.sync_uploaded_objects.inc_by(*uploaded);
            }
            FleetEvent::SyncFailed { kind, .. } => {
                m.syncs.inc();
                m.sync_errors
                    .get_or_create(&KindLabel {
                        kind: (*kind).into(),
                    })
                    .inc();
            }
            FleetEvent::RestoreFailed { kind, .. } => {
                m.sync_errors
                    .get_or_create(&KindLabel {
                        kind: (*kind).into(),
                    })
                    .inc();
            }
            FleetEvent::AuthRefused { .. } => {
                m.auth_failures.inc();
            }
            FleetEvent::GcSweep { ok } => {
                m.gc_cycles
                    .get_or_create(&ResultLabel {
                        result: if *ok { "success" } else { "error" }.into(),
                    })
                    .inc();
            }
            FleetEvent::FileRead { .. }
            | FleetEvent::FileWritten { .. }
            | FleetEvent::FileDeleted { .. }
            | FleetEvent::ArchiveExported
            | FleetEvent::ArchiveImported { .. }
            | FleetEvent::Restored { .. }
            | FleetEvent::PoolResized { .. }
            | FleetEvent::EgressPolicyChanged { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn telemetry() -> (
        Telemetry,
        Registry,
        tokio::sync::mpsc::UnboundedReceiver<AuditRecord>,
    ) {
        let mut reg = Registry::default();
        let metrics = Metrics::register(&mut reg);
        let (sink, rx) = AuditSink::channel();
        (Telemetry::new(metrics, sink), reg, rx)
    }

    #[test]
    fn one_event_one_audit_line_with_subject_and_context() {
        let (t, reg, mut rx) = telemetry();
        let subject = Subject::conversation(&ConversationKey::new("t1", "c1"), Some("ws-1"));
        let ctx = RequestContext {
            actor: Some("token:t1#0".into()),
            request_id: Some("req-7".into()),
        };
        t.emit(
            &subject,
            &ctx,
            FleetEvent::Destroyed {
                reason: "expired".into(),
                synced: false,
            },
        );
        let r = rx.try_recv().unwrap();
        let r = AuditRecord::check_line(&r.to_json_line()).unwrap();
        assert_eq!(r.event, "container_destroyed");
        assert_eq!(r.outcome, "destroyed_without_sync");
        assert_eq!(r.workspace_id.as_deref(), Some("ws-1"));
        assert_eq!(r.request_id.as_deref(), Some("req-7"));
        assert_eq!(r.detail["reason"], "expired");
        assert!(rx.try_recv().is_err(), "exactly one line");
        let text = crate::metrics::render(&reg);
        assert!(
            text.contains(r#"workspace_gc_destroyed_total{reason="expired"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn metrics_only_events_write_no_audit_line() {
        let (t, _reg, mut rx) = telemetry();
        t.emit(
            &Subject::none(),
            &RequestContext::system("pool"),
            FleetEvent::PoolExhausted,
        );
        assert!(rx.try_recv().is_err());
    }
}
