//! Request handling: dispatch to forward / CONNECT / gateway / health, policy and
//! address checks, upstream exchange, and the single audit record per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::OwnedSemaphorePermit;

use crate::audit::AuditRecord;
use crate::body::{full, Metered, OnComplete, ProxyBody, UpstreamBody};
use crate::headers::{head_size, strip_hop_by_hop};
use crate::host::{parse_authority, Authority, Host, HostError};
use crate::metrics::{ModeDecision, ModeLabel, ReasonLabel};
use crate::policy::{ForwardRoute, Verdict};
use crate::proxy::{Listener, Shared};
use crate::reason::Reason;
use crate::sigv4;
use crate::tunnel::{self, RelayOptions, TunnelBytes, TunnelEnd};
use crate::upstream::{dial_tcp, ConnInfo, PoolReturn, Target};

/// A refusal: reason plus what it was about (canonical, safe to show).
struct Refusal {
    reason: Reason,
    subject: Option<String>,
}

impl From<Reason> for Refusal {
    fn from(reason: Reason) -> Self {
        Refusal {
            reason,
            subject: None,
        }
    }
}

/// Everything the audit line and metrics need about one request or tunnel.
struct Exchange {
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    start: Instant,
    time: OffsetDateTime,
    mode: &'static str,
    method: String,
    host: Option<String>,
    port: Option<u16>,
    resolved: Option<SocketAddr>,
    dns: Option<Duration>,
    connect: Option<Duration>,
    /// The proxy's own overhead: arrival to upstream reached (see [`Exchange::reached`]).
    overhead: Option<Duration>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Exchange {
    fn new(shared: Arc<Shared>, listener: Arc<Listener>, method: &Method) -> Exchange {
        Exchange {
            shared,
            listener,
            start: Instant::now(),
            time: OffsetDateTime::now_utc(),
            mode: "forward",
            method: method.as_str().to_string(),
            host: None,
            port: None,
            resolved: None,
            dns: None,
            connect: None,
            overhead: None,
        }
    }

    /// The request was handed to a ready upstream connection, or the tunnel's
    /// upstream connection is established, at `at`: everything since arrival was the
    /// proxy's own overhead. Observed at once (not when a long stream ends), and only
    /// here: a request refused before any upstream was reached has no overhead.
    fn reached(&mut self, at: Instant) {
        let overhead = at.saturating_duration_since(self.start);
        self.overhead = Some(overhead);
        self.shared
            .metrics
            .request_duration
            .get_or_create(&ModeLabel { mode: self.mode })
            .observe(overhead.as_secs_f64());
    }

    fn target(&mut self, a: &Authority) {
        self.host = Some(a.host.to_string());
        self.port = Some(a.port);
    }

    fn finish(
        self,
        status: StatusCode,
        reason: Option<Reason>,
        bytes_out: u64,
        bytes_in: u64,
        complete: bool,
    ) {
        let total = self.start.elapsed();
        let decision = match reason {
            None => "allowed",
            Some(r) if r.is_block() => "blocked",
            Some(_) => "error",
        };
        let m = &self.shared.metrics;
        m.exchange_duration
            .get_or_create(&ModeDecision {
                mode: self.mode,
                decision,
            })
            .observe(total.as_secs_f64());
        if let Some(r) = reason {
            m.refused
                .get_or_create(&ReasonLabel { reason: r.code() })
                .inc();
            if r.is_block() {
                m.blocked
                    .get_or_create(&ReasonLabel { reason: r.code() })
                    .inc();
            }
        }
        let ctx = &self.listener.ctx;
        let event = match decision {
            "allowed" => "proxy_request_allowed",
            "blocked" => "proxy_request_blocked",
            _ => "proxy_request_failed",
        };
        if let Some(r) = reason {
            tracing::debug!(
                workspace_id = %ctx.workspace_id,
                conversation_id = %ctx.conversation_id,
                tenant_id = %ctx.tenant_id,
                mode = self.mode,
                host = self.host.as_deref().unwrap_or(""),
                reason = r.code(),
                "egress refused"
            );
        }
        self.shared.audit.emit(AuditRecord {
            time: self.time.format(&Rfc3339).unwrap_or_default(),
            event: event.to_string(),
            workspace_id: ctx.workspace_id.clone(),
            conversation_id: ctx.conversation_id.clone(),
            tenant_id: ctx.tenant_id.clone(),
            mode: self.mode.to_string(),
            method: self.method,
            host: self.host,
            port: self.port,
            resolved: self.resolved.map(|a| a.to_string()),
            decision: decision.to_string(),
            reason: reason.map(|r| r.code().to_string()),
            status: status.as_u16(),
            bytes_out,
            bytes_in,
            dns_ms: self.dns.map(ms),
            connect_ms: self.connect.map(ms),
            overhead_ms: self.overhead.map(ms),
            total_ms: ms(total),
            complete,
        });
    }

    fn refuse(self, refusal: Refusal) -> Response<ProxyBody> {
        let resp = refusal
            .reason
            .response::<Full<Bytes>>(refusal.subject.as_deref())
            .map(Either::Right);
        self.finish(resp.status(), Some(refusal.reason), 0, 0, true);
        resp
    }
}

/// Holds a concurrency permit and the matching gauge for the life of a request.
struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, gauge: prometheus_client::metrics::gauge::Gauge) -> Slot {
        gauge.inc();
        Slot {
            _permit: permit,
            gauge,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Finishes the audit record when the relayed response body ends.
struct ResponseDone {
    ex: Exchange,
    status: StatusCode,
    bytes_out: Arc<AtomicU64>,
    conn: PoolReturn,
    _slot: Slot,
}

impl OnComplete for ResponseDone {
    fn complete(self: Box<Self>, bytes_in: u64, finished: bool) {
        let this = *self;
        if finished {
            // The whole response was read: the connection can serve the next request.
            this.conn.give_back();
        }
        let out = this.bytes_out.load(Ordering::Relaxed);
        this.ex.finish(this.status, None, out, bytes_in, finished);
    }
}

/// Entry point for every request on every listener.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let mut ex = Exchange::new(shared.clone(), listener.clone(), req.method());
    let is_connect = req.method() == Method::CONNECT;
    let absolute = req.uri().scheme().is_some();
    ex.mode = if is_connect {
        "connect"
    } else if absolute {
        "forward"
    } else {
        "gateway"
    };

    // Health check on the proxy's own address: answered before anything else.
    if !is_connect
        && !absolute
        && req.uri().path() == "/health"
        && (req.method() == Method::GET || req.method() == Method::HEAD)
    {
        let mut resp = Response::new(full("ok\n"));
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return resp;
    }
    // TRACE/TRACK echo the request back, headers the proxy injected included.
    if req.method() == Method::TRACE || req.method().as_str() == "TRACK" {
        return ex.refuse(Reason::MethodNotAllowed.into());
    }
    if listener.graceful.is_cancelled() {
        return ex.refuse(Reason::ShuttingDown.into());
    }

    let limits = &shared.config.limits;
    let uri = req.uri();
    let uri_len = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if req.headers().len() > limits.max_headers
        || head_size(uri_len, req.headers()) > limits.max_header_bytes
    {
        return ex.refuse(Reason::HeadersTooLarge.into());
    }
    if req.headers().get_all(header::HOST).iter().count() > 1 {
        return ex.refuse(Refusal {
            reason: Reason::BadRequest,
            subject: Some("more than one Host header".into()),
        });
    }

    if is_connect {
        let permit = match listener.tunnels.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => return ex.refuse(Reason::TooManyTunnels.into()),
        };
        let slot = Slot::new(permit, shared.metrics.active_tunnels.clone());
        return connect(ex, req, slot).await;
    }

    let permit = match listener.requests.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => return ex.refuse(Reason::TooManyRequests.into()),
    };
    let slot = Slot::new(permit, shared.metrics.active_requests.clone());
    if absolute {
        forward(ex, req, slot).await
    } else {
        gateway(ex, req, slot).await
    }
}

fn host_error(e: HostError, raw: &str) -> Refusal {
    let reason = match e {
        HostError::UserInfo => Reason::UserinfoNotAllowed,
        HostError::InvalidPort | HostError::MissingPort => Reason::InvalidPort,
        _ => Reason::InvalidHost,
    };
    Refusal {
        reason,
        subject: Some(sanitize(raw)),
    }
}

/// Printable, bounded echo of client input.
fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The `Host` header, when present, must name the same authority as the target.
fn check_host_header(
    req: &Request<Incoming>,
    target: &Authority,
    default_port: u16,
) -> Result<(), Refusal> {
    let Some(v) = req.headers().get(header::HOST) else {
        return Ok(());
    };
    let mismatch = || Refusal {
        reason: Reason::HostMismatch,
        subject: Some(target.to_string()),
    };
    let s = v.to_str().map_err(|_| mismatch())?;
    let a = parse_authority(s, Some(default_port)).map_err(|_| mismatch())?;
    if a == *target {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// Resolve once, vet every address, return the one to dial.
async fn resolve_vetted(
    ex: &mut Exchange,
    host: &Host,
    port: u16,
    allow_private: bool,
) -> Result<SocketAddr, Refusal> {
    let subject = || {
        Some(
            Authority {
                host: host.clone(),
                port,
            }
            .to_string(),
        )
    };
    let res = ex
        .shared
        .resolver
        .resolve(host, port)
        .await
        .map_err(|e| Refusal {
            reason: match e {
                crate::resolve::ResolveError::Timeout => Reason::DnsTimeout,
                _ => Reason::DnsFailed,
            },
            subject: subject(),
        })?;
    ex.dns = Some(res.elapsed);
    ex.shared
        .metrics
        .dns_duration
        .observe(res.elapsed.as_secs_f64());
    // Strict: a name whose answer contains any forbidden address is refused as a
    // whole (mixed public/internal answers are a rebinding signal).
    for a in &res.addrs {
        if let Err(d) = ex.shared.guard.check(*a, allow_private) {
            ex.resolved = Some(*a);
            return Err(Refusal {
                reason: Reason::from_denied(d),
                subject: subject(),
            });
        }
    }
    let addr = res.addrs[0];
    ex.resolved = Some(addr);
    Ok(addr)
}

/// For IP-literal targets the address guard runs before the allowlist, so the
/// refusal names the real problem (`address_metadata` rather than `host_not_allowed`).
fn literal_guard(ex: &Exchange, a: &Authority, allow_private: bool) -> Result<(), Refusal> {
    if let Some(ip) = a.host.ip() {
        ex.shared
            .guard
            .check(SocketAddr::new(ip, a.port), allow_private)
            .map_err(|d| Refusal {
                reason: Reason::from_denied(d),
                subject: Some(a.to_string()),
            })?;
    }
    Ok(())
}

fn verdict_refusal<T>(v: &Verdict<T>, a: &Authority) -> Option<Refusal> {
    let reason = match v {
        Verdict::Allow(_) => return None,
        Verdict::Denied => Reason::HostDenied,
        Verdict::PortNotAllowed => Reason::PortNotAllowed,
        Verdict::NotAllowed => Reason::HostNotAllowed,
        Verdict::InjectedHostViaConnect => Reason::ConnectToInjectedHost,
    };
    Some(Refusal {
        reason,
        subject: Some(a.to_string()),
    })
}

// ---------------------------------------------------------------- CONNECT

async fn connect(mut ex: Exchange, mut req: Request<Incoming>, slot: Slot) -> Response<ProxyBody> {
    let raw = req.uri().authority().map(|a| a.as_str().to_string());
    let Some(raw) = raw else {
        return ex.refuse(Refusal {
            reason: Reason::BadRequest,
            subject: Some("CONNECT needs host:port".into()),
        });
    };
    let target = match parse_authority(&raw, None) {
        Ok(a) => a,
        Err(e) => return ex.refuse(host_error(e, &raw)),
    };
    ex.target(&target);
    if let Err(r) = check_host_header(&req, &target, target.port) {
        return ex.refuse(r);
    }
    let policy = ex.listener.policy();
    let verdict = policy.connect(&target.host, target.port);
    let allow_private = matches!(verdict, Verdict::Allow(true));
    if let Err(r) = literal_guard(&ex, &target, allow_private) {
        return ex.refuse(r);
    }
    if let Some(r) = verdict_refusal(&verdict, &target) {
        return ex.refuse(r);
    }
    drop(policy);
    let addr = match resolve_vetted(&mut ex, &target.host, target.port, allow_private).await {
        Ok(a) => a,
        Err(r) => return ex.refuse(r),
    };
    // Dial before answering, so failures are reported as 502/504 and not as a tunnel
    // that closes immediately.
    let (upstream, elapsed) = match dial_tcp(addr, ex.shared.config.timeouts.connect()).await {
        Ok(s) => s,
        Err(e) => {
            return ex.refuse(Refusal {
                reason: e.reason(),
                subject: Some(target.to_string()),
            })
        }
    };
    ex.connect = Some(elapsed);
    ex.reached(Instant::now());
    ex.shared
        .metrics
        .connect_duration
        .get_or_create(&crate::metrics::TlsLabel { tls: "false" })
        .observe(elapsed.as_secs_f64());

    let on_upgrade = hyper::upgrade::on(&mut req);
    drop(req);
    let shared = ex.shared.clone();
    let listener = ex.listener.clone();
    let opts = RelayOptions {
        buf_size: shared.config.limits.tunnel_buffer_bytes,
        idle_timeout: shared.config.timeouts.tunnel_idle(),
        abort: listener.abort.clone(),
        metric_out: shared.metrics.bytes_out(),
        metric_in: shared.metrics.bytes_in(),
    };
    listener.tracker.spawn(async move {
        let _slot = slot;
        let upgraded = tokio::select! {
            u = on_upgrade => u,
            _ = opts.abort.cancelled() => {
                ex.finish(StatusCode::OK, None, 0, 0, false);
                return;
            }
        };
        let upgraded = match upgraded {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "CONNECT upgrade failed");
                ex.finish(StatusCode::OK, None, 0, 0, false);
                return;
            }
        };
        let bytes = Arc::new(TunnelBytes::default());
        let (client, leftover) = recover_client(upgraded);
        let mut upstream = upstream;
        let mut ok = true;
        if !leftover.is_empty() {
            // Bytes the client sent right after the CONNECT head (e.g. a TLS hello).
            ok = upstream.write_all(&leftover).await.is_ok();
            bytes
                .out
                .fetch_add(leftover.len() as u64, Ordering::Relaxed);
            opts.metric_out.inc_by(leftover.len() as u64);
        }
        let max_life = shared.config.timeouts.tunnel_max();
        let end = if ok {
            // Closed at its maximum lifetime whatever it carries.
            tokio::time::timeout(
                max_life,
                relay_client(client, upstream, opts, bytes.clone()),
            )
            .await
            .unwrap_or(TunnelEnd::Error)
        } else {
            TunnelEnd::Error
        };
        ex.finish(
            StatusCode::OK,
            None,
            bytes.out.load(Ordering::Relaxed),
            bytes.inbound.load(Ordering::Relaxed),
            end == TunnelEnd::Closed,
        );
    });
    Response::new(full(Bytes::new()))
}

/// The client side of a tunnel, recovered from hyper's upgrade so the relay works on
/// the kernel socket itself.
enum ClientIo {
    Tcp(TcpStream),
    Unix(UnixStream),
    Other(Upgraded),
}

fn recover_client(upgraded: Upgraded) -> (ClientIo, Bytes) {
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return (ClientIo::Tcp(parts.io.into_inner()), parts.read_buf),
        Err(u) => u,
    };
    match upgraded.downcast::<TokioIo<UnixStream>>() {
        Ok(parts) => (ClientIo::Unix(parts.io.into_inner()), parts.read_buf),
        Err(u) => (ClientIo::Other(u), Bytes::new()),
    }
}

async fn relay_client(
    client: ClientIo,
    upstream: TcpStream,
    opts: RelayOptions,
    bytes: Arc<TunnelBytes>,
) -> TunnelEnd {
    #[cfg(target_os = "linux")]
    {
        let spliced = match &client {
            ClientIo::Tcp(c) => {
                Some(tunnel::relay_sockets(c, &upstream, opts.clone(), bytes.clone()).await)
            }
            ClientIo::Unix(c) => {
                Some(tunnel::relay_sockets(c, &upstream, opts.clone(), bytes.clone()).await)
            }
            ClientIo::Other(_) => None,
        };
        match spliced {
            Some(Ok(end)) => return end,
            Some(Err(e)) => tracing::debug!(error = %e, "splice unavailable; copying"),
            None => {}
        }
    }
    let (ur, uw) = upstream.into_split();
    match client {
        ClientIo::Tcp(c) => {
            let (r, w) = c.into_split();
            tunnel::relay((r, w), (ur, uw), opts, bytes).await
        }
        ClientIo::Unix(c) => {
            let (r, w) = c.into_split();
            tunnel::relay((r, w), (ur, uw), opts, bytes).await
        }
        ClientIo::Other(u) => {
            let (r, w) = tokio::io::split(TokioIo::new(u));
            tunnel::relay((r, w), (ur, uw), opts, bytes).await
        }
    }
}

// ---------------------------------------------------------------- forward

async fn forward(mut ex: Exchange, req: Request<Incoming>, slot: Slot) -> Response<ProxyBody> {
    if req.uri().scheme_str() != Some("http") {
        return ex.refuse(Refusal {
            reason: Reason::UnsupportedScheme,
            subject: req.uri().scheme_str().map(sanitize),
        });
    }
    let Some(raw) = req.uri().authority().map(|a| a.as_str().to_string()) else {
        return ex.refuse(Reason::BadRequest.into());
    };
    let target = match parse_authority(&raw, Some(80)) {
        Ok(a) => a,
        Err(e) => return ex.refuse(host_error(e, &raw)),
    };
    ex.target(&target);
    if let Err(r) = check_host_header(&req, &target, 80) {
        return ex.refuse(r);
    }
    let policy = ex.listener.policy();
    let verdict = policy.forward(&target.host, target.port);
    let literal_private = match &verdict {
        Verdict::Allow(ForwardRoute::Direct { allow_private }) => *allow_private,
        Verdict::Allow(ForwardRoute::Inject(rule)) => rule.allow_private,
        _ => false,
    };
    if let Err(r) = literal_guard(&ex, &target, literal_private) {
        return ex.refuse(r);
    }
    if let Some(r) = verdict_refusal(&verdict, &target) {
        return ex.refuse(r);
    }
    let Verdict::Allow(route) = verdict else {
        return ex.refuse(Reason::HostNotAllowed.into());
    };

    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(header::EXPECT);

    let (upstream_auth, tls, allow_private) = match route {
        ForwardRoute::Direct { allow_private } => (target.clone(), false, allow_private),
        ForwardRoute::Inject(rule) => {
            ex.mode = "inject";
            for (name, value) in &rule.headers {
                headers.insert(name.clone(), value.clone());
            }
            (
                Authority {
                    host: rule.host.clone(),
                    port: rule.upstream_port,
                },
                true,
                rule.allow_private,
            )
        }
    };
    drop(policy);
    let host_header = upstream_auth.to_host_header(if tls { 443 } else { 80 });
    match HeaderValue::from_str(&host_header) {
        Ok(v) => {
            headers.insert(header::HOST, v);
        }
        Err(_) => return ex.refuse(Reason::InvalidHost.into()),
    }

    let addr = match resolve_vetted(
        &mut ex,
        &upstream_auth.host,
        upstream_auth.port,
        allow_private,
    )
    .await
    {
        Ok(a) => a,
        Err(r) => return ex.refuse(r),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let uri: Uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return ex.refuse(Reason::BadRequest.into()),
    };
    let bytes_out = Arc::new(AtomicU64::new(0));
    let body = Metered::new(
        body,
        bytes_out.clone(),
        Some(ex.shared.metrics.bytes_out()),
        None,
    );
    let mut up_req = Request::new(Either::Left(body) as UpstreamBody);
    *up_req.method_mut() = parts.method;
    *up_req.uri_mut() = uri;
    *up_req.version_mut() = Version::HTTP_11;
    *up_req.headers_mut() = headers;

    let target = Target {
        host: &upstream_auth.host,
        addr,
        tls,
    };
    exchange(ex, target, up_req, bytes_out, slot).await
}

/// Send upstream and relay the response (streamed), finishing the audit record when
/// its body ends.
async fn exchange(
    mut ex: Exchange,
    target: Target<'_>,
    req: Request<UpstreamBody>,
    bytes_out: Arc<AtomicU64>,
    slot: Slot,
) -> Response<ProxyBody> {
    let timeout = ex.shared.config.timeouts.upstream_response();
    let shared = ex.shared.clone();
    let (info, sent): (ConnInfo, _) = shared.upstream.send(target, req, timeout).await;
    ex.connect = info.connect;
    if let Some(at) = info.handed_over {
        ex.reached(at);
    }
    let (resp, conn): (Response<Incoming>, PoolReturn) = match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, host = %target.host, "upstream exchange failed");
            return ex.refuse(Refusal {
                reason: e.reason(),
                subject: Some(
                    Authority {
                        host: target.host.clone(),
                        port: target.addr.port(),
                    }
                    .to_string(),
                ),
            });
        }
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let status = parts.status;
    let done = ResponseDone {
        ex,
        status,
        bytes_out,
        conn,
        _slot: slot,
    };
    let body = Metered::new(
        body,
        Arc::new(AtomicU64::new(0)),
        Some(shared.metrics.bytes_in()),
        Some(Box::new(done)),
    );
    Response::from_parts(parts, Either::Left(body))
}

// ---------------------------------------------------------------- gateway

async fn gateway(mut ex: Exchange, req: Request<Incoming>, slot: Slot) -> Response<ProxyBody> {
    let policy = ex.listener.policy();
    let Some(gw) = policy.bedrock().cloned() else {
        return ex.refuse(Reason::GatewayDisabled.into());
    };
    drop(policy);
    ex.host = Some(gw.host.to_string());
    ex.port = Some(443);
    if req.method() != Method::POST {
        return ex.refuse(Reason::GatewayMethodNotAllowed.into());
    }
    if !sigv4::is_gateway_path(req.uri().path()) {
        return ex.refuse(Reason::GatewayPathNotAllowed.into());
    }
    if let Err(r) = sigv4::check_client_signing(req.uri().query(), req.headers()) {
        return ex.refuse(r.into());
    }
    let max = ex.shared.config.limits.max_gateway_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return ex.refuse(Reason::BodyTooLarge.into());
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let reason = if e.is::<http_body_util::LengthLimitError>() {
                Reason::BodyTooLarge
            } else {
                Reason::BadRequest
            };
            return ex.refuse(reason.into());
        }
    };
    let bytes_out = Arc::new(AtomicU64::new(body.len() as u64));
    ex.shared.metrics.bytes_out().inc_by(body.len() as u64);

    let addr = match resolve_vetted(&mut ex, &gw.host, 443, gw.allow_private).await {
        Ok(a) => a,
        Err(r) => return ex.refuse(r),
    };
    let credentials = match ex.shared.credentials.get().await {
        Ok(c) => c,
        Err(e) => {
            ex.shared.metrics.credential_errors.inc();
            tracing::warn!(error = %e, "cannot sign Bedrock request");
            return ex.refuse(Reason::CredentialsUnavailable.into());
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut headers = sigv4::forwardable_headers(&parts.headers);
    let host_header = gw.host.to_string();
    let signed = sigv4::sign_request(
        sigv4::SigningInput {
            method: &parts.method,
            host_header: &host_header,
            path_and_query: &path_and_query,
            body: &body,
            region: &gw.region,
            time: SystemTime::now(),
        },
        &mut headers,
        &credentials,
    );
    if let Err(e) = signed {
        tracing::warn!(error = %e, "signing failed");
        return ex.refuse(Reason::BadRequest.into());
    }
    let uri: Uri = match path_and_query.parse() {
        Ok(u) => u,
        Err(_) => return ex.refuse(Reason::BadRequest.into()),
    };
    let mut up_req = Request::new(Either::Right(Full::new(body)) as UpstreamBody);
    *up_req.method_mut() = parts.method;
    *up_req.uri_mut() = uri;
    *up_req.version_mut() = Version::HTTP_11;
    *up_req.headers_mut() = headers;
    let target = Target {
        host: &gw.host,
        addr,
        tls: true,
    };
    exchange(ex, target, up_req, bytes_out, slot).await
}
