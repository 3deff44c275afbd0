//! The glue between Lambda's SQS trigger and a message handler.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use mandel_pipeline::PipelineError;
use tracing::warn;

/// Runs `handle` on every record of an SQS batch and reports only the
/// failed message ids (`ReportBatchItemFailures`), so one bad message does
/// not send the whole batch back.
pub async fn handle_batch<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), PipelineError>>,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.unwrap_or_default();
        let body = record.body.unwrap_or_default();
        if let Err(e) = handle(body).await {
            warn!(message_id = %id, error = %e, "message failed");
            response.add_failure(id);
        }
    }
    response
}

/// The local event-source mapping: long-polls `queue` in batches and runs
/// `handle` on each message until SIGINT or SIGTERM, deleting successes and
/// leaving failures to the visibility timeout, as Lambda's SQS trigger does.
pub async fn poll_until_signal<F, Fut>(
    queue: &dyn mandel_pipeline::Queue,
    batch: usize,
    handle: F,
) -> Result<mandel_pipeline::PollStats, PipelineError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), PipelineError>>,
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
    mandel_pipeline::poll(queue, config, shutdown, |d| handle(d.body)).await
}
