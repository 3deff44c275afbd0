//! What a job will take before it runs, and what it took after.
//!
//! [`profile`] runs the real kernel over a coarse grid of the job's view
//! (at most 256² pixels, tens of milliseconds) and times each coarse tile
//! on one core: that gives the job's iterations and each tile's kernel
//! time on this machine, with the pixel mix and the shortcuts included.
//! [`Estimate::embedded`] and [`Estimate::lambda`] turn a profile into a
//! wall time (the tiles list-scheduled onto the workers, as the queue hands
//! them out) and, for Lambda, into a [`Usage`] of the AWS services. One
//! function counts a job's requests, [`Usage::of_job`], for the estimate
//! and for the actual job alike ([`Actual`]), and [`Usage::cost`] prices
//! a usage at the list prices in [`PRICES`].
//!
//! The figures a sample cannot measure (Lambda's cold start and scaling,
//! per-request latency, the speed of a Lambda core against this one) are
//! the constants of [`Model`], each with its source.

//!
//! Its parts: `sample` (the profile), `lambda` (the model of a job on
//! Lambda), `cost` (usage and prices) and `actual` (a finished job
//! against its estimate, and the submission record).

mod actual;
mod cost;
mod lambda;
mod sample;

use serde::{Deserialize, Serialize};

pub use actual::{Actual, Submission};
pub use cost::{Cost, JobRequests, JobShape, PRICES, Prices, S3Requests, Usage};
pub use lambda::{LambdaPhases, MODEL, Model};
pub use sample::{Profile, profile};

use crate::deployment::Deployment;
use lambda::{rows_in, schedule, stitch_seconds};
use mandel_core::pyramid;

/// Where a job runs, as an estimate names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Embedded,
    Lambda,
}

/// A job's prediction: the `--estimate` document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Estimate {
    pub target: Target,
    pub tiles: u64,
    /// Tile workers at once (embedded threads, or Lambda invocations).
    pub workers: u64,
    /// Brute-force iterations of the image.
    pub iterations: u64,
    /// Kernel seconds on one core of this machine.
    pub core_seconds: f64,
    /// A deep job's reference orbit, seconds in the target (0 otherwise).
    #[serde(default)]
    pub reference_seconds: f64,
    /// Wall time from submit to the stitched result.
    pub seconds: f64,
    /// The AWS services used, and their price (Lambda only).
    pub usage: Option<Usage>,
    pub cost: Option<Cost>,
    pub sample: SampleFacts,
}

/// How the estimate was sampled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleFacts {
    pub pixels: u64,
    pub milliseconds: f64,
    pub kernel: String,
}

impl Estimate {
    fn of(profile: &Profile, target: Target, workers: u64, seconds: f64) -> Estimate {
        Estimate {
            target,
            tiles: profile.params.tile_count(),
            workers,
            iterations: profile.iterations.round() as u64,
            core_seconds: profile.core_seconds(),
            reference_seconds: profile.reference_seconds,
            seconds,
            usage: None,
            cost: None,
            sample: SampleFacts {
                pixels: profile.sample_pixels,
                milliseconds: profile.sample_seconds * 1e3,
                kernel: profile.kernel.to_string(),
            },
        }
    }

    /// The job embedded on `workers` threads of this machine: the tiles
    /// list-scheduled onto the workers (at most one per core), then the
    /// stitch.
    pub fn embedded(profile: &Profile, workers: usize) -> Estimate {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lanes = workers.min(cores).max(1);
        let tiles = profile
            .tile_seconds
            .iter()
            .map(|s| s + MODEL.embedded_tile_overhead_s);
        // A deep job's orbit is computed, on one core, before its tiles.
        let seconds = profile.reference_seconds
            + schedule(std::iter::repeat_n(0.0, lanes), tiles)
            + stitch_seconds(&profile.params, 1.0);
        Estimate::of(profile, Target::Embedded, workers as u64, seconds)
    }

    /// The job on `deployment`'s Lambda functions: batches of tiles
    /// list-scheduled onto invocations that the SQS trigger adds at its
    /// scaling rate, each running its batch on its vCPUs; then the stitch.
    /// `download` is the bytes the client fetches besides the picture.
    pub fn lambda(profile: &Profile, deployment: &Deployment, counts_downloaded: bool) -> Estimate {
        let params = &profile.params;
        let batch = deployment.fleet.worker_batch_size.max(1) as usize;
        let (phases, batches) = LambdaPhases::plan(profile, deployment);
        let (invocations, lanes) = (phases.invocations, phases.workers);
        let seconds = phases.total();
        let stitch = phases.stitch;
        let side = params.image_side();
        let counts_bytes = params.count_width().bytes() as u64 * side * side;
        let image_bytes = (MODEL.png_bytes_per_pixel * (side * side) as f64) as u64;
        let shape = JobShape {
            tiles: params.tile_count(),
            rows: u64::from(params.tiles_per_side),
            invocations,
            rows_touched: profile
                .params
                .tiles()
                .collect::<Vec<_>>()
                .chunks(batch)
                .map(|c| rows_in(c.iter().copied()))
                .sum(),
            cold_starts: lanes,
            worker_seconds: batches.iter().sum::<f64>() + phases.reference,
            stitch_seconds: stitch,
            wait_seconds: seconds,
            image_bytes,
            counts_bytes,
            pyramid_objects: pyramid::object_count(side as usize, side as usize),
            downloads: 1 + u64::from(counts_downloaded),
            downloaded_bytes: image_bytes + if counts_downloaded { counts_bytes } else { 0 },
        };
        let usage = Usage::of_job(&shape, deployment);
        let mut e = Estimate::of(profile, Target::Lambda, lanes, seconds);
        e.reference_seconds = phases.reference;
        e.cost = Some(usage.cost(&PRICES, &deployment.fleet.architecture));
        e.usage = Some(usage);
        e
    }
}
