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
pub use sample::{ComputedOrbit, Profile, profile};

use crate::deployment::Deployment;
use crate::error::PipelineError;
use lambda::{pyramid_bytes, rows_in, schedule, stitch_seconds};

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

/// Refuses a job whose stitch would outlast the stitch function's
/// timeout by the estimate's own model ([`LambdaPhases::plan`]), with the
/// margin the tiles get (80 % of it): Lambda would kill it without a word,
/// after every tile was paid for. (`check_capacity` bounds the stitch's
/// memory before the sample; its time needs the sample's model.)
pub fn check_stitch_time(profile: &Profile, deployment: &Deployment) -> Result<(), PipelineError> {
    let stitch = LambdaPhases::plan(profile, deployment).0.stitch;
    let timeout = deployment.stitch.timeout_secs;
    let budget = 0.8 * f64::from(timeout);
    if stitch > budget {
        let side = profile.params.image_side();
        return Err(PipelineError::OverCapacity {
            reason: format!(
                "stitching a {side}x{side} image would take about {stitch:.0} s, more than the \
                 stitch's timeout of {timeout} s allows ({budget:.0} s); render a smaller image, \
                 or give the stitch more memory (its CPU grows with it) or time (Terraform: \
                 stitch_memory_mb, stitch_timeout_seconds, up to 900)"
            ),
        });
    }
    Ok(())
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
            pyramid_bytes: pyramid_bytes(params),
            downloads: 1 + u64::from(counts_downloaded),
            downloaded_bytes: image_bytes + if counts_downloaded { counts_bytes } else { 0 },
            reference_segments: phases.reference_segments,
            reference_polls: if phases.reference_segments > 0 {
                crate::progress::reference_polls_during(phases.reference)
            } else {
                0
            },
        };
        let usage = Usage::of_job(&shape, deployment);
        let mut e = Estimate::of(profile, Target::Lambda, lanes, seconds);
        e.reference_seconds = phases.reference;
        e.cost = Some(usage.cost(&PRICES, &deployment.fleet.architecture));
        e.usage = Some(usage);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandel_core::RenderParams;

    #[test]
    fn a_stitch_longer_than_its_timeout_is_refused_before_launch() {
        let deployment = Deployment::defaults("us-east-1");
        // 1024² tiles of 32 px: the stitch fetches a million tiles, about
        // 980 s by the model, against its 300 s timeout.
        let many = RenderParams {
            tiles_per_side: 1024,
            tile_pixels: 32,
            max_iter: 100,
            ..RenderParams::default()
        };
        let profile = sample::profile(&many);
        let stitch = LambdaPhases::plan(&profile, &deployment).0.stitch;
        assert!(stitch > 0.8 * 300.0, "the model says {stitch:.0} s");
        let err = check_stitch_time(&profile, &deployment).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("stitch's timeout of 300 s"), "{message}");
        assert!(matches!(err, PipelineError::OverCapacity { .. }));
        // The default job's stitch fits with room to spare.
        let default = sample::profile(&RenderParams::default());
        check_stitch_time(&default, &deployment).unwrap();
        // Not even Lambda's longest timeout, 900 s, would do for it; a
        // quarter of its tiles (512² of 32 px) would be stitched in time.
        let mut longest = deployment.clone();
        longest.stitch.timeout_secs = 900;
        check_stitch_time(&profile, &longest).unwrap_err();
        let quarter = sample::profile(&RenderParams {
            tiles_per_side: 512,
            ..many
        });
        check_stitch_time(&quarter, &deployment).unwrap_err();
        check_stitch_time(&quarter, &longest).unwrap();
    }
}
