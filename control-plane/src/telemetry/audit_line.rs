//! Each fleet event's audit line: its event name (the original system's vocabulary),
//! its outcome word and its detail object. Events that are metrics only have none.

use serde_json::json;

use super::FleetEvent;

/// The audit event name, outcome and detail of an event (`None`: metrics only).
pub(super) fn audit_line(
    event: &FleetEvent,
) -> Option<(&'static str, &'static str, serde_json::Value)> {
    Some(match event {
        FleetEvent::Created { source, startup } => (
            "container_created",
            "ok",
            json!({ "source": source, "startup_ms": startup.as_millis() as u64 }),
        ),
        FleetEvent::Claimed { wait } => (
            "container_claimed",
            "ok",
            json!({ "source": "warm", "wait_ms": wait.as_millis() as u64 }),
        ),
        FleetEvent::PoolExhausted | FleetEvent::GcSweep { .. } | FleetEvent::TokensUsed { .. } => {
            return None
        }
        FleetEvent::Destroyed { reason, synced } => (
            "container_destroyed",
            if *synced {
                "ok"
            } else {
                "destroyed_without_sync"
            },
            json!({ "reason": reason }),
        ),
        FleetEvent::Crashed { found_by } => (
            "container_crashed",
            "error",
            json!({ "found_by": found_by }),
        ),
        FleetEvent::ExecutionStarted { mode } => {
            ("agent_execution_started", "ok", json!({ "mode": mode }))
        }
        FleetEvent::ExecutionEnded { mode, outcome } => (
            if *outcome == "success" {
                "agent_execution_completed"
            } else {
                "agent_execution_failed"
            },
            if *outcome == "success" { "ok" } else { "error" },
            json!({ "mode": mode, "outcome": outcome }),
        ),
        FleetEvent::FileRead { path } => ("file_read", "ok", json!({ "path": path })),
        FleetEvent::FileWritten { path, bytes } => (
            "file_written",
            "ok",
            json!({ "path": path, "bytes": bytes }),
        ),
        FleetEvent::FileDeleted { path } => ("file_deleted", "ok", json!({ "path": path })),
        FleetEvent::ArchiveExported => ("archive_exported", "ok", json!({})),
        FleetEvent::ArchiveImported { entries, bytes } => (
            "archive_imported",
            "ok",
            json!({ "entries": entries, "bytes": bytes }),
        ),
        FleetEvent::Synced {
            trigger,
            uploaded,
            deleted,
            bytes,
            duration,
        } => (
            "file_sync_from_container",
            "ok",
            json!({ "trigger": trigger.as_str(), "uploaded": uploaded, "deleted": deleted,
                    "bytes": bytes, "duration_ms": duration.as_millis() as u64 }),
        ),
        FleetEvent::SyncFailed {
            trigger,
            kind,
            message,
        } => (
            "file_sync_from_container",
            "error",
            json!({ "trigger": trigger.as_str(), "kind": kind, "message": message }),
        ),
        FleetEvent::Restored { files, bytes } => (
            "file_sync_to_container",
            "ok",
            json!({ "files": files, "bytes": bytes }),
        ),
        FleetEvent::RestoreFailed { kind, message } => (
            "file_sync_to_container",
            "error",
            json!({ "kind": kind, "message": message }),
        ),
        FleetEvent::AuthRefused { peer, route } => (
            "auth_refused",
            "refused",
            json!({ "peer": peer, "route": route }),
        ),
        FleetEvent::PoolResized { min, max } => {
            ("pool_resized", "ok", json!({ "min": min, "max": max }))
        }
        FleetEvent::EgressPolicyChanged { action } => {
            ("egress_policy_changed", "ok", json!({ "action": action }))
        }
    })
}
