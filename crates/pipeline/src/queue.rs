//! The message-queue port (SQS and its stand-ins). The contract is on [`Queue`].

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use crate::store::BoxError;

/// One received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    /// Handle for [`Queue::delete`]; valid for this delivery only.
    pub receipt: String,
    pub body: String,
    /// 1 on first delivery.
    pub receive_count: u32,
}

impl Delivery {
    /// Whether this is the queue's last delivery of the message (its
    /// `maxReceiveCount`; `None`: the queue retries for ever): if it fails
    /// now, SQS moves it to the dead-letter queue.
    pub fn is_final(&self, max_receive_count: Option<u32>) -> bool {
        max_receive_count.is_some_and(|max| self.receive_count >= max)
    }
}

#[derive(Debug, Error)]
#[error(
    "queue {queue}: {}{source}",
    denied.map(|a| format!("access denied: {a} is not allowed by the caller's IAM policy: ")).unwrap_or_default()
)]
pub struct QueueError {
    pub queue: String,
    #[source]
    pub source: BoxError,
    pub transient: bool,
    /// The action the queue's access policy refused (e.g. `sqs:SendMessage`):
    /// no retry can help until the policy is fixed.
    pub denied: Option<&'static str>,
}

/// The message-queue port (SQS and its stand-ins).
///
/// # Contract
///
/// - Delivery is at least once: a received message stays hidden for the
///   queue's visibility timeout; if it is not [`delete`](Queue::delete)d by
///   then it is delivered again, with a higher `receive_count`. Consumers
///   must therefore be idempotent.
/// - Order is not guaranteed.
/// - [`send_batch`](Queue::send_batch) takes any number of bodies; adapters
///   split them into the backend's batch size.
/// - [`receive`](Queue::receive) returns at most `max` messages, waiting up
///   to `wait` for the first one (long polling); an empty vector means none
///   arrived in time.
/// - [`delete`](Queue::delete) takes any number of receipts (adapters split
///   them into the backend's batch size). Deleting with a receipt that is no
///   longer valid is not an error.
#[async_trait]
pub trait Queue: std::fmt::Debug + Send + Sync + 'static {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError>;

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;

    async fn delete(&self, receipts: &[String]) -> Result<(), QueueError>;
}

/// A shared queue is a queue (so wrappers can hold an `Arc<dyn Queue>`).
#[async_trait]
impl<T: Queue + ?Sized> Queue for std::sync::Arc<T> {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        (**self).send_batch(bodies).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        (**self).receive(max, wait).await
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), QueueError> {
        (**self).delete(receipts).await
    }
}
