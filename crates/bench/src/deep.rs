//! `mandel-bench deep`: a deep location's reference orbit and render,
//! timed on every core, with what the perturbation did (steps, BLA skips,
//! rebases) and, given a brute-force grid of the same view, the agreement.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mandel_core::deep::{DeepRenderer, Location, OrbitState, Work};

/// Rows handed to a thread at a time.
const BAND: u64 = 8;

pub fn run(
    location: &Path,
    side: u64,
    max_iter: Option<u32>,
    epsilon: f64,
    truth: Option<&Path>,
    cores: usize,
) -> Result<()> {
    let text = std::fs::read_to_string(location)
        .with_context(|| format!("reading {}", location.display()))?;
    let loc = Location::from_kfr(&text)?;
    let max_iter = max_iter
        .or(loc.iterations.map(|i| i as u32))
        .context("no --max-iter and no Iterations in the file")?;
    let view = loc.view;
    let bits = view.precision_bits(side);
    println!(
        "location {} (zoom {}), {side}x{side} pixels, max_iter {max_iter}, {cores} cores",
        location.display(),
        view.zoom()
    );

    let started = Instant::now();
    let mut state = OrbitState::new(&view, bits);
    let mut orbit = Vec::new();
    state.run(u64::from(max_iter), &mut orbit, || true);
    let orbit_secs = started.elapsed().as_secs_f64();
    println!(
        "reference orbit: {} points at {bits} bits in {orbit_secs:.3} s ({:.2} us a step)",
        orbit.len(),
        orbit_secs * 1e6 / orbit.len().max(1) as f64
    );

    let started = Instant::now();
    let renderer = DeepRenderer::new(&view, side, max_iter, &orbit, epsilon);
    println!(
        "prepared in {:.3} s: {} BLA maps (epsilon {epsilon:e}), {} deltas",
        started.elapsed().as_secs_f64(),
        renderer.bla_len(),
        if renderer.is_extended() {
            "floatexp"
        } else {
            "f64"
        }
    );

    let mut counts = vec![0u32; (side * side) as usize];
    let next = AtomicU64::new(0);
    let work = Mutex::new(Work::default());
    let busy = Mutex::new(0.0f64);
    let bands = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                let t = Instant::now();
                let mut mine = Work::default();
                let mut done = Vec::new();
                loop {
                    let first = next.fetch_add(BAND, Ordering::Relaxed);
                    if first >= side {
                        break;
                    }
                    let last = (first + BAND).min(side);
                    let mut band = vec![0u32; ((last - first) * side) as usize];
                    let w = renderer.render(first..last, 0..side, &mut band);
                    mine += w;
                    done.push((first, band));
                }
                *busy.lock().unwrap() += t.elapsed().as_secs_f64();
                let mut total = work.lock().unwrap();
                *total += mine;
                bands.lock().unwrap().extend(done);
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    for (first, band) in bands.into_inner().unwrap() {
        let at = (first * side) as usize;
        counts[at..at + band.len()].copy_from_slice(&band);
    }
    let work = work.into_inner().unwrap();
    let cpu = busy.into_inner().unwrap();
    let pixels = side * side;
    let brute = mandel_core::kernel::brute_force_iterations(&counts, max_iter);
    println!(
        "render: {wall:.2} s wall, {cpu:.1} CPU-s ({:.2} us a pixel on one core); \
         {:.1} steps + {:.1} BLA skips + {:.2} rebases a pixel for {:.0} brute-force iterations a pixel",
        cpu * 1e6 / pixels as f64,
        work.steps as f64 / pixels as f64,
        work.skips as f64 / pixels as f64,
        work.rebases as f64 / pixels as f64,
        brute as f64 / pixels as f64,
    );
    println!(
        "total (orbit + render) on one core: {:.1} CPU-s",
        orbit_secs + cpu
    );
    if let Some(path) = truth {
        let truth: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let expected: Vec<u32> = truth["counts"]
            .as_array()
            .context("no counts")?
            .iter()
            .map(|c| c.as_u64().unwrap_or(0) as u32)
            .collect();
        if expected.len() != counts.len() {
            bail!(
                "the grid has {} pixels, the render {}",
                expected.len(),
                counts.len()
            );
        }
        let agree = counts.iter().zip(&expected).filter(|(a, b)| a == b).count();
        println!(
            "agreement with {}: {agree} of {} pixels ({:.3} %)",
            path.display(),
            counts.len(),
            agree as f64 * 100.0 / counts.len() as f64
        );
    }
    Ok(())
}

/// `mandel-bench deep-tiles`: what a cold deep explorer tile costs once its
/// region's orbit exists.
pub fn tiles(
    location: &Path,
    zoom_log2: u32,
    max_iter: u32,
    count: u32,
    paths: bool,
) -> Result<()> {
    use mandel_core::explore::DeepTile;
    let text = std::fs::read_to_string(location)
        .with_context(|| format!("reading {}", location.display()))?;
    let loc = Location::from_kfr(&text)?;
    let first = DeepTile::at(&loc.view, zoom_log2)?;
    if paths {
        for k in 0..count {
            println!("{}", first.right(k)?);
        }
        return Ok(());
    }
    println!(
        "deep tiles of 2^{zoom_log2} (about 1e{:.0}) on the path to {}, max_iter {max_iter}, one core",
        f64::from(zoom_log2) * 2f64.log10(),
        location.display()
    );
    let mut orbits: std::collections::HashMap<_, _> = Default::default();
    let mut ms = Vec::new();
    for k in 0..count {
        let tile = first.right(k)?;
        let region = tile.region();
        let orbit = orbits.entry(region.clone()).or_insert_with(|| {
            let started = Instant::now();
            let orbit = region.orbit(max_iter);
            println!(
                "region orbit: {} points at {} bits in {:.1} ms",
                orbit.points.len(),
                region.precision_bits(),
                started.elapsed().as_secs_f64() * 1e3
            );
            orbit
        });
        let started = Instant::now();
        let (counts, work) = tile.render(max_iter, orbit);
        let took = started.elapsed().as_secs_f64() * 1e3;
        let px = counts.len() as f64;
        println!(
            "tile +{k}: {took:.1} ms ({:.0} steps + {:.0} skips a pixel, counts {}..={})",
            work.steps as f64 / px,
            work.skips as f64 / px,
            counts.iter().min().unwrap(),
            counts.iter().max().unwrap()
        );
        ms.push(took);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "per tile: median {:.1} ms, max {:.1} ms (target: 200 ms at 1e100 with at most 10,000 iterations)",
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
    Ok(())
}
