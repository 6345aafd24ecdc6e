//! The [`Proxy`] (state shared by all listeners) and its listeners.
//!
//! One `Proxy` holds the resolver, the upstream pool, the credentials, metrics and
//! audit sink. Each listener (a Unix socket per workspace, or a TCP address for the
//! sidecar) has its own [`ListenerContext`] for audit and its own [`Policy`], which
//! can be replaced at any time: requests read the policy when they arrive, so the
//! change applies to the next request on every connection of that listener and to
//! nothing else. [`ListenerHandle::shutdown`] drains one listener gracefully.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_credential_types::provider::SharedCredentialsProvider;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditSink;
use crate::config::{ConfigError, ProxyConfig};
use crate::credentials::CredentialCache;
use crate::guard::Guard;
use crate::handler;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::resolve::Resolver;
use crate::tls;
use crate::upstream::Upstream;

/// Who a listener serves; copied into every audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerContext {
    pub workspace_id: String,
    pub conversation_id: String,
    pub tenant_id: String,
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// State shared by every listener of a proxy.
pub(crate) struct Shared {
    pub config: ProxyConfig,
    pub resolver: Resolver,
    pub upstream: Upstream,
    pub guard: Guard,
    pub credentials: CredentialCache,
    pub metrics: Metrics,
    pub audit: AuditSink,
}

/// Per-listener state.
pub(crate) struct Listener {
    pub ctx: ListenerContext,
    policy: RwLock<Arc<Policy>>,
    pub requests: Arc<Semaphore>,
    pub tunnels: Arc<Semaphore>,
    /// Stop accepting; connections finish their current request and close.
    pub graceful: CancellationToken,
    /// End of the drain period: everything still open is closed.
    pub abort: CancellationToken,
    pub tracker: TaskTracker,
}

impl Listener {
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The egress proxy. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

/// Builder for the parts of a [`Proxy`] that are not plain configuration.
pub struct ProxyBuilder {
    config: ProxyConfig,
    audit: AuditSink,
    credentials: Option<SharedCredentialsProvider>,
}

impl ProxyBuilder {
    /// Where audit records go (default: `tracing` target `workspace_proxy::audit`).
    pub fn audit_sink(mut self, sink: AuditSink) -> Self {
        self.audit = sink;
        self
    }

    /// Credentials for Bedrock signing (default: the standard AWS chain, built on
    /// first use).
    pub fn credentials_provider(mut self, provider: SharedCredentialsProvider) -> Self {
        self.credentials = Some(provider);
        self
    }

    /// Validate the configuration and build the shared state. Does not need a Tokio
    /// runtime; listeners do.
    pub fn build(self) -> Result<Proxy, ConfigError> {
        let config = self.config;
        config.validate()?;
        let metrics = Metrics::default();
        let tls = tls::client_config(&config.tls)?;
        let resolver = Resolver::new(
            &config.dns,
            &config.test_resolve_overrides,
            config.timeouts.dns(),
        )?;
        let upstream = Upstream::new(
            tls,
            config.timeouts.connect(),
            config.timeouts.pool_idle(),
            config.limits.pool_max_idle_per_host,
            metrics.clone(),
        );
        let credentials = match self.credentials {
            Some(p) => CredentialCache::with_provider(p),
            None => CredentialCache::default_chain(config.aws_region.clone()),
        };
        if !config.test_resolve_overrides.is_empty() {
            tracing::warn!(
                hosts = ?config.test_resolve_overrides.keys().collect::<Vec<_>>(),
                "test_resolve_overrides is set: these names bypass DNS (test-only setting)"
            );
        }
        Ok(Proxy {
            shared: Arc::new(Shared {
                config,
                resolver,
                upstream,
                guard: Guard::default(),
                credentials,
                metrics,
                audit: self.audit,
            }),
        })
    }
}

impl Proxy {
    /// A proxy with default audit sink and credentials.
    pub fn new(config: ProxyConfig) -> Result<Proxy, ConfigError> {
        Proxy::builder(config).build()
    }

    pub fn builder(config: ProxyConfig) -> ProxyBuilder {
        ProxyBuilder {
            config,
            audit: AuditSink::default(),
            credentials: None,
        }
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// Metric handles (for registering elsewhere or reading in tests).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Register the `workspace_proxy_*` metrics in `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.shared.metrics.register(registry);
    }

    /// Declare another address of this process (admin port, the control plane's API)
    /// that must never be dialled through the proxy.
    pub fn add_own_address(&self, addr: SocketAddr) {
        self.shared.guard.add_own(addr);
    }

    /// Idle pooled upstream connections.
    pub fn idle_upstream_connections(&self) -> usize {
        self.shared.upstream.idle_connections()
    }

    /// Listen on a Unix socket. An existing socket file at `path` is replaced; the new
    /// one gets mode 0666 (access is controlled by the directory it lives in).
    pub async fn serve_unix(
        &self,
        path: impl AsRef<Path>,
        ctx: ListenerContext,
        policy: Policy,
    ) -> io::Result<ListenerHandle> {
        let path = path.as_ref().to_path_buf();
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() {
                std::fs::remove_file(&path)?;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
        }
        let listener = UnixListener::bind(&path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        }
        let (state, handle) = self.new_listener(ctx, policy, ListenAddr::Unix(path.clone()));
        let shared = self.shared.clone();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = st.graceful.cancelled() => break,
                    r = listener.accept() => match r {
                        Ok((stream, _)) => spawn_connection(&shared, &st, stream),
                        Err(e) => accept_error(e).await,
                    }
                }
            }
            drop(listener);
            let _ = std::fs::remove_file(&path);
        });
        Ok(handle.with_accept_task(task))
    }

    /// Listen on a TCP address (the sidecar's 127.0.0.1:8080). The bound address is
    /// registered as one of the proxy's own addresses.
    pub async fn serve_tcp(
        &self,
        addr: SocketAddr,
        ctx: ListenerContext,
        policy: Policy,
    ) -> io::Result<ListenerHandle> {
        let listener = TcpListener::bind(addr).await?;
        self.serve_tcp_listener(listener, ctx, policy)
    }

    /// Serve an already bound TCP listener.
    pub fn serve_tcp_listener(
        &self,
        listener: TcpListener,
        ctx: ListenerContext,
        policy: Policy,
    ) -> io::Result<ListenerHandle> {
        let local = listener.local_addr()?;
        self.shared.guard.add_own(local);
        let (state, handle) = self.new_listener(ctx, policy, ListenAddr::Tcp(local));
        let shared = self.shared.clone();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = st.graceful.cancelled() => break,
                    r = listener.accept() => match r {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            spawn_connection(&shared, &st, stream)
                        }
                        Err(e) => accept_error(e).await,
                    }
                }
            }
        });
        Ok(handle.with_accept_task(task))
    }

    fn new_listener(
        &self,
        ctx: ListenerContext,
        policy: Policy,
        addr: ListenAddr,
    ) -> (Arc<Listener>, ListenerHandle) {
        let limits = &self.shared.config.limits;
        let state = Arc::new(Listener {
            ctx,
            policy: RwLock::new(Arc::new(policy)),
            requests: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            tunnels: Arc::new(Semaphore::new(limits.max_concurrent_tunnels)),
            graceful: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let handle = ListenerHandle {
            state: state.clone(),
            shared: self.shared.clone(),
            addr,
            accept: None,
        };
        (state, handle)
    }
}

async fn accept_error(e: io::Error) {
    // Out of file descriptors and similar: back off instead of spinning.
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

fn spawn_connection<S>(shared: &Arc<Shared>, listener: &Arc<Listener>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = shared.clone();
    let l = listener.clone();
    listener.tracker.spawn(async move {
        let cfg = &shared.config;
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(cfg.timeouts.header_read())
            .max_headers(cfg.limits.max_headers.saturating_mul(2).max(100))
            .max_buf_size((cfg.limits.max_header_bytes * 2).max(64 * 1024));
        let svc_shared = shared.clone();
        let svc_l = l.clone();
        let svc = service_fn(move |req| {
            let s = svc_shared.clone();
            let l = svc_l.clone();
            async move { Ok::<_, Infallible>(handler::handle(s, l, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "client connection ended with an error");
                }
            }
            _ = l.graceful.cancelled() => {
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = l.abort.cancelled() => {}
                }
            }
        }
    });
}

/// Control of one listener.
pub struct ListenerHandle {
    state: Arc<Listener>,
    shared: Arc<Shared>,
    addr: ListenAddr,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl ListenerHandle {
    fn with_accept_task(mut self, task: tokio::task::JoinHandle<()>) -> Self {
        self.accept = Some(task);
        self
    }

    /// Replace this listener's policy. Requests that arrive from now on use it;
    /// other listeners and established tunnels are not touched.
    pub fn set_policy(&self, policy: Policy) {
        let new = Arc::new(policy);
        match self.state.policy.write() {
            Ok(mut p) => *p = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.state.policy()
    }

    /// True while the listener accepts connections (its accept loop has not ended).
    pub fn is_running(&self) -> bool {
        self.accept.as_ref().is_some_and(|t| !t.is_finished())
            && !self.state.graceful.is_cancelled()
    }

    pub fn context(&self) -> &ListenerContext {
        &self.state.ctx
    }

    pub fn local_addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Open CONNECT tunnels on this listener.
    pub fn active_tunnels(&self) -> usize {
        self.shared.config.limits.max_concurrent_tunnels - self.state.tunnels.available_permits()
    }

    /// Stop accepting, let in-flight requests and tunnels finish for up to
    /// `timeouts.drain_ms`, then close whatever is left.
    pub async fn shutdown(mut self) {
        self.state.graceful.cancel();
        if let Some(task) = self.accept.take() {
            let _ = task.await;
        }
        self.state.tracker.close();
        let drain = self.shared.config.timeouts.drain();
        if tokio::time::timeout(drain, self.state.tracker.wait())
            .await
            .is_err()
        {
            tracing::info!(
                workspace_id = %self.state.ctx.workspace_id,
                "drain period over; closing remaining connections and tunnels"
            );
            self.state.abort.cancel();
            self.state.tracker.wait().await;
        }
        if let ListenAddr::Tcp(a) = &self.addr {
            self.shared.guard.remove_own(*a);
        }
    }
}

impl Drop for ListenerHandle {
    /// Dropping a handle without [`ListenerHandle::shutdown`] closes the listener and
    /// everything on it at once.
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.state.graceful.cancel();
            self.state.abort.cancel();
            if let ListenAddr::Tcp(a) = &self.addr {
                self.shared.guard.remove_own(*a);
            }
        }
    }
}
