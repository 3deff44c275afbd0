//! Fault injection for tests: [`Flaky`] wraps a store or queue and fails
//! some of its calls with a transient error before they reach the backend,
//! the way a dropped connection or a throttled request looks to a caller.
//! It also records every store call made through it ([`Flaky::calls`]), so
//! a test can count a use case's requests (with a budget of 0 it only
//! records).

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::queue::{Delivery, Queue, QueueError};
use crate::store::{
    Metadata, Object, ObjectMeta, ObjectStore, PartTag, PutMode, PutOutcome, StoreError, UploadId,
};

/// Fails every `every`th call (the 1st, `every+1`th, …) until `budget`
/// calls have failed; the others go through.
#[derive(Debug)]
pub struct Flaky<T> {
    inner: T,
    every: u64,
    budget: u64,
    calls: AtomicU64,
    failed: AtomicU64,
    log: Mutex<Vec<(&'static str, String)>>,
}

impl<T> Flaky<T> {
    pub fn new(inner: T, every: u64, budget: u64) -> Self {
        Flaky {
            inner,
            every: every.max(1),
            budget,
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            log: Mutex::default(),
        }
    }

    /// The store calls made so far, failed or not: the operation (`get`,
    /// `put`, `head`, `list`, `list_children`, `delete`, `start_upload`,
    /// `put_part`, `complete_upload`, `abort_upload`, `download`) and its
    /// key or prefix.
    pub fn calls(&self) -> Vec<(&'static str, String)> {
        self.log.lock().unwrap().clone()
    }

    /// Calls failed so far.
    pub fn injected(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    fn should_fail(&self) -> bool {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        n.is_multiple_of(self.every)
            && self
                .failed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                    (f < self.budget).then_some(f + 1)
                })
                .is_ok()
    }

    fn store_fault(&self, op: &'static str, key: &str) -> Result<(), StoreError> {
        self.log.lock().unwrap().push((op, key.to_string()));
        if self.should_fail() {
            return Err(StoreError::backend(
                key,
                "injected fault: connection reset",
                true,
            ));
        }
        Ok(())
    }

    fn queue_fault(&self) -> Result<(), QueueError> {
        if self.should_fail() {
            return Err(QueueError {
                queue: "flaky".to_string(),
                source: "injected fault: connection reset".into(),
                transient: true,
                denied: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Flaky<S> {
    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        self.store_fault("get", key)?;
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.store_fault("get_range", key)?;
        self.inner.get_range(key, range).await
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        self.store_fault("put", key)?;
        self.inner.put(key, body, metadata, mode).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.store_fault("head", key)?;
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.store_fault("list", prefix)?;
        self.inner.list(prefix).await
    }

    async fn list_children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.store_fault("list_children", prefix)?;
        self.inner.list_children(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store_fault("delete", key)?;
        self.inner.delete(key).await
    }

    async fn start_upload(&self, key: &str, part_size: usize) -> Result<UploadId, StoreError> {
        self.store_fault("start_upload", key)?;
        self.inner.start_upload(key, part_size).await
    }

    async fn put_part(
        &self,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<PartTag, StoreError> {
        self.store_fault("put_part", &upload.key)?;
        self.inner.put_part(upload, number, body).await
    }

    async fn complete_upload(
        &self,
        upload: &UploadId,
        parts: Vec<PartTag>,
    ) -> Result<(), StoreError> {
        self.store_fault("complete_upload", &upload.key)?;
        self.inner.complete_upload(upload, parts).await
    }

    async fn abort_upload(&self, upload: &UploadId) -> Result<(), StoreError> {
        self.store_fault("abort_upload", &upload.key)?;
        self.inner.abort_upload(upload).await
    }

    async fn download(&self, key: &str, dest: &std::path::Path) -> Result<u64, StoreError> {
        self.store_fault("download", key)?;
        self.inner.download(key, dest).await
    }
}

#[async_trait]
impl<Q: Queue> Queue for Flaky<Q> {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        self.queue_fault()?;
        self.inner.send_batch(bodies).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.queue_fault()?;
        self.inner.receive(max, wait).await
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        self.queue_fault()?;
        self.inner.delete(receipts).await
    }
}
