//! The fast kernel: f64 vector lanes with lane refill, several vectors in
//! flight, and the exact interior shortcut.
//!
//! The step is written once over the [`Simd`] operations and instantiated
//! per instruction set inside `#[target_feature]` functions (see `isa` in
//! `mod.rs`). Each operation is the same IEEE operation as in
//! [`reference`](super::reference), so every level gives the same bytes.
//!
//! Lane refill: lanes advance in blocks of up to [`BLOCK`] steps, checked
//! every [`CHECK_EVERY`] steps. Once a quarter of the lanes have escaped
//! ([`REFILL_QUORUM`]) the block ends, those lanes write their counts and
//! take the next pixels, so a vector never idles long waiting for its
//! slowest lane, and the refill's bookkeeping is paid for several lanes at
//! once. A block is also cut short so that no lane can pass `max_iter`,
//! which keeps the per-step work free of that check.
//!
//! Measured and dropped: exact periodicity detection (Brent's, at block
//! ends) found almost no exactly repeating f64 orbits within 2000
//! iterations on the default job and cost time, so it is not here.

use super::shortcut;
use super::simd::Simd;

/// The longest block, in steps.
const BLOCK: u32 = 64;

/// A block ends early, at a multiple of this many steps, once enough lanes
/// have escaped.
const CHECK_EVERY: u32 = 4;

/// A block ends once a quarter of the lanes in flight have escaped (at
/// least one). Ending it at the first escape refilled more often than it
/// saved: on the default job (kernel only, 2 threads, 2026-11-26, AMD EPYC)
/// 0.96 s → 0.80 s at avx512 (32 lanes; ending at 2, 4, 6, 8, 10, 12 or 16
/// escaped lanes gave 0.87, 0.82, 0.81, 0.80, 0.80, 0.80, 0.80 s) and
/// 1.17 s → 1.11 s at avx2 (8 lanes; at 2, 3 or 4: 1.11 s).
const REFILL_QUORUM: usize = 4;

/// Lanes across all vectors in flight, at most (a bit each in a u64; 8
/// lanes × 6 vectors at AVX-512).
const MAX_LANES: usize = 64;

/// Options that change the work done but never the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Skip pixels proven inside the main cardioid or period-2 bulb.
    pub interior_shortcut: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            interior_shortcut: true,
        }
    }
}

/// Per-lane state, stored flat: lane `l` of vector `v` is index `v*W + l`.
struct Lanes {
    cr: [f64; MAX_LANES],
    ci: [f64; MAX_LANES],
    zr: [f64; MAX_LANES],
    zi: [f64; MAX_LANES],
    /// Completed non-escaping steps: the count if the lane escapes now.
    k: [f64; MAX_LANES],
    /// 1.0 while the lane's pixel has not escaped, else 0.0.
    active: [f64; MAX_LANES],
    /// Output index of the lane's pixel, or `usize::MAX` for an idle lane.
    pixel: [usize; MAX_LANES],
}

/// Hands out pixels in order, writing shortcut pixels directly.
struct Feed<'a> {
    width: usize,
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
        while self.next < out.len() {
            let idx = self.next;
            self.next += 1;
            if !self.interior.is_empty() && self.interior[idx] {
                out[idx] = self.max_iter;
                continue;
            }
            return Some((idx, self.xs[idx % self.width], self.ys[idx / self.width]));
        }
        None
    }
}

/// Renders the pixels `xs × ys` into `out` (row-major, one row per `y`) with
/// `VN` vectors of `S::W` lanes in flight, and returns the iterations
/// executed.
///
/// # Safety
/// The CPU supports `S`'s instruction set.
#[inline(always)]
pub(super) unsafe fn fill<S: Simd, const VN: usize>(
    xs: &[f64],
    ys: &[f64],
    max_iter: u32,
    tuning: Tuning,
    out: &mut [u16],
) -> u64 {
    let lanes = S::W * VN;
    assert!(lanes <= MAX_LANES);
    debug_assert_eq!(out.len(), xs.len() * ys.len());
    let mut interior = Vec::new();
    if tuning.interior_shortcut {
        interior.resize(out.len(), false);
        shortcut::mark_interior(xs, ys, &mut interior);
    }
    let mut feed = Feed {
        width: xs.len(),
        xs,
        ys,
        interior: &interior,
        next: 0,
        max_iter: max_iter as u16,
    };
    let mut s = Lanes {
        cr: [0.0; MAX_LANES],
        ci: [0.0; MAX_LANES],
        zr: [0.0; MAX_LANES],
        zi: [0.0; MAX_LANES],
        k: [0.0; MAX_LANES],
        active: [0.0; MAX_LANES],
        pixel: [usize::MAX; MAX_LANES],
    };
    let max = f64::from(max_iter);
    let quorum = (lanes / REFILL_QUORUM).max(1) as u32;
    // Iterations spent on pixels (the escaping step counts as one).
    let mut executed = 0u64;
    let mut live = 0usize;
    for l in 0..lanes {
        live += usize::from(load(&mut s, l, &mut feed, out));
    }
    while live > 0 {
        // Cut the block so the most advanced lane stops exactly at max_iter.
        let mut max_k = 0.0f64;
        for l in 0..lanes {
            if s.pixel[l] != usize::MAX {
                max_k = max_k.max(s.k[l]);
            }
        }
        let steps = (max - max_k).min(f64::from(BLOCK)) as u32;
        // SAFETY: the caller guarantees the instruction set.
        let escaped = unsafe { block::<S, VN>(&mut s, steps, quorum) };
        // Retire the escaped lanes, and the exhausted ones (the block was
        // cut so none passes max_iter).
        let mut retire = escaped;
        for l in 0..lanes {
            if s.pixel[l] != usize::MAX && s.k[l] >= max {
                retire |= 1u64 << l;
            }
        }
        while retire != 0 {
            let l = retire.trailing_zeros() as usize;
            retire &= retire - 1;
            // An escaped lane's k is its count; an exhausted one's is max_iter.
            out[s.pixel[l]] = s.k[l] as u16;
            executed += s.k[l] as u64 + u64::from(escaped & (1u64 << l) != 0);
            live -= usize::from(!load(&mut s, l, &mut feed, out));
        }
    }
    executed
}

/// Puts the next pixel into lane `l`; false (and an idle lane) if none.
#[inline(always)]
fn load(s: &mut Lanes, l: usize, feed: &mut Feed<'_>, out: &mut [u16]) -> bool {
    let next = feed.next_pixel(out);
    let (idx, cr, ci) = next.unwrap_or((usize::MAX, 0.0, 0.0));
    s.pixel[l] = idx;
    s.cr[l] = cr;
    s.ci[l] = ci;
    s.zr[l] = 0.0;
    s.zi[l] = 0.0;
    s.k[l] = 0.0;
    s.active[l] = if next.is_some() { 1.0 } else { 0.0 };
    next.is_some()
}

/// Lanes that are not active, over all `VN` vectors.
#[inline(always)]
unsafe fn inactive_bits<S: Simd, const VN: usize>(v: &[S::Active; VN]) -> u64 {
    let mut bits = 0;
    for (i, x) in v.iter().enumerate() {
        bits |= unsafe { S::inactive(*x) } << (i * S::W);
    }
    bits
}

/// Up to `steps` iterations of every lane, in registers: the contract's
/// formula, then the escape test; `k` counts the steps a lane survived.
/// Stops early (at a multiple of [`CHECK_EVERY`]) once `quorum` lanes have
/// escaped, and returns the bits of the lanes that escaped. An escaped
/// lane goes on iterating until then, but its `active` is 0, so its `k`
/// (its count) no longer moves: wasted lane work, not wrong bytes.
#[inline(always)]
unsafe fn block<S: Simd, const VN: usize>(s: &mut Lanes, steps: u32, quorum: u32) -> u64 {
    let w = S::W;
    unsafe {
        let four = S::splat(4.0);
        let two = S::splat(2.0);
        let mut cr = [S::splat(0.0); VN];
        let mut ci = cr;
        let mut zr = cr;
        let mut zi = cr;
        let mut k = cr;
        let mut active = [S::to_active(cr[0]); VN];
        for v in 0..VN {
            let at = v * w;
            cr[v] = S::load(&s.cr[at..]);
            ci[v] = S::load(&s.ci[at..]);
            zr[v] = S::load(&s.zr[at..]);
            zi[v] = S::load(&s.zi[at..]);
            k[v] = S::load(&s.k[at..]);
            active[v] = S::to_active(S::load(&s.active[at..]));
        }
        // Lanes idle (no pixel) at the start; any other inactive lane
        // escaped.
        let idle = inactive_bits::<S, VN>(&active);
        let mut escaped = 0;
        let mut done = 0;
        while done < steps {
            for _ in 0..CHECK_EVERY.min(steps - done) {
                for v in 0..VN {
                    // zr' = fma(zr, zr, -(zi*zi)) + cr
                    let nzr = S::add(S::fmsub(zr[v], zr[v], S::mul(zi[v], zi[v])), cr[v]);
                    // zi' = (zr*zi + zi*zr) + ci. Both products are the same
                    // rounded p, and p + p = 2p is exact (an active lane has
                    // |z| <= 2, so no overflow), hence (p + p) + ci rounds
                    // once, exactly as fma(p, 2, ci) does, one latency sooner.
                    let nzi = S::fmadd(S::mul(zr[v], zi[v]), two, ci[v]);
                    // escaped when zr'*zr' + zi'*zi' > 4 (no FMA here)
                    let mag = S::add(S::mul(nzr, nzr), S::mul(nzi, nzi));
                    active[v] = S::survive(active[v], mag, four);
                    k[v] = S::count(k[v], active[v]);
                    zr[v] = nzr;
                    zi[v] = nzi;
                }
            }
            done += CHECK_EVERY;
            escaped = inactive_bits::<S, VN>(&active) & !idle;
            if escaped.count_ones() >= quorum {
                break;
            }
        }
        for v in 0..VN {
            let at = v * w;
            S::store(zr[v], &mut s.zr[at..]);
            S::store(zi[v], &mut s.zi[at..]);
            S::store(k[v], &mut s.k[at..]);
            S::store(S::from_active(active[v]), &mut s.active[at..]);
        }
        escaped
    }
}
