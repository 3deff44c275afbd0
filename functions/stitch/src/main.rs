//! `mandel-stitch`: assembles finished jobs. Runs as a Lambda on the stitch
//! queue, or with `--poll` as a local event-source mapping (same handler).

use aws_lambda_events::event::sqs::SqsEvent;
use clap::Parser;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::time::Instant;

use mandel_aws::lambda::{cap_memory, handle_batch, poll_until_signal};
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
    let limits = cloud.deployment.stitch;
    // Lambda caps a function's memory; so does the local emulation.
    cap_memory(limits)?;
    // A failure on the queue's last delivery is recorded for the client.
    let max_receives = cloud.stitch_max_receive_count().await?;
    let store = cloud.store.clone();
    let handle = |batch: Vec<Delivery>, _deadline: Option<Instant>| {
        one_at_a_time(batch, |d| {
            let store = store.clone();
            async move { handle_stitch_delivery(&store, &d, max_receives).await }
        })
    };
    if args.poll {
        poll_until_signal(&*cloud.stitch, 1, limits, handle).await?;
        return Ok(());
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(handle_batch(event, limits, handle).await)
    }))
    .await
}
