//! Assembly and lifecycle of the control-plane process: builds the runtime, store,
//! telemetry and the services from the configuration, reconciles with what already
//! runs, serves the API, and shuts down gracefully (stop accepting, let streams finish
//! within the grace period, cancel the rest, sync, optionally destroy this fleet's
//! workspaces).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::serve::ListenerExt;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    api::{self, AppState},
    config::{Config, RuntimeKind, StoreKind},
    egress::Egress,
    fleet::Fleet,
    gc::Reaper,
    metrics::Metrics,
    runtime::{docker::DockerRuntime, Runtime},
    services::Services,
    store::{memory::MemoryStore, redis::RedisStore, StateStore, WorkspaceState},
    sync::{coordinator::SyncCoordinator, Syncer},
    telemetry::{RequestContext, SyncTrigger, Telemetry},
};

/// A started control plane: its address, its services, and the handle to stop it.
pub struct Server {
    pub addr: SocketAddr,
    pub services: Services,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Builds the runtime named in the configuration.
pub async fn build_runtime(cfg: &Config) -> anyhow::Result<Arc<dyn Runtime>> {
    Ok(match cfg.runtime {
        RuntimeKind::Docker => {
            Arc::new(DockerRuntime::connect(cfg.docker.clone(), cfg.fleet.clone()).await?)
        }
    })
}

/// Builds the state store named in the configuration.
pub async fn build_store(cfg: &Config) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(match cfg.store.kind {
        StoreKind::Memory => Arc::new(MemoryStore::new()),
        StoreKind::Redis => Arc::new(
            RedisStore::connect_with_password(
                &cfg.store.redis_url,
                Some(&cfg.store.redis_password),
                &cfg.fleet,
            )
            .await?,
        ),
    })
}

impl Server {
    /// Builds everything and starts serving on `cfg.listen` (port 0 picks a free one).
    pub async fn start(cfg: Config) -> anyhow::Result<Self> {
        let runtime = build_runtime(&cfg).await?;
        let store = build_store(&cfg).await?;
        Self::start_with(cfg, runtime, store).await
    }

    /// Starts with the given runtime and store.
    pub async fn start_with(
        cfg: Config,
        runtime: Arc<dyn Runtime>,
        store: Arc<dyn StateStore>,
    ) -> anyhow::Result<Self> {
        let cfg = Arc::new(cfg);
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let audit =
            audit::AuditSink::from_spec(&cfg.audit).map_err(|e| anyhow::anyhow!("audit: {e}"))?;
        let telemetry = Telemetry::new(metrics, audit);

        let mut fleet = Fleet::new(runtime, store.clone(), cfg.clone(), telemetry.clone());
        if let Some(syncer) = Syncer::from_config(&cfg.sync)
            .await
            .map_err(|e| anyhow::anyhow!("sync: {e}"))?
        {
            fleet.sync = Some(Arc::new(SyncCoordinator::new(
                Arc::new(syncer),
                store.clone(),
                telemetry,
            )));
        }
        let egress = if cfg.egress.enabled && fleet.runtime.name() == "docker" {
            let e = Egress::new(
                cfg.egress.clone(),
                store,
                fleet.instance_id.clone(),
                &mut registry,
            )
            .map_err(|e| anyhow::anyhow!("egress: {e}"))?;
            let e = Arc::new(e);
            fleet.egress = Some(e.clone());
            Some(e)
        } else {
            None
        };
        let services = Services::new(Arc::new(fleet));
        let report = services.membership.reconcile().await?;
        info!(?report, "reconciled with running workspaces");

        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
        let addr = listener.local_addr()?;
        if let Some(e) = &egress {
            // A sandbox must never reach the control plane's own API through its proxy.
            e.add_own_address(addr);
        }
        let shutdown = CancellationToken::new();
        let streams_cancel = CancellationToken::new();
        let state = AppState {
            services: services.clone(),
            registry: Arc::new(registry),
            tokens: Arc::new(cfg.tokens.clone()),
            streams_cancel: streams_cancel.clone(),
        };
        let app = api::router(state);

        // Background work: the warm pool's filler and the reaper.
        let background_stop = CancellationToken::new();
        services.membership.heartbeat().await?;
        let mut background = vec![
            services
                .membership
                .clone()
                .spawn_heartbeat(background_stop.clone()),
            services.pool.clone().spawn(background_stop.clone()),
        ];
        if let Some(e) = egress {
            // Listeners of adopted workspaces (and of dead replicas) start here.
            if let Err(err) = e.supervise_once().await {
                warn!(error = %err, "initial egress supervision failed");
            }
            background.push(e.spawn_supervisor(background_stop.clone()));
        }
        if cfg.gc.enabled {
            let reaper = Reaper::new(services.lifecycle.clone(), services.membership.clone());
            background.push(Arc::new(reaper).spawn(background_stop.clone()));
        }

        let grace = Duration::from_secs(cfg.shutdown_grace_secs);
        let cleanup = cfg.cleanup_on_shutdown;
        let stop = shutdown.clone();
        let services2 = services.clone();
        let task = tokio::spawn(async move {
            let stop_signal = stop.clone();
            let streams = streams_cancel.clone();
            // When shutdown starts, streams get `grace` to finish, then are cancelled.
            tokio::spawn(async move {
                stop_signal.cancelled().await;
                tokio::time::sleep(grace).await;
                streams.cancel();
            });
            // Small SSE frames must not wait for Nagle and delayed ACKs (40 ms stalls).
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    warn!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "server ended with an error");
            }
            streams_cancel.cancel();
            // Nothing is lost on shutdown: bound workspaces are synced first.
            let synced = sync_on_shutdown(&services2.fleet).await;
            if synced > 0 {
                info!(synced, "synced workspaces on shutdown");
            }
            background_stop.cancel();
            for task in background {
                let _ = task.await;
            }
            if cleanup {
                let ctx = RequestContext::system("shutdown");
                match services2.lifecycle.destroy_all(&ctx).await {
                    Ok(n) => info!(destroyed = n, "cleaned up this fleet's workspaces"),
                    Err(e) => warn!(error = %e, "clean-up on shutdown failed"),
                }
            }
            services2.fleet.telemetry.audit_sink().close();
        });
        info!(%addr, runtime = services.fleet.runtime.name(), store = services.fleet.store.kind(), fleet = %cfg.fleet, "control plane listening");
        Ok(Self {
            addr,
            services,
            shutdown,
            task,
        })
    }

    /// Starts a graceful shutdown and waits for it to complete.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server stops (after [`Server::trigger_shutdown`] or an error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A token that, when cancelled, starts the graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Syncs every bound workspace this process serves (graceful shutdown); returns how
/// many were synced.
async fn sync_on_shutdown(fleet: &Fleet) -> usize {
    let Some(sync) = &fleet.sync else { return 0 };
    let Ok(records) = fleet.store.records().await else {
        return 0;
    };
    let ctx = RequestContext::system("shutdown");
    let mut n = 0;
    for rec in records.iter().filter(|r| r.state == WorkspaceState::Bound) {
        let ours = match &fleet.egress {
            Some(e) => e.serves(&rec.workspace_id).await,
            None => true,
        };
        if ours
            && matches!(
                sync.sync(rec, SyncTrigger::Shutdown, &ctx).await,
                Ok(Some(_))
            )
        {
            n += 1;
        }
    }
    n
}
