//! The embedded, in-process state store: everything in one mutex-guarded map set.
//! Atomicity across tasks comes from the mutex; it is not shared between processes.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{ConversationKey, StateStore, StoreError, WorkspaceRecord};

#[derive(Default)]
struct Inner {
    bindings: HashMap<ConversationKey, String>,
    records: HashMap<String, WorkspaceRecord>,
    locks: HashMap<String, (String, Instant)>,
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
            i.records
                .insert(record.workspace_id.clone(), record.clone());
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
    use super::*;
    use crate::runtime::Endpoint;
    use agent::wire::WorkspaceSource;

    fn rec(id: &str) -> WorkspaceRecord {
        WorkspaceRecord {
            workspace_id: id.into(),
            tenant_id: Some("t".into()),
            conversation_id: Some("c".into()),
            endpoint: Endpoint::Unix("/x/agent.sock".into()),
            created_at_ms: 1,
            last_active_ms: 1,
            last_synced_ms: None,
            source: WorkspaceSource::Cold,
        }
    }

    #[tokio::test]
    async fn bind_is_first_writer_wins_and_unbind_compares() {
        let s = MemoryStore::new();
        let k = ConversationKey::new("t", "c");
        assert_eq!(s.bind_if_absent(&k, "w1").await.unwrap(), "w1");
        assert_eq!(s.bind_if_absent(&k, "w2").await.unwrap(), "w1");
        assert!(!s.unbind(&k, "w2").await.unwrap());
        assert!(s.unbind(&k, "w1").await.unwrap());
        assert_eq!(s.binding(&k).await.unwrap(), None);
    }

    #[tokio::test]
    async fn records_and_touch() {
        let s = MemoryStore::new();
        s.put_record(&rec("w1")).await.unwrap();
        s.touch("w1", 50).await.unwrap();
        s.touch("w1", 10).await.unwrap();
        assert_eq!(s.record("w1").await.unwrap().unwrap().last_active_ms, 50);
        s.delete_record("w1").await.unwrap();
        assert!(s.records().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn locks_exclude_other_owners_until_expiry() {
        let s = MemoryStore::new();
        assert!(s.try_lock("l", "a", 60_000).await.unwrap());
        assert!(!s.try_lock("l", "b", 60_000).await.unwrap());
        assert!(s.try_lock("l", "a", 60_000).await.unwrap());
        s.unlock("l", "b").await.unwrap();
        assert!(!s.try_lock("l", "b", 60_000).await.unwrap());
        s.unlock("l", "a").await.unwrap();
        assert!(s.try_lock("l", "b", 1).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(s.try_lock("l", "a", 60_000).await.unwrap());
    }
}
