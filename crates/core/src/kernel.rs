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
//! [`render_tile`] is the single entry point the rest of the product calls;
//! [`reference`] is the plain scalar definition every faster path is tested
//! against.

use crate::geometry::TileId;
use crate::params::RenderParams;

/// Renders one tile into a new `P*P` counts buffer, row-major, row 0 = lowest
/// imaginary part.
pub fn render_tile(params: &RenderParams, tile: TileId) -> Vec<u16> {
    let mut out = vec![0u16; params.pixels_per_tile()];
    render_tile_into(params, tile, &mut out);
    out
}

/// Renders one tile into `out` (length `P*P`).
///
/// # Panics
/// If `out.len()` is not `tile_pixels²`.
pub fn render_tile_into(params: &RenderParams, tile: TileId, out: &mut [u16]) {
    reference::render_tile_into(params, tile, out);
}

/// Iterations a brute-force kernel spends on a pixel with this count: an
/// escaped pixel ran `count + 1` steps, an interior one `max_iter`.
#[inline]
pub fn brute_force_iterations(counts: &[u16], max_iter: u32) -> u64 {
    counts
        .iter()
        .map(|&c| {
            if u32::from(c) >= max_iter {
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
        assert_eq!(brute_force_iterations(&[0, 1, 10, 10], 10), 1 + 2 + 10 + 10);
    }
}
