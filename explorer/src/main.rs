//! `mandel-explore`: pan and zoom the Mandelbrot set in a browser. A web
//! server on 127.0.0.1 serves the viewer and renders any tile of the world
//! on request with the exact kernel, caching each picture on disk for good
//! (its key names its exact params and the contract's version). With
//! `--bucket` the deployed workers render the tiles this machine has not
//! cached, and the bucket keeps them for every explorer. It prints its URL
//! on stdout.

mod server;

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use mandel_aws::{AwsClients, Cloud};
use mandel_core::Colormap;
use mandel_pipeline::explore::{Renderer, SpendingLimit};

#[derive(Debug, Parser)]
#[command(name = "mandel-explore", version, about)]
struct Args {
    /// Port to listen on, on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8000)]
    port: u16,

    /// Folder of the tile cache [default: $XDG_CACHE_HOME/mandel/explore,
    /// else ~/.cache/mandel/explore].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,

    /// Most bytes of tiles the cache keeps (e.g. 500MB, 2GiB); the least
    /// recently served go first.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    cache_max: bytesize::ByteSize,

    /// Colormap of the tiles: twilight_shifted, viridis, magma or gray.
    #[arg(long, default_value = "twilight_shifted")]
    colormap: Colormap,

    /// Tiles rendered at once [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,

    /// Also serve a pyramid written by `mandel-orchestrate --pyramid DIR`,
    /// at `/pyramid/`.
    #[arg(long, value_name = "DIR")]
    pyramid: Option<PathBuf>,

    /// Have the workers deployed with this bucket render the tiles (and
    /// keep them there); also serve its jobs' pyramids at
    /// `/jobs/JOB/pyramid/`. Without it, tiles render on this machine.
    #[arg(long, value_name = "BUCKET")]
    bucket: Option<String>,

    /// With --bucket: give up on a tile the workers have not stored after
    /// this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, requires = "bucket",
          value_parser = clap::value_parser!(u64).range(1..=900))]
    tile_timeout: u64,

    /// With --bucket: spend at most this many US dollars an hour on tiles
    /// the bucket lacks, each priced by the cost model before it is sent;
    /// past it, tiles are refused (429) until older ones are an hour old.
    #[arg(long, value_name = "USD", default_value_t = 0.25, requires = "bucket",
          value_parser = non_negative_dollars)]
    max_cost_per_hour: f64,
}

fn non_negative_dollars(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of US dollars, 0 or more")),
    }
}

fn default_cache() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(
            std::env::var_os("HOME")
                .context("neither XDG_CACHE_HOME nor HOME is set; pass --cache")?,
        )
        .join(".cache"),
    };
    Ok(base.join("mandel").join("explore"))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mandel=info,mandel_explore=info".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(dir) = &args.pyramid {
        let index = dir.join("index.html");
        if !index.is_file() {
            eprintln!(
                "mandel-explore: error: --pyramid: {} has no index.html; write one with mandel-orchestrate --pyramid DIR",
                dir.display()
            );
            std::process::exit(2);
        }
    }
    let cache = match args.cache {
        Some(dir) => dir,
        None => default_cache()?,
    };
    let workers = args
        .workers
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (renderer, bucket, rendered_by) = match &args.bucket {
        None => (
            Renderer::local(workers),
            None,
            format!("on {workers} cores here"),
        ),
        Some(bucket) => {
            let cloud = Cloud::connect(&AwsClients::from_env().await, bucket)
                .await
                .with_context(|| format!("connecting to the deployment of bucket {bucket}"))?;
            let renderer = Renderer::Fleet {
                store: cloud.ports.store.clone(),
                // Its own queue, so its tiles and batch jobs never wait
                // for each other (older deployments: the tiles queue).
                tiles_queue: cloud.explore.clone().unwrap_or(cloud.ports.tiles.clone()),
                timeout: Duration::from_secs(args.tile_timeout),
                limit: Arc::new(SpendingLimit::per_hour(
                    args.max_cost_per_hour,
                    cloud.deployment.clone(),
                )),
            };
            (
                renderer,
                Some(cloud.ports.store),
                format!(
                    "by the workers of bucket {bucket}, at most ${} an hour",
                    args.max_cost_per_hour
                ),
            )
        }
    };
    let config = server::Config {
        port: args.port,
        cache,
        cache_max: args.cache_max.as_u64(),
        colormap: args.colormap,
        renderer,
        rendered_by,
        pyramid: args.pyramid,
        bucket,
    };
    server::run(config).await
}
