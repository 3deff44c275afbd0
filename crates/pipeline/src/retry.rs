//! Retrying transient failures, in one place: [`Retrying`] wraps any
//! [`ObjectStore`] or [`Queue`] and repeats a call that failed with an error
//! its adapter marks transient (the AWS adapters classify S3 and SQS errors
//! alike: `mandel_aws`'s `errors` module), waiting an exponentially growing, fully jittered delay between
//! attempts (so a fleet of workers hit by the same outage does not retry in
//! lockstep). Permanent errors (not found, invalid key, a refused message)
//! are returned at once.
//!
//! Every call of both ports is safe to repeat: puts are keyed and
//! deterministic, create-only puts report `AlreadyExists` on the repeat,
//! deletes of what is gone are not errors, and a repeated send is just one
//! more at-least-once delivery.

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tracing::warn;

use crate::queue::{Delivery, Queue, QueueError};
use crate::store::{
    Metadata, Object, ObjectMeta, ObjectStore, PartTag, PutMode, PutOutcome, StoreError, UploadId,
};

/// How many times and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The ceiling of the first delay; it doubles per attempt...
    pub base: Duration,
    /// ...up to this ceiling. Each delay is uniform in `0..ceiling`.
    pub cap: Duration,
    /// No retry starts later than this after the first attempt: a call
    /// gives up in bounded time however slow each failure is.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, delays up to 0.1, 0.2, 0.4 … 5 s (about 11 s of waiting
    /// at most; the AWS clients retry nothing themselves), none started
    /// after 30 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    fn delay_ceiling(&self, retry: u32) -> Duration {
        self.base.saturating_mul(1 << retry.min(20)).min(self.cap)
    }

    fn delay(&self, retry: u32) -> Duration {
        self.delay_ceiling(retry).mul_f64(fastrand::f64())
    }

    /// Runs `call` until it succeeds, fails permanently, or attempts run out.
    pub async fn run<T, E, F, Fut>(
        &self,
        what: &str,
        transient: impl Fn(&E) -> bool,
        call: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = tokio::time::Instant::now();
        let mut retry = 0;
        loop {
            match call().await {
                Err(e)
                    if transient(&e)
                        && retry + 1 < self.attempts
                        && started.elapsed() + self.delay_ceiling(retry) <= self.deadline =>
                {
                    let delay = self.delay(retry);
                    warn!(what, error = %e, attempt = retry + 1, ?delay, "transient error; retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                result => return result,
            }
        }
    }
}

/// A store or queue whose transient failures are retried.
#[derive(Debug)]
pub struct Retrying<T> {
    inner: T,
    policy: RetryPolicy,
}

impl<T> Retrying<T> {
    pub fn new(inner: T, policy: RetryPolicy) -> Self {
        Retrying { inner, policy }
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for Retrying<S> {
    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        self.policy
            .run("get", StoreError::is_transient, || self.inner.get(key))
            .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        self.policy
            .run("get_range", StoreError::is_transient, || {
                self.inner.get_range(key, range.clone())
            })
            .await
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        metadata: Metadata,
        mode: PutMode,
    ) -> Result<PutOutcome, StoreError> {
        self.policy
            .run("put", StoreError::is_transient, || {
                self.inner.put(key, body.clone(), metadata.clone(), mode)
            })
            .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.policy
            .run("head", StoreError::is_transient, || self.inner.head(key))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.policy
            .run("list", StoreError::is_transient, || self.inner.list(prefix))
            .await
    }

    async fn list_children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.policy
            .run("list", StoreError::is_transient, || {
                self.inner.list_children(prefix)
            })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.policy
            .run("delete", StoreError::is_transient, || {
                self.inner.delete(key)
            })
            .await
    }

    async fn start_upload(&self, key: &str, part_size: usize) -> Result<UploadId, StoreError> {
        // A retried start may leave an upload that is never used; the
        // bucket's lifecycle rule aborts it.
        self.policy
            .run("start upload", StoreError::is_transient, || {
                self.inner.start_upload(key, part_size)
            })
            .await
    }

    async fn put_part(
        &self,
        upload: &UploadId,
        number: u32,
        body: Bytes,
    ) -> Result<PartTag, StoreError> {
        self.policy
            .run("put part", StoreError::is_transient, || {
                self.inner.put_part(upload, number, body.clone())
            })
            .await
    }

    async fn complete_upload(
        &self,
        upload: &UploadId,
        parts: Vec<PartTag>,
    ) -> Result<(), StoreError> {
        self.policy
            .run("complete upload", StoreError::is_transient, || {
                self.inner.complete_upload(upload, parts.clone())
            })
            .await
    }

    async fn abort_upload(&self, upload: &UploadId) -> Result<(), StoreError> {
        self.policy
            .run("abort upload", StoreError::is_transient, || {
                self.inner.abort_upload(upload)
            })
            .await
    }

    async fn download(&self, key: &str, dest: &std::path::Path) -> Result<u64, StoreError> {
        self.policy
            .run("download", StoreError::is_transient, || {
                self.inner.download(key, dest)
            })
            .await
    }
}

fn queue_transient(e: &QueueError) -> bool {
    e.transient
}

#[async_trait]
impl<Q: Queue> Queue for Retrying<Q> {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        self.policy
            .run("send", queue_transient, || self.inner.send_batch(bodies))
            .await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        self.policy
            .run("receive", queue_transient, || self.inner.receive(max, wait))
            .await
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        self.policy
            .run("delete", queue_transient, || self.inner.delete(receipts))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    // The clock is paused: sleeps advance virtual time at once, so the
    // deadline is checked exactly, whatever the machine's load.
    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_deadline_however_many_attempts_remain() {
        let policy = RetryPolicy {
            attempts: 1000,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(10),
            deadline: Duration::from_millis(60),
        };
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result: Result<(), String> = policy
            .run(
                "test",
                |_| true,
                || async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err("transient".to_string())
                },
            )
            .await;
        assert!(result.is_err());
        // A retry starts only if its longest delay ends by the deadline, so
        // the last attempt starts by 60 ms; each delay is under 10 ms, so at
        // least six retries fit before the deadline stops them.
        let elapsed = started.elapsed();
        assert!(elapsed <= Duration::from_millis(60), "{elapsed:?}");
        let calls = calls.load(Ordering::Relaxed);
        assert!((7..1000).contains(&calls), "{calls} calls");
        // A permanent error is not retried at all.
        let once = AtomicU32::new(0);
        let _: Result<(), String> = policy
            .run(
                "test",
                |_| false,
                || async {
                    once.fetch_add(1, Ordering::Relaxed);
                    Err("permanent".to_string())
                },
            )
            .await;
        assert_eq!(once.load(Ordering::Relaxed), 1);
    }
}
