//! The handful of f64 vector operations the kernel needs, per instruction
//! set. Every method is `#[inline(always)]` and only ever called from inside
//! a `#[target_feature]` function of the matching level (see `isa` in
//! `mod.rs`), so the intrinsics inline into straight vector code.
//!
//! `fmsub` must be a fused multiply-subtract (one rounding): it is the `fma`
//! of the contract. Everything else is a plain IEEE operation.

/// A vector of `W` f64 lanes.
pub(super) trait Simd {
    const W: usize;
    type V: Copy;

    /// # Safety
    /// The CPU supports the level (true of every method).
    unsafe fn splat(x: f64) -> Self::V;
    /// Loads `W` values from `src[..W]`.
    unsafe fn load(src: &[f64]) -> Self::V;
    /// Stores `W` values to `dst[..W]`.
    unsafe fn store(v: Self::V, dst: &mut [f64]);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b - c` with a single rounding.
    unsafe fn fmsub(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a * b + c` with a single rounding.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Which lanes still iterate, in the form the level updates fastest: a
    /// vector of 1.0 (active) and 0.0, or AVX-512's mask register.
    type Active: Copy;
    /// From the 1.0/0.0 form the lanes keep between blocks.
    unsafe fn to_active(v: Self::V) -> Self::Active;
    /// Back to the 1.0/0.0 form.
    unsafe fn from_active(a: Self::Active) -> Self::V;
    /// `active` less the lanes where `mag > limit` (a NaN is not greater,
    /// as with `>` in Rust).
    unsafe fn survive(active: Self::Active, mag: Self::V, limit: Self::V) -> Self::Active;
    /// `k + 1` in the active lanes, `k` in the others.
    unsafe fn count(k: Self::V, active: Self::Active) -> Self::V;
    /// Bit `l` set where lane `l` is not active.
    unsafe fn inactive(a: Self::Active) -> u64;
}

/// The [`Simd::Active`] methods of a level whose active lanes are a
/// 1.0/0.0 vector: `survive` and `inactive` are its own.
macro_rules! vector_active {
    ($v:ty) => {
        type Active = $v;
        #[inline(always)]
        unsafe fn to_active(v: $v) -> $v {
            v
        }
        #[inline(always)]
        unsafe fn from_active(a: $v) -> $v {
            a
        }
        #[inline(always)]
        unsafe fn count(k: $v, active: $v) -> $v {
            unsafe { Self::add(k, active) }
        }
    };
}

/// One lane, plain Rust. `mul_add` is a hardware FMA where the target has
/// one and an exact libm call otherwise.
pub(super) struct Scalar;

impl Simd for Scalar {
    const W: usize = 1;
    type V = f64;
    vector_active!(f64);

    #[inline(always)]
    unsafe fn splat(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    unsafe fn load(src: &[f64]) -> f64 {
        src[0]
    }
    #[inline(always)]
    unsafe fn store(v: f64, dst: &mut [f64]) {
        dst[0] = v;
    }
    #[inline(always)]
    unsafe fn add(a: f64, b: f64) -> f64 {
        a + b
    }
    #[inline(always)]
    unsafe fn mul(a: f64, b: f64) -> f64 {
        a * b
    }
    #[inline(always)]
    unsafe fn fmsub(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, -c)
    }
    #[inline(always)]
    unsafe fn fmadd(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn survive(active: f64, mag: f64, limit: f64) -> f64 {
        if mag > limit { 0.0 } else { active }
    }
    #[inline(always)]
    unsafe fn inactive(v: f64) -> u64 {
        u64::from(v == 0.0)
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// AVX2 + FMA, 4 lanes.
    pub(in super::super) struct Avx2;

    impl Simd for Avx2 {
        const W: usize = 4;
        type V = __m256d;
        vector_active!(__m256d);

        #[inline(always)]
        unsafe fn splat(x: f64) -> __m256d {
            unsafe { _mm256_set1_pd(x) }
        }
        #[inline(always)]
        unsafe fn load(src: &[f64]) -> __m256d {
            assert!(src.len() >= 4);
            unsafe { _mm256_loadu_pd(src.as_ptr()) }
        }
        #[inline(always)]
        unsafe fn store(v: __m256d, dst: &mut [f64]) {
            assert!(dst.len() >= 4);
            unsafe { _mm256_storeu_pd(dst.as_mut_ptr(), v) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256d, b: __m256d) -> __m256d {
            unsafe { _mm256_add_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m256d, b: __m256d) -> __m256d {
            unsafe { _mm256_mul_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn fmsub(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
            unsafe { _mm256_fmsub_pd(a, b, c) }
        }
        #[inline(always)]
        unsafe fn fmadd(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
            unsafe { _mm256_fmadd_pd(a, b, c) }
        }
        #[inline(always)]
        unsafe fn survive(active: __m256d, mag: __m256d, limit: __m256d) -> __m256d {
            // Ordered, quiet greater-than: NaN compares false, like `>` in Rust.
            unsafe { _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(mag, limit), active) }
        }
        #[inline(always)]
        unsafe fn inactive(v: __m256d) -> u64 {
            unsafe {
                _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(v, _mm256_setzero_pd())) as u64
            }
        }
    }

    /// AVX-512F, 8 lanes.
    pub(in super::super) struct Avx512;

    impl Simd for Avx512 {
        const W: usize = 8;
        type V = __m512d;

        #[inline(always)]
        unsafe fn splat(x: f64) -> __m512d {
            unsafe { _mm512_set1_pd(x) }
        }
        #[inline(always)]
        unsafe fn load(src: &[f64]) -> __m512d {
            assert!(src.len() >= 8);
            unsafe { _mm512_loadu_pd(src.as_ptr()) }
        }
        #[inline(always)]
        unsafe fn store(v: __m512d, dst: &mut [f64]) {
            assert!(dst.len() >= 8);
            unsafe { _mm512_storeu_pd(dst.as_mut_ptr(), v) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512d, b: __m512d) -> __m512d {
            unsafe { _mm512_add_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512d, b: __m512d) -> __m512d {
            unsafe { _mm512_mul_pd(a, b) }
        }
        #[inline(always)]
        unsafe fn fmsub(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
            unsafe { _mm512_fmsub_pd(a, b, c) }
        }
        #[inline(always)]
        unsafe fn fmadd(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
            unsafe { _mm512_fmadd_pd(a, b, c) }
        }
        // The active lanes in a mask register: the escape test ANDs into it
        // for free and the count is one masked add, one operation fewer
        // per step than the 1.0/0.0 vector's compare, select and add.
        type Active = __mmask8;
        #[inline(always)]
        unsafe fn to_active(v: __m512d) -> __mmask8 {
            unsafe { _mm512_cmp_pd_mask::<_CMP_NEQ_OQ>(v, _mm512_setzero_pd()) }
        }
        #[inline(always)]
        unsafe fn from_active(a: __mmask8) -> __m512d {
            unsafe { _mm512_maskz_mov_pd(a, _mm512_set1_pd(1.0)) }
        }
        #[inline(always)]
        unsafe fn survive(active: __mmask8, mag: __m512d, limit: __m512d) -> __mmask8 {
            // Not-greater, unordered: true for a NaN, like `!(mag > limit)`.
            unsafe { _mm512_mask_cmp_pd_mask::<_CMP_NGT_UQ>(active, mag, limit) }
        }
        #[inline(always)]
        unsafe fn count(k: __m512d, active: __mmask8) -> __m512d {
            unsafe { _mm512_mask_add_pd(k, active, k, _mm512_set1_pd(1.0)) }
        }
        #[inline(always)]
        unsafe fn inactive(a: __mmask8) -> u64 {
            u64::from(!a)
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(super) use arm::Neon;

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::Simd;

    /// NEON, 2 lanes.
    pub(in super::super) struct Neon;

    impl Simd for Neon {
        const W: usize = 2;
        type V = float64x2_t;
        vector_active!(float64x2_t);

        #[inline(always)]
        unsafe fn splat(x: f64) -> float64x2_t {
            unsafe { vdupq_n_f64(x) }
        }
        #[inline(always)]
        unsafe fn load(src: &[f64]) -> float64x2_t {
            assert!(src.len() >= 2);
            unsafe { vld1q_f64(src.as_ptr()) }
        }
        #[inline(always)]
        unsafe fn store(v: float64x2_t, dst: &mut [f64]) {
            assert!(dst.len() >= 2);
            unsafe { vst1q_f64(dst.as_mut_ptr(), v) }
        }
        #[inline(always)]
        unsafe fn add(a: float64x2_t, b: float64x2_t) -> float64x2_t {
            unsafe { vaddq_f64(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: float64x2_t, b: float64x2_t) -> float64x2_t {
            unsafe { vmulq_f64(a, b) }
        }
        #[inline(always)]
        unsafe fn fmsub(a: float64x2_t, b: float64x2_t, c: float64x2_t) -> float64x2_t {
            // vfmaq_f64(x, y, z) = x + y*z, fused: (-c) + a*b.
            unsafe { vfmaq_f64(vnegq_f64(c), a, b) }
        }
        #[inline(always)]
        unsafe fn fmadd(a: float64x2_t, b: float64x2_t, c: float64x2_t) -> float64x2_t {
            // vfmaq_f64(x, y, z) = x + y*z, fused.
            unsafe { vfmaq_f64(c, a, b) }
        }
        #[inline(always)]
        unsafe fn survive(
            active: float64x2_t,
            mag: float64x2_t,
            limit: float64x2_t,
        ) -> float64x2_t {
            unsafe {
                let escaped = vcgtq_f64(mag, limit);
                vreinterpretq_f64_u64(vbicq_u64(vreinterpretq_u64_f64(active), escaped))
            }
        }
        #[inline(always)]
        unsafe fn inactive(v: float64x2_t) -> u64 {
            unsafe {
                let z = vceqq_f64(v, vdupq_n_f64(0.0));
                (vgetq_lane_u64::<0>(z) & 1) | (vgetq_lane_u64::<1>(z) & 1) << 1
            }
        }
    }
}
