//! The two number types the perturbation kernel runs in, behind one trait.
//!
//! Deltas from the reference orbit are about a pixel's size. Down to a zoom
//! of about 1e290 they and their squares fit f64 ([`C64`]); deeper, a pixel
//! is smaller than the smallest f64, so deltas are complex numbers with a
//! shared binary exponent ([`Cfe`]: two f64 mantissas and an `i64` power of
//! two, "floatexp" in Kalles Fraktaler's words). The kernel and the BLA table
//! are written once, generic over [`Complex`].

use std::cmp::Ordering;

use dashu_int::IBig;

/// A complex number type the kernel can iterate in.
pub trait Complex: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// A non-negative magnitude (squared norms, radii) of the same range.
    type Mag: Copy + PartialOrd + std::fmt::Debug + Send + Sync;

    const ZERO: Self;
    fn from_parts(re: f64, im: f64, exp: i64) -> Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn sqr(self) -> Self;
    /// `2·self`.
    fn double(self) -> Self;
    /// `|self|²`.
    fn norm(self) -> Self::Mag;
    /// `|self|`.
    fn abs(self) -> Self::Mag;
    fn mag(x: f64) -> Self::Mag;
    fn mag_mul(a: Self::Mag, b: Self::Mag) -> Self::Mag;
    fn mag_div(a: Self::Mag, b: Self::Mag) -> Self::Mag;
    /// `max(0, a − b)`.
    fn mag_sub(a: Self::Mag, b: Self::Mag) -> Self::Mag;
    fn mag_sqrt(a: Self::Mag) -> Self::Mag;
    fn mag_sqr(a: Self::Mag) -> Self::Mag {
        Self::mag_mul(a, a)
    }
    /// Whether the value is finite (the f64 BLA table drops coefficients
    /// that overflowed).
    fn is_finite(self) -> bool;
    /// The value as f64 parts; tiny values become 0.
    fn to_f64(self) -> (f64, f64);
    /// Whether the larger part's magnitude is at least `2^exp`.
    fn at_least(self, exp: i64) -> bool;
    /// Whether both parts' magnitudes are below `threshold`.
    fn below_f64(self, threshold: f64) -> bool {
        let (re, im) = self.to_f64();
        re.abs() < threshold && im.abs() < threshold
    }
}

/// An f64 complex number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct C64 {
    pub re: f64,
    pub im: f64,
}

impl Complex for C64 {
    type Mag = f64;
    const ZERO: Self = C64 { re: 0.0, im: 0.0 };

    #[inline(always)]
    fn from_parts(re: f64, im: f64, exp: i64) -> Self {
        let s = pow2(exp);
        C64 {
            re: re * s,
            im: im * s,
        }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        C64 {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        C64 {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    #[inline(always)]
    fn sqr(self) -> Self {
        C64 {
            re: (self.re + self.im) * (self.re - self.im),
            im: 2.0 * self.re * self.im,
        }
    }
    #[inline(always)]
    fn double(self) -> Self {
        C64 {
            re: 2.0 * self.re,
            im: 2.0 * self.im,
        }
    }
    #[inline(always)]
    fn norm(self) -> f64 {
        self.re * self.re + self.im * self.im
    }
    #[inline(always)]
    fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
    #[inline(always)]
    fn mag(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn mag_mul(a: f64, b: f64) -> f64 {
        a * b
    }
    #[inline(always)]
    fn mag_div(a: f64, b: f64) -> f64 {
        a / b
    }
    #[inline(always)]
    fn mag_sub(a: f64, b: f64) -> f64 {
        (a - b).max(0.0)
    }
    #[inline(always)]
    fn mag_sqrt(a: f64) -> f64 {
        a.sqrt()
    }
    fn is_finite(self) -> bool {
        self.re.is_finite() && self.im.is_finite()
    }
    #[inline(always)]
    fn to_f64(self) -> (f64, f64) {
        (self.re, self.im)
    }
    #[inline(always)]
    fn at_least(self, exp: i64) -> bool {
        self.re.abs().max(self.im.abs()) >= pow2(exp)
    }
}

/// `2^e` as an f64, saturating to 0 and infinity outside f64's range.
#[inline(always)]
pub fn pow2(e: i64) -> f64 {
    if e < -1074 {
        0.0
    } else if e < -1022 {
        // Subnormal: two steps, each a normal power of two.
        f64::from_bits(((e + 1022 + 1023) as u64) << 52) * f64::from_bits(1u64 << 52)
    } else if e <= 1023 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::INFINITY
    }
}

/// The binary exponent of a normal, non-zero f64 (`x = m·2^e`, `1 ≤ |m| < 2`).
#[inline(always)]
fn exponent(x: f64) -> i64 {
    ((x.to_bits() >> 52) & 0x7ff) as i64 - 1023
}

/// A non-negative real with an extended exponent: `m·2^e`, `1 ≤ m < 2`
/// (or zero, with `e = i64::MIN`), so it compares by exponent first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fe {
    m: f64,
    e: i64,
}

impl Fe {
    pub const ZERO: Fe = Fe {
        m: 0.0,
        e: i64::MIN,
    };

    #[inline(always)]
    pub fn new(m: f64, e: i64) -> Fe {
        if m == 0.0 || !m.is_finite() {
            return if m == 0.0 {
                Fe::ZERO
            } else {
                Fe { m, e: i64::MAX }
            };
        }
        let k = exponent(m);
        Fe {
            m: m * pow2(-k),
            e: e + k,
        }
    }

    pub fn from_f64(x: f64) -> Fe {
        if x != 0.0 && x.abs() < f64::MIN_POSITIVE {
            // Subnormal: renormalise through a scale.
            return Fe::new(x * pow2(64), -64);
        }
        Fe::new(x, 0)
    }

    /// `(m, e)`: the value is `m·2^e`.
    pub fn parts(self) -> (f64, i64) {
        (self.m, self.e)
    }

    pub fn to_f64(self) -> f64 {
        if self.m == 0.0 {
            0.0
        } else {
            self.m * pow2(self.e)
        }
    }

    /// `log2` of the value (−∞ for zero).
    pub fn log2(self) -> f64 {
        if self.m == 0.0 {
            f64::NEG_INFINITY
        } else {
            self.m.log2() + self.e as f64
        }
    }

    /// `self − o`, at least 0.
    #[inline(always)]
    pub fn saturating_sub(self, o: Fe) -> Fe {
        if o.m == 0.0 {
            return self;
        }
        if self.partial_cmp(&o) != Some(Ordering::Greater) {
            return Fe::ZERO;
        }
        Fe::new(self.m - o.m * pow2(o.e - self.e), self.e)
    }

    pub fn sqrt(self) -> Fe {
        if self.m == 0.0 {
            return Fe::ZERO;
        }
        let (m, e) = if self.e % 2 == 0 {
            (self.m, self.e)
        } else {
            (self.m * 2.0, self.e - 1)
        };
        Fe::new(m.sqrt(), e / 2)
    }
}

impl std::ops::Mul for Fe {
    type Output = Fe;
    #[inline(always)]
    fn mul(self, o: Fe) -> Fe {
        if self.m == 0.0 || o.m == 0.0 {
            return Fe::ZERO;
        }
        Fe::new(self.m * o.m, self.e + o.e)
    }
}

impl std::ops::Add for Fe {
    type Output = Fe;
    fn add(self, o: Fe) -> Fe {
        let (hi, lo) = if self >= o { (self, o) } else { (o, self) };
        if lo.m == 0.0 {
            return hi;
        }
        Fe::new(hi.m + lo.m * pow2(lo.e - hi.e), hi.e)
    }
}

impl std::ops::Div for Fe {
    type Output = Fe;
    #[inline(always)]
    fn div(self, o: Fe) -> Fe {
        if self.m == 0.0 {
            return Fe::ZERO;
        }
        Fe::new(self.m / o.m, self.e - o.e)
    }
}

impl PartialOrd for Fe {
    #[inline(always)]
    fn partial_cmp(&self, o: &Fe) -> Option<Ordering> {
        // Non-negative values only: zero has the smallest exponent.
        match self.e.cmp(&o.e) {
            Ordering::Equal => self.m.partial_cmp(&o.m),
            other => Some(other),
        }
    }
}

/// A complex number with a shared extended exponent: `(re + i·im)·2^e`,
/// the larger of `|re|`, `|im|` in `[1, 2)` (or both zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cfe {
    re: f64,
    im: f64,
    e: i64,
}

impl Cfe {
    /// `(re + i·im) / 2^k` for exact integers `re`, `im`, rounded once (to
    /// their top 63 bits).
    pub fn from_dyadic(re: &IBig, im: &IBig, k: u32) -> Cfe {
        let (mr, er) = ibig_parts(re);
        let (mi, ei) = ibig_parts(im);
        let e = er.max(ei);
        Cfe::from_parts(mr * pow2(er - e), mi * pow2(ei - e), e - i64::from(k))
    }

    /// `(re, im, e)`: the value is `(re + i·im)·2^e`.
    pub fn parts(self) -> (f64, f64, i64) {
        (self.re, self.im, self.e)
    }

    #[inline(always)]
    fn normalised(re: f64, im: f64, e: i64) -> Cfe {
        let big = re.abs().max(im.abs());
        if big == 0.0 || !big.is_finite() {
            return if big == 0.0 {
                Cfe::ZERO
            } else {
                Cfe { re, im, e }
            };
        }
        let k = exponent(big);
        let s = pow2(-k);
        Cfe {
            re: re * s,
            im: im * s,
            e: e + k,
        }
    }
}

/// The exponent zero carries, so sums with zero need no special case.
const ZERO_EXP: i64 = i64::MIN / 4;

impl Complex for Cfe {
    type Mag = Fe;
    const ZERO: Self = Cfe {
        re: 0.0,
        im: 0.0,
        e: ZERO_EXP,
    };

    fn from_parts(re: f64, im: f64, exp: i64) -> Self {
        if re == 0.0 && im == 0.0 {
            return Cfe::ZERO;
        }
        // Subnormal inputs are scaled up first so the exponent is exact.
        let (re, im, exp) = if re.abs().max(im.abs()) < f64::MIN_POSITIVE {
            (re * pow2(128), im * pow2(128), exp - 128)
        } else {
            (re, im, exp)
        };
        Cfe::normalised(re, im, exp)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        let (hi, lo) = if self.e >= o.e { (self, o) } else { (o, self) };
        let s = pow2(lo.e - hi.e);
        Cfe::normalised(hi.re + lo.re * s, hi.im + lo.im * s, hi.e)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        if self.e == ZERO_EXP || o.e == ZERO_EXP {
            return Cfe::ZERO;
        }
        Cfe::normalised(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
            self.e + o.e,
        )
    }
    #[inline(always)]
    fn sqr(self) -> Self {
        if self.e == ZERO_EXP {
            return Cfe::ZERO;
        }
        Cfe::normalised(
            (self.re + self.im) * (self.re - self.im),
            2.0 * self.re * self.im,
            2 * self.e,
        )
    }
    #[inline(always)]
    fn double(self) -> Self {
        if self.e == ZERO_EXP {
            return self;
        }
        Cfe {
            e: self.e + 1,
            ..self
        }
    }
    #[inline(always)]
    fn norm(self) -> Fe {
        if self.e == ZERO_EXP {
            return Fe::ZERO;
        }
        Fe::new(self.re * self.re + self.im * self.im, 2 * self.e)
    }
    fn abs(self) -> Fe {
        if self.e == ZERO_EXP {
            return Fe::ZERO;
        }
        Fe::new(self.re.hypot(self.im), self.e)
    }
    fn mag(x: f64) -> Fe {
        Fe::from_f64(x)
    }
    fn mag_mul(a: Fe, b: Fe) -> Fe {
        a * b
    }
    fn mag_div(a: Fe, b: Fe) -> Fe {
        a / b
    }
    fn mag_sub(a: Fe, b: Fe) -> Fe {
        a.saturating_sub(b)
    }
    fn mag_sqrt(a: Fe) -> Fe {
        a.sqrt()
    }
    fn is_finite(self) -> bool {
        self.re.is_finite() && self.im.is_finite()
    }
    #[inline(always)]
    fn to_f64(self) -> (f64, f64) {
        if self.e == ZERO_EXP {
            return (0.0, 0.0);
        }
        let s = pow2(self.e);
        (self.re * s, self.im * s)
    }
    #[inline(always)]
    fn at_least(self, exp: i64) -> bool {
        // Normalised: the larger part is in [1, 2)·2^e (zero has the
        // smallest exponent).
        self.e >= exp
    }
}

/// An integer as `m·2^e` with `m` an f64 holding its top 63 bits.
pub(super) fn ibig_parts(x: &IBig) -> (f64, i64) {
    use dashu_base::BitTest;
    let bits = x.bit_len();
    if bits <= 63 {
        let v = i64::try_from(x).expect("fits 63 bits");
        (v as f64, 0)
    } else {
        let shift = bits - 63;
        let top = i64::try_from(&(x >> shift)).expect("63 bits");
        (top as f64, shift as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_cover_normal_and_subnormal_range() {
        assert_eq!(pow2(0), 1.0);
        assert_eq!(pow2(-1074), f64::from_bits(1));
        assert_eq!(pow2(-1075), 0.0);
        assert_eq!(pow2(-1030), 2f64.powi(-1030));
        assert_eq!(pow2(1023), 2f64.powi(1023));
        assert_eq!(pow2(1024), f64::INFINITY);
    }

    #[test]
    fn floatexp_complex_arithmetic_matches_f64_in_range() {
        let a = (0.75, -1.5);
        let b = (-0.3, 0.2);
        let (x, y) = (Cfe::from_parts(a.0, a.1, 0), Cfe::from_parts(b.0, b.1, 0));
        let (p, q) = (C64 { re: a.0, im: a.1 }, C64 { re: b.0, im: b.1 });
        let close = |u: (f64, f64), v: (f64, f64)| {
            assert!(
                (u.0 - v.0).abs() < 1e-15 && (u.1 - v.1).abs() < 1e-15,
                "{u:?} {v:?}"
            )
        };
        close(x.add(y).to_f64(), p.add(q).to_f64());
        close(x.mul(y).to_f64(), p.mul(q).to_f64());
        close(x.sqr().to_f64(), p.sqr().to_f64());
        close(x.double().to_f64(), p.double().to_f64());
        assert!((x.norm().to_f64() - p.norm()).abs() < 1e-15);
    }

    #[test]
    fn floatexp_keeps_values_far_below_f64() {
        // (3·2^-2000)² = 9·2^-4000: nothing of it fits an f64.
        let tiny = Cfe::from_parts(3.0, 0.0, -2000);
        let sq = tiny.sqr();
        assert_eq!(sq.to_f64(), (0.0, 0.0));
        assert!((sq.norm().log2() - (81f64.log2() - 8000.0)).abs() < 1e-12);
        // Adding something 2^-3000 smaller leaves it unchanged; zero is neutral.
        assert_eq!(tiny.add(Cfe::from_parts(1.0, 1.0, -5000)), tiny);
        assert_eq!(tiny.add(Cfe::ZERO), tiny);
        assert_eq!(Cfe::ZERO.mul(tiny), Cfe::ZERO);
        assert!(Fe::new(1.0, -3000) < Fe::new(1.0, -2999));
        assert!(Fe::ZERO < Fe::new(1.0, -3000));
        assert_eq!(
            Fe::new(1.5, -3000).saturating_sub(Fe::new(1.0, -3000)),
            Fe::new(1.0, -3001)
        );
        assert_eq!(
            Fe::new(1.0, -3000).saturating_sub(Fe::new(1.5, -3000)),
            Fe::ZERO
        );
        assert_eq!(Fe::new(4.0, -3000).sqrt(), Fe::new(1.0, -1499));
        assert_eq!(Fe::new(2.0, -3001).sqrt(), Fe::new(1.0, -1500));
    }
}
