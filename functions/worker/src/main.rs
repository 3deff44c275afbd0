//! `mandel-worker`: renders tiles. Runs as a Lambda on the tiles queue, or
//! with `--poll` as a local event-source mapping (same handler).

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use mandel_aws::lambda::{Function, FunctionArgs, serve};
use mandel_pipeline::{Delivery, TileWorker};

/// Render tiles from the tiles queue (a Lambda unless --poll is given).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    function: FunctionArgs,
    /// Messages per receive when polling (1 to 10).
    #[arg(long, default_value_t = 10)]
    batch: usize,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let args = Args::parse();
    serve(Function::Worker, args.function, args.batch, |setup| {
        let worker = Arc::new(
            TileWorker::new(
                setup.cloud.ports.store.clone(),
                setup.cloud.ports.stitch.clone(),
                setup.process_name.clone(),
            )
            .with_max_receive_count(setup.max_receive_count),
        );
        move |batch: Vec<Delivery>, deadline: Option<Instant>| {
            let worker = Arc::clone(&worker);
            async move { worker.handle_batch(&batch, deadline).await.failed_ids() }
        }
    })
    .await
}
