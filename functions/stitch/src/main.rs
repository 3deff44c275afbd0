//! `mandel-stitch`: assembles finished jobs. Runs as a Lambda on the stitch
//! queue, or with `--poll` as a local event-source mapping (same handler).

use std::time::Instant;

use clap::Parser;
use mandel_aws::lambda::{Function, FunctionArgs, serve};
use mandel_pipeline::{Delivery, Pyramid, handle_stitch_delivery, one_at_a_time};

/// Stitch jobs from the stitch queue (a Lambda unless --poll is given).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    function: FunctionArgs,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let args = Args::parse();
    // One job at a time: a stitch holds a row of tiles of its image.
    serve(Function::Stitch, args.function, 1, |setup| {
        let (store, max_receives) = (setup.cloud.ports.store.clone(), setup.max_receive_count);
        move |batch: Vec<Delivery>, deadline: Option<Instant>| {
            let store = store.clone();
            one_at_a_time(batch, move |d| {
                let store = store.clone();
                async move {
                    handle_stitch_delivery(&store, &d, max_receives, Pyramid::Write, deadline).await
                }
            })
        }
    })
    .await
}
