//! The event-source mapping: a loop that feeds queue messages to a handler
//! the way Lambda's SQS trigger does. Successes are deleted; failures are
//! left for the visibility timeout to deliver again.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

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

/// Receives from `queue` and calls `handle` on each batch until `shutdown`
/// turns true. `handle` returns the ids of the messages that failed, as a
/// Lambda with `ReportBatchItemFailures` does; the others are deleted.
/// Returns early only on a queue error.
pub async fn poll<F, Fut>(
    queue: &dyn Queue,
    config: PollConfig,
    mut shutdown: watch::Receiver<bool>,
    handle: F,
) -> Result<PollStats, PipelineError>
where
    F: Fn(Vec<Delivery>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let mut stats = PollStats::default();
    while !*shutdown.borrow() {
        let batch = tokio::select! {
            got = queue.receive(config.batch, config.wait) => got?,
            _ = shutdown.changed() => break,
        };
        if batch.is_empty() {
            continue;
        }
        let receipts: Vec<(String, String)> = batch
            .iter()
            .map(|d| (d.message_id.clone(), d.receipt.clone()))
            .collect();
        let started = std::time::Instant::now();
        let failed = handle(batch).await;
        debug!(
            messages = receipts.len(),
            failed = failed.len(),
            ms = started.elapsed().as_millis() as u64,
            "batch handled"
        );
        let succeeded: Vec<String> = receipts
            .into_iter()
            .filter(|(id, _)| !failed.contains(id))
            .map(|(_, receipt)| receipt)
            .collect();
        stats.failed += failed.len() as u64;
        stats.succeeded += succeeded.len() as u64;
        queue.delete(&succeeded).await?;
    }
    Ok(stats)
}

/// Adapts a one-message handler to a batch handler: runs it on each
/// message in turn and collects the ids of those that failed, logging why.
pub async fn one_at_a_time<F, Fut, T>(batch: Vec<Delivery>, handle: F) -> Vec<String>
where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = Result<T, PipelineError>>,
{
    let mut failed = Vec::new();
    for delivery in batch {
        let id = delivery.message_id.clone();
        if let Err(e) = handle(delivery).await {
            warn!(message_id = %id, error = %e, "message failed; leaving it for redelivery");
            failed.push(id);
        }
    }
    failed
}
