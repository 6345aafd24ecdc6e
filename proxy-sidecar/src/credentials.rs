//! AWS credentials for signing Bedrock requests.
//!
//! The source is the standard AWS chain from `aws-config` (environment, profile, web
//! identity, ECS container credentials, EC2 instance metadata) unless the embedding
//! application supplies its own provider. The SDK's own identity cache lives inside the
//! SDK client orchestrator and is not usable on its own, so this module keeps the last
//! credentials and asks the provider again once they are within
//! [`REFRESH_BEFORE_EXPIRY`] of expiring: credentials are refreshed before they expire,
//! and concurrent requests share one refresh.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use tokio::sync::{Mutex, OnceCell};

/// Refresh credentials this long before their expiry.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Why credentials could not be obtained.
#[derive(Debug, thiserror::Error)]
#[error("AWS credentials unavailable: {0}")]
pub struct CredentialsError(String);

/// Lazily built provider plus a refresh-ahead cache.
pub struct CredentialCache {
    provider: OnceCell<SharedCredentialsProvider>,
    region: Option<String>,
    cached: RwLock<Option<Credentials>>,
    refresh: Mutex<()>,
}

impl CredentialCache {
    /// Use the default AWS chain, built on first use.
    pub fn default_chain(region: Option<String>) -> CredentialCache {
        CredentialCache {
            provider: OnceCell::new(),
            region,
            cached: RwLock::new(None),
            refresh: Mutex::new(()),
        }
    }

    /// Use a given provider (control plane, tests).
    pub fn with_provider(provider: SharedCredentialsProvider) -> CredentialCache {
        CredentialCache {
            provider: OnceCell::new_with(Some(provider)),
            region: None,
            cached: RwLock::new(None),
            refresh: Mutex::new(()),
        }
    }

    async fn provider(&self) -> &SharedCredentialsProvider {
        self.provider
            .get_or_init(|| async {
                let region = self
                    .region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".to_string());
                let chain =
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(aws_config::Region::new(region))
                        .build()
                        .await;
                SharedCredentialsProvider::new(chain)
            })
            .await
    }

    fn fresh(creds: &Credentials, now: SystemTime) -> bool {
        match creds.expiry() {
            None => true,
            Some(exp) => exp
                .duration_since(now)
                .map(|left| left > REFRESH_BEFORE_EXPIRY)
                .unwrap_or(false),
        }
    }

    fn usable(creds: &Credentials, now: SystemTime) -> bool {
        creds.expiry().is_none_or(|exp| exp > now)
    }

    fn current(&self) -> Option<Credentials> {
        self.cached.read().ok().and_then(|c| c.clone())
    }

    /// Credentials valid for at least [`REFRESH_BEFORE_EXPIRY`] when the source can
    /// provide them; otherwise the still-valid cached ones.
    pub async fn get(&self) -> Result<Credentials, CredentialsError> {
        if let Some(c) = self.current() {
            if Self::fresh(&c, SystemTime::now()) {
                return Ok(c);
            }
        }
        let _guard = self.refresh.lock().await;
        // Another task may have refreshed while this one waited.
        if let Some(c) = self.current() {
            if Self::fresh(&c, SystemTime::now()) {
                return Ok(c);
            }
        }
        let provider = self.provider().await;
        match provider.provide_credentials().await {
            Ok(c) => {
                tracing::debug!(
                    expiry = ?c.expiry(),
                    "obtained AWS credentials"
                );
                if let Ok(mut slot) = self.cached.write() {
                    *slot = Some(c.clone());
                }
                Ok(c)
            }
            Err(e) => {
                let msg = aws_error_chain(&e);
                match self.current() {
                    Some(c) if Self::usable(&c, SystemTime::now()) => {
                        tracing::warn!(error = %msg, "refreshing AWS credentials failed; using cached ones until they expire");
                        Ok(c)
                    }
                    _ => Err(CredentialsError(msg)),
                }
            }
        }
    }
}

fn aws_error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Convenience: a static provider (tests, local development).
pub fn static_provider(
    access_key: &str,
    secret_key: &str,
    token: Option<String>,
) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        access_key,
        secret_key,
        token,
        None,
        "proxy-sidecar-static",
    ))
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").finish_non_exhaustive()
    }
}

/// Shared handle.
pub type SharedCredentialCache = Arc<CredentialCache>;
