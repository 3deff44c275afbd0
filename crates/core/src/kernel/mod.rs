//! The escape-iteration kernel.
//!
//! One pixel, f64, exactly as numpy's complex arithmetic does it on FMA
//! hardware (the product's exactness contract):
//!
//! ```text
//! zr' = fma(zr, zr, -(zi*zi)) + cr
//! zi' = (zr*zi + zi*zr) + ci
//! escaped when zr'*zr' + zi'*zi' > 4.0   (two rounded squares, then add)
//! count = index i of the escaping step, or max_iter if it never escapes
//! ```
//!
//! [`render_tile`] is the single entry point the rest of the product calls.
//! It runs the fast kernel (`fast.rs`: SIMD lanes with refill, exact
//! shortcuts) at the best [`Level`] this CPU supports, chosen at run time;
//! [`reference`](mod@reference) is the plain scalar definition every level is tested
//! against, byte for byte.

use std::sync::OnceLock;

use crate::geometry::TileId;
use crate::params::RenderParams;

mod fast;
mod shortcut;
mod simd;

pub use fast::Tuning;
pub use shortcut::{MARGIN as INTERIOR_MARGIN, surely_interior};

/// The version of the counts' contract (the formula above and the
/// coordinate rule). Counts cached by their params alone are keyed with it
/// too, so a change of contract, should one ever be needed, never serves
/// counts of the old one.
pub const CONTRACT_VERSION: u32 = 1;

/// An instruction-set level the kernel can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// x86-64 AVX-512F: 8 f64 lanes, 6 vectors in flight.
    Avx512,
    /// x86-64 AVX2 + FMA: 4 lanes, 2 vectors in flight (16 registers).
    Avx2,
    /// aarch64 NEON: 2 lanes, 4 vectors in flight.
    Neon,
    /// Portable scalar code, 4 pixels in flight; `mul_add` is a hardware
    /// FMA where the target has one and an exact libm call otherwise.
    Scalar,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2",
            Level::Neon => "neon",
            Level::Scalar => "scalar",
        }
    }

    /// Every level this CPU can run, best first.
    pub fn available() -> &'static [Level] {
        // Detected once: the renderer asserts the level on every tile.
        static AVAILABLE: OnceLock<Vec<Level>> = OnceLock::new();
        AVAILABLE.get_or_init(Level::detect)
    }

    fn detect() -> Vec<Level> {
        let mut levels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                levels.push(Level::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                levels.push(Level::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            levels.push(Level::Neon);
        }
        levels.push(Level::Scalar);
        levels
    }

    /// The level [`render_tile`] uses: the best available, unless the
    /// environment variable `MANDEL_KERNEL` names another available one.
    pub fn selected() -> Level {
        static SELECTED: OnceLock<Level> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let available = Level::available();
            std::env::var("MANDEL_KERNEL")
                .ok()
                .and_then(|name| available.iter().copied().find(|l| l.name() == name))
                .unwrap_or(available[0])
        })
    }
}

/// Renders one tile into a new `P*P` counts buffer, row-major, row 0 = lowest
/// imaginary part (counts widened to `u32`, as the rest of the product
/// holds them).
pub fn render_tile(params: &RenderParams, tile: TileId) -> Vec<u32> {
    let mut out = vec![0u16; params.pixels_per_tile()];
    render_tile_into(params, tile, &mut out);
    widen(&out)
}

fn widen(counts: &[u16]) -> Vec<u32> {
    counts.iter().map(|&c| u32::from(c)).collect()
}

/// Renders one tile into `out` (length `P*P`).
///
/// # Panics
/// If `out.len()` is not `tile_pixels²`.
pub fn render_tile_into(params: &RenderParams, tile: TileId, out: &mut [u16]) {
    render_tile_with(Level::selected(), Tuning::default(), params, tile, out);
}

/// Pixels per band of [`render_tile_until`]: at most ~0.5 s of work at the
/// largest `max_iter` on one core, so a stop request is heard quickly.
const BAND_PIXELS: usize = 16 * 1024;

/// Renders one tile like [`render_tile`], band of rows by band, and gives up
/// (`None`) if `stop` is set between two bands. Each pixel's count depends
/// only on its coordinates, so a tile made of bands has the same bytes.
/// The worker uses this to leave a tile it cannot finish before its
/// Lambda deadline instead of being killed with it.
pub fn render_tile_until(
    params: &RenderParams,
    tile: TileId,
    stop: &std::sync::atomic::AtomicBool,
) -> Option<Vec<u32>> {
    let n = params.tile_pixels as usize;
    let mut out = vec![0u16; n * n];
    let axes = params.tile_axes(tile);
    let rows = (BAND_PIXELS / n).max(1);
    for (ys, band) in axes.ys.chunks(rows).zip(out.chunks_mut(rows * n)) {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        fill_rows(
            Level::selected(),
            Tuning::default(),
            &axes.xs,
            ys,
            params.max_iter,
            band,
        );
    }
    Some(widen(&out))
}

/// Renders one tile at a given level and tuning; every combination gives
/// the same bytes. Returns the iterations executed (shortcut pixels cost
/// none), for benchmarks.
///
/// # Panics
/// If `level` is not [available](Level::available) on this CPU, or
/// `out.len()` is not `tile_pixels²`.
pub fn render_tile_with(
    level: Level,
    tuning: Tuning,
    params: &RenderParams,
    tile: TileId,
    out: &mut [u16],
) -> u64 {
    let n = params.tile_pixels as usize;
    assert_eq!(
        out.len(),
        n * n,
        "output buffer must hold tile_pixels² counts"
    );
    let axes = params.tile_axes(tile);
    fill_rows(level, tuning, &axes.xs, &axes.ys, params.max_iter, out)
}

/// The counts of the pixels `xs × ys` into `out`, row-major, at `level`.
fn fill_rows(
    level: Level,
    tuning: Tuning,
    xs: &[f64],
    ys: &[f64],
    max_iter: u32,
    out: &mut [u16],
) -> u64 {
    assert!(
        Level::available().contains(&level),
        "kernel level {level:?} is not available on this CPU"
    );
    match level {
        // SAFETY (all arms): the level is available, checked above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { isa::avx512(xs, ys, max_iter, tuning, out) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { isa::avx2(xs, ys, max_iter, tuning, out) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => unsafe { isa::neon(xs, ys, max_iter, tuning, out) },
        // SAFETY: scalar code needs no special instructions.
        Level::Scalar => unsafe { fast::fill::<simd::Scalar, 4>(xs, ys, max_iter, tuning, out) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("level {level:?} is not available on this architecture"),
    }
}

/// The `#[target_feature]` instantiations of the fast kernel.
mod isa {
    use super::{Tuning, fast, simd};

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn avx512(
        xs: &[f64],
        ys: &[f64],
        max_iter: u32,
        tuning: Tuning,
        out: &mut [u16],
    ) -> u64 {
        unsafe { fast::fill::<simd::Avx512, 6>(xs, ys, max_iter, tuning, out) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(
        xs: &[f64],
        ys: &[f64],
        max_iter: u32,
        tuning: Tuning,
        out: &mut [u16],
    ) -> u64 {
        unsafe { fast::fill::<simd::Avx2, 2>(xs, ys, max_iter, tuning, out) }
    }

    #[cfg(target_arch = "aarch64")]
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn neon(
        xs: &[f64],
        ys: &[f64],
        max_iter: u32,
        tuning: Tuning,
        out: &mut [u16],
    ) -> u64 {
        unsafe { fast::fill::<simd::Neon, 4>(xs, ys, max_iter, tuning, out) }
    }
}

/// Iterations a brute-force kernel spends on a pixel with this count: an
/// escaped pixel ran `count + 1` steps, an interior one `max_iter`.
#[inline]
pub fn brute_force_iterations<C: Copy + Into<u32>>(counts: &[C], max_iter: u32) -> u64 {
    counts
        .iter()
        .map(|&c| {
            let c: u32 = c.into();
            if c >= max_iter {
                u64::from(max_iter)
            } else {
                u64::from(c) + 1
            }
        })
        .sum()
}

/// The scalar definition of the kernel. Slow and obviously right.
pub mod reference {
    use super::*;

    /// Escape count of one point `c = cr + i*ci`.
    #[inline(always)]
    pub fn escape_count(cr: f64, ci: f64, max_iter: u32) -> u16 {
        let (mut zr, mut zi) = (0.0f64, 0.0f64);
        for i in 0..max_iter {
            let nzr = zr.mul_add(zr, -(zi * zi)) + cr;
            let nzi = (zr * zi + zi * zr) + ci;
            zr = nzr;
            zi = nzi;
            if zr * zr + zi * zi > 4.0 {
                return i as u16;
            }
        }
        max_iter as u16
    }

    /// Renders a tile pixel by pixel into a new buffer.
    pub fn render_tile(params: &RenderParams, tile: TileId) -> Vec<u16> {
        let mut out = vec![0u16; params.pixels_per_tile()];
        render_tile_into(params, tile, &mut out);
        out
    }

    /// Renders a tile pixel by pixel.
    pub fn render_tile_into(params: &RenderParams, tile: TileId, out: &mut [u16]) {
        let n = params.tile_pixels as usize;
        assert_eq!(
            out.len(),
            n * n,
            "output buffer must hold tile_pixels² counts"
        );
        let axes = params.tile_axes(tile);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA, checked just above.
            unsafe { fill_fma(&axes.xs, &axes.ys, params.max_iter, out) };
            return;
        }
        fill(&axes.xs, &axes.ys, params.max_iter, out);
    }

    // Without the `fma` target feature `mul_add` is a libm call (correct, but
    // slow); with it, one instruction. Same source, same bytes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    unsafe fn fill_fma(xs: &[f64], ys: &[f64], max_iter: u32, out: &mut [u16]) {
        fill(xs, ys, max_iter, out)
    }

    #[inline(always)]
    fn fill(xs: &[f64], ys: &[f64], max_iter: u32, out: &mut [u16]) {
        for (row, &ci) in out.chunks_exact_mut(xs.len()).zip(ys) {
            for (px, &cr) in row.iter_mut().zip(xs) {
                *px = escape_count(cr, ci, max_iter);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_points() {
        // c = 0 never escapes; c = 2 escapes on the second step (|z|² = 36 > 4
        // at i = 1, since z1 = 2 gives exactly 4, not > 4); c = 3 at once.
        assert_eq!(reference::escape_count(0.0, 0.0, 100), 100);
        assert_eq!(reference::escape_count(2.0, 0.0, 100), 1);
        assert_eq!(reference::escape_count(3.0, 0.0, 100), 0);
        assert_eq!(reference::escape_count(-2.0, 0.0, 50), 50);
    }

    #[test]
    fn brute_force_iterations_counts_steps() {
        assert_eq!(
            brute_force_iterations(&[0u32, 1, 10, 10], 10),
            1 + 2 + 10 + 10
        );
    }
}
