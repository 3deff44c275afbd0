//! `mandel-trigger`: Lambda's SQS event-source mapping, emulated. Long-polls
//! one of a deployment's queues and invokes a function with each batch
//! through the Lambda Invoke API, then deletes the messages the function did
//! not report as failed (`ReportBatchItemFailures`). Pointed at
//! `cargo lambda watch` (set `AWS_ENDPOINT_URL_LAMBDA`), it runs the real
//! `bootstrap` binaries fed from SQS without a Lambda service.

use anyhow::{Context, Result};
use aws_lambda_events::event::sqs::SqsBatchResponse;
use aws_sdk_lambda::primitives::Blob;
use clap::{Parser, ValueEnum};
use mandel_aws::lambda::{poll_until_signal, sqs_event};
use mandel_aws::{AwsClients, Cloud, bucket_from};
use mandel_pipeline::Delivery;
use tracing::warn;

/// Feed a queue of a deployment to a Lambda function, batch by batch.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Which of the deployment's queues to read.
    #[arg(long, value_enum)]
    queue: Which,
    /// The function to invoke with each batch.
    #[arg(long)]
    function: String,
    /// The deployment's bucket [default: $MANDEL_BUCKET].
    #[arg(long)]
    bucket: Option<String>,
    /// Messages per invocation (1 to 10).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Invocations in flight at once (Lambda's maximum concurrency).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Which {
    Tiles,
    Stitch,
    /// The explorer's tile queue (the worker consumes it).
    Explore,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let clients = AwsClients::from_env().await;
    let bucket = bucket_from(args.bucket).map_err(anyhow::Error::msg)?;
    let cloud = Cloud::connect(&clients, &bucket).await?;
    // Each invocation gets the function's timeout, as on Lambda.
    let (queue, url, limits) = match args.queue {
        Which::Tiles => (
            cloud.ports.tiles,
            cloud.deployment.tiles_queue_url,
            cloud.deployment.worker,
        ),
        Which::Stitch => (
            cloud.ports.stitch,
            cloud.deployment.stitch_queue_url,
            cloud.deployment.stitch,
        ),
        Which::Explore => (
            cloud
                .explore
                .context("the deployment has no explore queue")?,
            cloud.deployment.explore_queue_url.unwrap_or_default(),
            cloud.deployment.worker,
        ),
    };
    let lambda = aws_sdk_lambda::Client::new(&clients.config);
    let source = format!("arn:aws:sqs:::{}", url.rsplit('/').next().unwrap_or(&url));
    let invoke = |batch: Vec<Delivery>, _deadline| {
        let (lambda, function, source) = (&lambda, &args.function, &source);
        async move {
            match invoke_with(lambda, function, &batch, source).await {
                Ok(failed) => failed,
                Err(e) => {
                    warn!(
                        error = format!("{e:#}"),
                        "invocation failed; the whole batch returns"
                    );
                    batch.into_iter().map(|d| d.message_id).collect()
                }
            }
        }
    };
    let loops = (0..args.concurrency.max(1))
        .map(|_| poll_until_signal(&*queue, args.batch, limits, invoke));
    for stats in futures::future::join_all(loops).await {
        stats?;
    }
    Ok(())
}

/// One synchronous invocation with the batch as an SQS event; the ids the
/// function reports as failed.
async fn invoke_with(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    batch: &[Delivery],
    source: &str,
) -> Result<Vec<String>> {
    let event = serde_json::to_vec(&sqs_event(batch, source))?;
    let resp = lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(event))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "invoking {function}: {}",
                aws_sdk_lambda::error::DisplayErrorContext(e)
            )
        })?;
    let payload = resp.payload().map(|p| p.as_ref()).unwrap_or_default();
    if let Some(kind) = resp.function_error() {
        anyhow::bail!(
            "{function} failed ({kind}): {}",
            String::from_utf8_lossy(payload)
        );
    }
    let response: SqsBatchResponse =
        serde_json::from_slice(payload).context("reading the batch response")?;
    Ok(response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect())
}
