//! Leases: a store lock held for as long as its holder works, renewed in the
//! background, so a holder that dies (SIGKILL, crash) frees it within one short TTL
//! instead of blocking every replica for a long one.

use std::{sync::Arc, time::Duration};

use tracing::warn;

use super::{StateStore, StoreError};

/// Time-to-live of a lease; renewed every third of it.
pub const LEASE_TTL_MS: u64 = 6_000;

/// A held lease; released on [`Lease::release`] or, best effort, on drop.
pub struct Lease {
    store: Arc<dyn StateStore>,
    name: String,
    owner: String,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl Lease {
    /// Takes the lease if free (or already ours).
    pub async fn try_acquire(
        store: &Arc<dyn StateStore>,
        name: &str,
        owner: &str,
    ) -> Result<Option<Lease>, StoreError> {
        if !store.try_lock(name, owner, LEASE_TTL_MS).await? {
            return Ok(None);
        }
        let (s, n, o) = (store.clone(), name.to_string(), owner.to_string());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS / 3)).await;
                match s.try_lock(&n, &o, LEASE_TTL_MS).await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!(lease = %n, "lease lost to another holder");
                        break;
                    }
                    Err(e) => warn!(lease = %n, error = %e, "renewing a lease failed"),
                }
            }
        });
        Ok(Some(Lease {
            store: store.clone(),
            name: name.to_string(),
            owner: owner.to_string(),
            renewer,
            released: false,
        }))
    }

    /// Stops renewing and releases.
    pub async fn release(mut self) {
        self.renewer.abort();
        self.released = true;
        if let Err(e) = self.store.unlock(&self.name, &self.owner).await {
            warn!(lease = %self.name, error = %e, "releasing a lease failed");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if !self.released {
            let (s, n, o) = (self.store.clone(), self.name.clone(), self.owner.clone());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = s.unlock(&n, &o).await;
                });
            }
        }
    }
}
