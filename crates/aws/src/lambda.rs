//! The glue between Lambda's SQS trigger and a batch handler, and the same
//! trigger emulated on this machine ([`poll_until_signal`]).
//!
//! A batch handler takes the received messages and returns the ids of those
//! that failed, which is exactly Lambda's `ReportBatchItemFailures`
//! contract: the trigger deletes the rest and leaves the failures to the
//! visibility timeout (and, after `maxReceiveCount`, the DLQ).

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use mandel_pipeline::{Delivery, PipelineError};

/// Runs a batch handler on an SQS event and reports only the failed ids.
pub async fn handle_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: FnOnce(Vec<Delivery>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let mut response = SqsBatchResponse::default();
    for id in handle(event.records.into_iter().map(delivery).collect()).await {
        response.add_failure(id);
    }
    response
}

/// The queue message inside an SQS event record.
fn delivery(record: SqsMessage) -> Delivery {
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    Delivery {
        message_id: record.message_id.unwrap_or_default(),
        receipt: record.receipt_handle.unwrap_or_default(),
        body: record.body.unwrap_or_default(),
        receive_count,
    }
}

/// The SQS event Lambda's trigger would deliver for `batch`.
pub fn sqs_event(batch: &[Delivery], queue_arn: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = batch
        .iter()
        .map(|d| {
            let mut m = SqsMessage::default();
            m.message_id = Some(d.message_id.clone());
            m.receipt_handle = Some(d.receipt.clone());
            m.body = Some(d.body.clone());
            m.attributes.insert(
                "ApproximateReceiveCount".to_string(),
                d.receive_count.to_string(),
            );
            m.event_source = Some("aws:sqs".to_string());
            m.event_source_arn = Some(queue_arn.to_string());
            m
        })
        .collect();
    event
}

/// The local event-source mapping: long-polls `queue` in batches of
/// `batch` and runs `handle` on each until SIGINT or SIGTERM, deleting
/// successes and leaving failures to the visibility timeout, as Lambda's SQS
/// trigger does.
pub async fn poll_until_signal<F, Fut>(
    queue: &dyn mandel_pipeline::Queue,
    batch: usize,
    handle: F,
) -> Result<mandel_pipeline::PollStats, PipelineError>
where
    F: Fn(Vec<Delivery>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop.send(true);
    });
    let config = mandel_pipeline::PollConfig {
        batch,
        wait: std::time::Duration::from_secs(20),
    };
    mandel_pipeline::poll(queue, config, shutdown, handle).await
}
