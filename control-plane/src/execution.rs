//! Executions: validate the request (the contract's one validator), reach the
//! conversation's workspace in one hop — the execute request itself, with no health
//! probe before it — and relay its events. A workspace whose agent cannot be reached
//! is handed to the lifecycle's locked path (`settle`) (replaced, restored, reported
//! with `container_recovered`), then the request is sent to the new one. While an
//! execution runs it keeps its workspace active for every replica's reaper; when it
//! ends the files are synced, and file-changing tools schedule a debounced sync.

use std::{collections::HashMap, pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use tracing::warn;
use wire::{Event, ExecuteRequest};

use crate::{
    agent_client::{AgentClient, AgentError, EventStream},
    error::Result,
    fleet::Fleet,
    lifecycle::{Acquired, Lifecycle},
    store::{ConversationKey, WorkspaceRecord},
    telemetry::{FleetEvent, RequestContext, Subject, SyncTrigger},
    time_util::now_ms,
};

/// Events of one execution, as relayed to the API caller.
pub type ExecutionStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Tools of Claude Code whose results mean files may have changed (a sync is
/// scheduled, debounced, after each).
const FILE_CHANGING_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"];

/// How often a running execution marks its workspace active.
const EXECUTION_HEARTBEAT: Duration = Duration::from_secs(20);

/// The execution service.
pub struct Execution {
    lifecycle: Arc<Lifecycle>,
}

impl Execution {
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        Self { lifecycle }
    }

    fn fleet(&self) -> &Arc<Fleet> {
        self.lifecycle.fleet()
    }

    /// Runs an execution in the conversation's workspace (creating it if needed) and
    /// returns its events, starting with `workspace` (and `container_recovered` when
    /// the previous workspace was found dead).
    pub async fn execute(
        &self,
        tenant_id: &str,
        conversation_id: &str,
        req: ExecuteRequest,
        ctx: &RequestContext,
    ) -> Result<ExecutionStream> {
        let key = Fleet::key(tenant_id, conversation_id)?;
        req.validate()?;
        let (acquired, events) = self.start(&key, &req, ctx).await?;
        let rec = acquired.record.clone();
        self.fleet()
            .store
            .touch(&rec.workspace_id, now_ms())
            .await?;

        let mut head = vec![Event::Workspace {
            workspace_id: rec.workspace_id.clone(),
            source: acquired.source,
            request_id: ctx.request_id.clone(),
        }];
        if let Some(prev) = &acquired.replaced {
            head.push(Event::ContainerRecovered {
                workspace_id: rec.workspace_id.clone(),
                previous_workspace_id: prev.clone(),
                last_synced_at: acquired.restored_from.clone(),
            });
        }
        let mode = match &req {
            ExecuteRequest::Command(_) => "command",
            ExecuteRequest::Agent(_) => "agent",
        };
        let guard = ExecutionGuard::new(self.fleet().clone(), rec, mode, ctx.clone());
        let relay = relay_events(events, guard);
        Ok(Box::pin(futures::stream::iter(head).chain(relay)))
    }

    /// Sends the request to the conversation's workspace: straight to a bound one (one
    /// hop), or to a new or recovered one.
    async fn start(
        &self,
        key: &ConversationKey,
        req: &ExecuteRequest,
        ctx: &RequestContext,
    ) -> Result<(Acquired, EventStream)> {
        if let Some(rec) = self.lifecycle.existing(key).await? {
            match AgentClient::new(rec.endpoint.clone()).execute(req).await {
                Ok(events) => return Ok((Acquired::existing(rec), events)),
                Err(e) if unreachable(&e) => {
                    warn!(workspace_id = %rec.workspace_id, error = %e, "agent unreachable; recovering the workspace");
                    let acquired = self
                        .lifecycle
                        .settle(key, Some(&rec.workspace_id), ctx)
                        .await?;
                    let events = AgentClient::new(acquired.record.endpoint.clone())
                        .execute(req)
                        .await?;
                    return Ok((acquired, events));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Nothing bound: straight to the locked path (the unlocked lookup is done).
        let acquired = self.lifecycle.settle(key, None, ctx).await?;
        let events = AgentClient::new(acquired.record.endpoint.clone())
            .execute(req)
            .await?;
        Ok((acquired, events))
    }

    /// Number of executions running in a workspace (this process's).
    pub fn running(&self, workspace_id: &str) -> usize {
        self.fleet().running.count(workspace_id)
    }
}

/// Failures that mean the agent is not there (as opposed to an answer from it).
fn unreachable(e: &AgentError) -> bool {
    matches!(
        e,
        AgentError::Connect { .. } | AgentError::Http(_) | AgentError::Timeout
    )
}

/// Accounts for one execution for as long as it lives: counted as running, keeping
/// its workspace active, and ended exactly once with its outcome.
struct ExecutionGuard {
    fleet: Arc<Fleet>,
    record: WorkspaceRecord,
    mode: &'static str,
    ctx: RequestContext,
    outcome: &'static str,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Tool names by tool-use id, to know what a tool result belongs to.
    tools: HashMap<String, String>,
}

impl ExecutionGuard {
    fn new(
        fleet: Arc<Fleet>,
        record: WorkspaceRecord,
        mode: &'static str,
        ctx: RequestContext,
    ) -> Self {
        fleet.running.start(&record.workspace_id);
        fleet.telemetry.emit(
            &Subject::record(&record),
            &ctx,
            FleetEvent::ExecutionStarted { mode },
        );
        let store = fleet.store.clone();
        let ws = record.workspace_id.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXECUTION_HEARTBEAT).await;
                if let Err(e) = store.touch(&ws, now_ms()).await {
                    warn!(workspace_id = %ws, error = %e, "execution heartbeat failed");
                }
            }
        });
        Self {
            fleet,
            record,
            mode,
            ctx,
            outcome: "cancelled",
            heartbeat,
            tools: HashMap::new(),
        }
    }

    /// Schedules a debounced sync after each file-changing tool's result.
    fn observe(&mut self, ev: &Event) {
        match ev {
            Event::ToolUse { id, name, .. } => {
                self.tools.insert(id.clone(), name.clone());
            }
            Event::ToolResult { tool_use_id, .. } => {
                let changes_files = self
                    .tools
                    .get(tool_use_id)
                    .is_some_and(|n| FILE_CHANGING_TOOLS.contains(&n.as_str()));
                if let (true, Some(sync)) = (changes_files, &self.fleet.sync) {
                    sync.schedule(&self.record);
                }
            }
            _ => {}
        }
    }

    /// The execution ended with `ev`: record the platform's outcome (not the
    /// command's: a command that exits 1 was served successfully) and sync.
    fn finish(mut self, ev: &Event) {
        self.outcome = match ev {
            Event::Result(r) if r.timed_out => "timeout",
            Event::Result(_) => "success",
            _ => "error",
        };
        if let Event::Result(wire::ExecResult {
            tokens: Some(tokens),
            ..
        }) = ev
        {
            self.fleet.telemetry.emit(
                &Subject::record(&self.record),
                &self.ctx,
                FleetEvent::TokensUsed { tokens: *tokens },
            );
        }
        if let Some(sync) = &self.fleet.sync {
            sync.sync_soon(self.record.clone(), SyncTrigger::AfterExecute);
        }
    }
}

impl Drop for ExecutionGuard {
    fn drop(&mut self) {
        self.heartbeat.abort();
        self.fleet.running.end(&self.record.workspace_id);
        self.fleet.telemetry.emit(
            &Subject::record(&self.record),
            &self.ctx,
            FleetEvent::ExecutionEnded {
                mode: self.mode,
                outcome: self.outcome,
            },
        );
    }
}

/// Relays the agent's events until a terminal one; a stream that breaks or ends
/// without one ends with an `error` event instead of hanging or stopping silently.
fn relay_events(events: EventStream, guard: ExecutionGuard) -> impl Stream<Item = Event> + Send {
    futures::stream::unfold((events, Some(guard)), |(mut events, guard)| async move {
        let mut guard = guard?;
        let ev = match events.next().await {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => Event::Error {
                code: "workspace_lost".into(),
                message: format!("lost the workspace's agent mid-stream: {e}"),
            },
            None => Event::Error {
                code: "workspace_lost".into(),
                message: "the workspace's agent ended the stream without a result".into(),
            },
        };
        guard.observe(&ev);
        if ev.is_terminal() {
            guard.finish(&ev);
            return Some((ev, (events, None)));
        }
        Some((ev, (events, Some(guard))))
    })
}
