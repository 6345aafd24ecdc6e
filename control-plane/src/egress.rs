//! Egress in local mode: one listener of the egress proxy (`proxy-sidecar`, as a
//! library) per workspace, on the workspace's `egress/proxy.sock`, with that
//! workspace's policy: deny-all while it waits in the pool, the conversation's
//! policy once bound (set at claim time, changeable at run time).
//!
//! A listener is owned by the replica holding the workspace's `egress:<ws>` lease.
//! A supervisor loop on every replica (every second) starts listeners for workspaces
//! nobody serves (a dead replica's, or one whose listener died or whose socket was
//! removed), applies policy changes made elsewhere, and stops listeners of workspaces
//! that are gone.

use std::{
    collections::{hash_map::DefaultHasher, BTreeMap, HashMap},
    hash::{Hash, Hasher},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use proxy_sidecar::{ListenerContext, ListenerHandle, Policy, PolicyConfig, Proxy, ProxyConfig};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    error::{Error, Result},
    store::{lease::Lease, ConversationKey, StateStore, WorkspaceRecord, WorkspaceState},
};

/// How often every replica reconciles its listeners with the records.
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);

/// The `[egress]` configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// Serve an egress proxy per workspace (local runtime).
    pub enabled: bool,
    /// Settings shared by all listeners (timeouts, limits, TLS roots, DNS).
    pub proxy: ProxyConfig,
    /// Policy of a conversation that has none of its own and whose tenant has none.
    pub default_policy: PolicyConfig,
    /// Per-tenant policies (replace the default for that tenant's conversations).
    pub tenants: BTreeMap<String, PolicyConfig>,
    /// The environment variables a policy set through the API may name in an injected
    /// header (`{ env = "…" }`), admins included: the operator's word on which of the
    /// control plane's secrets may leave, e.g. `["MCP_GITHUB_TOKEN"]`. Empty: none.
    pub api_secret_env: Vec<String>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            proxy: ProxyConfig::default(),
            default_policy: PolicyConfig {
                allow: ["pypi.org", "files.pythonhosted.org", "registry.npmjs.org"]
                    .into_iter()
                    .map(|h| proxy_sidecar::AllowEntryConfig::Host(h.to_string()))
                    .collect(),
                bedrock: proxy_sidecar::BedrockConfig {
                    enabled: true,
                    region: Some("us-east-1".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            tenants: BTreeMap::new(),
            api_secret_env: Vec::new(),
        }
    }
}

impl EgressConfig {
    /// Checks the proxy settings and every policy; the message names the policy.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.proxy
            .validate()
            .map_err(|e| format!("egress.proxy: {e}"))?;
        Policy::from_config(&self.default_policy)
            .map_err(|e| format!("egress.default_policy: {e}"))?;
        for (tenant, p) in &self.tenants {
            Policy::from_config(p).map_err(|e| format!("egress.tenants.{tenant}: {e}"))?;
        }
        Ok(())
    }
}

struct Owned {
    handle: ListenerHandle,
    lease: Lease,
    version: u64,
    path: PathBuf,
}

/// The listeners this process serves.
pub struct Egress {
    proxy: Proxy,
    cfg: EgressConfig,
    store: Arc<dyn StateStore>,
    owner: String,
    listeners: tokio::sync::Mutex<HashMap<String, Owned>>,
}

impl Egress {
    /// Builds the shared proxy (resolver, upstream pool, AWS credentials, metrics).
    pub fn new(
        cfg: EgressConfig,
        store: Arc<dyn StateStore>,
        owner: String,
        registry: &mut prometheus_client::registry::Registry,
    ) -> std::result::Result<Self, String> {
        cfg.validate()?;
        let proxy = Proxy::new(cfg.proxy.clone()).map_err(|e| format!("egress.proxy: {e}"))?;
        proxy.register_metrics(registry);
        Ok(Self {
            proxy,
            cfg,
            store,
            owner,
            listeners: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Never dial these (e.g. the control plane's own API address).
    pub fn add_own_address(&self, addr: std::net::SocketAddr) {
        self.proxy.add_own_address(addr);
    }

    /// The policy a workspace gets: deny-all while pooled; once bound, the
    /// conversation's own, else its tenant's, else the default.
    pub async fn policy_for(&self, rec: &WorkspaceRecord) -> Result<PolicyConfig> {
        let (Some(t), Some(c)) = (&rec.tenant_id, &rec.conversation_id) else {
            return Ok(PolicyConfig::default());
        };
        if rec.state != WorkspaceState::Bound {
            return Ok(PolicyConfig::default());
        }
        if let Some(p) = self
            .conversation_policy(&ConversationKey::new(t, c))
            .await?
        {
            return Ok(p);
        }
        Ok(self
            .cfg
            .tenants
            .get(t)
            .cloned()
            .unwrap_or_else(|| self.cfg.default_policy.clone()))
    }

    /// The policy set for a conversation through the API, if any.
    pub async fn conversation_policy(&self, key: &ConversationKey) -> Result<Option<PolicyConfig>> {
        let Some(json) = self.store.conversation_policy(key).await? else {
            return Ok(None);
        };
        serde_json::from_str(&json).map(Some).map_err(|e| {
            Error::BadRequest(format!(
                "stored egress policy of {}/{} is invalid: {e}",
                key.tenant_id, key.conversation_id
            ))
        })
    }

    /// Stores (or, with `None`, clears) a conversation's policy; the caller has
    /// validated it. Applied to its workspace by [`Egress::ensure`].
    pub async fn set_conversation_policy(
        &self,
        key: &ConversationKey,
        policy: Option<&PolicyConfig>,
    ) -> Result<()> {
        let json = policy
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::BadRequest(format!("egress policy: {e}")))?;
        Ok(self
            .store
            .set_conversation_policy(key, json.as_deref())
            .await?)
    }

    /// The configured policy of a tenant's conversations: `("tenant", …)` or
    /// `("default", …)`.
    pub fn configured_policy(&self, tenant: &str) -> (&'static str, PolicyConfig) {
        match self.cfg.tenants.get(tenant) {
            Some(p) => ("tenant", p.clone()),
            None => ("default", self.cfg.default_policy.clone()),
        }
    }

    /// Starts, updates or restarts the listener of `rec` if this process owns it (or
    /// can take it over). A no-op for workspaces without an egress socket.
    pub async fn ensure(&self, rec: &WorkspaceRecord) -> Result<()> {
        let Some(path) = rec.egress_socket.clone() else {
            return Ok(());
        };
        if rec.state == WorkspaceState::Starting {
            return Ok(());
        }
        let policy_cfg = self.policy_for(rec).await?;
        let ctx = ListenerContext {
            workspace_id: rec.workspace_id.clone(),
            conversation_id: rec.conversation_id.clone().unwrap_or_default(),
            tenant_id: rec.tenant_id.clone().unwrap_or_default(),
        };
        let version = version_of(&ctx, &policy_cfg);
        let mut listeners = self.listeners.lock().await;
        if let Some(o) = listeners.get(&rec.workspace_id) {
            let socket_there = std::fs::symlink_metadata(&o.path).is_ok();
            if o.version == version && o.handle.is_running() && socket_there {
                return Ok(());
            }
        }
        let lease = match listeners.remove(&rec.workspace_id) {
            Some(old) => {
                old.handle.shutdown().await;
                old.lease
            }
            None => {
                let name = format!("egress:{}", rec.workspace_id);
                match Lease::try_acquire(&self.store, &name, &self.owner).await? {
                    Some(l) => l,
                    None => return Ok(()), // another replica serves it
                }
            }
        };
        let policy = Policy::from_config(&policy_cfg)
            .map_err(|e| Error::BadRequest(format!("egress policy: {e}")))?;
        let handle = match self.proxy.serve_unix(&path, ctx, policy).await {
            Ok(h) => h,
            Err(e) => {
                lease.release().await;
                return Err(Error::BadRequest(format!(
                    "cannot serve the egress proxy on {}: {e}",
                    path.display()
                )));
            }
        };
        info!(workspace_id = %rec.workspace_id, socket = %path.display(), "egress listener serving");
        listeners.insert(
            rec.workspace_id.clone(),
            Owned {
                handle,
                lease,
                version,
                path,
            },
        );
        Ok(())
    }

    /// Stops the listener of a workspace (it is going away).
    pub async fn release(&self, workspace_id: &str) {
        let owned = self.listeners.lock().await.remove(workspace_id);
        if let Some(o) = owned {
            o.handle.shutdown().await;
            o.lease.release().await;
        }
    }

    /// Whether this process serves the workspace's egress.
    pub async fn serves(&self, workspace_id: &str) -> bool {
        self.listeners.lock().await.contains_key(workspace_id)
    }

    /// One reconciliation pass (the supervisor's body).
    pub async fn supervise_once(&self) -> Result<()> {
        let records = self.store.records().await?;
        let known: std::collections::HashSet<&str> =
            records.iter().map(|r| r.workspace_id.as_str()).collect();
        let gone: Vec<String> = self
            .listeners
            .lock()
            .await
            .keys()
            .filter(|w| !known.contains(w.as_str()))
            .cloned()
            .collect();
        for ws in gone {
            self.release(&ws).await;
        }
        for rec in &records {
            if let Err(e) = self.ensure(rec).await {
                warn!(workspace_id = %rec.workspace_id, error = %e, "egress listener");
            }
        }
        Ok(())
    }

    /// Runs [`Egress::supervise_once`] every second until `stop`, then closes every
    /// listener of this process.
    pub fn spawn_supervisor(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            crate::periodic::every(SUPERVISE_EVERY, &stop, || async {
                if let Err(e) = self.supervise_once().await {
                    warn!(error = %e, "egress supervision failed");
                }
            })
            .await;
            let all: Vec<String> = self.listeners.lock().await.keys().cloned().collect();
            for ws in all {
                self.release(&ws).await;
            }
        })
    }
}

fn version_of(ctx: &ListenerContext, policy: &PolicyConfig) -> u64 {
    let mut h = DefaultHasher::new();
    ctx.workspace_id.hash(&mut h);
    ctx.conversation_id.hash(&mut h);
    ctx.tenant_id.hash(&mut h);
    serde_json::to_string(policy)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}
