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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mandel_core::{RenderParams, TileId, kernel, pyramid};
use serde::{Deserialize, Serialize};

use crate::deployment::Deployment;
use crate::job::{ResultManifest, TileStat};

/// The coarse grid's side when the first, smaller grid shows the job is
/// cheap to sample.
const FINE_SAMPLE_SIDE: u32 = 256;
/// The first grid's side: 4096 pixels, a few milliseconds at worst.
const COARSE_SAMPLE_SIDE: u32 = 64;
/// The most core time the fine grid may take, judged from the coarse one.
const SAMPLE_BUDGET_SECS: f64 = 0.25;

/// A job's kernel work, measured on a coarse grid of its view.
#[derive(Clone, Debug)]
pub struct Profile {
    pub params: RenderParams,
    /// Brute-force iterations of the whole image (what `result.json`
    /// reports as `iterations`).
    pub iterations: f64,
    /// Kernel seconds of each tile on one core of this machine, row-major.
    pub tile_seconds: Vec<f64>,
    /// Pixels the sample rendered, and its wall time.
    pub sample_pixels: u64,
    pub sample_seconds: f64,
    /// The kernel level that ran it.
    pub kernel: &'static str,
}

impl Profile {
    /// Kernel seconds of the whole job on one core.
    pub fn core_seconds(&self) -> f64 {
        self.tile_seconds.iter().sum()
    }
}

/// Samples `params` (valid ones) with the real kernel, on every core.
///
/// Two grids over the job's view: one with as many tiles as the job (up
/// to one per sample pixel) gives each tile's share of the work (its
/// executed iterations plus its pixels) and the image's iterations; one
/// with tiles of at least 32 pixels a side is timed, so
/// the seconds per unit of work are not swamped by the fixed cost of
/// rendering a tiny tile.
pub fn profile(params: &RenderParams) -> Profile {
    let started = Instant::now();
    let mut side = COARSE_SAMPLE_SIDE;
    let mut timed = sample(&calibration_grid(params, side));
    let growth = (FINE_SAMPLE_SIDE / COARSE_SAMPLE_SIDE).pow(2) as f64;
    let coarse_secs: f64 = timed.iter().map(|t| t.seconds).sum();
    if params.image_side() > u64::from(side) && coarse_secs * growth <= SAMPLE_BUDGET_SECS {
        side = FINE_SAMPLE_SIDE;
        timed = sample(&calibration_grid(params, side));
    }
    // Each tile's fastest of three timings: a shared machine's noise (an
    // interrupt, another process) only ever adds time.
    for _ in 0..2 {
        let again = sample(&calibration_grid(params, side));
        for (t, a) in timed.iter_mut().zip(again) {
            t.seconds = t.seconds.min(a.seconds);
        }
    }
    let seconds_per_work = timed.iter().map(|t| t.seconds).sum::<f64>()
        / timed.iter().map(|t| t.work).sum::<u64>().max(1) as f64;
    let grid = coarse_grid(params, side);
    let measured = sample(&grid);
    let sample_pixels = grid.image_side() * grid.image_side();
    let iterations: u64 = measured.iter().map(|t| t.iterations).sum();
    let pixels = params.image_side() * params.image_side();
    let scale = pixels as f64 / sample_pixels as f64;
    // Each real tile has the work per pixel of the coarse tile its centre
    // falls in.
    let (coarse_tiles, tiles) = (grid.tiles_per_side, params.tiles_per_side);
    let coarse_pixels = grid.pixels_per_tile() as f64;
    let per_tile = params.pixels_per_tile() as f64;
    let tile_seconds = params
        .tiles()
        .map(|t| {
            let at = |i: u32| {
                ((2 * u64::from(i) + 1) * u64::from(coarse_tiles) / (2 * u64::from(tiles))) as u32
            };
            let c = &measured[(at(t.row) * coarse_tiles + at(t.col)) as usize];
            c.work as f64 / coarse_pixels * per_tile * seconds_per_work
        })
        .collect();
    Profile {
        params: *params,
        iterations: iterations as f64 * scale,
        tile_seconds,
        sample_pixels,
        sample_seconds: started.elapsed().as_secs_f64(),
        kernel: kernel::Level::selected().name(),
    }
}

/// The smallest side of a timed sample tile: at 32² pixels the fixed cost
/// of a tile (its coordinates, its buffer, the clock) is under a percent.
const CALIBRATION_TILE: u32 = 32;

/// The same view and iterations at an image side of about `side` pixels,
/// with as many tiles as the job has, up to one per pixel.
fn coarse_grid(params: &RenderParams, side: u32) -> RenderParams {
    let side = (params.image_side() as u32).min(side);
    let tiles = params.tiles_per_side.min(side);
    RenderParams {
        tiles_per_side: tiles,
        tile_pixels: side / tiles,
        ..*params
    }
}

/// Like [`coarse_grid`], with tiles of at least [`CALIBRATION_TILE`]
/// pixels a side (or one tile, if the image is smaller).
fn calibration_grid(params: &RenderParams, side: u32) -> RenderParams {
    let side = (params.image_side() as u32).min(side);
    let tiles = params.tiles_per_side.min(side / CALIBRATION_TILE).max(1);
    RenderParams {
        tiles_per_side: tiles,
        tile_pixels: side / tiles,
        ..*params
    }
}

/// One coarse tile, measured: its seconds, its brute-force iterations and
/// its work (executed iterations plus pixels: a pixel the shortcuts skip
/// still costs its coordinates and its store).
#[derive(Clone, Copy, Default)]
struct Measured {
    seconds: f64,
    iterations: u64,
    work: u64,
}

/// A tile's work: the iterations of the pixels the interior shortcut
/// does not settle, plus one per pixel.
fn work_of(grid: &RenderParams, tile: TileId, counts: &[u16]) -> u64 {
    let axes = grid.tile_axes(tile);
    let mut work = counts.len() as u64;
    for (row, &y) in counts.chunks_exact(axes.xs.len()).zip(&axes.ys) {
        for (&c, &x) in row.iter().zip(&axes.xs) {
            if !kernel::surely_interior(x, y) {
                work += (u64::from(c) + 1).min(u64::from(grid.max_iter));
            }
        }
    }
    work
}

/// Renders every tile of `grid`, timing each on its own core.
fn sample(grid: &RenderParams) -> Vec<Measured> {
    let tiles: Vec<TileId> = grid.tiles().collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut measured = vec![Measured::default(); tiles.len()];
    let parts: Vec<Vec<(usize, Measured)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    let mut counts = vec![0u16; grid.pixels_per_tile()];
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&tile) = tiles.get(i) else { break };
                        let started = Instant::now();
                        kernel::render_tile_into(grid, tile, &mut counts);
                        let seconds = started.elapsed().as_secs_f64();
                        let iterations = kernel::brute_force_iterations(&counts, grid.max_iter);
                        let work = work_of(grid, tile, &counts);
                        done.push((
                            i,
                            Measured {
                                seconds,
                                iterations,
                                work,
                            },
                        ));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sampling panicked"))
            .collect()
    });
    for (i, m) in parts.into_iter().flatten() {
        measured[i] = m;
    }
    measured
}

/// The figures an estimate assumes because a sample here cannot measure
/// them. Each says where it comes from; `docs/cost.md` lists them.
#[derive(Clone, Copy, Debug)]
pub struct Model {
    /// Core seconds per tile outside the kernel in the embedded mode (the
    /// queue, the scratch store, the row check), and the seconds of an
    /// embedded run that are neither tiles nor stitch (the sample, the
    /// scratch store, the workers starting).
    pub embedded_tile_overhead_s: f64,
    pub embedded_fixed_s: f64,
    /// Seconds per output pixel to stitch (PNG and `.npy`, two threads).
    pub stitch_s_per_pixel: f64,
    /// Seconds per output pixel the cloud stitch adds for the pyramid:
    /// `--pyramid` added 0.27 s to the embedded default job's 16.8
    /// Mpixel (2026-11-26).
    pub pyramid_s_per_pixel: f64,
    /// A worker's cold start (Rust on `provided.al2023`, init and first
    /// poll): published measurements of Rust functions put the init at
    /// 20–50 ms; the rest is the SQS trigger's first delivery.
    pub cold_start_s: f64,
    /// Worker invocations the SQS trigger starts with, and how many it adds
    /// a second (AWS Lambda documentation: "up to 300 concurrent
    /// invocations per minute").
    pub initial_concurrency: u32,
    pub scale_per_s: f64,
    /// One S3 or SQS request's latency inside a region (AWS's S3
    /// performance guide: 100–200 ms first-byte for small objects at the
    /// tail, tens of milliseconds typical).
    pub request_s: f64,
    /// A Lambda core's kernel speed against one of this machine's, by
    /// architecture: assumed equal on x86_64; NEON has a quarter of
    /// AVX-512's lanes and half of AVX2's, so half on arm64.
    pub x86_core_speed: f64,
    pub arm_core_speed: f64,
    /// Lambda gives a function one vCPU per this much memory (AWS Lambda
    /// documentation), at most six.
    pub mb_per_vcpu: f64,
    /// Bytes of PNG per pixel, for the transfer of the picture: an upper
    /// bound (the default job's PNG is 0.045 bytes a pixel).
    pub png_bytes_per_pixel: f64,
}

/// The model the estimates use.
pub const MODEL: Model = Model {
    // Fitted to seven embedded jobs from 4096² to 32768² and from 256 to
    // a million tiles (docs/cost.md), 2026-11-26.
    embedded_tile_overhead_s: 25e-6,
    embedded_fixed_s: 0.1,
    stitch_s_per_pixel: 17e-9,
    pyramid_s_per_pixel: 16e-9,
    cold_start_s: 0.25,
    initial_concurrency: 5,
    scale_per_s: 5.0,
    request_s: 0.03,
    x86_core_speed: 1.0,
    arm_core_speed: 0.5,
    mb_per_vcpu: 1769.0,
    png_bytes_per_pixel: 1.0,
};

/// AWS list prices in US dollars (us-east-1, on-demand, no free tier),
/// from the services' pricing pages as of 2026-11; `docs/cost.md` names
/// the pages.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Prices {
    pub lambda_gb_second_x86: f64,
    pub lambda_gb_second_arm: f64,
    pub lambda_request: f64,
    /// S3 Standard PUT, COPY, POST and LIST requests.
    pub s3_put_request: f64,
    /// S3 Standard GET and HEAD requests.
    pub s3_get_request: f64,
    /// SQS standard queue requests (each 64 KiB chunk).
    pub sqs_request: f64,
    /// Data out of AWS to the internet, per GB (first 10 TB a month).
    pub transfer_out_gb: f64,
    /// S3 Standard storage per GB-month (first 50 TB).
    pub storage_gb_month: f64,
}

pub const PRICES: Prices = Prices {
    lambda_gb_second_x86: 0.000_016_666_7,
    lambda_gb_second_arm: 0.000_013_333_4,
    lambda_request: 0.20e-6,
    s3_put_request: 0.005e-3,
    s3_get_request: 0.0004e-3,
    sqs_request: 0.40e-6,
    transfer_out_gb: 0.09,
    storage_gb_month: 0.023,
};

/// What a job uses of the AWS services.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub lambda_gb_seconds: f64,
    pub lambda_requests: u64,
    pub s3_put_requests: u64,
    pub s3_get_requests: u64,
    pub sqs_requests: u64,
    pub transfer_out_gb: f64,
    pub storage_gb_months: f64,
}

/// A usage priced, item by item, in US dollars.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub lambda_compute: f64,
    pub lambda_requests: f64,
    pub s3_requests: f64,
    pub sqs_requests: f64,
    pub transfer_out: f64,
    pub storage: f64,
    pub total: f64,
}

/// The facts of a job that decide its requests and its bill: predicted
/// for an estimate, observed for a finished job.
#[derive(Clone, Debug, Default)]
pub struct JobShape {
    pub tiles: u64,
    pub rows: u64,
    /// Worker invocations, and the rows they wrote to, summed over them.
    pub invocations: u64,
    pub rows_touched: u64,
    /// Worker processes started (each a cold start).
    pub cold_starts: u64,
    /// Seconds of worker invocations and of the stitch.
    pub worker_seconds: f64,
    pub stitch_seconds: f64,
    /// The client's wait, which decides how often it polls.
    pub wait_seconds: f64,
    pub image_bytes: u64,
    pub counts_bytes: u64,
    /// The objects of the job's Deep Zoom pyramid (the stitch's PUTs).
    pub pyramid_objects: u64,
    /// The outputs the client downloads.
    pub downloaded_bytes: u64,
}

impl Usage {
    /// Counts the requests of a job run by the protocol in `crate::job`,
    /// and its Lambda time, for `deployment`.
    pub fn of_job(shape: &JobShape, deployment: &Deployment) -> Usage {
        let s = shape;
        let gb = |mb: u32| f64::from(mb) / 1024.0;
        let worker_seconds = s.worker_seconds + s.cold_starts as f64 * MODEL.cold_start_s;
        let parts = |bytes: u64| bytes.div_ceil(crate::upload::PART_SIZE as u64).max(1);
        // A job of at most a thousand tiles is seen in one listing of it;
        // a larger one through row markers (`crate::tiles`).
        let whole = crate::progress::listed_whole(s.tiles);
        // Client: submit (params and estimate PUTs, then one listing; over
        // a thousand tiles, a HEAD, a listing of the failure records and a
        // listing per 1000 tiles; deletes are free), then a poll every
        // 250 ms per 1000 tiles (one listing; over 1000 tiles, `rows/`,
        // `failed/` and two HEADs), then result.json, stats.json, the
        // stitch's marker and the outputs.
        let thousands = s.tiles.div_ceil(1000);
        let polls = (s.wait_seconds / (0.25 * thousands as f64)).ceil() as u64;
        let (submit_lists, submit_heads, poll_lists, poll_heads) = if whole {
            (1, 0, polls, 0)
        } else {
            (1 + thousands, 1, 2 * polls, 2 * polls)
        };
        let client_put = 2 + submit_lists + poll_lists;
        let client_get = submit_heads + poll_heads + 2 + 1 + 2;
        // Workers: per process its params; a cancel HEAD per process and
        // second of work at most; per tile its PUT; per invocation one
        // listing of the job, or over a thousand tiles a listing per row
        // written to and, per row, its marker and a listing of the markers.
        let cancel_heads = s
            .invocations
            .min(s.cold_starts + s.worker_seconds.ceil() as u64);
        let worker_put = s.tiles
            + if whole {
                s.invocations
            } else {
                s.rows_touched + 2 * s.rows
            };
        let worker_get = s.cold_starts + cancel_heads;
        // Stitch: its marker, one listing of the job (over a thousand
        // tiles, of `rows/` and of each row), two multipart uploads (start,
        // parts, complete), the pyramid's objects, stats.json, report.html
        // and result.json; params, estimate.json and every tile (over a
        // thousand tiles, two HEADs too).
        let stitch_lists = if whole { 1 } else { 1 + s.rows };
        let stitch_put = 1
            + stitch_lists
            + 2 * 2
            + parts(s.image_bytes)
            + parts(s.counts_bytes)
            + s.pyramid_objects
            + 3;
        let stitch_get = 2 + s.tiles + if whole { 0 } else { 2 };
        Usage {
            lambda_gb_seconds: worker_seconds * gb(deployment.worker.memory_mb)
                + (s.stitch_seconds + MODEL.cold_start_s) * gb(deployment.stitch.memory_mb),
            lambda_requests: s.invocations + 1,
            s3_put_requests: client_put + worker_put + stitch_put,
            s3_get_requests: client_get + worker_get + stitch_get,
            // Sends in batches of 10, one receive and one batch delete per
            // invocation; the stitch message's send, receive and delete.
            sqs_requests: s.tiles.div_ceil(10) + 2 * s.invocations + 3,
            transfer_out_gb: s.downloaded_bytes as f64 / 1e9,
            // The tiles (as many bytes as the counts) and the outputs (the
            // pyramid about a third more than the picture, its levels
            // shrinking by four), kept for the retention period.
            storage_gb_months: (2 * s.counts_bytes + s.image_bytes + s.image_bytes / 3) as f64
                / 1e9
                * f64::from(deployment.fleet.job_retention_days)
                / 30.0,
        }
    }

    /// This usage at `prices`, on `architecture`'s GB-second price.
    pub fn cost(&self, prices: &Prices, architecture: &str) -> Cost {
        let gb_second = match architecture {
            "arm64" => prices.lambda_gb_second_arm,
            _ => prices.lambda_gb_second_x86,
        };
        let mut c = Cost {
            lambda_compute: self.lambda_gb_seconds * gb_second,
            lambda_requests: self.lambda_requests as f64 * prices.lambda_request,
            s3_requests: self.s3_put_requests as f64 * prices.s3_put_request
                + self.s3_get_requests as f64 * prices.s3_get_request,
            sqs_requests: self.sqs_requests as f64 * prices.sqs_request,
            transfer_out: self.transfer_out_gb * prices.transfer_out_gb,
            storage: self.storage_gb_months * prices.storage_gb_month,
            total: 0.0,
        };
        c.total = c.lambda_compute
            + c.lambda_requests
            + c.s3_requests
            + c.sqs_requests
            + c.transfer_out
            + c.storage;
        c
    }
}

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
        let seconds =
            schedule(std::iter::repeat_n(0.0, lanes), tiles) + stitch_seconds(&profile.params, 1.0);
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
        let counts_bytes = 2 * side * side;
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
            worker_seconds: batches.iter().sum(),
            stitch_seconds: stitch,
            wait_seconds: seconds,
            image_bytes,
            counts_bytes,
            pyramid_objects: pyramid::object_count(side as usize, side as usize),
            downloaded_bytes: image_bytes + if counts_downloaded { counts_bytes } else { 0 },
        };
        let usage = Usage::of_job(&shape, deployment);
        let mut e = Estimate::of(profile, Target::Lambda, lanes, seconds);
        e.cost = Some(usage.cost(&PRICES, &deployment.fleet.architecture));
        e.usage = Some(usage);
        e
    }
}

/// A job on Lambda as [`Estimate::lambda`] models it, phase by phase, in
/// seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LambdaPhases {
    /// Params, a listing, then the messages ten at a time.
    pub submit: f64,
    /// From the first message to the last tile stored: batches
    /// list-scheduled onto invocations that the SQS trigger opens at its
    /// scaling rate, each with a cold start.
    pub tiles: f64,
    /// The stitch, with its cold start: encoding the picture and the
    /// pyramid, fetching the tiles, uploading the pyramid, whichever is
    /// slowest (they overlap).
    pub stitch: f64,
    /// The client's last poll interval, on average half of it, taken whole.
    pub poll: f64,
    pub invocations: u64,
    /// Worker invocations at once, at most.
    pub workers: u64,
}

impl LambdaPhases {
    pub fn total(&self) -> f64 {
        self.submit + self.tiles + self.stitch + self.poll
    }

    /// The phases of `profile`'s job on `deployment`, and each batch's
    /// seconds.
    pub fn plan(profile: &Profile, deployment: &Deployment) -> (LambdaPhases, Vec<f64>) {
        let params = &profile.params;
        let fleet = &deployment.fleet;
        let worker = Cpu::of(deployment.worker.memory_mb, &fleet.architecture);
        let batch = fleet.worker_batch_size.max(1) as usize;
        let batches: Vec<f64> = profile
            .tile_seconds
            .chunks(batch)
            .map(|tiles| {
                // Receive, cancel check; each tile's PUT overlaps the next
                // tile's kernel; the job's listing at the end.
                let kernel = schedule(
                    std::iter::repeat_n(0.0, worker.cores),
                    tiles.iter().map(|s| s / worker.speed),
                );
                kernel + 3.0 * MODEL.request_s
            })
            .collect();
        let invocations = batches.len() as u64;
        let workers = u64::from(fleet.worker_max_concurrency)
            .min(invocations)
            .max(1);
        // Lane k opens once the trigger has scaled to k + 1 invocations.
        let opens = (0..workers).map(|k| {
            let waiting = k.saturating_sub(u64::from(MODEL.initial_concurrency));
            MODEL.cold_start_s + waiting as f64 / MODEL.scale_per_s
        });
        let tiles = schedule(opens, batches.iter().copied());
        let stitch_cpu = Cpu::of(deployment.stitch.memory_mb, &fleet.architecture);
        let pixels = (params.image_side() * params.image_side()) as f64;
        // Encoding, fetching the tiles (a row at a time, the next while
        // one encodes) and the pyramid's uploads (in the background)
        // overlap: the slowest of the three sets the pace.
        let encode = stitch_seconds(params, stitch_cpu.speed)
            + pixels * MODEL.pyramid_s_per_pixel / stitch_cpu.speed;
        let per_row = (params.tiles_per_side as usize).div_ceil(crate::tiles::PARALLEL_GETS);
        let fetch = f64::from(params.tiles_per_side) * per_row as f64 * MODEL.request_s;
        let side = params.image_side() as usize;
        let uploads = pyramid::object_count(side, side)
            .div_ceil(crate::upload::PARALLEL_PUTS as u64) as f64
            * MODEL.request_s;
        let stitch = MODEL.cold_start_s + encode.max(fetch).max(uploads);
        let submit = (3 + params.tile_count().div_ceil(10) / 16) as f64 * MODEL.request_s;
        let phases = LambdaPhases {
            submit,
            tiles,
            stitch,
            poll: 0.25,
            invocations,
            workers,
        };
        (phases, batches)
    }
}

/// A function's cores and their speed against one core here.
struct Cpu {
    cores: usize,
    speed: f64,
}

impl Cpu {
    fn of(memory_mb: u32, architecture: &str) -> Cpu {
        let vcpus = f64::from(memory_mb) / MODEL.mb_per_vcpu;
        let cores = (vcpus.ceil() as usize).clamp(1, 6);
        let core_speed = match architecture {
            "arm64" => MODEL.arm_core_speed,
            _ => MODEL.x86_core_speed,
        };
        Cpu {
            cores,
            speed: core_speed * (vcpus / cores as f64).min(1.0),
        }
    }
}

/// The stitch's seconds for the job's image at `speed` (1: a core here).
fn stitch_seconds(params: &RenderParams, speed: f64) -> f64 {
    let pixels = (params.image_side() * params.image_side()) as f64;
    pixels * MODEL.stitch_s_per_pixel / speed
}

/// The rows a run of tiles touches.
fn rows_in(tiles: impl Iterator<Item = TileId>) -> u64 {
    let mut rows: Vec<u32> = tiles.map(|t| t.row).collect();
    rows.dedup();
    rows.len() as u64
}

/// When the last of `jobs` finishes, each started in order on the first
/// free lane; the lanes open at the times `opens` gives.
fn schedule(opens: impl Iterator<Item = f64>, jobs: impl Iterator<Item = f64>) -> f64 {
    use std::cmp::Reverse;
    let mut free: std::collections::BinaryHeap<_> = opens.map(|t| Reverse(Seconds(t))).collect();
    let mut end: f64 = 0.0;
    for job in jobs {
        let Some(Reverse(Seconds(at))) = free.pop() else {
            break;
        };
        end = end.max(at + job);
        free.push(Reverse(Seconds(at + job)));
    }
    end
}

/// An `f64` totally ordered, for the heap.
struct Seconds(f64);
impl PartialEq for Seconds {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Seconds {}
impl PartialOrd for Seconds {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Seconds {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl JobShape {
    /// The shape of a finished job from its manifest: its invocations
    /// are its tiles grouped by worker and batch, each lasting from the
    /// batch's start to its last kernel's end, plus the requests after it
    /// (a tile's PUT, the row listings) at [`Model::request_s`] each.
    /// `wait_seconds` is how long the client waited.
    pub fn observed(
        m: &ResultManifest,
        stats: &[TileStat],
        wait_seconds: f64,
        counts_downloaded: bool,
    ) -> JobShape {
        let mut batches: std::collections::BTreeMap<(&str, u64), (u64, Vec<u32>)> =
            Default::default();
        for s in stats.iter().filter(|s| s.batch_ms > 0) {
            let (end, rows) = batches.entry((&s.worker, s.batch_ms)).or_default();
            *end = (*end).max(s.started_ms * 1000 + s.compute_us);
            rows.push(s.row);
        }
        let worker_seconds = batches
            .iter()
            .map(|((_, start), (end_us, _))| {
                end_us.saturating_sub(start * 1000) as f64 / 1e6 + 3.0 * MODEL.request_s
            })
            .sum();
        let rows_touched = batches
            .values_mut()
            .map(|(_, rows)| {
                rows.sort_unstable();
                rows_in(rows.iter().map(|&r| TileId::new(r, 0)))
            })
            .sum();
        let workers: std::collections::BTreeSet<&str> =
            batches.keys().map(|(worker, _)| *worker).collect();
        let counts_bytes = 2 * m.width * m.height;
        JobShape {
            tiles: m.tiles,
            rows: u64::from(m.params.tiles_per_side),
            invocations: batches.len() as u64,
            rows_touched,
            cold_starts: workers.len() as u64,
            worker_seconds,
            stitch_seconds: m.stitch_us as f64 / 1e6,
            wait_seconds,
            image_bytes: m.image_bytes,
            counts_bytes,
            pyramid_objects: pyramid::object_count(m.width as usize, m.height as usize),
            downloaded_bytes: m.image_bytes + if counts_downloaded { counts_bytes } else { 0 },
        }
    }
}

/// What the client recorded when it submitted the job
/// (`jobs/<job>/estimate.json`): the estimate it showed, and the
/// deployment it priced (none for an embedded job).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Submission {
    pub submitted_ms: u64,
    pub estimate: Estimate,
    pub deployment: Option<Deployment>,
}

impl Submission {
    /// The record of a job submitted now.
    pub fn now(estimate: Estimate, deployment: Option<Deployment>) -> Self {
        Submission {
            submitted_ms: crate::job::unix_ms(),
            estimate,
            deployment,
        }
    }

    /// The finished job against this submission: its wall time is from
    /// submit to the end of the stitch.
    pub fn actual(&self, m: &ResultManifest, stats: &[TileStat]) -> Actual {
        let seconds = m.finished_ms().saturating_sub(self.submitted_ms) as f64 / 1e3;
        match &self.deployment {
            Some(d) => Actual::lambda(m, stats, d, seconds, false),
            None => Actual::embedded(m, seconds),
        }
    }
}

/// A finished job against its estimate: the summary's and the report's
/// `actual`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Actual {
    pub seconds: f64,
    pub iterations: u64,
    pub usage: Option<Usage>,
    pub cost: Option<Cost>,
}

impl Actual {
    /// A job that ran embedded: no AWS usage.
    pub fn embedded(m: &ResultManifest, seconds: f64) -> Actual {
        Actual {
            seconds,
            iterations: m.iterations,
            usage: None,
            cost: None,
        }
    }

    /// A job that ran on `deployment`'s functions, `seconds` from submit to
    /// its result.
    pub fn lambda(
        m: &ResultManifest,
        stats: &[TileStat],
        deployment: &Deployment,
        seconds: f64,
        counts_downloaded: bool,
    ) -> Actual {
        let shape = JobShape::observed(m, stats, seconds, counts_downloaded);
        let usage = Usage::of_job(&shape, deployment);
        Actual {
            seconds,
            iterations: m.iterations,
            cost: Some(usage.cost(&PRICES, &deployment.fleet.architecture)),
            usage: Some(usage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment::defaults("us-east-1")
    }

    #[test]
    fn tiles_are_list_scheduled_onto_lanes_as_they_open() {
        let at_zero = |n| std::iter::repeat_n(0.0, n);
        assert_eq!(schedule(at_zero(2), [3.0, 1.0, 1.0, 1.0].into_iter()), 3.0);
        assert_eq!(schedule(at_zero(1), [3.0, 1.0].into_iter()), 4.0);
        // A lane that opens late takes work only once open.
        assert_eq!(
            schedule([0.0, 10.0].into_iter(), [1.0, 1.0].into_iter()),
            2.0
        );
        assert_eq!(schedule(at_zero(4), std::iter::empty()), 0.0);
    }

    #[test]
    fn the_sample_predicts_the_iterations_of_the_job() {
        let params = RenderParams {
            tiles_per_side: 8,
            tile_pixels: 64,
            max_iter: 500,
            ..RenderParams::default()
        };
        let p = profile(&params);
        let actual: u64 = params
            .tiles()
            .map(|t| kernel::brute_force_iterations(&kernel::render_tile(&params, t), 500))
            .sum();
        assert!(
            (p.iterations / actual as f64 - 1.0).abs() < 0.02,
            "{} against {actual}",
            p.iterations
        );
        assert_eq!(p.tile_seconds.len(), 64);
        assert!(p.tile_seconds.iter().all(|&s| s > 0.0));
    }

    #[test]
    fn a_finished_job_counts_its_batches_and_workers() {
        let stat = |row, col, worker: &str, batch_ms, started_ms, compute_us| TileStat {
            row,
            col,
            compute_us,
            worker: worker.into(),
            started_ms,
            batch_ms,
            boot_ms: 1,
        };
        let stats = [
            stat(0, 0, "a", 1000, 1000, 5000),
            stat(0, 1, "a", 1000, 1005, 5000),
            stat(1, 0, "a", 2000, 2000, 1000),
            stat(1, 1, "b", 1000, 1001, 20_000),
        ];
        let m = ResultManifest {
            job: crate::job::JobId::parse("j").unwrap(),
            params: RenderParams {
                tiles_per_side: 2,
                ..RenderParams::default()
            },
            width: 512,
            height: 512,
            tiles: 4,
            image_key: String::new(),
            counts_key: String::new(),
            colormap: String::new(),
            iterations: 0,
            compute_us_total: 0,
            stitch_us: 500_000,
            stitch_started_ms: 0,
            image_bytes: 1000,
        };
        let shape = JobShape::observed(&m, &stats, 2.0, false);
        assert_eq!(shape.invocations, 3);
        assert_eq!(shape.cold_starts, 2);
        assert_eq!(shape.rows_touched, 3);
        // Batches: a@1000 ends at 1010 ms, a@2000 at 2001, b@1000 at 1021.
        let spans = 0.010 + 0.001 + 0.021 + 3.0 * 3.0 * MODEL.request_s;
        assert!((shape.worker_seconds - spans).abs() < 1e-9, "{shape:?}");
        let usage = Usage::of_job(&shape, &deployment());
        assert_eq!(usage.lambda_requests, 4);
        // Two sends of ten, a receive and a delete per invocation, the
        // stitch message's three.
        assert_eq!(usage.sqs_requests, 1 + 6 + 3);
    }

    #[test]
    fn cost_is_the_sum_of_its_items_and_arm_seconds_are_cheaper() {
        let usage = Usage {
            lambda_gb_seconds: 100.0,
            lambda_requests: 1_000_000,
            s3_put_requests: 1000,
            s3_get_requests: 1000,
            sqs_requests: 1_000_000,
            transfer_out_gb: 1.0,
            storage_gb_months: 1.0,
        };
        let x86 = usage.cost(&PRICES, "x86_64");
        assert!((x86.lambda_compute - 0.001_666_67).abs() < 1e-9);
        assert!((x86.lambda_requests - 0.20).abs() < 1e-12);
        assert!((x86.s3_requests - 0.0054).abs() < 1e-12);
        assert!((x86.sqs_requests - 0.40).abs() < 1e-12);
        let items = x86.lambda_compute
            + x86.lambda_requests
            + x86.s3_requests
            + x86.sqs_requests
            + x86.transfer_out
            + x86.storage;
        assert!((x86.total - items).abs() < 1e-12);
        assert!(usage.cost(&PRICES, "arm64").lambda_compute < x86.lambda_compute);
    }
}
