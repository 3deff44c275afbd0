//! The port contracts as executable checks, run against every adapter
//! (memory, filesystem, S3/SQS on LocalStack). Each function panics on the
//! first violation. Built with the `test-support` feature (the adapters'
//! tests turn it on through their dev-dependencies).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::queue::Queue;
use crate::store::{MIN_PART_SIZE, Metadata, ObjectStore, PutMode, PutOutcome, StoreError};

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs every object-store check under `root` (a prefix no one else uses).
pub async fn object_store(store: Arc<dyn ObjectStore>, root: &str) {
    put_get_head_overwrite(&*store, root).await;
    ranged_gets(&*store, root).await;
    create_only(&*store, root).await;
    concurrent_create_has_one_winner(&store, root).await;
    list_by_prefix(&*store, root).await;
    delete_is_idempotent(&*store, root).await;
    invalid_keys_are_refused(&*store).await;
    multipart_upload(&store, root).await;
}

/// Parts put out of order and concurrently, one put twice, make exactly
/// their concatenation, visible only at completion and replacing what was
/// there; a bad completion and an aborted upload change nothing.
async fn multipart_upload(store: &Arc<dyn ObjectStore>, root: &str) {
    let key = format!("{root}/multipart/big.bin");
    let size = MIN_PART_SIZE;
    let part = |n: u8, len: usize| Bytes::from(vec![n; len]);
    store
        .put(
            &key,
            Bytes::from_static(b"old"),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await
        .unwrap();

    let upload = store.start_upload(&key, size).await.unwrap();
    // The short last part first, then the others at once; part 2 twice.
    let last = store.put_part(&upload, 3, part(3, 10)).await.unwrap();
    store.put_part(&upload, 2, part(9, size)).await.unwrap();
    let (one, two) = tokio::join!(
        store.put_part(&upload, 1, part(1, size)),
        store.put_part(&upload, 2, part(2, size)),
    );
    assert_eq!(
        &store.get(&key).await.unwrap().body[..],
        b"old",
        "an upload is invisible until it completes"
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    // A completion that skips a part is refused and changes nothing.
    let skipping = vec![one.clone(), last.clone()];
    assert!(
        store.complete_upload(&upload, skipping).await.is_err(),
        "a completion must list parts 1..=n"
    );
    store
        .complete_upload(&upload, vec![one, two, last])
        .await
        .unwrap();
    let got = store.get(&key).await.unwrap();
    assert_eq!(got.body.len(), 2 * size + 10);
    assert!(got.body[..size].iter().all(|&b| b == 1));
    assert!(
        got.body[size..2 * size].iter().all(|&b| b == 2),
        "the part put last wins"
    );
    assert!(got.body[2 * size..].iter().all(|&b| b == 3));
    assert!(got.metadata.is_empty());
    assert_eq!(
        store.head(&key).await.unwrap().unwrap().size,
        (2 * size + 10) as u64
    );

    // One small part is a whole object.
    let small = store.start_upload(&key, size).await.unwrap();
    let only = store.put_part(&small, 1, part(7, 3)).await.unwrap();
    store.complete_upload(&small, vec![only]).await.unwrap();
    assert_eq!(&store.get(&key).await.unwrap().body[..], &[7, 7, 7]);

    // An aborted upload leaves the object as it was.
    let aborted = store.start_upload(&key, size).await.unwrap();
    store.put_part(&aborted, 1, part(5, 4)).await.unwrap();
    store.abort_upload(&aborted).await.unwrap();
    assert_eq!(&store.get(&key).await.unwrap().body[..], &[7, 7, 7]);
    assert!(
        matches!(
            store.put_part(&aborted, 1, part(5, 4)).await,
            Err(StoreError::InvalidUpload { .. }) | Err(StoreError::Backend { .. })
        ),
        "an aborted upload takes no parts"
    );
    let listed: Vec<_> = store
        .list(&format!("{root}/multipart/"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, [key], "uploads leave nothing but their object");
}

async fn put_get_head_overwrite(store: &dyn ObjectStore, root: &str) {
    let key = format!("{root}/a/object.bin");
    assert!(
        matches!(store.get(&key).await, Err(StoreError::NotFound { .. })),
        "missing key must be NotFound"
    );
    assert_eq!(store.head(&key).await.unwrap(), None);

    let m = meta(&[("sha256", "abc"), ("worker", "w-1")]);
    let out = store
        .put(
            &key,
            Bytes::from_static(b"first"),
            m.clone(),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Written);
    let got = store.get(&key).await.unwrap();
    assert_eq!(&got.body[..], b"first");
    assert_eq!(got.metadata, m, "metadata must round-trip");
    assert_eq!(store.head(&key).await.unwrap().unwrap().size, 5);

    store
        .put(
            &key,
            Bytes::from_static(b"second!"),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    let got = store.get(&key).await.unwrap();
    assert_eq!(&got.body[..], b"second!", "overwrite must replace the body");
    assert!(
        got.metadata.is_empty(),
        "overwrite must replace the metadata"
    );
    assert_eq!(store.head(&key).await.unwrap().unwrap().size, 7);

    let empty = format!("{root}/a/empty");
    store
        .put(&empty, Bytes::new(), Metadata::new(), PutMode::Overwrite)
        .await
        .unwrap();
    assert!(store.get(&empty).await.unwrap().body.is_empty());
    assert_eq!(store.head(&empty).await.unwrap().unwrap().size, 0);
}

/// A ranged GET returns the range's bytes, cut at the body's end; past the
/// end, and on an empty body, no bytes; a missing key is NotFound.
async fn ranged_gets(store: &dyn ObjectStore, root: &str) {
    let key = format!("{root}/ranged/object");
    let body = Bytes::from_static(b"0123456789");
    store
        .put(&key, body, meta(&[("a", "b")]), PutMode::Overwrite)
        .await
        .unwrap();
    for (range, want) in [
        (0..4, &b"0123"[..]),
        (3..7, b"3456"),
        (8..100, b"89"),
        (0..10, b"0123456789"),
        (9..10, b"9"),
        (10..20, b""),
        (50..60, b""),
        (4..4, b""),
    ] {
        let got = store.get_range(&key, range.clone()).await.unwrap();
        assert_eq!(&got[..], want, "bytes {range:?}");
    }
    let empty = format!("{root}/ranged/empty");
    store
        .put(&empty, Bytes::new(), Metadata::new(), PutMode::Overwrite)
        .await
        .unwrap();
    assert!(store.get_range(&empty, 0..10).await.unwrap().is_empty());
    let missing = format!("{root}/ranged/missing");
    for range in [0..10, 0..0] {
        assert!(
            matches!(
                store.get_range(&missing, range).await,
                Err(StoreError::NotFound { .. })
            ),
            "a missing key is NotFound"
        );
    }
}

async fn create_only(store: &dyn ObjectStore, root: &str) {
    let key = format!("{root}/create/once.json");
    let first = store
        .put(
            &key,
            Bytes::from_static(b"one"),
            Metadata::new(),
            PutMode::Create,
        )
        .await
        .unwrap();
    assert_eq!(first, PutOutcome::Written);
    let second = store
        .put(
            &key,
            Bytes::from_static(b"two"),
            Metadata::new(),
            PutMode::Create,
        )
        .await
        .unwrap();
    assert_eq!(second, PutOutcome::AlreadyExists);
    assert_eq!(
        &store.get(&key).await.unwrap().body[..],
        b"one",
        "a refused create must not write"
    );
}

async fn concurrent_create_has_one_winner(store: &Arc<dyn ObjectStore>, root: &str) {
    let key = format!("{root}/race/result.json");
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..8u8 {
        let (store, key) = (Arc::clone(store), key.clone());
        tasks.spawn(async move {
            let out = store
                .put(
                    &key,
                    Bytes::from(vec![n; 64]),
                    Metadata::new(),
                    PutMode::Create,
                )
                .await
                .unwrap();
            (n, out)
        });
    }
    let mut winners = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (n, out) = r.unwrap();
        if out == PutOutcome::Written {
            winners.push(n);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent create must win, got {winners:?}"
    );
    assert_eq!(
        store.get(&key).await.unwrap().body,
        Bytes::from(vec![winners[0]; 64])
    );
}

async fn list_by_prefix(store: &dyn ObjectStore, root: &str) {
    for k in [
        "list/x/2",
        "list/x/1",
        "list/x/sub/3",
        "list/xy/4",
        "list/y/5",
    ] {
        let key = format!("{root}/{k}");
        store
            .put(
                &key,
                Bytes::from(k.as_bytes().to_vec()),
                Metadata::new(),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
    }
    let keys = |prefix: String| async move {
        store
            .list(&prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.key, m.size))
            .collect::<Vec<_>>()
    };
    let got = keys(format!("{root}/list/x/")).await;
    let want: Vec<(String, u64)> = ["list/x/1", "list/x/2", "list/x/sub/3"]
        .iter()
        .map(|k| (format!("{root}/{k}"), k.len() as u64))
        .collect();
    assert_eq!(
        got, want,
        "list must return every key under the prefix, sorted, with sizes"
    );
    let partial = keys(format!("{root}/list/x")).await;
    assert_eq!(
        partial.len(),
        4,
        "a prefix need not end at a '/': {partial:?}"
    );
    assert!(keys(format!("{root}/list/none/")).await.is_empty());
    // The folders right under a prefix: `x` and `xy` and `y`, not the
    // keys in them, nor `sub` (a folder of a folder).
    assert_eq!(
        store.list_children(&format!("{root}/list/")).await.unwrap(),
        ["x", "xy", "y"],
        "list_children must name each folder under the prefix once, sorted"
    );
    assert_eq!(
        store
            .list_children(&format!("{root}/list/x/"))
            .await
            .unwrap(),
        ["sub"],
        "a key right under the prefix is not a folder"
    );
}

async fn delete_is_idempotent(store: &dyn ObjectStore, root: &str) {
    let key = format!("{root}/delete/me");
    let sibling = format!("{root}/delete/mee");
    for k in [&key, &sibling] {
        store
            .put(
                k,
                Bytes::from_static(b"x"),
                Metadata::new(),
                PutMode::Overwrite,
            )
            .await
            .unwrap();
    }
    store.delete(&key).await.unwrap();
    assert!(
        matches!(store.get(&key).await, Err(StoreError::NotFound { .. })),
        "a deleted key must be NotFound"
    );
    assert_eq!(store.head(&key).await.unwrap(), None);
    let listed: Vec<String> = store
        .list(&format!("{root}/delete/"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, vec![sibling], "delete must remove only its key");
    store
        .delete(&key)
        .await
        .expect("deleting a missing key is not an error");
    // A key freed by delete can be created again.
    let out = store
        .put(
            &key,
            Bytes::from_static(b"y"),
            Metadata::new(),
            PutMode::Create,
        )
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Written);
    assert!(matches!(
        store.delete("a/../b").await,
        Err(StoreError::InvalidKey { .. })
    ));
}

async fn invalid_keys_are_refused(store: &dyn ObjectStore) {
    for bad in ["", "/abs", "a//b", "a/../b", "a/./b", "sp ace", "tab\t"] {
        let r = store
            .put(bad, Bytes::new(), Metadata::new(), PutMode::Overwrite)
            .await;
        assert!(
            matches!(r, Err(StoreError::InvalidKey { .. })),
            "key {bad:?} must be refused, got {r:?}"
        );
    }
    let r = store
        .put(
            "ok",
            Bytes::new(),
            meta(&[("Bad Name", "x")]),
            PutMode::Overwrite,
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::InvalidKey { .. })),
        "bad metadata name must be refused"
    );
}

/// Runs every queue check. `queue` must be empty and have the given
/// visibility timeout (keep it short: the checks wait for it).
pub async fn queue(queue: Arc<dyn Queue>, visibility: Duration) {
    let bodies: Vec<String> = (0..25).map(|n| format!("{{\"n\":{n}}}")).collect();
    queue.send_batch(&bodies).await.unwrap();

    let mut seen = HashSet::new();
    let mut receipts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < bodies.len() && Instant::now() < deadline {
        for d in queue.receive(10, Duration::from_millis(500)).await.unwrap() {
            assert_eq!(
                d.receive_count, 1,
                "first delivery must have receive_count 1"
            );
            assert!(
                seen.insert(d.body.clone()),
                "a message was delivered twice within its visibility timeout"
            );
            receipts.push((d.body, d.receipt));
        }
    }
    assert_eq!(
        seen,
        bodies.iter().cloned().collect::<HashSet<_>>(),
        "every sent message must arrive"
    );

    // Delete all but one; that one must come back after the timeout.
    let (kept_body, _) = receipts.pop().unwrap();
    let all: Vec<String> = receipts.iter().map(|(_, r)| r.clone()).collect();
    queue.delete(&all).await.unwrap();
    let redelivered = {
        let deadline = Instant::now() + visibility + Duration::from_secs(20);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < deadline {
            got = queue.receive(10, Duration::from_millis(500)).await.unwrap();
        }
        got
    };
    assert_eq!(
        redelivered.len(),
        1,
        "only the undeleted message may come back: {redelivered:?}"
    );
    assert_eq!(redelivered[0].body, kept_body);
    assert!(
        redelivered[0].receive_count >= 2,
        "a redelivery must count up"
    );
    let last = [redelivered[0].receipt.clone()];
    queue.delete(&last).await.unwrap();
    // Deleting again with stale receipts is harmless.
    queue.delete(&last).await.unwrap();
    queue.delete(&all).await.unwrap();

    let started = Instant::now();
    let none = queue.receive(10, Duration::from_millis(300)).await.unwrap();
    assert!(
        none.is_empty(),
        "deleted messages must not return: {none:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "an empty receive must wait (long polling)"
    );
}
