//! The `[docker]` section: hardening and sizing of workspace containers on a Docker
//! engine, and its validation (sizes, limits, runtimes, the agent's extra
//! environment, which may never carry a credential).

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError, EMBEDDED_SECCOMP_PROFILE, MIN_PIDS_LIMIT_RUNSC};

/// Hardening and sizing of workspace containers on a Docker engine. Every security
/// layer is on by default; see `docs/security.md` for what each one stops.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Docker socket; empty means `DOCKER_HOST` or `/var/run/docker.sock`.
    pub socket: String,
    /// Workspace image (the offline image locally, `deployment/images/` in production).
    pub image: String,
    /// Host directory holding one socket directory per workspace.
    pub socket_root: PathBuf,
    /// Where the agent's (writable) socket directory is mounted in the container.
    pub socket_mount: String,
    /// Where the (read-only) directory of the egress proxy's socket is mounted.
    pub egress_mount: String,
    /// OCI runtime (`runsc` for gVisor); empty means the engine's default.
    pub oci_runtime: String,
    /// Seccomp profile file; empty means the embedded profile.
    pub seccomp_profile: String,
    /// AppArmor profile name; empty means none is requested.
    pub apparmor_profile: String,
    /// User inside the container.
    pub user: String,
    /// Host uid owning the per-workspace socket directory (the sandbox user's uid as
    /// the host sees it; with userns-remap, the remapped uid).
    pub socket_dir_owner_uid: u32,
    pub memory_bytes: i64,
    /// CPU quota in cores (e.g. 2.0).
    pub cpus: f64,
    pub pids_limit: i64,
    /// Size of the writable `/workspace` tmpfs; a write beyond it fails with ENOSPC.
    pub workspace_size: String,
    pub tmp_size: String,
    pub home_size: String,
    pub run_size: String,
    /// Extra environment for the agent; names that look like credentials are refused.
    pub extra_env: BTreeMap<String, String>,
    /// Region Claude Code uses on Bedrock (`AWS_REGION` of the agent, with the
    /// gateway's Bedrock variables, see `runtime::agent_env`); it must be the egress
    /// policy's `bedrock.region`. Empty: no Bedrock variables.
    pub aws_region: String,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            socket: String::new(),
            image: "workspace-offline:latest".into(),
            socket_root: PathBuf::from("/run/agent-workspaces"),
            socket_mount: "/run/workspace".into(),
            egress_mount: "/run/egress".into(),
            oci_runtime: String::new(),
            seccomp_profile: String::new(),
            apparmor_profile: String::new(),
            user: "1000:1000".into(),
            socket_dir_owner_uid: 1000,
            memory_bytes: 2 * 1024 * 1024 * 1024,
            cpus: 2.0,
            pids_limit: 256,
            workspace_size: "1g".into(),
            tmp_size: "256m".into(),
            home_size: "256m".into(),
            run_size: "16m".into(),
            extra_env: BTreeMap::new(),
            aws_region: "us-east-1".into(),
        }
    }
}

/// A configuration that could not be read or is not valid.
impl DockerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.image.trim().is_empty() {
            return Err(invalid("docker.image", "must not be empty"));
        }
        if !self.socket_root.is_absolute() {
            return Err(invalid("docker.socket_root", "must be an absolute path"));
        }
        if !self.socket_mount.starts_with('/') {
            return Err(invalid("docker.socket_mount", "must be an absolute path"));
        }
        if !self.egress_mount.starts_with('/') || self.egress_mount == self.socket_mount {
            return Err(invalid(
                "docker.egress_mount",
                "must be an absolute path other than docker.socket_mount",
            ));
        }
        if self.memory_bytes < 64 * 1024 * 1024 {
            return Err(invalid("docker.memory_bytes", "must be at least 64 MiB"));
        }
        if !(self.cpus > 0.0 && self.cpus <= 256.0) {
            return Err(invalid("docker.cpus", "must be in (0, 256]"));
        }
        if self.pids_limit < 16 {
            return Err(invalid("docker.pids_limit", "must be at least 16"));
        }
        if self.oci_runtime == "runsc" && self.pids_limit < MIN_PIDS_LIMIT_RUNSC {
            return Err(invalid(
                "docker.pids_limit",
                format!(
                    "with runsc the limit also counts gVisor's own host threads (about 80 when idle): use at least {MIN_PIDS_LIMIT_RUNSC}"
                ),
            ));
        }
        for (field, v) in [
            ("docker.workspace_size", &self.workspace_size),
            ("docker.tmp_size", &self.tmp_size),
            ("docker.home_size", &self.home_size),
            ("docker.run_size", &self.run_size),
        ] {
            if parse_size(v).is_none() {
                return Err(invalid(
                    field,
                    format!("{v:?} is not a size like 512m or 1g"),
                ));
            }
        }
        if self.user.split(':').any(|p| p == "0" || p == "root") {
            return Err(invalid("docker.user", "workspaces never run as root"));
        }
        for key in self.extra_env.keys() {
            if looks_like_credential(key) {
                return Err(invalid(
                    "docker.extra_env",
                    format!("{key} looks like a credential; the sandbox never holds one (the egress proxy injects credentials)"),
                ));
            }
        }
        if !self.seccomp_profile.is_empty() {
            let text = std::fs::read_to_string(&self.seccomp_profile).map_err(|e| {
                invalid(
                    "docker.seccomp_profile",
                    format!("cannot read {}: {e}", self.seccomp_profile),
                )
            })?;
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| invalid("docker.seccomp_profile", format!("not valid JSON: {e}")))?;
        }
        Ok(())
    }

    /// The seccomp profile's JSON content (from the file, or the embedded one).
    pub fn seccomp_profile_content(&self) -> std::io::Result<String> {
        if self.seccomp_profile.is_empty() {
            Ok(EMBEDDED_SECCOMP_PROFILE.to_string())
        } else {
            std::fs::read_to_string(&self.seccomp_profile)
        }
    }
}

/// True for environment names that would carry a credential into the sandbox.
pub fn looks_like_credential(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    // The region is not a secret (Claude Code on Bedrock requires it).
    if matches!(n.as_str(), "AWS_REGION" | "AWS_DEFAULT_REGION") {
        return false;
    }
    n.starts_with("AWS_")
        || n.starts_with("ANTHROPIC_API")
        || [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "PASSWD",
            "CREDENTIAL",
            "API_KEY",
            "PRIVATE_KEY",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// Parses sizes like `512m`, `1g`, `65536k`, `1024` into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.strip_suffix(['k', 'm', 'g']) {
        Some(n) => (
            n,
            match s.chars().last() {
                Some('k') => 1u64 << 10,
                Some('m') => 1 << 20,
                _ => 1 << 30,
            },
        ),
        None => (s.as_str(), 1),
    };
    let n: u64 = num.parse().ok()?;
    (n > 0).then_some(n.checked_mul(mult)?)
}
