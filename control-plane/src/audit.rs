//! The audit log: one structured line per lifecycle event (container created,
//! destroyed, crashed; execution started, completed, failed; file written or deleted;
//! authentication refused), emitted on the `audit` tracing target so it can be routed
//! to its own sink. Every line carries tenant, conversation and workspace ids where
//! they exist; never a token or file content.

use tracing::info;

/// Names of audit events (the original system's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    ContainerCreated,
    ContainerClaimed,
    ContainerDestroyed,
    ContainerCrashed,
    ExecutionStarted,
    ExecutionCompleted,
    ExecutionFailed,
    FileWritten,
    FileDeleted,
    FilesSynced,
    FilesRestored,
    AuthRefused,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::ContainerCreated => "container_created",
            AuditEvent::ContainerClaimed => "container_claimed",
            AuditEvent::ContainerDestroyed => "container_destroyed",
            AuditEvent::ContainerCrashed => "container_crashed",
            AuditEvent::ExecutionStarted => "agent_execution_started",
            AuditEvent::ExecutionCompleted => "agent_execution_completed",
            AuditEvent::ExecutionFailed => "agent_execution_failed",
            AuditEvent::FileWritten => "file_written",
            AuditEvent::FileDeleted => "file_deleted",
            AuditEvent::FilesSynced => "file_sync_from_container",
            AuditEvent::FilesRestored => "file_sync_to_container",
            AuditEvent::AuthRefused => "auth_refused",
        }
    }
}

/// Writes one audit line.
pub fn record(
    event: AuditEvent,
    tenant_id: &str,
    conversation_id: &str,
    workspace_id: &str,
    detail: &str,
) {
    info!(
        target: "audit",
        event = event.as_str(),
        tenant_id,
        conversation_id,
        workspace_id,
        detail,
        "audit"
    );
}
