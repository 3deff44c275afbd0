//! Sampling a job with the real kernel: its iterations and each tile's
//! kernel time on this machine ([`profile`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mandel_core::render::TileRenderer;
use mandel_core::{RenderParams, TileId, kernel};

use mandel_core::deep::{OrbitPoint, OrbitState};

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
    /// A deep job's reference orbit: its seconds on one core of this
    /// machine and its points (0 and 0 for a viewport job).
    pub reference_seconds: f64,
    pub reference_points: u64,
    /// That orbit, for an embedded render to store rather than compute
    /// again.
    pub orbit: Option<Arc<ComputedOrbit>>,
}

impl Profile {
    /// The most a viewport job of `params` can cost, without rendering
    /// anything: every pixel iterates its whole budget at the kernel's
    /// floor rate ([`KERNEL_RATE_FLOOR`](crate::deployment::KERNEL_RATE_FLOOR),
    /// the capacity check's). For pricing work before it is sent where a
    /// sample would be the work itself (an explorer's one-tile jobs).
    pub fn worst_case(params: &RenderParams) -> Profile {
        let per_tile = params.pixels_per_tile() as f64 * f64::from(params.max_iter);
        Profile {
            params: params.clone(),
            iterations: per_tile * params.tile_count() as f64,
            tile_seconds: vec![
                per_tile / crate::deployment::KERNEL_RATE_FLOOR;
                params.tile_count() as usize
            ],
            sample_pixels: 0,
            sample_seconds: 0.0,
            kernel: "none (worst case)",
            reference_seconds: 0.0,
            reference_points: 0,
            orbit: None,
        }
    }

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
    // A deep job's orbit, computed once here as the job will compute it;
    // the coarse grids show the same view, so they share it.
    let orbit = ComputedOrbit::compute(params).map(Arc::new);
    // A viewport job has no orbit, and no reference phase at all.
    let reference_seconds = match orbit {
        Some(_) => started.elapsed().as_secs_f64(),
        None => 0.0,
    };
    let sample = |grid: &RenderParams| {
        let renderer = match &orbit {
            Some(o) => TileRenderer::deep(grid.clone(), &o.points),
            None => TileRenderer::viewport(grid.clone()),
        };
        sample(&renderer)
    };
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
        params: params.clone(),
        iterations: iterations as f64 * scale,
        tile_seconds,
        sample_pixels,
        sample_seconds: started.elapsed().as_secs_f64(),
        kernel: match &orbit {
            Some(_) => "perturbation",
            None => kernel::Level::selected().name(),
        },
        reference_seconds,
        reference_points: orbit.as_ref().map_or(0, |o| o.points.len() as u64),
        orbit,
    }
}

/// A deep job's whole orbit computed before the job was submitted: the
/// estimate samples the job with it ([`ComputedOrbit::compute`]), and the
/// embedded render stores it
/// ([`store_computed`](crate::reference::store_computed)) rather than
/// computing it a second time.
#[derive(Clone, Debug)]
pub struct ComputedOrbit {
    pub points: Vec<OrbitPoint>,
    pub(crate) state: OrbitState,
    pub(crate) compute_us: u64,
    pub(crate) started_ms: u64,
}

impl ComputedOrbit {
    /// The orbit of `params`' view (a deep one), computed whole exactly as
    /// [`compute_segment`](crate::reference::compute_segment) computes it: same precision, same points.
    pub fn compute(params: &RenderParams) -> Option<ComputedOrbit> {
        let view = params.as_deep()?;
        let started_ms = crate::job::unix_ms();
        let started = Instant::now();
        let mut state = OrbitState::new(view, view.precision_bits(params.image_side()));
        let mut points = Vec::new();
        state.run(u64::from(params.max_iter), &mut points, || true);
        Some(ComputedOrbit {
            points,
            state,
            compute_us: started.elapsed().as_micros() as u64,
            started_ms,
        })
    }

    /// Its compute time.
    pub fn seconds(&self) -> f64 {
        self.compute_us as f64 / 1e6
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
        ..params.clone()
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
        ..params.clone()
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

/// A viewport tile's work: the iterations of the pixels the interior
/// shortcut does not settle, plus one per pixel.
fn work_of(grid: &RenderParams, tile: TileId, counts: &[u32]) -> u64 {
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

/// Renders every tile of the renderer's grid, timing each on its own core.
/// A deep tile's work is its perturbation steps and BLA skips, plus one
/// per pixel.
fn sample(renderer: &TileRenderer) -> Vec<Measured> {
    let grid = renderer.params();
    let deep = grid.as_deep().is_some();
    let tiles: Vec<TileId> = grid.tiles().collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut measured = vec![Measured::default(); tiles.len()];
    let parts: Vec<Vec<(usize, Measured)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    let never = std::sync::atomic::AtomicBool::new(false);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&tile) = tiles.get(i) else { break };
                        let started = Instant::now();
                        let (counts, cost) = renderer
                            .render_tile_counting(tile, &never)
                            .expect("never stopped");
                        let seconds = started.elapsed().as_secs_f64();
                        let iterations = kernel::brute_force_iterations(&counts, grid.max_iter);
                        let work = if deep {
                            counts.len() as u64 + cost.steps + cost.skips
                        } else {
                            work_of(grid, tile, &counts)
                        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
