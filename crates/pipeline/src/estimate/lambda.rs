//! The model of a job on Lambda: the figures a sample cannot measure
//! ([`Model`]) and the job phase by phase ([`LambdaPhases`]): batches
//! list-scheduled onto invocations as the SQS trigger opens them, then
//! the stitch.

use mandel_core::{RenderParams, TileId};

use std::time::Duration;

use super::Profile;
use crate::deployment::Deployment;

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
    /// bound (the default job's PNG is 0.58 bytes a pixel, 9.75 MB).
    pub png_bytes_per_pixel: f64,
    /// Bytes of the pyramid's pack per pixel of the picture (its levels
    /// add a third): an upper bound, as for the picture (the default
    /// job's pack is 0.82 bytes a pixel, 13.7 MB, 2026-12-05).
    pub pyramid_bytes_per_pixel: f64,
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
    pyramid_bytes_per_pixel: 1.0,
};

/// A job on Lambda as [`Estimate::lambda`](super::Estimate::lambda) models it, phase by phase, in
/// seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LambdaPhases {
    /// Params, a listing, then the messages ten at a time.
    pub submit: f64,
    /// A deep job's reference orbit: one worker computes it (in segments
    /// if it outlasts an invocation) before any tile is sent.
    pub reference: f64,
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
    /// A deep job's reference segments (0 for a viewport job).
    pub reference_segments: u64,
    pub invocations: u64,
    /// Worker invocations at once, at most.
    pub workers: u64,
}

impl LambdaPhases {
    pub fn total(&self) -> f64 {
        self.submit + self.reference + self.tiles + self.stitch + self.poll
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
        // one encodes) and the pyramid's parts (in the background)
        // overlap: the slowest of the three sets the pace.
        let encode = stitch_seconds(params, stitch_cpu.speed)
            + pixels * MODEL.pyramid_s_per_pixel / stitch_cpu.speed;
        let per_row = (params.tiles_per_side as usize).div_ceil(crate::tiles::PARALLEL_GETS);
        let fetch = f64::from(params.tiles_per_side) * per_row as f64 * MODEL.request_s;
        let uploads = pyramid_bytes(params).div_ceil(crate::upload::PART_SIZE as u64) as f64
            * MODEL.request_s;
        let stitch = MODEL.cold_start_s + encode.max(fetch).max(uploads);
        let submit = (3 + params.tile_count().div_ceil(10) / 16) as f64 * MODEL.request_s;
        // The orbit on one core of a worker (it is serial), with a cold
        // start and the segment's writes.
        let (reference, reference_segments) = if profile.reference_seconds > 0.0 {
            let orbit = profile.reference_seconds / worker.speed;
            let segments = segments_for(orbit, deployment.worker.timeout());
            let seconds = segments as f64 * (MODEL.cold_start_s + 3.0 * MODEL.request_s) + orbit;
            (seconds, segments)
        } else {
            (0.0, 0)
        };
        let phases = LambdaPhases {
            submit,
            reference,
            tiles,
            stitch,
            poll: 0.25,
            reference_segments,
            invocations,
            workers,
        };
        (phases, batches)
    }
}

/// The predicted size of a job's pyramid ([`Model::pyramid_bytes_per_pixel`]).
pub(super) fn pyramid_bytes(params: &RenderParams) -> u64 {
    let side = params.image_side() as f64;
    (MODEL.pyramid_bytes_per_pixel * side * side) as u64
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
pub(super) fn stitch_seconds(params: &RenderParams, speed: f64) -> f64 {
    let pixels = (params.image_side() * params.image_side()) as f64;
    pixels * MODEL.stitch_s_per_pixel / speed
}

/// The rows a run of tiles touches.
pub(super) fn rows_in(tiles: impl Iterator<Item = TileId>) -> u64 {
    let mut rows: Vec<u32> = tiles.map(|t| t.row).collect();
    rows.dedup();
    rows.len() as u64
}

/// When the last of `jobs` finishes, each started in order on the first
/// free lane; the lanes open at the times `opens` gives.
pub(super) fn schedule(opens: impl Iterator<Item = f64>, jobs: impl Iterator<Item = f64>) -> f64 {
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

/// How many segments (worker invocations) an orbit of `seconds` on a
/// worker's core takes when an invocation may compute for `invocation`
/// less its stop margin.
pub fn segments_for(seconds: f64, invocation: Duration) -> u64 {
    let usable = invocation
        .saturating_sub(crate::deployment::stop_margin(invocation))
        .as_secs_f64()
        .max(1.0);
    ((seconds / usable).ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_model_follows_the_clients_looks_and_the_workers_segments() {
        // Looks after 10, 30, 70, 150, 310, 630 ms, then every 500 ms.
        assert_eq!(crate::progress::reference_polls_during(0.0), 1);
        assert_eq!(crate::progress::reference_polls_during(0.03), 2);
        assert_eq!(crate::progress::reference_polls_during(0.631), 7);
        assert_eq!(crate::progress::reference_polls_during(10.0), 6 + 19);
        // A 60 s invocation computes for 54 s (its margin is 6 s).
        let minute = Duration::from_secs(60);
        assert_eq!(segments_for(0.5, minute), 1);
        assert_eq!(segments_for(54.0, minute), 1);
        assert_eq!(segments_for(54.1, minute), 2);
        assert_eq!(segments_for(200.0, minute), 4);
    }
}
