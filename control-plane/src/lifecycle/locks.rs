//! The conversation lock: one holder at a time per (tenant, conversation), in this
//! process (a tokio mutex) and across replicas (a short store lease), so concurrent
//! first requests create exactly one workspace. Bind-if-absent in the store stays the
//! final arbiter; this lock only keeps replicas from doing wasted work.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    store::{lease::Lease, ConversationKey, StateStore},
};

#[derive(Default)]
pub struct ConversationLocks {
    local: Mutex<HashMap<ConversationKey, Weak<tokio::sync::Mutex<()>>>>,
}

impl ConversationLocks {
    fn local(&self, key: &ConversationKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = map.get(key).and_then(Weak::upgrade) {
            return l;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.clone(), Arc::downgrade(&l));
        l
    }

    /// Runs `f` holding the conversation's lock; gives up after `wait` with
    /// [`Error::AgentNotReady`] (another holder is still creating the workspace).
    pub async fn with<T, F, Fut>(
        &self,
        store: &Arc<dyn StateStore>,
        owner: &str,
        key: &ConversationKey,
        wait: Duration,
        f: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let local = self.local(key);
        let _guard = local.lock().await;
        let name = format!("conv:{}:{}", key.tenant_id, key.conversation_id);
        let deadline = Instant::now() + wait;
        let mut delay = Duration::from_millis(5);
        let lease = loop {
            if let Some(l) = Lease::try_acquire(store, &name, owner).await? {
                break l;
            }
            if Instant::now() >= deadline {
                return Err(Error::AgentNotReady(wait.as_secs()));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        };
        let out = f().await;
        lease.release().await;
        out
    }
}
