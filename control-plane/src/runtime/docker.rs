//! The Docker runtime: one hardened container per workspace on a Docker engine, via
//! bollard. Owns the container's security settings (every layer of the brief, each
//! configurable in [`DockerConfig`]), its labels, and the per-workspace socket
//! directory on the host that is bind-mounted into that container only.
//!
//! The socket directory `<socket_root>/<ws>/` (root, 0755) holds two mounts:
//! `agent/` (owned by the sandbox user, 0700, read-write at `socket_mount`), where the
//! agent creates `agent.sock`; and `egress/` (root, 0755, **read-only** at
//! `egress_mount`), where the control plane serves the workspace's egress proxy on
//! `proxy.sock`. The sandbox can therefore never place a symlink where the control
//! plane (root) creates or chmods a file.

use std::{
    collections::HashMap,
    os::unix::fs::{chown, DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use bollard::{
    errors::Error as DockerError,
    models::{ContainerCreateBody, ContainerSummary, HostConfig, HostConfigLogConfig},
    query_parameters::{
        CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
        RemoveContainerOptionsBuilder,
    },
    Docker,
};
use tracing::{debug, info, warn};

use super::{agent_env, Endpoint, Runtime, RuntimeError, RuntimeWorkspace, WorkspaceSpec};
use crate::{
    config::{parse_size, DockerConfig},
    time_util,
};

/// Label prefix marking containers as ours.
pub const LABEL_PREFIX: &str = "io.agent-workspace";
pub const LABEL_MANAGED: &str = "io.agent-workspace.managed";
pub const LABEL_FLEET: &str = "io.agent-workspace.fleet";
pub const LABEL_WORKSPACE: &str = "io.agent-workspace.workspace-id";
pub const LABEL_TENANT: &str = "io.agent-workspace.tenant";
pub const LABEL_CONVERSATION: &str = "io.agent-workspace.conversation";
pub const LABEL_CREATED: &str = "io.agent-workspace.created-at";

/// Name of the agent's socket inside the agent directory.
pub const AGENT_SOCKET: &str = "agent.sock";
/// Name of the egress proxy's socket inside the egress directory.
pub const PROXY_SOCKET: &str = "proxy.sock";
/// Subdirectory (of a workspace's socket directory) the sandbox may write.
pub const AGENT_DIR: &str = "agent";
/// Subdirectory (of a workspace's socket directory) only the control plane writes.
pub const EGRESS_DIR: &str = "egress";

/// Workspaces as containers on one Docker engine.
pub struct DockerRuntime {
    docker: Docker,
    cfg: DockerConfig,
    fleet: String,
    seccomp: String,
}

fn docker_err(e: DockerError) -> RuntimeError {
    RuntimeError::Unavailable(e.to_string())
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerRuntime {
    /// Connects to the engine (negotiating the API version) and prepares the socket
    /// root. Fails with a clear message when the engine does not answer.
    pub async fn connect(cfg: DockerConfig, fleet: String) -> Result<Self, RuntimeError> {
        let docker = if cfg.socket.is_empty() {
            Docker::connect_with_local_defaults()
        } else {
            Docker::connect_with_socket(&cfg.socket, 120, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| RuntimeError::Unavailable(format!("cannot connect to Docker: {e}")))?;
        let docker = docker.negotiate_version().await.map_err(|e| {
            RuntimeError::Unavailable(format!("Docker engine does not answer: {e}"))
        })?;
        let seccomp = cfg
            .seccomp_profile_content()
            .map_err(|e| RuntimeError::Other(format!("seccomp profile: {e}")))?;
        prepare_socket_root(&cfg.socket_root)?;
        Ok(Self {
            docker,
            cfg,
            fleet,
            seccomp,
        })
    }

    /// The bollard client, for callers that need engine calls the trait lacks.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The host directory holding a workspace's sockets.
    pub fn socket_dir(&self, workspace_id: &str) -> PathBuf {
        self.cfg.socket_root.join(workspace_id)
    }

    fn sandbox_ids(&self) -> (u32, u32) {
        let mut parts = self.cfg.user.split(':');
        let uid = parts.next().and_then(|u| u.parse().ok()).unwrap_or(1000);
        let gid = parts.next().and_then(|g| g.parse().ok()).unwrap_or(uid);
        (uid, gid)
    }

    /// The container definition: every hardening layer, applied here and only here.
    pub fn container_body(&self, spec: &WorkspaceSpec, created_at_ms: i64) -> ContainerCreateBody {
        let c = &self.cfg;
        let (uid, gid) = self.sandbox_ids();
        let mount = c.socket_mount.trim_end_matches('/');
        let egress_mount = c.egress_mount.trim_end_matches('/');
        let size = |s: &str| parse_size(s).unwrap_or(1 << 20);

        let mut tmpfs = HashMap::new();
        tmpfs.insert(
            "/tmp".to_string(),
            format!("rw,noexec,nosuid,nodev,size={}", size(&c.tmp_size)),
        );
        tmpfs.insert(
            "/home/appuser".to_string(),
            format!(
                "rw,noexec,nosuid,nodev,size={},uid={uid},gid={gid},mode=0700",
                size(&c.home_size)
            ),
        );
        tmpfs.insert(
            "/run".to_string(),
            format!("rw,noexec,nosuid,nodev,size={}", size(&c.run_size)),
        );
        tmpfs.insert(
            "/workspace".to_string(),
            format!(
                "rw,exec,nosuid,nodev,size={},uid={uid},gid={gid},mode=0755",
                size(&c.workspace_size)
            ),
        );

        let mut security_opt = vec![
            "no-new-privileges:true".to_string(),
            format!("seccomp={}", self.seccomp),
        ];
        if !c.apparmor_profile.is_empty() {
            security_opt.push(format!("apparmor={}", c.apparmor_profile));
        }

        let mut labels = HashMap::new();
        labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
        labels.insert(LABEL_FLEET.to_string(), self.fleet.clone());
        labels.insert(LABEL_WORKSPACE.to_string(), spec.workspace_id.clone());
        labels.insert(
            LABEL_TENANT.to_string(),
            spec.tenant_id.clone().unwrap_or_default(),
        );
        labels.insert(
            LABEL_CONVERSATION.to_string(),
            spec.conversation_id.clone().unwrap_or_default(),
        );
        labels.insert(LABEL_CREATED.to_string(), time_util::rfc3339(created_at_ms));

        let mut env: Vec<String> = vec![
            format!("WORKSPACE_AGENT_LISTEN=unix:{mount}/{AGENT_SOCKET}"),
            "WORKSPACE_AGENT_ROOT=/workspace".into(),
            format!("WORKSPACE_AGENT_PROXY_SOCKET={egress_mount}/{PROXY_SOCKET}"),
            "WORKSPACE_AGENT_RELAY_LISTEN=127.0.0.1:8080".into(),
            "HOME=/home/appuser".into(),
            "PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin".into(),
        ];
        env.extend(
            agent_env::proxy_env()
                .into_iter()
                .chain(agent_env::bedrock_env(&c.aws_region))
                .map(|(k, v)| format!("{k}={v}")),
        );
        env.extend(c.extra_env.iter().map(|(k, v)| format!("{k}={v}")));

        let host_config = HostConfig {
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            tmpfs: Some(tmpfs),
            binds: Some(vec![
                format!(
                    "{}:{mount}:rw",
                    self.socket_dir(&spec.workspace_id)
                        .join(AGENT_DIR)
                        .display()
                ),
                format!(
                    "{}:{egress_mount}:ro",
                    self.socket_dir(&spec.workspace_id)
                        .join(EGRESS_DIR)
                        .display()
                ),
            ]),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec![]),
            security_opt: Some(security_opt),
            pids_limit: Some(c.pids_limit),
            memory: Some(c.memory_bytes),
            // Equal to `memory`: no swap at all.
            memory_swap: Some(c.memory_bytes),
            nano_cpus: Some((c.cpus * 1e9) as i64),
            ipc_mode: Some("private".into()),
            init: Some(true),
            privileged: Some(false),
            runtime: (!c.oci_runtime.is_empty()).then(|| c.oci_runtime.clone()),
            shm_size: Some(64 * 1024 * 1024),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), "10m".to_string()),
                    ("max-file".to_string(), "2".to_string()),
                ])),
            }),
            ..Default::default()
        };

        ContainerCreateBody {
            image: Some(c.image.clone()),
            user: Some(c.user.clone()),
            working_dir: Some("/workspace".into()),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    fn make_socket_dir(&self, workspace_id: &str) -> Result<PathBuf, RuntimeError> {
        let dir = self.socket_dir(workspace_id);
        let err = |m: String| RuntimeError::Create {
            workspace_id: workspace_id.to_string(),
            message: m,
        };
        let mkdir =
            |path: &Path, mode: u32| match std::fs::DirBuilder::new().mode(mode).create(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(err(format!("socket dir {}: {e}", path.display()))),
            };
        let chmod = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| err(format!("chmod {}: {e}", path.display())))
        };
        // Everything is created and permissioned before the container exists, so the
        // sandbox cannot race these calls.
        mkdir(&dir, 0o755)?;
        chmod(&dir, 0o755)?;
        let agent_dir = dir.join(AGENT_DIR);
        mkdir(&agent_dir, 0o700)?;
        let (_, gid) = self.sandbox_ids();
        chown(&agent_dir, Some(self.cfg.socket_dir_owner_uid), Some(gid))
            .map_err(|e| err(format!("chown {}: {e}", agent_dir.display())))?;
        chmod(&agent_dir, 0o700)?;
        let egress_dir = dir.join(EGRESS_DIR);
        mkdir(&egress_dir, 0o755)?;
        chmod(&egress_dir, 0o755)?;
        Ok(dir)
    }

    fn summary_workspace(&self, s: &ContainerSummary) -> Option<RuntimeWorkspace> {
        let labels = s.labels.as_ref()?;
        let workspace_id = labels.get(LABEL_WORKSPACE)?.clone();
        let running = s
            .state
            .as_ref()
            .map(|st| st.to_string() == "running")
            .unwrap_or(false);
        Some(self.workspace_from_labels(
            workspace_id,
            s.id.clone().unwrap_or_default(),
            labels,
            running,
        ))
    }

    fn workspace_from_labels(
        &self,
        workspace_id: String,
        runtime_id: String,
        labels: &HashMap<String, String>,
        running: bool,
    ) -> RuntimeWorkspace {
        let non_empty = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        let socket_dir = self.socket_dir(&workspace_id);
        RuntimeWorkspace {
            runtime_id,
            tenant_id: non_empty(LABEL_TENANT),
            conversation_id: non_empty(LABEL_CONVERSATION),
            created_at_ms: labels
                .get(LABEL_CREATED)
                .and_then(|s| time_util::parse_rfc3339(s))
                .unwrap_or(0),
            running,
            endpoint: Endpoint::Unix(socket_dir.join(AGENT_DIR).join(AGENT_SOCKET)),
            egress_socket: Some(socket_dir.join(EGRESS_DIR).join(PROXY_SOCKET)),
            socket_dir: Some(socket_dir),
            workspace_id,
        }
    }

    fn remove_socket_dir(&self, workspace_id: &str) -> Result<(), RuntimeError> {
        let dir = self.socket_dir(workspace_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::Destroy {
                workspace_id: workspace_id.to_string(),
                message: format!("removing {}: {e}", dir.display()),
            }),
        }
    }
}

fn prepare_socket_root(root: &Path) -> Result<(), RuntimeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .map_err(|e| {
            RuntimeError::Unavailable(format!("cannot create socket root {}: {e}", root.display()))
        })
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn ping(&self) -> Result<(), RuntimeError> {
        self.docker.ping().await.map(|_| ()).map_err(docker_err)
    }

    async fn create(&self, spec: &WorkspaceSpec) -> Result<RuntimeWorkspace, RuntimeError> {
        let created_at_ms = time_util::now_ms();
        let socket_dir = self.make_socket_dir(&spec.workspace_id)?;
        let body = self.container_body(spec, created_at_ms);
        let labels = body.labels.clone().unwrap_or_default();
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.workspace_id)
            .build();
        let fail = |message: String| RuntimeError::Create {
            workspace_id: spec.workspace_id.clone(),
            message,
        };
        let created = match self.docker.create_container(Some(opts), body).await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.remove_socket_dir(&spec.workspace_id);
                return Err(fail(e.to_string()));
            }
        };
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            warn!(workspace_id = %spec.workspace_id, error = %e, "start failed; removing the container");
            let _ = self.destroy(&spec.workspace_id).await;
            return Err(fail(e.to_string()));
        }
        info!(
            workspace_id = %spec.workspace_id,
            container_id = %created.id,
            tenant_id = spec.tenant_id.as_deref().unwrap_or(""),
            conversation_id = spec.conversation_id.as_deref().unwrap_or(""),
            socket_dir = %socket_dir.display(),
            "container started"
        );
        Ok(self.workspace_from_labels(spec.workspace_id.clone(), created.id, &labels, true))
    }

    /// The agent has bound `agent.sock`: its directory goes to root (0700), so the
    /// sandbox (same uid as the agent) can no longer rename, replace or add entries
    /// there — no socket of its own where the control plane connects, and no file on
    /// the host's disk outside the sandbox's limits. The socket itself stays as bound.
    async fn seal(&self, workspace_id: &str) -> Result<(), RuntimeError> {
        let dir = self.socket_dir(workspace_id).join(AGENT_DIR);
        let err = |m: String| RuntimeError::Create {
            workspace_id: workspace_id.to_string(),
            message: m,
        };
        chown(&dir, Some(0), Some(0)).map_err(|e| err(format!("chown {}: {e}", dir.display())))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err(format!("chmod {}: {e}", dir.display())))
    }

    async fn destroy(&self, workspace_id: &str) -> Result<(), RuntimeError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(workspace_id, Some(opts)).await {
            Ok(()) => debug!(workspace_id, "container removed"),
            Err(e) if is_not_found(&e) => debug!(workspace_id, "container already gone"),
            // A removal already in progress (e.g. a concurrent destroy) is success too.
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => debug!(workspace_id, "container removal already in progress"),
            Err(e) => {
                return Err(RuntimeError::Destroy {
                    workspace_id: workspace_id.to_string(),
                    message: e.to_string(),
                })
            }
        }
        self.remove_socket_dir(workspace_id)
    }

    async fn list(&self) -> Result<Vec<RuntimeWorkspace>, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_FLEET}={}", self.fleet),
            ],
        )]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(docker_err)?;
        Ok(list
            .iter()
            .filter_map(|s| self.summary_workspace(s))
            .collect())
    }

    async fn inspect(&self, workspace_id: &str) -> Result<Option<RuntimeWorkspace>, RuntimeError> {
        match self
            .docker
            .inspect_container(workspace_id, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => {
                let labels = c
                    .config
                    .as_ref()
                    .and_then(|cfg| cfg.labels.clone())
                    .unwrap_or_default();
                if labels.get(LABEL_FLEET) != Some(&self.fleet) {
                    return Ok(None);
                }
                let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
                Ok(Some(self.workspace_from_labels(
                    workspace_id.to_string(),
                    c.id.unwrap_or_default(),
                    &labels,
                    running,
                )))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(docker_err(e)),
        }
    }
}
