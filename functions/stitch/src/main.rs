//! `mandel-stitch`: assembles finished jobs. Runs as a Lambda on the stitch
//! queue, or with `--poll` as a local event-source mapping (same handler).

use clap::Parser;
use lambda_runtime::Error;
use std::time::Instant;

use mandel_aws::lambda::run_function;
use mandel_aws::{AwsClients, Cloud, bucket_from};
use mandel_pipeline::{Delivery, handle_stitch_delivery, one_at_a_time};

/// Stitch jobs from the stitch queue (a Lambda unless --poll is given).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Long-poll the stitch queue from this machine instead of serving Lambda.
    #[arg(long)]
    poll: bool,
    /// The deployment's bucket [default: $MANDEL_BUCKET].
    #[arg(long)]
    bucket: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    lambda_runtime::tracing::init_default_subscriber();
    let cloud = Cloud::connect(&AwsClients::from_env().await, &bucket_from(args.bucket)?).await?;
    // A failure on the queue's last delivery is recorded for the client.
    let max_receives = cloud.stitch_max_receive_count().await?;
    let store = cloud.store.clone();
    let handle = |batch: Vec<Delivery>, _deadline: Option<Instant>| {
        one_at_a_time(batch, |d| {
            let store = store.clone();
            async move { handle_stitch_delivery(&store, &d, max_receives).await }
        })
    };
    let poll = args.poll.then_some(1);
    run_function(&*cloud.stitch, cloud.deployment.stitch, poll, handle).await
}
