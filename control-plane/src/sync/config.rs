//! `[sync]` settings: which object store holds synced workspaces (a local directory,
//! S3, or none), its S3 bucket/prefix/region/endpoint and encryption, the size limits,
//! the debounce delay and the transfer batch size; with defaults and a validation that
//! names the offending field.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Where synced workspaces are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncBackend {
    /// A directory on the control plane's host (the embedded default).
    #[default]
    Local,
    /// An S3 bucket (`aws-sdk-s3`; credentials from the standard chain).
    S3,
    /// No file sync: nothing is saved, nothing is restored.
    None,
}

/// Server-side encryption asked for each S3 object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SseMode {
    /// No SSE header (the bucket's default encryption applies).
    None,
    /// `x-amz-server-side-encryption: AES256` (SSE-S3).
    #[default]
    Aes256,
    /// `aws:kms` with `sse_kms_key_id` (SSE-KMS).
    Kms,
}

/// The `[sync]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// `local` (default), `s3` or `none`.
    pub backend: SyncBackend,
    /// Root directory of the `local` backend.
    pub local_dir: PathBuf,
    /// Bucket of the `s3` backend (required for it).
    pub s3_bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub s3_prefix: String,
    /// Region; default: the standard chain (`AWS_REGION`, profile), else `us-east-1`.
    pub s3_region: Option<String>,
    /// Endpoint URL for S3-compatible stores and moto (`http://127.0.0.1:5000`).
    pub s3_endpoint_url: Option<String>,
    /// Path-style addressing (`<endpoint>/<bucket>/<key>`), needed by moto.
    pub s3_force_path_style: bool,
    /// `none`, `aes256` (default) or `kms`.
    pub sse: SseMode,
    /// KMS key id or ARN; required with `sse = "kms"`, refused otherwise.
    pub sse_kms_key_id: Option<String>,
    /// Largest total size of a workspace's regular files (bytes; default 1 GiB).
    pub max_total_bytes: u64,
    /// Most entries (files, directories, symlinks) of a workspace (default 100,000).
    pub max_files: u64,
    /// Delay that coalesces the syncs requested during a turn (default 2000 ms).
    pub debounce_ms: u64,
    /// Target size of one export/restore tar moved between the control plane and the
    /// agent (default 64 MiB; it must fit the agent's temp dir and archive limit).
    pub archive_batch_bytes: u64,
    /// Object uploads/downloads in flight per sync (default 8).
    pub concurrency: usize,
    /// Where transfers are spooled on the control plane's host (default: the system
    /// temp dir).
    pub spool_dir: Option<PathBuf>,
    /// Rewrite (S3: copy in place) the objects of a conversation that still syncs when
    /// they are older than this many days, so the bucket's lifecycle rules (Glacier
    /// transition at 90 days, expiry at 180, `deployment/s3/`) only ever reach
    /// conversations nobody syncs any more. Default 60; 0 turns it off.
    pub refresh_after_days: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            backend: SyncBackend::Local,
            local_dir: PathBuf::from("/var/lib/agent-workspaces/objects"),
            s3_bucket: String::new(),
            s3_prefix: "workspaces".into(),
            s3_region: None,
            s3_endpoint_url: None,
            s3_force_path_style: false,
            sse: SseMode::Aes256,
            sse_kms_key_id: None,
            max_total_bytes: GIB,
            max_files: 100_000,
            debounce_ms: 2000,
            archive_batch_bytes: 64 * MIB,
            concurrency: 8,
            spool_dir: None,
            refresh_after_days: 60,
        }
    }
}

/// A `[sync]` setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync.{field}: {message}")]
pub struct SyncConfigError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> SyncConfigError {
    SyncConfigError {
        field,
        message: message.into(),
    }
}

/// Most entries a workspace may be configured to hold (the agent's own cap).
pub const MAX_FILES_CAP: u64 = 1_000_000;

impl SyncConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), SyncConfigError> {
        if self.max_total_bytes == 0 {
            return Err(bad("max_total_bytes", "must be greater than 0"));
        }
        if self.max_files == 0 || self.max_files > MAX_FILES_CAP {
            return Err(bad(
                "max_files",
                format!("must be between 1 and {MAX_FILES_CAP}"),
            ));
        }
        if self.archive_batch_bytes < MIB {
            return Err(bad(
                "archive_batch_bytes",
                "must be at least 1 MiB (1048576)",
            ));
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            return Err(bad("concurrency", "must be between 1 and 64"));
        }
        if self.debounce_ms > 600_000 {
            return Err(bad("debounce_ms", "must be at most 600000 (10 minutes)"));
        }
        if self.refresh_after_days > 3650 {
            return Err(bad(
                "refresh_after_days",
                "must be at most 3650 (0 turns it off)",
            ));
        }
        if let Some(dir) = &self.spool_dir {
            if !dir.is_absolute() {
                return Err(bad("spool_dir", "must be an absolute path"));
            }
        }
        match self.backend {
            SyncBackend::None => {}
            SyncBackend::Local => {
                if !self.local_dir.is_absolute() {
                    return Err(bad(
                        "local_dir",
                        format!("must be an absolute path, got {:?}", self.local_dir),
                    ));
                }
            }
            SyncBackend::S3 => {
                validate_bucket(&self.s3_bucket).map_err(|m| bad("s3_bucket", m))?;
                validate_prefix(&self.s3_prefix).map_err(|m| bad("s3_prefix", m))?;
                if let Some(url) = &self.s3_endpoint_url {
                    let ok = (url.starts_with("http://") || url.starts_with("https://"))
                        && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
                    if !ok {
                        return Err(bad(
                            "s3_endpoint_url",
                            format!("must be an http(s) URL with a host, got {url:?}"),
                        ));
                    }
                }
                if let Some(region) = &self.s3_region {
                    let ok = !region.is_empty()
                        && region
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    if !ok {
                        return Err(bad(
                            "s3_region",
                            format!("must look like us-east-1, got {region:?}"),
                        ));
                    }
                }
            }
        }
        match (self.sse, &self.sse_kms_key_id) {
            (SseMode::Kms, None) => Err(bad(
                "sse_kms_key_id",
                "is required with sse = \"kms\" (a key id, alias or ARN)",
            )),
            (SseMode::Kms, Some(k)) if k.trim().is_empty() => {
                Err(bad("sse_kms_key_id", "must not be empty"))
            }
            (SseMode::None | SseMode::Aes256, Some(_)) => {
                Err(bad("sse_kms_key_id", "is only used with sse = \"kms\""))
            }
            _ => Ok(()),
        }
    }

    /// The debounce delay.
    pub fn debounce(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.debounce_ms)
    }
}

/// S3 bucket naming rules (3-63 characters of lower-case letters, digits, `.` and `-`,
/// starting and ending with a letter or digit).
fn validate_bucket(b: &str) -> Result<(), String> {
    if b.is_empty() {
        return Err("is required with backend = \"s3\"".into());
    }
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
        && !b.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{b:?} is not a valid bucket name (3-63 lower-case letters, digits, '.', '-')"
        ))
    }
}

fn validate_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    if p.starts_with('/') || p.ends_with('/') {
        return Err(format!(
            "{p:?} must not start or end with '/' (e.g. \"workspaces\")"
        ));
    }
    if p.len() > 256 {
        return Err("must be at most 256 bytes".into());
    }
    for c in p.split('/') {
        if c.is_empty() || c == "." || c == ".." || c.contains('\0') {
            return Err(format!("{p:?} has an empty, '.', '..' or NUL component"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = SyncConfig::default();
        c.validate().unwrap();
        assert_eq!(c.backend, SyncBackend::Local);
        assert_eq!(c.max_total_bytes, 1 << 30);
        assert_eq!(c.max_files, 100_000);
        assert_eq!(c.debounce_ms, 2000);
    }

    #[test]
    fn errors_name_the_field() {
        type Tweak = Box<dyn Fn(&mut SyncConfig)>;
        let s3 = |c: &mut SyncConfig| {
            c.backend = SyncBackend::S3;
            c.s3_bucket = "my-bucket".into();
        };
        let cases: Vec<(Tweak, &str)> = vec![
            (Box::new(|c| c.max_total_bytes = 0), "max_total_bytes"),
            (Box::new(|c| c.max_files = 0), "max_files"),
            (Box::new(|c| c.max_files = 2_000_000), "max_files"),
            (
                Box::new(|c| c.archive_batch_bytes = 10),
                "archive_batch_bytes",
            ),
            (Box::new(|c| c.concurrency = 0), "concurrency"),
            (Box::new(|c| c.local_dir = "rel/dir".into()), "local_dir"),
            (Box::new(|c| c.spool_dir = Some("tmp".into())), "spool_dir"),
            (Box::new(|c| c.backend = SyncBackend::S3), "s3_bucket"),
            (
                Box::new(move |c| {
                    s3(c);
                    c.s3_bucket = "Bad_Bucket".into();
                }),
                "s3_bucket",
            ),
            (
                Box::new(move |c| {
                    s3(c);
                    c.s3_prefix = "/abs".into();
                }),
                "s3_prefix",
            ),
            (
                Box::new(move |c| {
                    s3(c);
                    c.s3_prefix = "a/../b".into();
                }),
                "s3_prefix",
            ),
            (
                Box::new(move |c| {
                    s3(c);
                    c.s3_endpoint_url = Some("localhost:5000".into());
                }),
                "s3_endpoint_url",
            ),
            (
                Box::new(move |c| {
                    s3(c);
                    c.s3_region = Some("US East".into());
                }),
                "s3_region",
            ),
            (Box::new(|c| c.sse = SseMode::Kms), "sse_kms_key_id"),
            (
                Box::new(|c| c.sse_kms_key_id = Some("k".into())),
                "sse_kms_key_id",
            ),
        ];
        for (tweak, field) in cases {
            let mut c = SyncConfig::default();
            tweak(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with(&format!("sync.{field}: ")), "{e}");
        }
        let mut c = SyncConfig::default();
        s3(&mut c);
        c.s3_endpoint_url = Some("http://127.0.0.1:5000".into());
        c.s3_force_path_style = true;
        c.sse = SseMode::Kms;
        c.sse_kms_key_id = Some("alias/workspaces".into());
        c.validate().unwrap();
    }

    #[test]
    fn toml_and_unknown_fields() {
        let c: SyncConfig = toml_like(
            r#"{"backend":"s3","s3_bucket":"b-1","s3_prefix":"","sse":"none","max_files":5}"#,
        )
        .unwrap();
        assert_eq!(c.backend, SyncBackend::S3);
        assert_eq!(c.sse, SseMode::None);
        assert_eq!(c.max_files, 5);
        assert_eq!(c.debounce_ms, 2000);
        assert!(toml_like(r#"{"bakend":"s3"}"#).is_err());
        assert!(toml_like(r#"{"backend":"gcs"}"#).is_err());
    }

    fn toml_like(json: &str) -> Result<SyncConfig, serde_json::Error> {
        serde_json::from_str(json)
    }
}
