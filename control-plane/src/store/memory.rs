//! The embedded, in-process state store: everything in one mutex-guarded map set.
//! Atomicity across tasks comes from the mutex; it is not shared between processes.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{Claim, ConversationKey, PoolSizing, StateStore, StoreError, WorkspaceRecord};

#[derive(Default)]
struct Inner {
    bindings: HashMap<ConversationKey, String>,
    records: HashMap<String, WorkspaceRecord>,
    locks: HashMap<String, (String, Instant)>,
    pool: VecDeque<String>,
    sizing: Option<PoolSizing>,
    policies: HashMap<ConversationKey, String>,
}

/// In-memory [`StateStore`].
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Result<T, StoreError> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))?;
        Ok(f(&mut guard))
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|_| ())
    }

    async fn binding(&self, key: &ConversationKey) -> Result<Option<String>, StoreError> {
        self.with(|i| i.bindings.get(key).cloned())
    }

    async fn bind_if_absent(
        &self,
        key: &ConversationKey,
        workspace_id: &str,
    ) -> Result<String, StoreError> {
        self.with(|i| {
            i.bindings
                .entry(key.clone())
                .or_insert_with(|| workspace_id.to_string())
                .clone()
        })
    }

    async fn unbind(&self, key: &ConversationKey, workspace_id: &str) -> Result<bool, StoreError> {
        self.with(|i| {
            if i.bindings.get(key).map(String::as_str) == Some(workspace_id) {
                i.bindings.remove(key);
                true
            } else {
                false
            }
        })
    }

    async fn bindings(&self) -> Result<Vec<(ConversationKey, String)>, StoreError> {
        self.with(|i| {
            let mut v: Vec<_> = i
                .bindings
                .iter()
                .map(|(k, w)| (k.clone(), w.clone()))
                .collect();
            v.sort();
            v
        })
    }

    async fn put_record(&self, record: &WorkspaceRecord) -> Result<(), StoreError> {
        self.with(|i| {
            let mut new = record.clone();
            // Activity and sync times only move forward, whatever the writer read.
            if let Some(old) = i.records.get(&record.workspace_id) {
                new.last_active_ms = new.last_active_ms.max(old.last_active_ms);
                new.last_synced_ms = new.last_synced_ms.max(old.last_synced_ms);
            }
            i.records.insert(record.workspace_id.clone(), new);
        })
    }

    async fn record(&self, workspace_id: &str) -> Result<Option<WorkspaceRecord>, StoreError> {
        self.with(|i| i.records.get(workspace_id).cloned())
    }

    async fn delete_record(&self, workspace_id: &str) -> Result<(), StoreError> {
        self.with(|i| {
            i.records.remove(workspace_id);
        })
    }

    async fn records(&self) -> Result<Vec<WorkspaceRecord>, StoreError> {
        self.with(|i| {
            let mut v: Vec<_> = i.records.values().cloned().collect();
            v.sort_by(|a, b| a.workspace_id.cmp(&b.workspace_id));
            v
        })
    }

    async fn touch(&self, workspace_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.with(|i| {
            if let Some(r) = i.records.get_mut(workspace_id) {
                r.last_active_ms = r.last_active_ms.max(now_ms);
            }
        })
    }

    async fn mark_synced(&self, workspace_id: &str, at_ms: i64) -> Result<(), StoreError> {
        self.with(|i| {
            if let Some(r) = i.records.get_mut(workspace_id) {
                r.last_synced_ms = Some(r.last_synced_ms.map_or(at_ms, |p| p.max(at_ms)));
            }
        })
    }

    async fn reserve(&self, record: &WorkspaceRecord, cap: usize) -> Result<bool, StoreError> {
        self.with(|i| {
            if i.records.contains_key(&record.workspace_id) {
                return true;
            }
            if i.records.len() >= cap {
                return false;
            }
            i.records
                .insert(record.workspace_id.clone(), record.clone());
            true
        })
    }

    async fn pool_push(&self, workspace_id: &str) -> Result<(), StoreError> {
        self.with(|i| {
            if !i.pool.iter().any(|w| w == workspace_id) {
                i.pool.push_back(workspace_id.to_string());
            }
        })
    }

    async fn pool_claim(&self, key: &ConversationKey) -> Result<Claim, StoreError> {
        self.with(|i| {
            if let Some(ws) = i.bindings.get(key) {
                return Claim::AlreadyBound(ws.clone());
            }
            match i.pool.pop_front() {
                Some(ws) => {
                    i.bindings.insert(key.clone(), ws.clone());
                    Claim::Claimed(ws)
                }
                None => Claim::Empty,
            }
        })
    }

    async fn pool_remove(&self, workspace_id: &str) -> Result<bool, StoreError> {
        self.with(|i| {
            let before = i.pool.len();
            i.pool.retain(|w| w != workspace_id);
            i.pool.len() != before
        })
    }

    async fn pool_members(&self) -> Result<Vec<String>, StoreError> {
        self.with(|i| i.pool.iter().cloned().collect())
    }

    async fn pool_sizing(&self) -> Result<Option<PoolSizing>, StoreError> {
        self.with(|i| i.sizing)
    }

    async fn set_pool_sizing(&self, sizing: PoolSizing) -> Result<(), StoreError> {
        self.with(|i| i.sizing = Some(sizing))
    }

    async fn conversation_policy(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<String>, StoreError> {
        self.with(|i| i.policies.get(key).cloned())
    }

    async fn set_conversation_policy(
        &self,
        key: &ConversationKey,
        policy: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|i| match policy {
            Some(p) => {
                i.policies.insert(key.clone(), p.to_string());
            }
            None => {
                i.policies.remove(key);
            }
        })
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        self.with(|i| {
            let now = Instant::now();
            match i.locks.get(name) {
                Some((holder, until)) if *until > now && holder != owner => false,
                _ => {
                    i.locks.insert(
                        name.to_string(),
                        (owner.to_string(), now + Duration::from_millis(ttl_ms)),
                    );
                    true
                }
            }
        })
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.with(|i| {
            if i.locks.get(name).map(|(h, _)| h.as_str()) == Some(owner) {
                i.locks.remove(name);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryStore;

    #[tokio::test]
    async fn passes_the_store_suite() {
        crate::store::conformance::suite(Arc::new(MemoryStore::new())).await;
    }
}
