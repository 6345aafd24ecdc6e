//! Assembly and lifecycle of the control-plane process: builds the runtime, store and
//! orchestrator from the configuration, reconciles with what already runs, serves the
//! API, and shuts down gracefully (stop accepting, let streams finish within the
//! grace period, cancel the rest, optionally destroy this fleet's workspaces).

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
    gc::Reaper,
    metrics::Metrics,
    orchestrator::Orchestrator,
    pool::WarmPool,
    reconcile,
    runtime::{docker::DockerRuntime, Runtime},
    store::{memory::MemoryStore, redis::RedisStore, StateStore},
    sync::Syncer,
};

/// A started control plane: its address, its parts, and the handle to stop it.
pub struct Server {
    pub addr: SocketAddr,
    pub orch: Arc<Orchestrator>,
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

/// Renews this instance's liveness mark until `stop`.
fn spawn_heartbeat(
    orch: Arc<Orchestrator>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(crate::orchestrator::INSTANCE_HEARTBEAT) => {}
            }
            if let Err(e) = orch.heartbeat().await {
                warn!(error = %e, "instance heartbeat failed");
            }
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

        let report = reconcile::reconcile(runtime.as_ref(), store.as_ref()).await?;
        info!(?report, "reconciled with running workspaces");
        let mut orch = Orchestrator::new(runtime, store.clone(), cfg.clone(), metrics.clone());
        if let Some(syncer) = Syncer::from_config(&cfg.sync)
            .await
            .map_err(|e| anyhow::anyhow!("sync: {e}"))?
        {
            orch.set_syncer(Arc::new(syncer));
        }
        let egress = if cfg.egress.enabled && orch.runtime().name() == "docker" {
            let e = Egress::new(
                cfg.egress.clone(),
                store,
                orch.instance_id().to_string(),
                &mut registry,
            )
            .map_err(|e| anyhow::anyhow!("egress: {e}"))?;
            let e = Arc::new(e);
            orch.set_egress(e.clone());
            Some(e)
        } else {
            None
        };
        let orch = Arc::new(orch);
        metrics
            .active_containers
            .set(orch.store().records().await?.len() as i64);
        metrics.max_workspaces.set(cfg.max_workspaces as i64);

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
            orch: orch.clone(),
            registry: Arc::new(registry),
            tokens: Arc::new(cfg.tokens.clone()),
            streams_cancel: streams_cancel.clone(),
        };
        let app = api::router(state);

        // Background work: the warm pool's filler and the reaper.
        let background_stop = CancellationToken::new();
        orch.heartbeat().await?;
        let mut background = vec![
            spawn_heartbeat(orch.clone(), background_stop.clone()),
            WarmPool::new(orch.clone()).spawn(background_stop.clone()),
        ];
        if let Some(e) = egress {
            // Listeners of adopted workspaces (and of dead replicas) start here.
            if let Err(err) = e.supervise_once().await {
                warn!(error = %err, "initial egress supervision failed");
            }
            background.push(e.spawn_supervisor(background_stop.clone()));
        }
        if cfg.gc.enabled {
            background.push(Arc::new(Reaper::new(orch.clone())).spawn(background_stop.clone()));
        }

        let grace = Duration::from_secs(cfg.shutdown_grace_secs);
        let cleanup = cfg.cleanup_on_shutdown;
        let stop = shutdown.clone();
        let orch2 = orch.clone();
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
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "server ended with an error");
            }
            streams_cancel.cancel();
            // Nothing is lost on shutdown: bound workspaces are synced first.
            let synced = orch2.sync_all().await;
            if synced > 0 {
                info!(synced, "synced workspaces on shutdown");
            }
            background_stop.cancel();
            for task in background {
                let _ = task.await;
            }
            if cleanup {
                match orch2.destroy_all().await {
                    Ok(n) => info!(destroyed = n, "cleaned up this fleet's workspaces"),
                    Err(e) => warn!(error = %e, "clean-up on shutdown failed"),
                }
            }
        });
        info!(%addr, runtime = orch.runtime().name(), store = orch.store().kind(), fleet = %cfg.fleet, "control plane listening");
        Ok(Self {
            addr,
            orch,
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
