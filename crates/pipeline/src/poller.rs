//! The event-source mapping: a loop that feeds queue messages to a handler
//! the way Lambda's SQS trigger does. Successes are deleted; failures are
//! left for the visibility timeout to deliver again.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::error::PipelineError;
use crate::queue::{Delivery, Queue};

#[derive(Clone, Copy, Debug)]
pub struct PollConfig {
    /// Messages per receive (SQS allows 1 to 10).
    pub batch: usize,
    /// Long-poll wait per receive.
    pub wait: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            batch: 1,
            wait: Duration::from_millis(500),
        }
    }
}

/// Counters of one poller's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    pub succeeded: u64,
    pub failed: u64,
}

/// Receives from `queue` and calls `handle` on each message until
/// `shutdown` turns true. Returns early only on a queue error.
pub async fn poll<F, Fut>(
    queue: &dyn Queue,
    config: PollConfig,
    mut shutdown: watch::Receiver<bool>,
    handle: F,
) -> Result<PollStats, PipelineError>
where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = Result<(), PipelineError>>,
{
    let mut stats = PollStats::default();
    while !*shutdown.borrow() {
        let batch = tokio::select! {
            got = queue.receive(config.batch, config.wait) => got?,
            _ = shutdown.changed() => break,
        };
        for delivery in batch {
            let receipt = delivery.receipt.clone();
            let id = delivery.message_id.clone();
            match handle(delivery).await {
                Ok(()) => {
                    queue.delete(&receipt).await?;
                    stats.succeeded += 1;
                }
                Err(e) => {
                    warn!(message_id = %id, error = %e, "message failed; leaving it for redelivery");
                    stats.failed += 1;
                }
            }
        }
    }
    Ok(stats)
}
