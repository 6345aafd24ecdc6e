//! Tests of the S3 store against a real `moto_server`.

use super::*;
use futures::StreamExt;
use test_support::MotoServer;

fn k(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap()
}

fn moto() -> MotoServer {
    MotoServer::start().unwrap_or_else(|e| panic!("moto_server is required: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_against_moto() {
    let m = moto();
    m.create_bucket("sync-unit", false).await.unwrap();
    let client = m.s3_client();
    let s = S3Store::from_client(client.clone(), "sync-unit", "pre/fix", Sse::Aes256);
    assert_eq!(s.describe(), "s3://sync-unit/pre/fix");
    assert_eq!(s.get(&k("t/c/x"), 100).await.unwrap(), None);
    assert_eq!(s.head(&k("t/c/x")).await.unwrap(), None);
    s.put(&k("t/c/x"), Bytes::from_static(b"hello"))
        .await
        .unwrap();
    s.put(&k("t/c/x/y"), Bytes::from_static(b"under"))
        .await
        .unwrap();
    s.put(&k("t/c2/z"), Bytes::from_static(b"other conversation"))
        .await
        .unwrap();
    assert_eq!(
        s.get(&k("t/c/x"), 100).await.unwrap().unwrap(),
        &b"hello"[..]
    );
    assert_eq!(s.head(&k("t/c/x/y")).await.unwrap(), Some(5));
    // The prefix is applied, and SSE was asked for.
    let h = client
        .head_object()
        .bucket("sync-unit")
        .key("pre/fix/t/c/x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    // `t/c` does not list `t/c2`.
    assert_eq!(
        s.list(&k("t/c")).await.unwrap(),
        vec![k("t/c/x"), k("t/c/x/y")]
    );
    assert!(matches!(
        s.get(&k("t/c/x"), 2).await,
        Err(ObjectStoreError::TooLarge { size: 5, .. })
    ));
    // A large range streams from the file.
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&spool, &big).unwrap();
    s.put_file_range(&k("t/c/big"), &spool, 1000, 2_500_000)
        .await
        .unwrap();
    s.put_file_range(&k("t/c/small"), &spool, 10, 20)
        .await
        .unwrap();
    let dest = tmp.path().join("dest");
    assert_eq!(
        s.get_to_file(&k("t/c/big"), &dest, 10_000_000)
            .await
            .unwrap(),
        Some(2_500_000)
    );
    assert_eq!(std::fs::read(&dest).unwrap(), &big[1000..2_501_000]);
    assert_eq!(
        s.get(&k("t/c/small"), 100).await.unwrap().unwrap(),
        &big[10..30]
    );
    assert!(s.get_to_file(&k("t/c/big"), &dest, 1000).await.is_err());
    assert_eq!(
        s.get_to_file(&k("t/c/none"), &dest, 10).await.unwrap(),
        None
    );
    // Refresh rewrites the object in place (new LastModified, same bytes), also
    // for keys that need URL encoding.
    let odd = k("t/c/files/a b/é+%.txt");
    s.put(&odd, Bytes::from_static(b"odd")).await.unwrap();
    let before = client
        .head_object()
        .bucket("sync-unit")
        .key("pre/fix/t/c/files/a b/é+%.txt")
        .send()
        .await
        .unwrap()
        .last_modified()
        .cloned()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(s.refresh(&odd).await.unwrap());
    let after = client
        .head_object()
        .bucket("sync-unit")
        .key("pre/fix/t/c/files/a b/é+%.txt")
        .send()
        .await
        .unwrap();
    assert!(after.last_modified().unwrap().secs() > before.secs());
    assert_eq!(
        after.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(s.get(&odd, 10).await.unwrap().unwrap(), &b"odd"[..]);
    assert!(!s.refresh(&k("t/c/none")).await.unwrap());
    // Deletes: single, missing, batched over 1000 keys, with pagination in list.
    s.delete(&k("t/c/x")).await.unwrap();
    s.delete(&k("t/c/x")).await.unwrap();
    let many: Vec<ObjectKey> = (0..1100).map(|i| k(&format!("t/many/{i:05}"))).collect();
    futures::stream::iter(many.iter().cloned())
        .for_each_concurrent(16, |key| {
            let s = s.clone();
            async move { s.put(&key, Bytes::from_static(b"m")).await.unwrap() }
        })
        .await;
    assert_eq!(s.list(&k("t/many")).await.unwrap(), many);
    s.delete_many(&many).await.unwrap();
    assert!(s.list(&k("t/many")).await.unwrap().is_empty());
    assert_eq!(s.list(&k("t/c2")).await.unwrap(), vec![k("t/c2/z")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_and_no_sse_and_errors() {
    let m = moto();
    m.create_bucket("sync-kms", false).await.unwrap();
    let client = m.s3_client();
    let kms = S3Store::from_client(
        client.clone(),
        "sync-kms",
        "",
        Sse::Kms {
            key_id: "alias/workspaces".into(),
        },
    );
    kms.put(&k("a"), Bytes::from_static(b"x")).await.unwrap();
    let h = client
        .head_object()
        .bucket("sync-kms")
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(h.ssekms_key_id(), Some("alias/workspaces"));
    let plain = S3Store::from_client(client.clone(), "sync-kms", "", Sse::None);
    plain.put(&k("b"), Bytes::from_static(b"y")).await.unwrap();
    // A missing bucket is a clear error naming the location.
    let missing = S3Store::from_client(client, "no-such-bucket", "p", Sse::None);
    let err = missing
        .put(&k("a"), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("s3://no-such-bucket/p/a"), "{msg}");
    assert!(msg.contains("NoSuchBucket"), "{msg}");
}

#[tokio::test]
async fn from_config_builds_without_network() {
    let mut cfg = SyncConfig {
        backend: crate::sync::SyncBackend::S3,
        s3_bucket: "b-1".into(),
        s3_prefix: "ws".into(),
        s3_region: Some("eu-west-1".into()),
        s3_endpoint_url: Some("http://127.0.0.1:9".into()),
        s3_force_path_style: true,
        ..SyncConfig::default()
    };
    cfg.validate().unwrap();
    let s = S3Store::from_config(&cfg).await;
    assert_eq!(s.describe(), "s3://b-1/ws");
    cfg.sse = SseMode::Kms;
    cfg.sse_kms_key_id = Some("k".into());
    assert_eq!(Sse::from_config(&cfg), Sse::Kms { key_id: "k".into() });
}
