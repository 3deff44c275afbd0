//! `mandel-worker`: renders tiles. Runs as a Lambda on the tiles queue, or
//! with `--poll` as a local event-source mapping (same handler).

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use lambda_runtime::Error;
use mandel_aws::lambda::run_function;
use mandel_aws::{AwsClients, Cloud, bucket_from};
use mandel_pipeline::{Delivery, TileWorker};

/// Render tiles from the tiles queue (a Lambda unless --poll is given).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Long-poll the tiles queue from this machine instead of serving Lambda.
    #[arg(long)]
    poll: bool,
    /// The deployment's bucket [default: $MANDEL_BUCKET].
    #[arg(long)]
    bucket: Option<String>,
    /// Messages per receive when polling (1 to 10).
    #[arg(long, default_value_t = 10)]
    batch: usize,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    lambda_runtime::tracing::init_default_subscriber();
    let cloud = Cloud::connect(&AwsClients::from_env().await, &bucket_from(args.bucket)?).await?;
    // Which process rendered each tile is recorded in result.json.
    let id = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| {
        let mode = if args.poll { "poller" } else { "lambda" };
        format!("{mode}-{}", std::process::id())
    });
    // A failure on the queue's last delivery is recorded for the client.
    let max_receives = cloud.tiles_max_receive_count().await?;
    let worker = Arc::new(
        TileWorker::new(cloud.store.clone(), cloud.stitch.clone(), id)
            .with_max_receive_count(max_receives),
    );
    let handle = |batch: Vec<Delivery>, deadline: Option<Instant>| {
        let worker = Arc::clone(&worker);
        async move { worker.handle_batch(&batch, deadline).await.failed_ids() }
    };
    let poll = args.poll.then_some(args.batch);
    run_function(&*cloud.tiles, cloud.deployment.worker, poll, handle).await
}
