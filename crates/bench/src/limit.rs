//! The per-core limit: a hand-written loop of the contract's step (the
//! same operations as the kernel's, escape test and count included) over
//! six independent vectors of points that never escape, with no refill,
//! no block bookkeeping and no early exit. What the kernel could reach if
//! every lane were always busy.

use std::time::Instant;

/// Steps per run: long enough to hide the call, short enough to repeat.
const STEPS: u64 = 20_000_000;

/// Iterations per second of one core at the widest level this CPU has
/// (best of three runs), and that level's name.
pub fn iterations_per_second() -> Option<(f64, &'static str)> {
    #[cfg(target_arch = "x86_64")]
    {
        let (run, name, lanes): (unsafe fn(u64) -> f64, _, _) =
            if std::arch::is_x86_feature_detected!("avx512f") {
                (avx512, "avx512", 48)
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                (avx2, "avx2", 24)
            } else {
                return None;
            };
        let best = (0..3)
            .map(|_| {
                let t = Instant::now();
                // SAFETY: the feature was detected above.
                let k = unsafe { run(STEPS) };
                assert_eq!(k, (STEPS * lanes) as f64, "no point escapes");
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        Some(((STEPS * lanes) as f64 / best, name))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Generates a six-vector loop for one instruction set; returns the summed
/// counts (every lane counts every step).
macro_rules! limit_loop {
    ($name:ident, $feature:literal, $v:ty, $set1:ident, $mul:ident, $add:ident,
     $fmsub:ident, $fmadd:ident, $survive:expr, $reduce:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name(steps: u64) -> f64 {
            use std::arch::x86_64::*;
            const VN: usize = 6;
            let (two, four, one) = ($set1(2.0), $set1(4.0), $set1(1.0));
            // Points well inside the main cardioid, a little apart.
            let cr: [$v; VN] = std::array::from_fn(|v| $set1(-0.1 - 0.01 * v as f64));
            let ci: [$v; VN] = std::array::from_fn(|v| $set1(0.1 + 0.01 * v as f64));
            let (mut zr, mut zi, mut k) = ([$set1(0.0); VN], [$set1(0.0); VN], [$set1(0.0); VN]);
            for _ in 0..steps {
                for v in 0..VN {
                    let nzr = $add($fmsub(zr[v], zr[v], $mul(zi[v], zi[v])), cr[v]);
                    let nzi = $fmadd($mul(zr[v], zi[v]), two, ci[v]);
                    let mag = $add($mul(nzr, nzr), $mul(nzi, nzi));
                    k[v] = $survive(k[v], mag, four, one);
                    zr[v] = nzr;
                    zi[v] = nzi;
                }
            }
            k.iter().map(|&x| $reduce(x)).sum::<f64>()
        }
    };
}

limit_loop!(
    avx512,
    "avx512f,fma",
    __m512d,
    _mm512_set1_pd,
    _mm512_mul_pd,
    _mm512_add_pd,
    _mm512_fmsub_pd,
    _mm512_fmadd_pd,
    |k, mag, four, one| _mm512_mask_add_pd(k, _mm512_cmp_pd_mask::<_CMP_LE_OQ>(mag, four), k, one),
    |x| _mm512_reduce_add_pd(x)
);

limit_loop!(
    avx2,
    "avx2,fma",
    __m256d,
    _mm256_set1_pd,
    _mm256_mul_pd,
    _mm256_add_pd,
    _mm256_fmsub_pd,
    _mm256_fmadd_pd,
    |k, mag, four, one| _mm256_add_pd(
        k,
        _mm256_and_pd(_mm256_cmp_pd::<_CMP_LE_OQ>(mag, four), one)
    ),
    |x| {
        let mut lanes = [0.0f64; 4];
        // SAFETY: `lanes` holds four f64.
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), x) };
        lanes.iter().sum::<f64>()
    }
);
