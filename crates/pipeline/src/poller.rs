//! The event-source mapping: a loop that feeds queue messages to a handler
//! the way Lambda's SQS trigger does. Successes are deleted; failures are
//! left for the visibility timeout to deliver again.

use std::future::Future;
use std::time::{Duration, Instant};

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
    /// The function's timeout, as Lambda enforces it: each batch's handler
    /// is given the deadline and is stopped (dropped) when it passes, its
    /// messages left for redelivery. `None`: no limit (embedded mode).
    pub timeout: Option<Duration>,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            batch: 1,
            wait: Duration::from_millis(500),
            timeout: None,
        }
    }
}

/// Runs a batch handler as one Lambda invocation: it is given `deadline`
/// and, if it has not returned by then, it is stopped (its future dropped)
/// and every message of the batch counts as failed, as when Lambda kills
/// a function at its timeout.
pub async fn invoke<F, Fut>(
    batch: Vec<Delivery>,
    deadline: Option<Instant>,
    handle: F,
) -> Vec<String>
where
    F: FnOnce(Vec<Delivery>, Option<Instant>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let Some(at) = deadline else {
        return handle(batch, None).await;
    };
    let ids: Vec<String> = batch.iter().map(|d| d.message_id.clone()).collect();
    let started = Instant::now();
    match tokio::time::timeout_at(at.into(), handle(batch, deadline)).await {
        Ok(failed) => failed,
        Err(_) => {
            warn!(
                messages = ids.len(),
                after_ms = started.elapsed().as_millis() as u64,
                "Task timed out: the invocation was stopped at its deadline"
            );
            ids
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
/// With [`PollConfig::timeout`] each batch is one [`invoke`]ation with a
/// deadline. Returns early only on a queue error.
pub async fn poll<F, Fut>(
    queue: &dyn Queue,
    config: PollConfig,
    mut shutdown: watch::Receiver<bool>,
    handle: F,
) -> Result<PollStats, PipelineError>
where
    F: Fn(Vec<Delivery>, Option<Instant>) -> Fut,
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
        let started = Instant::now();
        let deadline = config.timeout.map(|t| started + t);
        let failed = invoke(batch, deadline, &handle).await;
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
