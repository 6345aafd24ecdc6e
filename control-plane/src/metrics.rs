//! Prometheus metrics of the control plane (names from the original system's metric
//! design: `workspace_*`), registered in one registry served at `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// All metrics; cheap to clone (each metric is an `Arc` inside).
#[derive(Clone)]
pub struct Metrics {
    /// Executions by the platform's outcome: success (a result, whatever the exit
    /// code) | timeout | error (ended by an `error` event) | cancelled (the caller left).
    pub requests: Family<StatusLabel, Counter>,
    /// HTTP answers by route template and status code.
    pub http_responses: Family<RouteLabels, Counter>,
    /// Workspaces of the fleet (read from the store at scrape time).
    pub active_containers: Gauge,
    /// Workspaces being created (reservations under the cap; read at scrape time).
    pub starting_workspaces: Gauge,
    /// CPU and memory in use on the host, percent (read at scrape time).
    pub host_cpu_percent: Gauge<f64, AtomicU64>,
    pub host_memory_percent: Gauge<f64, AtomicU64>,
    /// The configured fleet-wide cap (for "near capacity" alerts).
    pub max_workspaces: Gauge,
    pub active_executions: Gauge,
    /// Time from "need a workspace" to "its agent answers", by source.
    pub container_startup_seconds: Family<SourceLabel, Histogram>,
    pub container_crashes: Counter,
    pub containers_created: Family<SourceLabel, Counter>,
    /// Workspaces destroyed, by reason (idle, expired, orphan, deleted, crashed, ...).
    pub containers_destroyed: Family<ReasonLabel, Counter>,
    pub auth_failures: Counter,
    /// Unbound healthy workspaces waiting in the warm pool.
    pub pool_size: Gauge,
    pub pool_hits: Counter,
    /// Claims that found the pool empty.
    pub pool_exhausted: Counter,
    pub pool_acquire_seconds: Histogram,
    /// Reaper sweeps by result (success, error).
    pub gc_cycles: Family<ResultLabel, Counter>,
    /// File syncs attempted, and failed ones by kind.
    pub syncs: Counter,
    pub sync_errors: Family<KindLabel, Counter>,
    pub sync_duration_seconds: Histogram,
    pub sync_uploaded_objects: Counter,
    /// Model tokens of agent turns, by tenant and kind (from the `result` event).
    pub agent_tokens: Family<TokenLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub tenant: String,
    /// `input`, `output`, `cache_creation_input`, `cache_read_input`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

fn startup_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            http_responses: Family::default(),
            active_containers: Gauge::default(),
            starting_workspaces: Gauge::default(),
            host_cpu_percent: Gauge::default(),
            host_memory_percent: Gauge::default(),
            max_workspaces: Gauge::default(),
            active_executions: Gauge::default(),
            container_startup_seconds: Family::new_with_constructor(startup_histogram),
            container_crashes: Counter::default(),
            containers_created: Family::default(),
            containers_destroyed: Family::default(),
            auth_failures: Counter::default(),
            pool_size: Gauge::default(),
            pool_hits: Counter::default(),
            pool_exhausted: Counter::default(),
            pool_acquire_seconds: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            gc_cycles: Family::default(),
            syncs: Counter::default(),
            sync_errors: Family::default(),
            sync_duration_seconds: Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            sync_uploaded_objects: Counter::default(),
            agent_tokens: Family::default(),
        };
        let r = registry;
        r.register(
            "workspace_requests",
            "Executions by the platform's outcome (success, timeout, error, cancelled)",
            m.requests.clone(),
        );
        r.register(
            "workspace_http_responses",
            "HTTP responses by route and status code",
            m.http_responses.clone(),
        );
        r.register(
            "workspace_active_containers",
            "Workspaces of the fleet (from the shared store, at scrape time)",
            m.active_containers.clone(),
        );
        r.register(
            "workspace_starting",
            "Workspaces being created (reserved under the fleet cap)",
            m.starting_workspaces.clone(),
        );
        r.register(
            "workspace_host_cpu_percent",
            "CPU in use on the control plane's host, percent, since the previous scrape",
            m.host_cpu_percent.clone(),
        );
        r.register(
            "workspace_host_memory_percent",
            "Memory in use on the control plane's host (MemTotal - MemAvailable), percent",
            m.host_memory_percent.clone(),
        );
        r.register(
            "workspace_max_workspaces",
            "The configured fleet-wide workspace cap",
            m.max_workspaces.clone(),
        );
        r.register(
            "workspace_active_executions",
            "Executions in progress",
            m.active_executions.clone(),
        );
        r.register(
            "workspace_container_startup_seconds",
            "Time until a workspace's agent answers, by source",
            m.container_startup_seconds.clone(),
        );
        r.register(
            "workspace_container_crashes",
            "Workspaces found dead and replaced",
            m.container_crashes.clone(),
        );
        r.register(
            "workspace_containers_created",
            "Workspaces created, by source",
            m.containers_created.clone(),
        );
        r.register(
            "workspace_gc_destroyed",
            "Workspaces destroyed, by reason (idle, expired, orphan, deleted, crashed, ...)",
            m.containers_destroyed.clone(),
        );
        r.register(
            "workspace_auth_failures",
            "Requests refused for a missing or bad token",
            m.auth_failures.clone(),
        );
        r.register(
            "workspace_warm_pool_size",
            "Healthy unbound workspaces in the warm pool",
            m.pool_size.clone(),
        );
        r.register(
            "workspace_warm_pool_hits",
            "Conversations served from the warm pool",
            m.pool_hits.clone(),
        );
        r.register(
            "workspace_warm_pool_exhausted",
            "Claims that found the warm pool empty",
            m.pool_exhausted.clone(),
        );
        r.register(
            "workspace_warm_pool_acquire_seconds",
            "Time to claim and bind a warm workspace",
            m.pool_acquire_seconds.clone(),
        );
        r.register(
            "workspace_s3_syncs",
            "File syncs attempted",
            m.syncs.clone(),
        );
        r.register(
            "workspace_s3_sync_errors",
            "File syncs (and restores) that failed, by kind",
            m.sync_errors.clone(),
        );
        r.register(
            "workspace_s3_sync_duration_seconds",
            "Duration of successful syncs",
            m.sync_duration_seconds.clone(),
        );
        r.register(
            "workspace_s3_sync_uploaded_objects",
            "File objects uploaded by syncs",
            m.sync_uploaded_objects.clone(),
        );
        r.register(
            "workspace_gc_cycles",
            "Reaper sweeps by result",
            m.gc_cycles.clone(),
        );
        r.register(
            "workspace_agent_tokens",
            "Model tokens of agent turns, by tenant and kind",
            m.agent_tokens.clone(),
        );
        m
    }

    /// Counts an agent turn's tokens for `tenant`.
    pub fn count_tokens(&self, tenant: &str, t: &wire::TokenUsage) {
        for (kind, n) in [
            ("input", t.input_tokens),
            ("output", t.output_tokens),
            ("cache_creation_input", t.cache_creation_input_tokens),
            ("cache_read_input", t.cache_read_input_tokens),
        ] {
            self.agent_tokens
                .get_or_create(&TokenLabels {
                    tenant: tenant.to_string(),
                    kind: kind.to_string(),
                })
                .inc_by(n);
        }
    }
}

/// Renders the registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}
