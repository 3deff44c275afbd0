//! Per-pixel perturbation from one reference orbit, with rebasing and
//! bivariate linear approximation (BLA).
//!
//! A pixel `C + c` has the orbit `Z_m + z_n`, where `Z` is the reference
//! and the delta obeys `z_{n+1} = 2 Z_m z_n + z_n² + c` (`m` and `n` start
//! at 0, `z_0 = 0`). Two rules keep one reference valid for every pixel of
//! the view (Zhuoran's rebasing, as Fraktaler-3 documents it):
//!
//! - **Rebase** when `|Z_m + z| < |z|`, or when the reference has no next
//!   point: `z ← Z_m + z`, `m ← 0`. Since `Z_0 = 0` this is exact, and it
//!   stops the cancellation that makes the classic "glitches".
//! - **Skip** with BLA while `z` is small: then `l` steps are, to within
//!   f64's rounding, the linear map `z ← A z + B c`. The table holds, for
//!   every start `m`, maps of `1, 2, 4, …` steps with their validity radius:
//!   single step `A = 2 Z_m`, `B = 1`, `R = max(0, ε|A| − |c|/|A|)`; two
//!   maps `x` then `y` merge to `A = A_y A_x`, `B = A_y B_x + B_y`,
//!   `R = max(0, min(R_x, (R_y − |B_x||c|)/|A_x|))`, where `|c|` is the
//!   largest delta of the view. A pixel takes the longest valid map.
//!
//! The count rule is the f64 kernel's: the index of the step whose result
//! has `|Z + z|² > 4`, or `max_iter`.

use super::number::{C64, Complex};

/// BLA's tolerance: a map is used while the dropped `z²` term is below
/// `ε` of the linear terms. Tuned against brute force (docs/deep-zoom.md):
/// at 1e-12 every pixel of the test grids agrees, as at 2^-45, with a
/// fifth fewer steps at 5e113; 1e-10 loses 2 pixels of 4096 there.
pub const BLA_EPSILON: f64 = 1e-12;

/// One linear map: `l` steps from its start are `z ← A z + B c` while
/// `|z|² < r2`.
#[derive(Clone, Copy, Debug)]
struct Bla<T: Complex> {
    a: T,
    b: T,
    r2: T::Mag,
    l: u32,
}

/// The maps of every length `2^k` starting at `m = 1 + j·2^k`.
pub(super) struct BlaTable<T: Complex> {
    levels: Vec<Vec<Bla<T>>>,
}

impl<T: Complex> BlaTable<T> {
    /// The table for an orbit and a view whose deltas are at most `c_max`.
    pub(super) fn new(orbit: &[T], c_max: T::Mag, epsilon: f64) -> BlaTable<T> {
        let eps = T::mag(epsilon);
        let one = T::from_parts(1.0, 0.0, 0);
        let zero = T::mag(0.0);
        // Single steps from m = 1 to the last point but one.
        let singles: Vec<Bla<T>> = orbit
            .iter()
            .skip(1)
            .take(orbit.len().saturating_sub(2))
            .map(|&z| {
                let a = z.double();
                let abs_a = a.abs();
                let r = if a.is_finite() && abs_a > zero {
                    T::mag_sub(T::mag_mul(eps, abs_a), T::mag_div(c_max, abs_a))
                } else {
                    zero
                };
                Bla {
                    a,
                    b: one,
                    r2: T::mag_sqr(r),
                    l: 1,
                }
            })
            .collect();
        let mut levels = vec![singles];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().unwrap();
            let next = below
                .chunks(2)
                .map(|pair| match pair {
                    [x, y] => merge(x, y, c_max),
                    [x] => *x,
                    _ => unreachable!(),
                })
                .collect();
            levels.push(next);
        }
        BlaTable { levels }
    }

    /// The longest map from `m` valid for a delta of squared size `z2`
    /// that takes at most `room` steps.
    #[inline(always)]
    fn lookup(&self, m: usize, z2: T::Mag, room: u32) -> Option<&Bla<T>> {
        let j = m.checked_sub(1)?;
        let single = self.levels.first()?.get(j)?;
        // A longer map's radius is at most its first step's.
        if z2 >= single.r2 {
            return None;
        }
        // Maps of 2^k steps start where j is a multiple of 2^k.
        let top = if j == 0 {
            self.levels.len() - 1
        } else {
            (j.trailing_zeros() as usize).min(self.levels.len() - 1)
        };
        for k in (1..=top).rev() {
            if let Some(b) = self.levels[k].get(j >> k)
                && z2 < b.r2
                && b.l <= room
            {
                return Some(b);
            }
        }
        Some(single)
    }

    /// Number of maps in the table.
    pub(super) fn len(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }
}

fn merge<T: Complex>(x: &Bla<T>, y: &Bla<T>, c_max: T::Mag) -> Bla<T> {
    let a = y.a.mul(x.a);
    let b = y.a.mul(x.b).add(y.b);
    let abs_ax = x.a.abs();
    let zero = T::mag(0.0);
    let ry = T::mag_sqrt(y.r2);
    let r = if a.is_finite() && b.is_finite() && abs_ax > zero {
        let via_y = T::mag_div(T::mag_sub(ry, T::mag_mul(x.b.abs(), c_max)), abs_ax);
        let rx = T::mag_sqrt(x.r2);
        if via_y < rx { via_y } else { rx }
    } else {
        zero
    };
    Bla {
        a,
        b,
        r2: T::mag_sqr(r),
        l: x.l + y.l,
    }
}

/// The reference orbit and its BLA table in one number type. An engine in
/// floatexp also holds the orbit and table in f64 ([`Engine::fast`]): once
/// a pixel's delta has grown into f64's range, f64 steps give the same
/// result far faster (the pixel offset `c`, below f64's range, no longer
/// matters beside it), until a rebase makes the delta tiny again.
pub(super) struct Engine<T: Complex> {
    pub(super) orbit: Vec<T>,
    pub(super) bla: BlaTable<T>,
    pub(super) fast: Option<Box<Engine<C64>>>,
}

/// Deltas at least this large (as a power of two) are iterated in f64:
/// their squared magnitudes, which decide BLA and rebasing, must be normal
/// f64s too.
pub(super) const FAST_FROM: i64 = -480;
/// An f64 delta smaller than this (2^-500) goes back to floatexp.
const FAST_UNTIL: f64 = f64::from_bits(523 << 52);

/// How a stretch of a pixel's iteration ended.
enum Stretch {
    Escaped(u32),
    MaxIter,
    /// The delta became too small for f64 (fast stretches only).
    Small,
}

/// What one pixel cost: perturbation steps and BLA maps applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    pub steps: u64,
    pub skips: u64,
    pub rebases: u64,
}

impl std::ops::AddAssign for Work {
    fn add_assign(&mut self, o: Work) {
        self.steps += o.steps;
        self.skips += o.skips;
        self.rebases += o.rebases;
    }
}

impl<T: Complex> Engine<T> {
    /// The escape count of the pixel `C + dc`.
    #[inline(always)]
    pub(super) fn pixel(&self, dc: T, max_iter: u32, work: &mut Work) -> u32 {
        let (mut z, mut m, mut n) = (T::ZERO, 0usize, 0u32);
        loop {
            let fast = self.fast.as_deref().filter(|_| z.at_least(FAST_FROM));
            let stretch = match fast {
                Some(fast) => {
                    let (re, im) = z.to_f64();
                    let mut z64 = C64 { re, im };
                    let (re, im) = dc.to_f64();
                    let dc64 = C64 { re, im };
                    let stretch = fast.run::<true>(&mut z64, &mut m, &mut n, dc64, max_iter, work);
                    z = T::from_parts(z64.re, z64.im, 0);
                    stretch
                }
                None => self.run::<false>(&mut z, &mut m, &mut n, dc, max_iter, work),
            };
            match stretch {
                Stretch::Escaped(count) => return count,
                Stretch::MaxIter => return max_iter,
                Stretch::Small => continue,
            }
        }
    }

    /// Iterates from `(z, m, n)` until the pixel escapes or reaches
    /// `max_iter`, or (`FAST`: an f64 stretch of a floatexp pixel) until the
    /// delta is too small for f64; in a floatexp engine with an f64 one,
    /// also until the delta is large enough for it.
    #[inline(always)]
    fn run<const FAST: bool>(
        &self,
        z: &mut T,
        m: &mut usize,
        n: &mut u32,
        dc: T,
        max_iter: u32,
        work: &mut Work,
    ) -> Stretch {
        let orbit = &self.orbit[..];
        let last = orbit.len() - 1;
        let can_speed_up = self.fast.is_some();
        while *n < max_iter {
            match self.bla.lookup(*m, z.norm(), max_iter - *n) {
                Some(b) => {
                    *z = b.a.mul(*z).add(b.b.mul(dc));
                    *m += b.l as usize;
                    *n += b.l;
                    work.skips += 1;
                }
                None => {
                    // 2 Z z + z² + c = (2 Z + z) z + c
                    *z = orbit[*m].double().add(*z).mul(*z).add(dc);
                    *m += 1;
                    *n += 1;
                    work.steps += 1;
                }
            }
            let full = orbit[*m].add(*z);
            let (re, im) = full.to_f64();
            if re * re + im * im > 4.0 {
                return Stretch::Escaped(*n - 1);
            }
            if *m == last || full.norm() < z.norm() {
                *z = full;
                *m = 0;
                work.rebases += 1;
            }
            if FAST && z.below_f64(FAST_UNTIL) {
                return Stretch::Small;
            }
            if can_speed_up && z.at_least(FAST_FROM) {
                return Stretch::Small;
            }
        }
        Stretch::MaxIter
    }
}
