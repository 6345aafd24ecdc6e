//! Prometheus metrics, all prefixed `workspace_proxy_`.
//!
//! Two latencies, never mixed: `request_duration` is the proxy's own overhead (the
//! SLO of ProxyLatencyHigh, the seeds' "proxy request processing time"), from the
//! request head received to the request handed to a ready upstream connection
//! (forward, inject, gateway) or to the tunnel's upstream connection established
//! (CONNECT), DNS, dial, TLS and SigV4 signing included. It is observed once per
//! request that reached an upstream; a request refused before that (policy, bad
//! input, DNS or connect failure) dialled nothing and has no overhead sample: it is
//! counted in `refused_total` and `exchange_duration{decision}`.
//! `exchange_duration` is the whole life of a request or tunnel, upstream time and
//! client speed included: a streaming model call or a long download is long there
//! and says nothing about the proxy.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `workspace_proxy_request_duration_seconds` | histogram | `mode` (overhead) |
//! | `workspace_proxy_exchange_duration_seconds` | histogram | `mode`, `decision` (whole life) |
//! | `workspace_proxy_blocked_total` | counter | `reason` |
//! | `workspace_proxy_refused_total` | counter | `reason` (every refusal incl. errors) |
//! | `workspace_proxy_dns_duration_seconds` | histogram | |
//! | `workspace_proxy_connect_duration_seconds` | histogram | `tls` |
//! | `workspace_proxy_active_tunnels` | gauge | |
//! | `workspace_proxy_active_requests` | gauge | |
//! | `workspace_proxy_bytes_total` | counter | `direction` = `out` (client→upstream) / `in` |
//! | `workspace_proxy_credential_refresh_errors_total` | counter | |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeDecision {
    pub mode: &'static str,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabel {
    pub tls: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~105 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

fn setup_histogram() -> Histogram {
    // 100 µs .. ~6.5 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Metric handles (cheap to clone; clones share values).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// The proxy's own overhead (see the module documentation).
    pub request_duration: HistogramFamily<ModeLabel>,
    /// The whole request or tunnel.
    pub exchange_duration: HistogramFamily<ModeDecision>,
    pub blocked: Family<ReasonLabel, Counter>,
    pub refused: Family<ReasonLabel, Counter>,
    pub dns_duration: Histogram,
    pub connect_duration: HistogramFamily<TlsLabel>,
    pub active_tunnels: Gauge,
    pub active_requests: Gauge,
    pub bytes: Family<DirectionLabel, Counter>,
    pub credential_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            request_duration: Family::new_with_constructor(latency_histogram),
            exchange_duration: Family::new_with_constructor(latency_histogram),
            blocked: Family::default(),
            refused: Family::default(),
            dns_duration: setup_histogram(),
            connect_duration: Family::new_with_constructor(setup_histogram),
            active_tunnels: Gauge::default(),
            active_requests: Gauge::default(),
            bytes: Family::default(),
            credential_errors: Counter::default(),
        }
    }
}

impl Metrics {
    /// Register every metric in `registry` under the `workspace_proxy` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("workspace_proxy");
        r.register_with_unit(
            "request_duration",
            "Proxy overhead: request arrival to the request handed to the upstream \
             connection, or to the tunnel established (DNS, dial, TLS, signing included)",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        r.register_with_unit(
            "exchange_duration",
            "Whole request or tunnel: arrival to the end of the response or tunnel \
             (upstream time and client speed included)",
            Unit::Seconds,
            self.exchange_duration.clone(),
        );
        r.register(
            "blocked",
            "Requests refused by egress policy, by reason",
            self.blocked.clone(),
        );
        r.register(
            "refused",
            "Requests answered by the proxy itself with an error, by reason",
            self.refused.clone(),
        );
        r.register_with_unit(
            "dns_duration",
            "Name resolution time (cache hits included)",
            Unit::Seconds,
            self.dns_duration.clone(),
        );
        r.register_with_unit(
            "connect_duration",
            "Upstream TCP connect (and TLS handshake) time for new connections",
            Unit::Seconds,
            self.connect_duration.clone(),
        );
        r.register(
            "active_tunnels",
            "Open CONNECT tunnels",
            self.active_tunnels.clone(),
        );
        r.register(
            "active_requests",
            "Plain-HTTP and gateway requests in flight",
            self.active_requests.clone(),
        );
        r.register(
            "bytes",
            "Payload bytes relayed; direction out = client to upstream",
            self.bytes.clone(),
        );
        r.register(
            "credential_refresh_errors",
            "Failures to obtain AWS credentials",
            self.credential_errors.clone(),
        );
    }

    pub fn bytes_out(&self) -> Counter {
        self.bytes
            .get_or_create(&DirectionLabel { direction: "out" })
            .clone()
    }

    pub fn bytes_in(&self) -> Counter {
        self.bytes
            .get_or_create(&DirectionLabel { direction: "in" })
            .clone()
    }
}
