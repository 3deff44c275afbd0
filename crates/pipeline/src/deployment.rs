//! The deployment record: how a client or worker finds the queues of a
//! bucket. Written by the infrastructure (LocalStack's `up.sh` now,
//! Terraform on AWS) at [`DEPLOYMENT_KEY`] in the bucket, so a user only
//! names the bucket.

use std::time::Duration;

use mandel_core::RenderParams;
use serde::{Deserialize, Serialize};

use crate::error::PipelineError;
use crate::store::{ObjectStore, StoreError};

/// Where the record lives in the bucket.
pub const DEPLOYMENT_KEY: &str = ".mandel/deployment.json";

/// The environment variable that names the bucket, in the functions (set by
/// Terraform) and for the pollers and the CLI.
pub const BUCKET_ENV: &str = "MANDEL_BUCKET";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub version: u32,
    pub bucket: String,
    pub region: String,
    pub tiles_queue_url: String,
    pub tiles_dlq_url: String,
    pub stitch_queue_url: String,
    pub stitch_dlq_url: String,
    /// The explorer's tile queue, consumed by the workers beside the tiles
    /// queue (`infra/sqs.tf` says why). Records written before it existed
    /// have none: their explorers use the tiles queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore_queue_url: Option<String>,
    /// The worker function's timeout and memory (Terraform's variables).
    pub worker: FunctionLimits,
    /// The stitch function's timeout and memory.
    pub stitch: FunctionLimits,
    /// The fleet, as the cost and time estimates need it (Terraform's
    /// variables of the same names).
    pub fleet: Fleet,
}

impl Deployment {
    /// A deployment of Terraform's defaults in `region`, without its
    /// bucket or queues: what a model of a deployment not yet made uses.
    pub fn defaults(region: &str) -> Deployment {
        Deployment {
            version: 1,
            bucket: String::new(),
            region: region.to_string(),
            tiles_queue_url: String::new(),
            tiles_dlq_url: String::new(),
            stitch_queue_url: String::new(),
            stitch_dlq_url: String::new(),
            explore_queue_url: None,
            worker: FunctionLimits::WORKER,
            stitch: FunctionLimits::STITCH,
            fleet: Fleet::default(),
        }
    }
}

/// How the worker fleet runs: what [`estimate`](crate::estimate) models.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    /// `x86_64` or `arm64`: the price of a GB-second, and the kernel's lanes.
    pub architecture: String,
    /// Worker invocations at once (the SQS trigger's maximum concurrency).
    pub worker_max_concurrency: u32,
    /// Tile messages per worker invocation.
    pub worker_batch_size: u32,
    /// Days a job's objects are kept before the bucket expires them.
    pub job_retention_days: u32,
}

impl Default for Fleet {
    /// Terraform's defaults (`infra/variables.tf`; `tests/infra.rs` checks
    /// they agree).
    fn default() -> Self {
        Fleet {
            architecture: "x86_64".to_string(),
            worker_max_concurrency: 50,
            worker_batch_size: 10,
            job_retention_days: 7,
        }
    }
}

/// How long before an invocation's deadline a function stops computing:
/// a tenth of the invocation, at least 1 s and at most 10 s, to upload
/// what is finished, check completion or record why it stopped before
/// Lambda kills it.
pub fn stop_margin(invocation: Duration) -> Duration {
    (invocation / 10).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// What one invocation of a function may use, as Lambda enforces it: the
/// local pollers enforce the same ([`PollConfig::timeout`](crate::PollConfig),
/// and a memory cap in `mandel-aws`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionLimits {
    pub timeout_secs: u32,
    pub memory_mb: u32,
}

impl FunctionLimits {
    /// The worker's limits by default (Terraform's `worker_timeout_seconds`
    /// and `worker_memory_mb`; `tests/infra.rs` checks they agree).
    pub const WORKER: FunctionLimits = FunctionLimits {
        timeout_secs: 60,
        memory_mb: 3538,
    };
    /// The stitch's limits by default (`stitch_timeout_seconds`,
    /// `stitch_memory_mb`).
    pub const STITCH: FunctionLimits = FunctionLimits {
        timeout_secs: 300,
        memory_mb: 4096,
    };

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_secs))
    }
}

/// The slowest a tile can be: every pixel runs all `max_iter` iterations
/// at this rate on one core. A floor, not a typical figure: the kernel's
/// pure rate was measured at 2.1 G it/s per core with AVX2
/// (`docs/performance.md`, 2026-11-25); NEON on arm64 has half the lanes,
/// so half that, rounded down.
pub const KERNEL_RATE_FLOOR: f64 = 1.0e9;

/// A stitch's memory for a job of `params`, in MiB. It holds a row of
/// tiles at a time (a band of `P × side` pixels): the band's counts and the
/// next band's (4 + 4 bytes a pixel: counts are u32 in memory), the tiles
/// of the next band in flight (4), the band's `.npy` bytes (2, or 4 for a
/// deep job) and PNG bytes (at most about 3), then
/// the Deep Zoom pyramid's bands (256 RGB rows of every level, whose widths
/// add up to about twice the side), three upload parts of 8 MiB each (the
/// picture, the counts, the pyramid's pack, whose index adds 12 bytes a
/// pyramid tile: 256 KiB at 32768²) and the process itself. So it grows with the image's side, not its area: for
/// the largest image the CLI accepts (32768² in 4096-px tiles) it gives
/// about 1.5 GiB, an upper bound (the whole embedded process, without the
/// pyramid, measured 743 MiB, 2026-11-26).
fn stitch_mib(params: &RenderParams) -> f64 {
    let side = params.image_side() as f64;
    let band = f64::from(params.tile_pixels) * side;
    let per_pixel = 15.0 + params.count_width().bytes() as f64;
    let pyramid = (mandel_core::pyramid::TILE * 3 * 2) as f64 * side;
    (per_pixel * band + pyramid) / f64::from(1 << 20) + 24.0 + 100.0
}

/// A worker's memory for a deep job's reference orbit, in MiB: at most
/// `max_iter + 1` points, held prepared for rendering
/// ([`mandel_core::deep::DeepRenderer::BYTES_PER_POINT`]) while the stored
/// points are read.
fn reference_mib(params: &RenderParams) -> f64 {
    let points = f64::from(params.max_iter) + 1.0;
    let bytes = mandel_core::deep::DeepRenderer::BYTES_PER_POINT
        + mandel_core::deep::OrbitPoint::BYTES as f64 * 2.0;
    points * bytes / f64::from(1 << 20)
}

impl Deployment {
    /// Refuses a job that cannot run within this deployment's limits:
    /// its slowest possible tile must finish within 80 % of the worker's
    /// timeout (the rest is for uploads and the stop margin), and its
    /// stitch must fit 90 % of the stitch's memory.
    pub fn check_capacity(&self, params: &RenderParams) -> Result<(), PipelineError> {
        if params.as_deep().is_some() {
            return self.check_deep_capacity(params);
        }
        let worst_tile =
            params.pixels_per_tile() as f64 * f64::from(params.max_iter) / KERNEL_RATE_FLOOR;
        let budget = 0.8 * f64::from(self.worker.timeout_secs);
        if worst_tile > budget {
            return Err(PipelineError::OverCapacity {
                reason: format!(
                    "a tile of {p}x{p} pixels at {i} iterations may take up to {worst_tile:.0} s, \
                     more than the worker's timeout of {t} s allows ({budget:.0} s of work); \
                     use more tiles (--tiles-per-side), fewer iterations (--max-iter), \
                     or a longer worker timeout (Terraform: worker_timeout_seconds)",
                    p = params.tile_pixels,
                    i = params.max_iter,
                    t = self.worker.timeout_secs,
                ),
            });
        }
        self.check_stitch_memory(params)
    }

    /// A deep job: each worker must hold its reference orbit (the longest
    /// the job's `max_iter` allows) in 90 % of its memory, and the stitch
    /// its rows as for any job. A deep tile's time has no useful bound
    /// from `max_iter` (BLA skips most iterations): the estimate samples
    /// it, and a tile that outlasts the worker's deadline fails the job
    /// with the reason.
    fn check_deep_capacity(&self, params: &RenderParams) -> Result<(), PipelineError> {
        let need = reference_mib(params);
        let have = 0.9 * f64::from(self.worker.memory_mb);
        if need > have {
            return Err(PipelineError::OverCapacity {
                reason: format!(
                    "a deep job of max_iter {i} may need a reference orbit of {p} points, about \
                     {need:.0} MiB in each worker, more than the worker's memory of {m} MiB \
                     allows ({have:.0} MiB); use fewer iterations (--max-iter) or give the \
                     workers more memory (Terraform: worker_memory_mb, up to 10240)",
                    i = params.max_iter,
                    p = u64::from(params.max_iter) + 1,
                    m = self.worker.memory_mb,
                ),
            });
        }
        self.check_stitch_memory(params)
    }

    fn check_stitch_memory(&self, params: &RenderParams) -> Result<(), PipelineError> {
        let need = stitch_mib(params);
        let have = 0.9 * f64::from(self.stitch.memory_mb);
        if need > have {
            let side = params.image_side();
            return Err(PipelineError::OverCapacity {
                reason: format!(
                    "stitching a {side}x{side} image needs about {need:.0} MiB, more than the \
                     stitch's memory of {m} MiB allows ({have:.0} MiB); render a smaller image, \
                     or give the stitch more memory (Terraform: stitch_memory_mb, up to 10240)",
                    m = self.stitch.memory_mb,
                ),
            });
        }
        Ok(())
    }

    /// Reads the record from `store`.
    pub async fn load(store: &dyn ObjectStore) -> Result<Deployment, PipelineError> {
        let object = match store.get(DEPLOYMENT_KEY).await {
            Ok(o) => o,
            Err(StoreError::NotFound { .. }) => {
                return Err(PipelineError::Deployment {
                    reason: format!(
                        "no deployment record at {DEPLOYMENT_KEY} in the bucket: deploy with Terraform \
                         (infra/) or start LocalStack with localstack/up.sh"
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&object.body).map_err(|e| PipelineError::Deployment {
            reason: format!(
                "deployment record {DEPLOYMENT_KEY} is invalid ({e}); re-run terraform apply \
                 (or localstack/up.sh) to write the current one"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_stitch_mib() -> f64 {
        // infra/variables.tf: stitch_memory_mb.
        4096.0
    }

    #[test]
    fn a_deep_job_s_orbit_must_fit_the_worker() {
        let view = mandel_core::deep::DeepView::parse("-1.75", "0", "1e1086").unwrap();
        let params = |max_iter| RenderParams {
            view: mandel_core::View::Deep(view.clone()),
            tiles_per_side: 8,
            tile_pixels: 128,
            max_iter,
        };
        let fleet = Deployment::defaults("us-east-1");
        // The 1e1086 benchmark's 600,100 iterations fit the default worker;
        // 10^8 iterations (some 30 GiB of orbit) fit no Lambda.
        fleet.check_capacity(&params(600_100)).unwrap();
        let err = fleet.check_capacity(&params(100_000_000)).unwrap_err();
        assert!(err.to_string().contains("reference orbit"), "{err}");
        // No brute-force bound on a deep tile's time (600,100 iterations in
        // 128² pixels would be 10^10 iterations, some 10^4 s at the f64
        // floor); a viewport tile keeps its bound.
        let viewport = RenderParams {
            tiles_per_side: 4,
            tile_pixels: 1024,
            max_iter: 60_000,
            ..RenderParams::default()
        };
        let err = fleet.check_capacity(&viewport).unwrap_err();
        assert!(err.to_string().contains("timeout"), "{err}");
    }

    #[test]
    fn the_largest_accepted_image_stitches_in_the_default_memory() {
        for (tiles_per_side, tile_pixels) in [(8, 4096), (128, 256), (1024, 32)] {
            let params = RenderParams {
                tiles_per_side,
                tile_pixels,
                ..RenderParams::default()
            };
            params.validate().unwrap();
            assert!(
                stitch_mib(&params) <= 0.9 * default_stitch_mib(),
                "{tiles_per_side}x{tile_pixels}: {} MiB",
                stitch_mib(&params)
            );
        }
    }
}
