//! The fast kernel: f64 lanes with lane refill, several vectors in flight,
//! exact interior shortcuts and exact periodicity detection.
//!
//! The per-step arithmetic is written once, over `[f64; W]` arrays, and
//! instantiated inside `#[target_feature]` functions (AVX-512, AVX2+FMA,
//! NEON); LLVM turns the fixed-width lane loops into vector instructions.
//! Rust never contracts `a * b + c` into an FMA on its own, and `mul_add`
//! is always fused, so every instantiation computes the same roundings as
//! [`reference`](super::reference).
//!
//! Lane refill: lanes advance in blocks of up to [`BLOCK`] steps. After a
//! block, each lane whose pixel escaped, reached `max_iter` or was proven
//! periodic writes its count and takes the next pixel, so a vector never
//! idles waiting for its slowest lane. A block is cut short so that no lane
//! can pass `max_iter`, which keeps the per-step work free of that check.

use super::shortcut;

/// Steps per block between refills.
pub(super) const BLOCK: u32 = 24;

/// The first periodicity checkpoint, in iterations; later ones double.
const FIRST_CHECKPOINT: f64 = 32.0;

/// Options that change the work done but never the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Skip pixels proven inside the main cardioid or period-2 bulb.
    pub interior_shortcut: bool,
    /// Stop a pixel whose orbit returns exactly to an earlier point.
    pub periodicity: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            interior_shortcut: true,
            periodicity: true,
        }
    }
}

/// Lane state for `V` vectors of `W` lanes.
struct Lanes<const W: usize, const V: usize> {
    cr: [[f64; W]; V],
    ci: [[f64; W]; V],
    zr: [[f64; W]; V],
    zi: [[f64; W]; V],
    /// `zi * zi` from the last escape test, reused by the next step.
    zi2: [[f64; W]; V],
    /// Completed non-escaping steps: the count if the lane escapes now.
    k: [[f64; W]; V],
    /// 1.0 while the lane's pixel has not escaped, else 0.0.
    active: [[f64; W]; V],
    /// Periodicity checkpoint: saved orbit point and when to save next.
    saved_r: [[f64; W]; V],
    saved_i: [[f64; W]; V],
    next_save: [[f64; W]; V],
    /// Output index of the lane's pixel, or `usize::MAX` for an idle lane.
    pixel: [[usize; W]; V],
}

/// Feeds pixels to lanes in order, writing shortcut pixels directly.
struct Feed<'a> {
    xs: &'a [f64],
    ys: &'a [f64],
    /// Pixels proven interior; empty when the shortcut is off.
    interior: &'a [bool],
    next: usize,
    max_iter: u16,
}

impl Feed<'_> {
    /// The next pixel that needs iterating: (index, cr, ci).
    #[inline(always)]
    fn next_pixel(&mut self, out: &mut [u16]) -> Option<(usize, f64, f64)> {
        let n = self.xs.len();
        while self.next < out.len() {
            let idx = self.next;
            self.next += 1;
            let (cr, ci) = (self.xs[idx % n], self.ys[idx / n]);
            if !self.interior.is_empty() && self.interior[idx] {
                out[idx] = self.max_iter;
                continue;
            }
            return Some((idx, cr, ci));
        }
        None
    }
}

/// Renders the pixels `xs × ys` into `out` (row-major, one row per `y`).
///
/// Always inlined, so that each `#[target_feature]` caller gets its own
/// vector instructions.
#[inline(always)]
pub(super) fn fill<const W: usize, const V: usize>(
    xs: &[f64],
    ys: &[f64],
    max_iter: u32,
    tuning: Tuning,
    out: &mut [u16],
) {
    debug_assert_eq!(out.len(), xs.len() * ys.len());
    let mut interior = Vec::new();
    if tuning.interior_shortcut {
        interior.resize(out.len(), false);
        shortcut::mark_interior(xs, ys, &mut interior);
    }
    let mut feed = Feed {
        xs,
        ys,
        interior: &interior,
        next: 0,
        max_iter: max_iter as u16,
    };
    let zero = [[0.0; W]; V];
    let mut s = Lanes::<W, V> {
        cr: zero,
        ci: zero,
        zr: zero,
        zi: zero,
        zi2: zero,
        k: zero,
        active: zero,
        saved_r: zero,
        saved_i: zero,
        next_save: zero,
        pixel: [[usize::MAX; W]; V],
    };
    let max = f64::from(max_iter);
    let mut live = 0usize;
    for v in 0..V {
        for l in 0..W {
            if load(&mut s, v, l, &mut feed, out) {
                live += 1;
            }
        }
    }
    while live > 0 {
        // Cut the block so the most advanced lane stops exactly at max_iter.
        let mut max_k = 0.0f64;
        for v in 0..V {
            for l in 0..W {
                if s.pixel[v][l] != usize::MAX {
                    max_k = max_k.max(s.k[v][l]);
                }
            }
        }
        let steps = (max - max_k).min(f64::from(BLOCK)) as u32;
        for _ in 0..steps {
            step(&mut s);
        }
        // Retire and refill.
        for v in 0..V {
            for l in 0..W {
                let idx = s.pixel[v][l];
                if idx == usize::MAX {
                    continue;
                }
                let escaped = s.active[v][l] == 0.0;
                let exhausted = s.k[v][l] >= max;
                let periodic = tuning.periodicity
                    && !escaped
                    && s.zr[v][l] == s.saved_r[v][l]
                    && s.zi[v][l] == s.saved_i[v][l];
                if escaped || exhausted || periodic {
                    out[idx] = if periodic {
                        max_iter as u16
                    } else {
                        s.k[v][l] as u16
                    };
                    if !load(&mut s, v, l, &mut feed, out) {
                        live -= 1;
                    }
                } else if tuning.periodicity && s.k[v][l] >= s.next_save[v][l] {
                    s.saved_r[v][l] = s.zr[v][l];
                    s.saved_i[v][l] = s.zi[v][l];
                    s.next_save[v][l] *= 2.0;
                }
            }
        }
    }
}

/// Puts the next pixel into lane `(v, l)`; false (and an idle lane) if none.
#[inline(always)]
fn load<const W: usize, const V: usize>(
    s: &mut Lanes<W, V>,
    v: usize,
    l: usize,
    feed: &mut Feed<'_>,
    out: &mut [u16],
) -> bool {
    let next = feed.next_pixel(out);
    let (idx, cr, ci) = next.unwrap_or((usize::MAX, 0.0, 0.0));
    s.pixel[v][l] = idx;
    s.cr[v][l] = cr;
    s.ci[v][l] = ci;
    s.active[v][l] = if next.is_some() { 1.0 } else { 0.0 };
    s.zr[v][l] = 0.0;
    s.zi[v][l] = 0.0;
    s.zi2[v][l] = 0.0;
    s.k[v][l] = 0.0;
    // NaN equals nothing: no periodicity is claimed before the first checkpoint.
    s.saved_r[v][l] = f64::NAN;
    s.saved_i[v][l] = f64::NAN;
    s.next_save[v][l] = FIRST_CHECKPOINT;
    next.is_some()
}

/// One iteration of every lane: the contract's formula, then the escape
/// test; `k` counts the steps a lane survived.
#[inline(always)]
fn step<const W: usize, const V: usize>(s: &mut Lanes<W, V>) {
    for v in 0..V {
        for l in 0..W {
            let (zr, zi) = (s.zr[v][l], s.zi[v][l]);
            let nzr = zr.mul_add(zr, -s.zi2[v][l]) + s.cr[v][l];
            let p = zr * zi;
            // (zr*zi + zi*zr) + ci: both products are the same rounded value.
            let nzi = (p + p) + s.ci[v][l];
            let zr2 = nzr * nzr;
            let zi2 = nzi * nzi;
            let escaped = zr2 + zi2 > 4.0;
            s.zr[v][l] = nzr;
            s.zi[v][l] = nzi;
            s.zi2[v][l] = zi2;
            let active = if escaped { 0.0 } else { s.active[v][l] };
            s.active[v][l] = active;
            s.k[v][l] += active;
        }
    }
}
