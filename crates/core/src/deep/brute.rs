//! Brute force: every pixel iterated in fixed-point arithmetic with `bits`
//! fraction bits, no perturbation, no approximation. Slow (a few
//! microseconds a step); it is the definition deep renders are tested
//! against, at a precision where `bits` and `2·bits` agree. The tests also
//! hold grids computed by an independent program (tools/deep_truth.py, MPFR).

use dashu_int::IBig;

use super::DeepView;

/// The escape count of pixel `(i, j)` of the `side`-pixel image of `view`
/// (the same rule as every kernel: the index of the step whose result has
/// `|z|² > 4`, or `max_iter`), computed with `bits` fraction bits.
pub fn escape_count(view: &DeepView, side: u64, i: u64, j: u64, max_iter: u32, bits: u32) -> u32 {
    let (cx, cy) = pixel(view, side, i, j, bits);
    let b = bits as usize;
    let four = IBig::from(4) << (2 * b);
    let (mut x, mut y) = (IBig::ZERO, IBig::ZERO);
    for k in 0..max_iter {
        let two_xy = (&x * &y) >> (b - 1);
        x = (((&x + &y) * (&x - &y)) >> b) + &cx;
        y = two_xy + &cy;
        if &x * &x + &y * &y > four {
            return k;
        }
    }
    max_iter
}

/// Pixel `(i, j)`'s point in fixed point: `C + ((2j + 1 − N)/2, (2i + 1 − N)/2)·4/(zoom·N)`,
/// one rounding (toward zero) per coordinate, far below a pixel.
pub fn pixel(view: &DeepView, side: u64, i: u64, j: u64, bits: u32) -> (IBig, IBig) {
    let (c_re, c_im) = view.center_fixed(bits);
    let (num, den) = view.zoom_fraction();
    // offset·4/(zoom·N) = (2k + 1 − N)·2·den / (num·N)
    let scale = |k: u64| {
        let offset = IBig::from(2 * k as i128 + 1 - side as i128);
        ((offset * IBig::from(2) * &den) << bits as usize) / (&num * IBig::from(side))
    };
    (c_re + scale(j), c_im + scale(i))
}
