//! The Redis state store, shared by several control-plane replicas: bindings and
//! workspace records in hashes, the warm pool in a list, locks as `SET NX PX` keys.
//! Operations that must be atomic across replicas (bind-if-absent, claim-and-bind,
//! compare-and-delete, reserve-under-cap) are single commands or Lua scripts.
//!
//! Keys, all under `aw:<fleet>:`: `bindings` (hash `<tenant>:<conversation>` →
//! workspace id), `records` (hash workspace id → JSON record), `active` (hash
//! workspace id → last activity, ms; kept apart so touches never rewrite records),
//! `pool` (list), `pool-sizing` (JSON), `policies` (hash `<tenant>:<conversation>` →
//! egress policy JSON), `synced` (hash workspace id → last sync, ms; like `active`),
//! `lock:<name>`. The Lua scripts are in [`scripts`].

use async_trait::async_trait;
use redis::{aio::ConnectionManager, AsyncCommands, Script};

use super::{Claim, ConversationKey, PoolSizing, StateStore, StoreError, WorkspaceRecord};

mod scripts;
use scripts::*;

/// [`StateStore`] on Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn field(key: &ConversationKey) -> String {
    format!("{}:{}", key.tenant_id, key.conversation_id)
}

impl RedisStore {
    /// Connects (with reconnection handled by the connection manager) and checks the
    /// server answers.
    pub async fn connect(url: &str, fleet: &str) -> Result<Self, StoreError> {
        Self::connect_with_password(url, None, fleet).await
    }

    /// Like [`RedisStore::connect`], with an AUTH password given apart from the URL.
    pub async fn connect_with_password(
        url: &str,
        password: Option<&str>,
        fleet: &str,
    ) -> Result<Self, StoreError> {
        let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let conn = ConnectionManager::new(client).await.map_err(unavailable)?;
        let store = Self {
            conn,
            prefix: format!("aw:{fleet}:"),
        };
        store.ping().await?;
        Ok(store)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn decode(
        &self,
        id: &str,
        json: &str,
        active: Option<i64>,
        synced: Option<i64>,
    ) -> Result<WorkspaceRecord, StoreError> {
        let mut rec: WorkspaceRecord =
            serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
                key: format!("{}records/{id}", self.prefix),
                message: e.to_string(),
            })?;
        if let Some(a) = active {
            rec.last_active_ms = rec.last_active_ms.max(a);
        }
        if synced.is_some() {
            rec.last_synced_ms = rec.last_synced_ms.max(synced);
        }
        Ok(rec)
    }

    /// Runs one of the "only move forward" scripts on `keys` for a workspace.
    async fn raise(
        &self,
        script: &str,
        keys: &[&str],
        workspace_id: &str,
        value: i64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let script = Script::new(script);
        let mut call = script.prepare_invoke();
        for k in keys {
            call.key(self.key(k));
        }
        call.arg(workspace_id)
            .arg(value)
            .invoke_async::<i64>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    fn encode(rec: &WorkspaceRecord) -> Result<String, StoreError> {
        serde_json::to_string(rec).map_err(|e| StoreError::Corrupt {
            key: rec.workspace_id.clone(),
            message: e.to_string(),
        })
    }
}

#[async_trait]
impl StateStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn binding(&self, key: &ConversationKey) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        c.hget(self.key("bindings"), field(key))
            .await
            .map_err(unavailable)
    }

    async fn bind_if_absent(
        &self,
        key: &ConversationKey,
        workspace_id: &str,
    ) -> Result<String, StoreError> {
        let mut c = self.conn.clone();
        let set: bool = c
            .hset_nx(self.key("bindings"), field(key), workspace_id)
            .await
            .map_err(unavailable)?;
        if set {
            return Ok(workspace_id.to_string());
        }
        let cur: Option<String> = c
            .hget(self.key("bindings"), field(key))
            .await
            .map_err(unavailable)?;
        // Unbound between the two calls: try once more.
        match cur {
            Some(ws) => Ok(ws),
            None => {
                let set: bool = c
                    .hset_nx(self.key("bindings"), field(key), workspace_id)
                    .await
                    .map_err(unavailable)?;
                if set {
                    Ok(workspace_id.to_string())
                } else {
                    self.binding(key)
                        .await?
                        .ok_or_else(|| StoreError::Unavailable("binding raced".into()))
                }
            }
        }
    }

    async fn unbind(&self, key: &ConversationKey, workspace_id: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let n: i64 = Script::new(COMPARE_HDEL)
            .key(self.key("bindings"))
            .arg(field(key))
            .arg(workspace_id)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn bindings(&self) -> Result<Vec<(ConversationKey, String)>, StoreError> {
        let mut c = self.conn.clone();
        let all: Vec<(String, String)> =
            c.hgetall(self.key("bindings")).await.map_err(unavailable)?;
        let mut out: Vec<_> = all
            .into_iter()
            .filter_map(|(f, ws)| {
                let (t, conv) = f.split_once(':')?;
                Some((ConversationKey::new(t, conv), ws))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn put_record(&self, record: &WorkspaceRecord) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let json = Self::encode(record)?;
        Script::new(PUT_RECORD)
            .key(self.key("records"))
            .key(self.key("active"))
            .key(self.key("synced"))
            .arg(&record.workspace_id)
            .arg(json)
            .arg(record.last_active_ms)
            .arg(
                record
                    .last_synced_ms
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            )
            .invoke_async::<i64>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn record(&self, workspace_id: &str) -> Result<Option<WorkspaceRecord>, StoreError> {
        let mut c = self.conn.clone();
        let (json, active, synced): (Option<String>, Option<i64>, Option<i64>) = redis::pipe()
            .hget(self.key("records"), workspace_id)
            .hget(self.key("active"), workspace_id)
            .hget(self.key("synced"), workspace_id)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        json.map(|j| self.decode(workspace_id, &j, active, synced))
            .transpose()
    }

    async fn delete_record(&self, workspace_id: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .hdel(self.key("records"), workspace_id)
            .ignore()
            .hdel(self.key("active"), workspace_id)
            .ignore()
            .hdel(self.key("synced"), workspace_id)
            .ignore()
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn records(&self) -> Result<Vec<WorkspaceRecord>, StoreError> {
        let mut c = self.conn.clone();
        type Times = std::collections::HashMap<String, i64>;
        let (recs, active, synced): (Vec<(String, String)>, Times, Times) = redis::pipe()
            .hgetall(self.key("records"))
            .hgetall(self.key("active"))
            .hgetall(self.key("synced"))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut out = recs
            .iter()
            .map(|(id, json)| {
                self.decode(id, json, active.get(id).copied(), synced.get(id).copied())
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.workspace_id.cmp(&b.workspace_id));
        Ok(out)
    }

    async fn touch(&self, workspace_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.raise(TOUCH, &["active"], workspace_id, now_ms).await
    }

    async fn mark_synced(&self, workspace_id: &str, at_ms: i64) -> Result<(), StoreError> {
        self.raise(MARK_SYNCED, &["records", "synced"], workspace_id, at_ms)
            .await
    }

    async fn reserve(&self, record: &WorkspaceRecord, cap: usize) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let ok: i64 = Script::new(RESERVE)
            .key(self.key("records"))
            .arg(&record.workspace_id)
            .arg(Self::encode(record)?)
            .arg(cap)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        if ok == 1 {
            let _: () = c
                .hset(
                    self.key("active"),
                    &record.workspace_id,
                    record.last_active_ms,
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(ok == 1)
    }

    async fn pool_push(&self, workspace_id: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        Script::new(PUSH_UNIQUE)
            .key(self.key("pool"))
            .arg(workspace_id)
            .invoke_async::<i64>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn pool_claim(&self, key: &ConversationKey) -> Result<Claim, StoreError> {
        let mut c = self.conn.clone();
        let (kind, ws): (String, String) = Script::new(CLAIM)
            .key(self.key("bindings"))
            .key(self.key("pool"))
            .arg(field(key))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(match kind.as_str() {
            "bound" => Claim::AlreadyBound(ws),
            "claimed" => Claim::Claimed(ws),
            _ => Claim::Empty,
        })
    }

    async fn pool_remove(&self, workspace_id: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let n: i64 = c
            .lrem(self.key("pool"), 0, workspace_id)
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn pool_members(&self) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        c.lrange(self.key("pool"), 0, -1).await.map_err(unavailable)
    }

    async fn pool_sizing(&self) -> Result<Option<PoolSizing>, StoreError> {
        let mut c = self.conn.clone();
        let v: Option<String> = c.get(self.key("pool-sizing")).await.map_err(unavailable)?;
        v.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::Corrupt {
                key: self.key("pool-sizing"),
                message: e.to_string(),
            })
        })
        .transpose()
    }

    async fn set_pool_sizing(&self, sizing: PoolSizing) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let json = serde_json::to_string(&sizing).map_err(|e| StoreError::Corrupt {
            key: self.key("pool-sizing"),
            message: e.to_string(),
        })?;
        c.set(self.key("pool-sizing"), json)
            .await
            .map_err(unavailable)
    }

    async fn conversation_policy(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        c.hget(self.key("policies"), field(key))
            .await
            .map_err(unavailable)
    }

    async fn set_conversation_policy(
        &self,
        key: &ConversationKey,
        policy: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        match policy {
            Some(p) => c.hset(self.key("policies"), field(key), p).await,
            None => c.hdel(self.key("policies"), field(key)).await,
        }
        .map_err(unavailable)
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let n: i64 = Script::new(LOCK)
            .key(self.key(&format!("lock:{name}")))
            .arg(owner)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(n == 1)
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        Script::new(UNLOCK)
            .key(self.key(&format!("lock:{name}")))
            .arg(owner)
            .invoke_async::<i64>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::RedisStore;
    use crate::store::{conformance, StateStore};
    use test_support::RedisServer;

    #[tokio::test]
    async fn passes_the_store_suite_on_a_real_redis() {
        let server = RedisServer::start();
        let store = RedisStore::connect(&server.url, "suite").await.unwrap();
        conformance::suite(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn fleets_do_not_see_each_other() {
        let server = RedisServer::start();
        let a = RedisStore::connect(&server.url, "a").await.unwrap();
        let b = RedisStore::connect(&server.url, "b").await.unwrap();
        a.pool_push("w").await.unwrap();
        assert!(b.pool_members().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn password_is_sent_apart_from_the_url() {
        let server = RedisServer::start();
        let mut admin = redis::Client::open(server.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg("s3cret-pass")
            .query_async::<()>(&mut admin)
            .await
            .unwrap();
        assert!(RedisStore::connect(&server.url, "p").await.is_err());
        let store = RedisStore::connect_with_password(&server.url, Some("s3cret-pass"), "p")
            .await
            .unwrap();
        store.pool_push("w").await.unwrap();
    }

    #[tokio::test]
    async fn unreachable_redis_is_a_clear_error() {
        let err = RedisStore::connect("redis://127.0.0.1:1/", "x")
            .await
            .err()
            .expect("no server on port 1");
        assert!(err.to_string().contains("unavailable"), "{err}");
    }
}
