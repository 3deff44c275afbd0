//! Exact interior shortcuts: pixels proven never to escape.
//!
//! A point `c` inside the main cardioid has an attracting fixed point with
//! multiplier `λ = 1 - sqrt(1 - 4c)`; inside the period-2 bulb an attracting
//! 2-cycle with multiplier `4(c + 1)`. Where `|λ| ≤ 1 - MARGIN` the orbit of
//! 0 is contracted toward the attractor, so rounding errors (about 1e-16 per
//! step) are damped rather than amplified and cannot carry it out of the
//! basin: the f64 iteration never escapes and the count is `max_iter`, the
//! same as iterating. The margin is far above the error of evaluating
//! `|λ|` itself (a few ulps), and thin enough (about 1e-6 in `c`) to keep
//! nearly every interior pixel. The property tests compare the shortcut
//! with the full iteration right up to the margin.

/// How far inside the neutral curve `|λ| = 1` a point must be.
pub const MARGIN: f64 = 1e-6;

/// Whether `c = cr + i*ci` is proven never to escape.
#[inline(always)]
pub fn surely_interior(cr: f64, ci: f64) -> bool {
    in_cardioid(cr, ci) || in_period2_bulb(cr, ci)
}

#[inline(always)]
fn in_period2_bulb(cr: f64, ci: f64) -> bool {
    // |4(c + 1)| < 1 - MARGIN
    let r = (1.0 - MARGIN) / 4.0;
    let x = cr + 1.0;
    x * x + ci * ci < r * r
}

#[inline(always)]
fn in_cardioid(cr: f64, ci: f64) -> bool {
    // w = 1 - 4c = a + ib; sqrt(w) = sr + i*si, principal branch.
    let a = 1.0 - 4.0 * cr;
    let b = -4.0 * ci;
    // Outside |c| < 2 nothing is interior; this also keeps a*a finite.
    let small = cr * cr + ci * ci < 4.0;
    let r = (a * a + b * b).sqrt();
    // The cancellation-free form: t is the larger of |sr| and |si|, the
    // other one is |b| / 2t. (At w = 0 this is NaN and the test is false.)
    let t = ((r + a.abs()) * 0.5).sqrt();
    let (sr, si) = if a >= 0.0 {
        (t, b / (2.0 * t))
    } else {
        (b.abs() / (2.0 * t), t.copysign(b))
    };
    // λ = 1 - sqrt(w)
    let lr = 1.0 - sr;
    let rho = 1.0 - MARGIN;
    small && lr * lr + si * si < rho * rho
}

/// Marks the pixels of `xs × ys` (row-major) that [`surely_interior`]
/// proves interior. Written as a plain loop so it vectorises in the
/// caller's target features.
#[inline(always)]
pub fn mark_interior(xs: &[f64], ys: &[f64], mask: &mut [bool]) {
    for (row, &ci) in mask.chunks_exact_mut(xs.len()).zip(ys) {
        for (m, &cr) in row.iter_mut().zip(xs) {
            *m = surely_interior(cr, ci);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_interior_and_exterior_points() {
        assert!(surely_interior(0.0, 0.0));
        assert!(surely_interior(-0.5, 0.3));
        assert!(surely_interior(-1.0, 0.0)); // period-2 bulb centre
        assert!(surely_interior(0.2499, 0.0));
        assert!(!surely_interior(0.2500001, 0.0)); // past the cusp
        assert!(!surely_interior(-0.75, 0.0)); // the neck: neutral
        assert!(!surely_interior(-0.75, 0.1)); // seahorse valley
        assert!(!surely_interior(0.5, 0.5));
        assert!(!surely_interior(-2.0, 0.0));
        assert!(!surely_interior(1e300, 1e300));
        assert!(!surely_interior(-1e300, 0.0));
    }

    #[test]
    fn the_margin_keeps_points_off_the_neutral_curve() {
        // On the cardioid's boundary c(θ) = e^{iθ}/2 - e^{2iθ}/4 (|λ| = 1)
        // nothing is claimed, nor just inside it.
        for i in 1..1000 {
            let t = f64::from(i) * std::f64::consts::TAU / 1000.0;
            let (cr, ci) = (
                t.cos() / 2.0 - (2.0 * t).cos() / 4.0,
                t.sin() / 2.0 - (2.0 * t).sin() / 4.0,
            );
            assert!(!surely_interior(cr, ci), "boundary point θ={t}");
            // 0.999 of the way: |λ| = 0.999 is inside the margin.
            let (l_r, l_i) = (0.999 * t.cos(), 0.999 * t.sin());
            let cr = l_r / 2.0 - (l_r * l_r - l_i * l_i) / 4.0;
            let ci = l_i / 2.0 - (2.0 * l_r * l_i) / 4.0;
            assert!(surely_interior(cr, ci), "|λ| = 0.999 at θ={t}");
        }
    }
}
