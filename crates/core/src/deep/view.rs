//! A deep view: a centre given as decimal strings of any length and a zoom.
//!
//! The strings are kept in a canonical form (plain decimal, no exponent, no
//! redundant zeros; the zoom as `<mantissa>e<exponent>`), because the job id
//! hashes the params' JSON: `-1.50` and `-1.5e0` are one view and one job.

use dashu_int::IBig;
use thiserror::Error;

use super::number::{Fe, ibig_parts};

/// Smallest accepted zoom: 1 shows the whole set (a side of 4).
pub const MIN_ZOOM_EXP10: i64 = 0;
/// Largest accepted zoom, as a power of ten. The reference orbit's precision
/// grows with the zoom's digits (about 3.3 bits per decimal digit).
pub const MAX_ZOOM_EXP10: i64 = 10_000;
/// Longest accepted centre coordinate, in characters.
pub const MAX_COORDINATE_CHARS: usize = 20_000;

/// A centre and a zoom: the image's side spans `4/zoom` of the plane.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeepView {
    re: String,
    im: String,
    zoom: String,
}

/// Why a deep view was refused; names the field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ViewError {
    #[error("{field} must be a decimal number like -1.25 or 3.5e-7, got {value:?}")]
    NotDecimal { field: &'static str, value: String },
    #[error("{field} must be at most {max} characters long written out in full, got {len}")]
    TooLong {
        field: &'static str,
        max: usize,
        len: usize,
    },
    #[error("center.{field} must be in -4..=4, got {value}")]
    OffPlane { field: &'static str, value: String },
    #[error("zoom must be in 1..=1e{max}, got {value}")]
    ZoomOutOfRange { value: String, max: i64 },
}

impl ViewError {
    pub fn field(&self) -> &'static str {
        match self {
            ViewError::NotDecimal { field, .. } | ViewError::TooLong { field, .. } => field,
            ViewError::OffPlane { .. } => "center",
            ViewError::ZoomOutOfRange { .. } => "zoom",
        }
    }
}

/// A decimal number as sign, digits and a power of ten: `±digits·10^exp10`,
/// digits without leading or trailing zeros (empty for zero).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exp10: i64,
}

impl Decimal {
    fn parse(field: &'static str, s: &str) -> Result<Decimal, ViewError> {
        let bad = || ViewError::NotDecimal {
            field,
            value: s.chars().take(40).collect(),
        };
        let t = s.trim();
        let (negative, t) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let (mantissa, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        let exp10: i64 = match exp {
            Some(e) => e.parse().map_err(|_| bad())?,
            None => 0,
        };
        if exp10.abs() > 1_000_000 {
            return Err(bad());
        }
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let all = format!("{int}{frac}");
        let exp10 = exp10 - frac.len() as i64;
        let trimmed_end = all.trim_end_matches('0');
        let exp10 = exp10 + (all.len() - trimmed_end.len()) as i64;
        let digits = trimmed_end.trim_start_matches('0').to_string();
        Ok(Decimal {
            negative: negative && !digits.is_empty(),
            digits,
            exp10: if trimmed_end.trim_start_matches('0').is_empty() {
                0
            } else {
                exp10
            },
        })
    }

    /// Plain decimal notation: `-0.00125`, `3`, `0`.
    fn plain(&self) -> String {
        if self.digits.is_empty() {
            return "0".into();
        }
        let sign = if self.negative { "-" } else { "" };
        let n = self.digits.len() as i64;
        if self.exp10 >= 0 {
            format!("{sign}{}{}", self.digits, "0".repeat(self.exp10 as usize))
        } else if -self.exp10 < n {
            let split = (n + self.exp10) as usize;
            format!("{sign}{}.{}", &self.digits[..split], &self.digits[split..])
        } else {
            let zeros = (-self.exp10 - n) as usize;
            format!("{sign}0.{}{}", "0".repeat(zeros), self.digits)
        }
    }

    /// The length of [`Decimal::plain`] (less the sign), without writing it.
    fn plain_len(&self) -> u64 {
        let n = self.digits.len() as u64;
        match u64::try_from(self.exp10) {
            Ok(zeros) => n + zeros,
            // "0." and the fraction's digits, zeros first.
            Err(_) => n.max(self.exp10.unsigned_abs()) + 2,
        }
    }

    /// Scientific notation `d[.ddd]e<exp>`, the zoom's canonical form.
    fn scientific(&self) -> String {
        if self.digits.is_empty() {
            return "0e0".into();
        }
        let sign = if self.negative { "-" } else { "" };
        let exp = self.exp10 + self.digits.len() as i64 - 1;
        let (first, rest) = self.digits.split_at(1);
        if rest.is_empty() {
            format!("{sign}{first}e{exp}")
        } else {
            format!("{sign}{first}.{rest}e{exp}")
        }
    }

    /// The power of ten of the leading digit (`floor(log10 |x|)`).
    fn magnitude(&self) -> i64 {
        self.exp10 + self.digits.len() as i64 - 1
    }

    /// `x · 2^bits` truncated toward zero, as an integer.
    fn fixed(&self, bits: u32) -> IBig {
        if self.digits.is_empty() {
            return IBig::ZERO;
        }
        let d: IBig = self.digits.parse().expect("digits are decimal");
        let v = if self.exp10 >= 0 {
            (d * IBig::from(10).pow(self.exp10 as usize)) << bits as usize
        } else {
            (d << bits as usize) / IBig::from(10).pow((-self.exp10) as usize)
        };
        if self.negative { -v } else { v }
    }
}

impl DeepView {
    /// Parses and canonicalises a centre and a zoom.
    pub fn parse(re: &str, im: &str, zoom: &str) -> Result<DeepView, ViewError> {
        let mut parts = Vec::new();
        for (field, s) in [("center.re", re), ("center.im", im), ("zoom", zoom)] {
            if s.len() > MAX_COORDINATE_CHARS {
                return Err(ViewError::TooLong {
                    field,
                    max: MAX_COORDINATE_CHARS,
                    len: s.len(),
                });
            }
            let d = Decimal::parse(field, s)?;
            // The canonical form is plain decimal: an exponent may not
            // stretch it past the limit (`1e-999999` is a million digits).
            let plain_len = d.plain_len();
            if field != "zoom" && plain_len > MAX_COORDINATE_CHARS as u64 {
                return Err(ViewError::TooLong {
                    field,
                    max: MAX_COORDINATE_CHARS,
                    len: plain_len as usize,
                });
            }
            parts.push(d);
        }
        for (field, d) in [("re", &parts[0]), ("im", &parts[1])] {
            // |x| ≤ 4: the leading digit's power is below 0, or x is 1..4.
            let ok = d.digits.is_empty()
                || d.magnitude() < 0
                || (d.magnitude() == 0 && d.plain().trim_start_matches('-') <= "4");
            if !ok {
                return Err(ViewError::OffPlane {
                    field,
                    value: d.plain().chars().take(40).collect(),
                });
            }
        }
        let z = &parts[2];
        let in_range = (MIN_ZOOM_EXP10..=MAX_ZOOM_EXP10).contains(&z.magnitude())
            && (z.magnitude() < MAX_ZOOM_EXP10 || z.digits == "1");
        if z.negative || z.digits.is_empty() || !in_range {
            return Err(ViewError::ZoomOutOfRange {
                value: zoom.chars().take(40).collect(),
                max: MAX_ZOOM_EXP10,
            });
        }
        Ok(DeepView {
            re: parts[0].plain(),
            im: parts[1].plain(),
            zoom: z.scientific(),
        })
    }

    /// The centre's real part, canonical decimal.
    pub fn re(&self) -> &str {
        &self.re
    }

    /// The centre's imaginary part, canonical decimal.
    pub fn im(&self) -> &str {
        &self.im
    }

    /// The zoom, canonical scientific notation (`5e113`).
    pub fn zoom(&self) -> &str {
        &self.zoom
    }

    fn zoom_decimal(&self) -> Decimal {
        Decimal::parse("zoom", &self.zoom).expect("a DeepView's zoom is canonical")
    }

    /// `log2(zoom)`.
    pub fn zoom_log2(&self) -> f64 {
        self.zoom_value().log2()
    }

    /// The zoom as an extended-exponent number (relative error ~2^-52).
    pub fn zoom_value(&self) -> Fe {
        let d = self.zoom_decimal();
        // digits·10^exp10 with exp10 possibly negative ("2.5e3" = 25·10^2);
        // the leading 17 digits are all an f64 holds (a zoom of 2^1100
        // written out has 332, which would overflow f64 whole).
        let lead = &d.digits[..d.digits.len().min(17)];
        let digits: f64 = lead.parse().expect("digits are decimal");
        let ten = fe_pow10(d.exp10 + (d.digits.len() - lead.len()) as i64);
        Fe::from_f64(digits) * ten
    }

    /// The distance between two pixels' centres in an `side`-pixel image:
    /// `4 / (zoom · side)`.
    pub fn pixel_spacing(&self, side: u64) -> Fe {
        Fe::from_f64(4.0) / (self.zoom_value() * Fe::from_f64(side as f64))
    }

    /// The fixed-point fraction bits the reference orbit is computed with
    /// for an image of `side` pixels: the pixel spacing's bits plus 64, so
    /// the orbit's rounding stays 2^-64 of a pixel as it is amplified.
    pub fn precision_bits(&self, side: u64) -> u32 {
        let bits = self.zoom_log2() + (side.max(1) as f64).log2();
        (bits.ceil().max(0.0) as u32) + 64
    }

    /// The zoom as an exact fraction `(numerator, denominator)`.
    pub fn zoom_fraction(&self) -> (IBig, IBig) {
        let d = self.zoom_decimal();
        let digits: IBig = d.digits.parse().expect("digits are decimal");
        let ten = IBig::from(10).pow(d.exp10.unsigned_abs() as usize);
        if d.exp10 >= 0 {
            (digits * ten, IBig::ONE)
        } else {
            (digits, ten)
        }
    }

    /// The centre as fixed-point integers with `bits` fraction bits.
    pub fn center_fixed(&self, bits: u32) -> (IBig, IBig) {
        let re = Decimal::parse("center.re", &self.re).expect("canonical");
        let im = Decimal::parse("center.im", &self.im).expect("canonical");
        (re.fixed(bits), im.fixed(bits))
    }
}

/// `10^k` as an extended-exponent number, from the exact integer's top bits.
fn fe_pow10(k: i64) -> Fe {
    let p = IBig::from(10).pow(k.unsigned_abs() as usize);
    let v = ibig_to_fe(&p);
    if k >= 0 { v } else { Fe::from_f64(1.0) / v }
}

/// An integer as an extended-exponent number (truncated to 63 bits).
pub(super) fn ibig_to_fe(x: &IBig) -> Fe {
    let (m, e) = ibig_parts(x);
    Fe::new(m.abs(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let v = DeepView::parse("-1.50", "+0.000e3", "5.00E113").unwrap();
        assert_eq!((v.re(), v.im(), v.zoom()), ("-1.5", "0", "5e113"));
        let v = DeepView::parse("-15e-1", "125e-5", "1.01671E401").unwrap();
        assert_eq!(
            (v.re(), v.im(), v.zoom()),
            ("-1.5", "0.00125", "1.01671e401")
        );
        let v = DeepView::parse("-0", "2", "1").unwrap();
        assert_eq!((v.re(), v.im(), v.zoom()), ("0", "2", "1e0"));
        let v = DeepView::parse("4", "-4.0", "4.00000000000E533").unwrap();
        assert_eq!((v.re(), v.zoom()), ("4", "4e533"));
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (DeepView::parse("x", "0", "1"), "center.re"),
            (DeepView::parse("0", "1.2.3", "1"), "center.im"),
            (DeepView::parse("0", "", "1"), "center.im"),
            (DeepView::parse("4.1", "0", "1"), "center"),
            (DeepView::parse("0", "-12", "1"), "center"),
            (DeepView::parse("0", "0", "0.5"), "zoom"),
            (DeepView::parse("0", "0", "-5"), "zoom"),
            (DeepView::parse("0", "0", "2e10000"), "zoom"),
            (DeepView::parse("0", "0", "1e10001"), "zoom"),
            (DeepView::parse("1e-999999", "0", "1"), "center.re"),
        ];
        for (result, field) in cases {
            let err = result.expect_err(field);
            assert_eq!(err.field(), field, "{err}");
        }
        assert!(DeepView::parse("0", "0", "1e10000").is_ok());
        let err = DeepView::parse("0", "0", "0.5").unwrap_err().to_string();
        assert_eq!(err, "zoom must be in 1..=1e10000, got 0.5");
    }

    #[test]
    fn zoom_and_spacing() {
        let v = DeepView::parse("0", "0", "5e113").unwrap();
        let expect = (5f64).log2() + 113.0 * 10f64.log2();
        assert!((v.zoom_log2() - expect).abs() < 1e-9);
        let v = DeepView::parse("0", "0", "1e1086").unwrap();
        let s = v.pixel_spacing(4096).log2();
        assert!(
            (s - (2.0 - 1086.0 * 10f64.log2() - 12.0)).abs() < 1e-9,
            "{s}"
        );
        assert_eq!(v.precision_bits(4096), 3608 + 12 + 64);
    }

    #[test]
    fn centre_in_fixed_point() {
        let v = DeepView::parse("-1.75", "0.125", "1").unwrap();
        let (re, im) = v.center_fixed(8);
        assert_eq!((re, im), (IBig::from(-448), IBig::from(32)));
        // Digits past the fraction bits are truncated toward zero.
        let v = DeepView::parse("0.1", "-0.1", "1").unwrap();
        let (re, im) = v.center_fixed(4);
        assert_eq!((re, im), (IBig::from(1), IBig::from(-1)));
    }
}
