//! `mandel-bench`: prints the numbers behind docs/performance.md, ending
//! with issue 16's table (the per-core limit from a hand-written loop in
//! `limit`, the kernel's rates, the default job's times, the numpy ratio).
//!
//! Usage (`mandel-bench --help`): `mandel-bench [--quick] [--python PATH]`,
//! or one of the subcommands `kernel-only`, `estimator` and `aws-model`.
//! Numbers, never assertions: compare them with the targets yourself.

use std::io::Cursor;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use mandel_core::kernel::{self, Level, Tuning};
use mandel_core::{Colormap, CountsImage, RenderParams, TileId};

mod deep;
mod limit;

/// Prints the numbers behind docs/performance.md: with no subcommand, the
/// kernel per level, the default job's times and the numpy ratio, ending
/// with issue 16's table.
#[derive(Debug, Parser)]
#[command(name = "mandel-bench")]
struct Cli {
    #[command(subcommand)]
    command: Option<Bench>,
    /// Fewer tunings and a smaller numpy baseline.
    #[arg(long)]
    quick: bool,
    /// The Python with numpy for the baseline [default: .venv-bench's, else python3].
    #[arg(long, value_name = "PATH")]
    python: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// The kernel alone over every tile of a job (default viewport) on every
    /// core, nothing stored: the baseline of a whole render's wall time.
    KernelOnly {
        tiles_per_side: u32,
        tile_pixels: u32,
        max_iter: u32,
    },
    /// The estimate of four jobs against their embedded renders (the
    /// estimator's error).
    Estimator,
    /// The default job on AWS Lambda, phase by phase, as the estimator
    /// models it.
    AwsModel,
    /// A deep location (a Kalles Fraktaler .kfr): its reference orbit and
    /// a `side`² render on every core, timed, with the work perturbation
    /// did; with --truth (a tools/deep_truth.py grid of the same view and
    /// side), the agreement.
    Deep {
        location: std::path::PathBuf,
        side: u64,
        #[arg(long)]
        max_iter: Option<u32>,
        /// BLA's tolerance (0: no BLA).
        #[arg(long, default_value_t = mandel_core::deep::BLA_EPSILON)]
        epsilon: f64,
        #[arg(long, value_name = "GRID.json")]
        truth: Option<std::path::PathBuf>,
    },
    /// The explorer's deep tiles: the region orbit of the tile of
    /// `2^ZOOM_LOG2` holding a location's centre, then that tile and its
    /// neighbours rendered one at a time on one core.
    DeepTiles {
        location: std::path::PathBuf,
        zoom_log2: u32,
        #[arg(long, default_value_t = 10_000)]
        max_iter: u32,
        #[arg(long, default_value_t = 8)]
        tiles: u32,
        /// Print only the tiles' `ZOOM/X/Y` (as the explorer's URLs have
        /// them), for scripts/bench-explore.sh to fetch over HTTP.
        #[arg(long)]
        paths: bool,
    },
}

fn main() -> Result<()> {
    mandel_pipeline::process::return_freed_memory();
    let cli = Cli::parse();
    let (quick, python) = (cli.quick, cli.python);
    let p = RenderParams::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match cli.command {
        Some(Bench::KernelOnly {
            tiles_per_side,
            tile_pixels,
            max_iter,
        }) => {
            let job = RenderParams {
                tiles_per_side,
                tile_pixels,
                max_iter,
                ..p
            };
            job.validate()?;
            return kernel_only(&job, cores);
        }
        Some(Bench::Estimator) => return estimator(cores),
        Some(Bench::AwsModel) => return aws_model(),
        Some(Bench::Deep {
            location,
            side,
            max_iter,
            epsilon,
            truth,
        }) => return deep::run(&location, side, max_iter, epsilon, truth.as_deref(), cores),
        Some(Bench::DeepTiles {
            location,
            zoom_log2,
            max_iter,
            tiles,
            paths,
        }) => return deep::tiles(&location, zoom_log2, max_iter, tiles, paths),
        None => {}
    }

    println!(
        "# mandel-bench: {} ({} cores), kernel levels: {}",
        cpu_model(),
        cores,
        names(Level::available())
    );
    println!("# default job: {:?}", p);

    section("per-tile kernel time (one core, best of 3)");
    println!(
        "{:<8} {:<10} {:<9} {:>10} {:>14} {:>16}",
        "level", "tile", "kind", "ms", "exec Git/s", "brute Git/s"
    );
    let tiles = [
        ((0, 0), "exterior"),
        ((3, 7), "interior"),
        ((8, 8), "interior"),
        ((5, 11), "boundary"),
        ((12, 4), "boundary"),
        ((15, 15), "corner"),
    ];
    for &level in Level::available() {
        for ((row, col), kind) in tiles {
            let tile = TileId::new(row, col);
            let (t, executed, counts) = best_of(3, || render(level, Tuning::default(), &p, tile));
            let brute = kernel::brute_force_iterations(&counts, p.max_iter);
            println!(
                "{:<8} {:<10} {:<9} {:>10.2} {:>14.2} {:>16.2}",
                level.name(),
                format!("r{row:02}-c{col:02}"),
                kind,
                t.as_secs_f64() * 1e3,
                executed as f64 / t.as_secs_f64() / 1e9,
                brute as f64 / t.as_secs_f64() / 1e9
            );
        }
    }

    section("boundary tile r05-c11 without shortcuts (pure iteration rate)");
    for &level in Level::available() {
        let plain = Tuning {
            interior_shortcut: false,
        };
        let (t, executed, _) = best_of(10, || render(level, plain, &p, TileId::new(5, 11)));
        println!(
            "{:<8} {:>8.2} ms {:>8.2} G iterations/s",
            level.name(),
            t.as_secs_f64() * 1e3,
            executed as f64 / t.as_secs_f64() / 1e9
        );
    }

    section("per-core limit: a hand-written loop of the step, 6 vectors, no escapes (best of 3)");
    let limit = limit::iterations_per_second();
    match limit {
        Some((rate, level)) => println!("{level:<8} {:>8.2} G iterations/s", rate / 1e9),
        None => println!("no AVX2 or AVX-512 here"),
    }

    section("interior tile r08-c08 without shortcuts (no lane escapes: the kernel's own loop)");
    let mut loop_rate = 0.0;
    for &level in Level::available() {
        let plain = Tuning {
            interior_shortcut: false,
        };
        let (t, executed, _) = best_of(3, || render(level, plain, &p, TileId::new(8, 8)));
        let rate = executed as f64 / t.as_secs_f64() / 1e9;
        if level == Level::available()[0] {
            loop_rate = rate;
        }
        println!(
            "{:<8} {:>8.2} ms {:>8.2} G iterations/s",
            level.name(),
            t.as_secs_f64() * 1e3,
            rate
        );
    }

    section("whole default job, kernel only (best of 3)");
    let best = Level::available()[0];
    let tunings: &[(&str, Tuning)] = if quick {
        &[(
            "shortcut",
            Tuning {
                interior_shortcut: true,
            },
        )]
    } else {
        &[
            (
                "shortcut",
                Tuning {
                    interior_shortcut: true,
                },
            ),
            (
                "no shortcut",
                Tuning {
                    interior_shortcut: false,
                },
            ),
        ]
    };
    let mut one_core_secs = 0.0;
    let mut brute_total = 0u64;
    let mut summary = Summary::default();
    for &(name, tuning) in tunings {
        for threads in [1, cores] {
            let (t, executed, brute) = (0..3)
                .map(|_| whole_job(best, tuning, &p, threads))
                .min_by_key(|run| run.0)
                .expect("three runs");
            brute_total = brute;
            let per_core = executed as f64 / t.as_secs_f64() / 1e9 / threads as f64;
            match (tuning.interior_shortcut, threads) {
                (true, 1) => {
                    one_core_secs = t.as_secs_f64();
                    summary.shortcut_rate = per_core;
                }
                (true, _) => summary.kernel_secs = t.as_secs_f64(),
                (false, 1) => summary.plain_rate = Some(per_core),
                (false, _) => {}
            }
            println!(
                "{:<8} {:<15} {} thread(s): {:>7.3} s  executed {:>6.2} G it ({:.2} G/s/core)  brute-force-equivalent {:.2} G it/s",
                best.name(),
                name,
                threads,
                t.as_secs_f64(),
                executed as f64 / 1e9,
                per_core,
                brute as f64 / t.as_secs_f64() / 1e9
            );
        }
    }

    section("PNG encoding of the default image (twilight_shifted)");
    let counts = stitched(&p);
    let t = Instant::now();
    let default_png = mandel_core::png::encode_png(&counts, Colormap::TwilightShifted)?;
    println!(
        "encode_png (the product settings): {:.3} s, {:.1} MB",
        t.elapsed().as_secs_f64(),
        default_png.len() as f64 / 1e6
    );
    if !quick {
        let rgb = rgb_of(&counts);
        for (cname, c) in [
            ("fast", CompressionType::Fast),
            ("default", CompressionType::Default),
            ("best", CompressionType::Best),
        ] {
            for (fname, f) in [
                ("none", FilterType::NoFilter),
                ("sub", FilterType::Sub),
                ("adaptive", FilterType::Adaptive),
            ] {
                let t = Instant::now();
                let mut out = Vec::new();
                PngEncoder::new_with_quality(Cursor::new(&mut out), c, f).write_image(
                    &rgb,
                    4096,
                    4096,
                    image::ExtendedColorType::Rgb8,
                )?;
                println!(
                    "  compression {cname:<8} filter {fname:<9} {:>7.3} s {:>7.1} MB",
                    t.elapsed().as_secs_f64(),
                    out.len() as f64 / 1e6
                );
            }
        }
    }

    section("embedded pipeline, whole default job (render_embedded, PNG included, best of 3)");
    let rt = tokio::runtime::Runtime::new()?;
    let scratch = tempfile::tempdir_in(".")?;
    for workers in [1, cores] {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            rt.block_on(mandel_pipeline::render_embedded(
                &p,
                workers,
                scratch.path(),
                None,
                None,
                |_| {},
            ))?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        summary.embedded_secs = best;
        println!("{workers} worker(s): {best:.3} s");
    }

    section("numpy baseline (the notebook's kernel, one core, the default job's pixel mix)");
    match numpy_rate(python.as_deref(), quick) {
        Ok(n) => {
            let mandel_rate = brute_total as f64 / one_core_secs;
            println!(
                "numpy over the default viewport at {side}² in {} tiles: {:.1} M brute-force iterations/s ({:.1} s)",
                n.tiles,
                n.rate / 1e6,
                n.seconds,
                side = n.side
            );
            println!(
                "mandel one core (default job, shortcut, {}): {:.2} G brute-force iterations/s",
                best.name(),
                mandel_rate / 1e9
            );
            println!(
                "mandel one core vs numpy one core: {:.0}x",
                mandel_rate / n.rate
            );
            summary.numpy_ratio = Some(mandel_rate / n.rate);
        }
        Err(e) => println!("numpy baseline skipped: {e:#}"),
    }
    summary.print(best, cores, limit, loop_rate);
    Ok(())
}

/// The figures of issue 16's table, gathered as the sections run.
#[derive(Default)]
struct Summary {
    plain_rate: Option<f64>,
    shortcut_rate: f64,
    kernel_secs: f64,
    embedded_secs: f64,
    numpy_ratio: Option<f64>,
}

impl Summary {
    fn print(&self, level: Level, cores: usize, limit: Option<(f64, &str)>, loop_rate: f64) {
        section(&format!(
            "summary ({}, {cores} cores, kernel level {})",
            cpu_model(),
            level.name()
        ));
        let missing = || "(not run: --quick)".to_string();
        // The target is 80 % of the hand-written loop, or of the kernel's
        // own loop where there is no hand-written one.
        let limit_rate = limit.map_or(loop_rate, |(rate, _)| rate / 1e9);
        let rows = [
            (
                "hand-written loop of the step, no escapes".to_string(),
                limit.map_or_else(
                    || "(none for this CPU)".to_string(),
                    |(rate, level)| format!("{level} {:.2} G it/s/core", rate / 1e9),
                ),
                "the per-core limit".to_string(),
            ),
            (
                "the kernel's loop without escapes (interior tile)".to_string(),
                format!("{loop_rate:.2} G it/s/core"),
                String::new(),
            ),
            (
                "whole default job without shortcuts".to_string(),
                self.plain_rate
                    .map_or_else(missing, |r| format!("{r:.2} G it/s/core")),
                String::new(),
            ),
            (
                "whole default job with shortcuts (executed it)".to_string(),
                format!("{:.2} G it/s/core", self.shortcut_rate),
                format!(">= 80 % of the limit: {:.2}", 0.8 * limit_rate),
            ),
            (
                format!("default job, kernel only, {cores} threads"),
                format!("{:.3} s", self.kernel_secs),
                "<= 0.75 s".to_string(),
            ),
            (
                format!("default job end to end, PNG written, {cores} workers"),
                format!("{:.3} s", self.embedded_secs),
                "<= 1.0 s".to_string(),
            ),
            (
                "one core against numpy one core (whole viewport)".to_string(),
                self.numpy_ratio
                    .map_or_else(|| "(numpy not run)".to_string(), |r| format!("{r:.0}x")),
                ">= 300x".to_string(),
            ),
            (
                "through LocalStack against embedded".to_string(),
                "scripts/bench-localstack.sh".to_string(),
                "<= 1.5x".to_string(),
            ),
        ];
        for (figure, measured, target) in rows {
            println!("{figure:<56} {measured:>20}   {target}");
        }
    }
}

/// The default job on AWS, as the estimator models it (`LambdaPhases`):
/// Terraform's default deployment (worker 3538 MB = 2 vCPUs, stitch
/// 4096 MB, at most 50 workers) with batches of 10 and of 5 tiles, this
/// machine's sampled kernel time standing in for a Lambda core's.
fn aws_model() -> Result<()> {
    use mandel_pipeline::estimate::{LambdaPhases, MODEL};
    use mandel_pipeline::{Deployment, Fleet};
    let p = RenderParams::default();
    let profile = mandel_pipeline::estimate::profile(&p);
    println!(
        "# the default job on AWS Lambda, a model (kernel sampled here: {}, {:.2} s on one core)",
        profile.kernel,
        profile.core_seconds()
    );
    println!(
        "# inputs: S3/SQS request {:.0} ms, cold start {:.2} s, the SQS trigger starts {} invocations and adds {} a second",
        MODEL.request_s * 1e3,
        MODEL.cold_start_s,
        MODEL.initial_concurrency,
        MODEL.scale_per_s
    );
    for batch in [10, 5] {
        let deployment = Deployment {
            fleet: Fleet {
                worker_batch_size: batch,
                ..Fleet::default()
            },
            ..Deployment::defaults("us-east-1")
        };
        let (phases, _) = LambdaPhases::plan(&profile, &deployment);
        println!(
            "batch {batch:>2}: {} invocations, at most {} at once: submit {:.2} s + tiles {:.2} s + stitch {:.2} s + last poll {:.2} s = {:.2} s",
            phases.invocations,
            phases.workers,
            phases.submit,
            phases.tiles,
            phases.stitch,
            phases.poll,
            phases.total()
        );
    }
    Ok(())
}

/// The CPU's model name, as /proc/cpuinfo gives it.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

fn names(levels: &[Level]) -> String {
    levels
        .iter()
        .map(|l| l.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn section(title: &str) {
    println!("\n## {title}");
}

fn render(level: Level, tuning: Tuning, p: &RenderParams, tile: TileId) -> (u64, Vec<u16>) {
    let mut out = vec![0u16; p.pixels_per_tile()];
    let executed = kernel::render_tile_with(level, tuning, p, tile, &mut out);
    (executed, out)
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> (u64, T)) -> (Duration, u64, T) {
    let mut best: Option<(Duration, u64, T)> = None;
    for _ in 0..n {
        let t = Instant::now();
        let (executed, value) = f();
        let elapsed = t.elapsed();
        if best.as_ref().is_none_or(|b| elapsed < b.0) {
            best = Some((elapsed, executed, value));
        }
    }
    best.expect("n > 0")
}

/// Renders every tile on `threads` threads; returns wall time, executed and
/// brute-force-equivalent iterations.
fn whole_job(
    level: Level,
    tuning: Tuning,
    p: &RenderParams,
    threads: usize,
) -> (Duration, u64, u64) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let tiles: Vec<TileId> = p.tiles().collect();
    let t = Instant::now();
    let totals: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let (mut executed, mut brute) = (0, 0);
                    let mut out = vec![0u16; p.pixels_per_tile()];
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&tile) = tiles.get(i) else { break };
                        executed += kernel::render_tile_with(level, tuning, p, tile, &mut out);
                        brute += kernel::brute_force_iterations(&out, p.max_iter);
                    }
                    (executed, brute)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = t.elapsed();
    (
        elapsed,
        totals.iter().map(|t| t.0).sum(),
        totals.iter().map(|t| t.1).sum(),
    )
}

fn stitched(p: &RenderParams) -> CountsImage {
    let mut img = CountsImage::for_params(p);
    for tile in p.tiles() {
        img.place_tile(p.tile_pixels as usize, tile, &kernel::render_tile(p, tile));
    }
    img
}

fn rgb_of(counts: &CountsImage) -> Vec<u8> {
    let (lo, hi) = counts
        .data()
        .iter()
        .fold((u32::MAX, 0), |(a, b), &c| (a.min(c), b.max(c)));
    let palette = Colormap::TwilightShifted.palette(lo, hi);
    (0..counts.height())
        .rev()
        .flat_map(|y| counts.row(y).iter().flat_map(|&c| palette.colour(c)))
        .collect()
}

/// The notebook's kernel timed over a whole viewport.
struct Numpy {
    rate: f64,
    tiles: u32,
    side: u32,
    seconds: f64,
}

/// numpy's brute-force iterations per second over the whole default
/// viewport at 1024² in 256-px tiles (quick: 512²): the default job's
/// pixel mix, at a size numpy finishes in tens of seconds.
fn numpy_rate(python: Option<&str>, quick: bool) -> Result<Numpy> {
    let python = python.map(str::to_string).unwrap_or_else(|| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-bench/bin/python");
        if std::path::Path::new(venv).exists() {
            venv.to_string()
        } else {
            "python3".to_string()
        }
    });
    let tiles_per_side: u32 = if quick { 2 } else { 4 };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/numpy_kernel.py");
    let out = Command::new(&python)
        .arg(script)
        .args([tiles_per_side.to_string(), "256".to_string()])
        .output()
        .with_context(|| format!("running {python}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{python}: {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let seconds = v["seconds"].as_f64().context("seconds")?;
    let iterations = v["iterations"].as_f64().context("iterations")?;
    Ok(Numpy {
        rate: iterations / seconds,
        tiles: tiles_per_side * tiles_per_side,
        side: tiles_per_side * 256,
        seconds,
    })
}

/// Renders every tile of `p` on `cores` threads (tiles handed out in grid
/// order, counts dropped) and prints the wall time and the rate.
fn kernel_only(p: &RenderParams, cores: usize) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = AtomicU64::new(0);
    let brute = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= p.tile_count() {
                        break;
                    }
                    let side = u64::from(p.tiles_per_side);
                    let tile = TileId::new((i / side) as u32, (i % side) as u32);
                    let counts = kernel::render_tile(p, tile);
                    let its = kernel::brute_force_iterations(&counts, p.max_iter);
                    brute.fetch_add(its, Ordering::Relaxed);
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let side = p.image_side();
    println!(
        "kernel only, {side}x{side} ({} tiles of {} px, max_iter {}), {cores} threads: {secs:.2} s, {:.2} G iterations/s",
        p.tile_count(),
        p.tile_pixels,
        p.max_iter,
        brute.load(Ordering::Relaxed) as f64 / secs / 1e9
    );
    Ok(())
}

/// The estimator's error: four 4096² jobs (16×16 tiles, max_iter 2000)
/// estimated, then rendered embedded on every core, twice each (the
/// faster render counts).
fn estimator(cores: usize) -> Result<()> {
    use mandel_pipeline::estimate::{Estimate, profile};
    let views = [
        ("default view", "-0.745,-0.735,0.105,0.115"),
        ("whole set", "-2.5,1,-1.75,1.75"),
        (
            "deep boundary zoom",
            "-0.7436447860,-0.7436437860,0.1318252536,0.1318262536",
        ),
        ("interior-heavy (period-3 bulb)", "-0.2,-0.05,0.67,0.82"),
    ];
    println!(
        "# estimator, {cores} workers, kernel {}",
        Level::selected().name()
    );
    println!(
        "{:<32} {:>9} {:>13} {:>13} {:>8} {:>10} {:>10} {:>8}",
        "view", "sample ms", "est. G its", "actual G its", "error", "est. s", "actual s", "error"
    );
    let rt = tokio::runtime::Runtime::new()?;
    let scratch = tempfile::tempdir_in(".")?;
    for (name, view) in views {
        let v: Vec<f64> = view.split(',').map(|x| x.parse().unwrap()).collect();
        let params = RenderParams {
            view: mandel_core::View::Viewport(mandel_core::Viewport::from([
                v[0], v[1], v[2], v[3],
            ])),
            ..RenderParams::default()
        };
        let profiled = profile(&params);
        let e = Estimate::embedded(&profiled, cores);
        let mut best = f64::INFINITY;
        let mut iterations = 0;
        for _ in 0..2 {
            let t = Instant::now();
            let r = rt.block_on(mandel_pipeline::render_embedded(
                &params,
                cores,
                scratch.path(),
                None,
                None,
                |_| {},
            ))?;
            best = best.min(t.elapsed().as_secs_f64());
            iterations = r.manifest.iterations;
        }
        let error = |est: f64, actual: f64| format!("{:+.1}%", (est / actual - 1.0) * 100.0);
        println!(
            "{:<32} {:>9.1} {:>13.3} {:>13.3} {:>8} {:>10.2} {:>10.2} {:>8}",
            name,
            e.sample.milliseconds,
            e.iterations as f64 / 1e9,
            iterations as f64 / 1e9,
            error(e.iterations as f64, iterations as f64),
            e.seconds,
            best,
            error(e.seconds, best),
        );
    }
    Ok(())
}
