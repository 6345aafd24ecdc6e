//! One behavioural suite every [`StateStore`] must pass (run against the in-memory
//! store and a real `redis-server`, see [`super::testing`]).

use std::{sync::Arc, time::Duration};

use wire::WorkspaceSource;

use super::{Claim, ConversationKey, PoolSizing, StateStore, WorkspaceRecord, WorkspaceState};
use crate::runtime::Endpoint;

pub fn rec(id: &str, tenant: Option<&str>) -> WorkspaceRecord {
    WorkspaceRecord {
        workspace_id: id.into(),
        tenant_id: tenant.map(str::to_string),
        conversation_id: tenant.map(|_| "c".to_string()),
        endpoint: Endpoint::Unix(format!("/x/{id}/agent.sock").into()),
        created_at_ms: 1,
        last_active_ms: 1,
        last_synced_ms: None,
        source: WorkspaceSource::Cold,
        state: if tenant.is_some() {
            WorkspaceState::Bound
        } else {
            WorkspaceState::Pooled
        },
        created_by: "test".into(),
        egress_socket: None,
    }
}

/// Runs every check against `store` (which must start empty).
pub async fn suite(store: Arc<dyn StateStore>) {
    store.ping().await.unwrap();
    let k = ConversationKey::new("t", "c");
    let k2 = ConversationKey::new("t", "c2");

    // Bindings: first writer wins; unbind compares.
    assert_eq!(store.bind_if_absent(&k, "w1").await.unwrap(), "w1");
    assert_eq!(store.bind_if_absent(&k, "w2").await.unwrap(), "w1");
    assert_eq!(store.binding(&k).await.unwrap().as_deref(), Some("w1"));
    assert!(!store.unbind(&k, "w2").await.unwrap());
    assert_eq!(
        store.bindings().await.unwrap(),
        vec![(k.clone(), "w1".to_string())]
    );
    assert!(store.unbind(&k, "w1").await.unwrap());
    assert_eq!(store.binding(&k).await.unwrap(), None);

    // Records: put, touch only moves forward, delete.
    store.put_record(&rec("w1", Some("t"))).await.unwrap();
    store.touch("w1", 50).await.unwrap();
    store.touch("w1", 10).await.unwrap();
    let r = store.record("w1").await.unwrap().unwrap();
    assert_eq!(r.last_active_ms, 50);
    assert_eq!(r.tenant_id.as_deref(), Some("t"));
    assert_eq!(store.records().await.unwrap().len(), 1);
    // Sync times only move forward, independently of activity.
    store.mark_synced("w1", 40).await.unwrap();
    store.mark_synced("w1", 20).await.unwrap();
    let r = store.record("w1").await.unwrap().unwrap();
    assert_eq!((r.last_active_ms, r.last_synced_ms), (50, Some(40)));
    // A writer holding an older copy rolls neither back.
    store.put_record(&rec("w1", Some("t"))).await.unwrap();
    let r = store.record("w1").await.unwrap().unwrap();
    assert_eq!((r.last_active_ms, r.last_synced_ms), (50, Some(40)));
    store.delete_record("w1").await.unwrap();
    assert!(store.record("w1").await.unwrap().is_none());
    store.mark_synced("w1", 60).await.unwrap();
    assert!(
        store.record("w1").await.unwrap().is_none(),
        "no record revived"
    );

    race_touch_against_mark_synced(&store).await;

    // Reserve respects the cap and is idempotent per id.
    assert!(store.reserve(&rec("a", None), 2).await.unwrap());
    assert!(store.reserve(&rec("b", None), 2).await.unwrap());
    assert!(!store.reserve(&rec("c", None), 2).await.unwrap());
    assert!(store.reserve(&rec("a", None), 2).await.unwrap());
    assert_eq!(store.records().await.unwrap().len(), 2);

    // Pool: unique push, claim binds, claim of a bound conversation says so.
    store.pool_push("a").await.unwrap();
    store.pool_push("b").await.unwrap();
    store.pool_push("a").await.unwrap();
    assert_eq!(store.pool_members().await.unwrap(), vec!["a", "b"]);
    assert_eq!(
        store.pool_claim(&k).await.unwrap(),
        Claim::Claimed("a".into())
    );
    assert_eq!(
        store.pool_claim(&k).await.unwrap(),
        Claim::AlreadyBound("a".into())
    );
    assert_eq!(store.binding(&k).await.unwrap().as_deref(), Some("a"));
    assert!(store.pool_remove("b").await.unwrap());
    assert!(!store.pool_remove("b").await.unwrap());
    assert_eq!(store.pool_claim(&k2).await.unwrap(), Claim::Empty);

    // Concurrent claims never hand out one member twice.
    for i in 0..20 {
        store.pool_push(&format!("m{i}")).await.unwrap();
    }
    let claims = futures::future::join_all((0..30).map(|i| {
        let s = store.clone();
        async move {
            s.pool_claim(&ConversationKey::new("t", format!("conc{i}")))
                .await
                .unwrap()
        }
    }))
    .await;
    let mut got: Vec<String> = claims
        .iter()
        .filter_map(|c| match c {
            Claim::Claimed(w) => Some(w.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 20);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 20, "a member was claimed twice");

    // Conversation policies.
    assert_eq!(store.conversation_policy(&k).await.unwrap(), None);
    store
        .set_conversation_policy(&k, Some(r#"{"allow":["a.example"]}"#))
        .await
        .unwrap();
    assert_eq!(
        store.conversation_policy(&k).await.unwrap().as_deref(),
        Some(r#"{"allow":["a.example"]}"#)
    );
    assert_eq!(store.conversation_policy(&k2).await.unwrap(), None);
    store.set_conversation_policy(&k, None).await.unwrap();
    assert_eq!(store.conversation_policy(&k).await.unwrap(), None);

    // Sizing.
    assert_eq!(store.pool_sizing().await.unwrap(), None);
    let s = PoolSizing { min: 2, max: 5 };
    store.set_pool_sizing(s).await.unwrap();
    assert_eq!(store.pool_sizing().await.unwrap(), Some(s));

    // Locks: exclusive until released or expired; re-entrant for the owner.
    assert!(store.try_lock("l", "a", 60_000).await.unwrap());
    assert!(!store.try_lock("l", "b", 60_000).await.unwrap());
    assert!(store.try_lock("l", "a", 60_000).await.unwrap());
    store.unlock("l", "b").await.unwrap();
    assert!(!store.try_lock("l", "b", 60_000).await.unwrap());
    store.unlock("l", "a").await.unwrap();
    assert!(store.try_lock("l", "b", 30).await.unwrap());
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(store.try_lock("l", "a", 60_000).await.unwrap());
}

/// Activity marks and sync marks written concurrently (as an execution's heartbeat
/// and a finishing sync do) plus a stale full-record write: the record ends with the
/// greatest of each, none lost.
async fn race_touch_against_mark_synced(store: &Arc<dyn StateStore>) {
    store.put_record(&rec("race", Some("t"))).await.unwrap();
    let stale = store.record("race").await.unwrap().unwrap();
    let toucher = {
        let s = store.clone();
        tokio::spawn(async move {
            for t in 2..=200 {
                s.touch("race", t).await.unwrap();
            }
        })
    };
    let syncer = {
        let s = store.clone();
        tokio::spawn(async move {
            for t in 2..=200 {
                s.mark_synced("race", 1000 + t).await.unwrap();
            }
        })
    };
    let writer = {
        let s = store.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                s.put_record(&stale).await.unwrap();
            }
        })
    };
    for t in [toucher, syncer, writer] {
        t.await.unwrap();
    }
    let r = store.record("race").await.unwrap().unwrap();
    assert_eq!(r.last_active_ms, 200, "an activity mark was lost");
    assert_eq!(r.last_synced_ms, Some(1200), "a sync mark was lost");
    store.delete_record("race").await.unwrap();
}
