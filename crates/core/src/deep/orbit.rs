//! The reference orbit: `Z_{m+1} = Z_m² + C` at the view's centre, in
//! arbitrary precision, computed once per job and stored in low precision.
//!
//! The arithmetic is fixed point on `dashu-int` integers (`x = X·2^bits`):
//! the orbit is bounded by the escape radius, so a fixed point loses
//! nothing a float would keep, and the step is two big multiplications
//! (`(X+Y)(X−Y)` and `XY`) and shifts. Why dashu and not MPFR or malachite:
//! docs/deep-zoom.md (measured; licence).
//!
//! The orbit also stops at the **period** of the view: the first `n` at
//! which the disc of the view's pixels, carried `n` steps, holds 0
//! (`|Z_n| < |dZ_n/dC|·r`, first order, `r` the view's half-diagonal).
//! Then the view holds a minibrot's nucleus of period `n`, every pixel's
//! orbit returns near 0 at `n` as the centre's does, and the pixels rebase
//! there anyway (`perturb`: a rebase at the orbit's last point is exact),
//! so a longer orbit would only repeat what its first `n` points say. At
//! zoom 1e1086 this computes 179,301 points instead of 538,503.
//!
//! The computation can stop and resume ([`OrbitState`] is its whole
//! full-precision state, with a byte form), so an orbit longer than one
//! Lambda invocation is computed in segments. The points are stored as
//! [`OrbitPoint`]s: values with `|Z| ≤ 2` need no more than f64's mantissa,
//! but their exponent can fall below f64's near the orbit's near-returns
//! to zero, so each point carries its own power of two.

use dashu_int::IBig;
use thiserror::Error;

use super::DeepView;
use super::number::ibig_parts;
use super::number::{Cfe, Complex, Fe};

/// One point of the stored orbit: `(re + i·im)·2^exp`, with the larger of
/// `|re|`, `|im|` in `[1, 2)` (or all zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrbitPoint {
    pub re: f64,
    pub im: f64,
    pub exp: i32,
}

impl OrbitPoint {
    /// Bytes of one point in the stored form: `re`, `im` (f64) and `exp`
    /// (i32), little-endian.
    pub const BYTES: usize = 20;

    pub fn to_cfe(self) -> Cfe {
        Cfe::from_parts(self.re, self.im, i64::from(self.exp))
    }

    fn from_cfe(z: Cfe) -> OrbitPoint {
        let (re, im, exp) = z.parts();
        OrbitPoint {
            re,
            im,
            exp: exp.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        }
    }
}

/// The full-precision state of a reference orbit being computed.
#[derive(Clone, Debug, PartialEq)]
pub struct OrbitState {
    bits: u32,
    cx: IBig,
    cy: IBig,
    x: IBig,
    y: IBig,
    /// Index of the point `(x, y)` is: `Z_n`.
    n: u64,
    escaped: bool,
    /// `r²`, the squared radius of the view's disc (0: no period stop).
    radius2: Fe,
    /// `dZ_n/dC`, in low precision: it only decides the period.
    dz: Cfe,
    /// The view's period, once the orbit reached it.
    period: Option<u64>,
}

/// A stored orbit state or orbit that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("reference orbit data is malformed: {0}")]
pub struct OrbitFormatError(pub &'static str);

const STATE_MAGIC: &[u8; 8] = b"MDORBST2";

/// States written before the period stop: read without it.
const STATE_MAGIC_V1: &[u8; 8] = b"MDORBST1";

const POINTS_MAGIC: &[u8; 8] = b"MDORBIT1";

impl OrbitState {
    /// The start of the orbit of `view`'s centre, `Z_0 = 0`, with `bits`
    /// fraction bits (see [`DeepView::precision_bits`]).
    pub fn new(view: &DeepView, bits: u32) -> OrbitState {
        let (cx, cy) = view.center_fixed(bits);
        // Half the diagonal of the 4/zoom square: (2√2/zoom)² = 8/zoom².
        let zoom = view.zoom_value();
        let radius2 = Fe::from_f64(8.0) / (zoom * zoom);
        OrbitState {
            bits,
            cx,
            cy,
            x: IBig::ZERO,
            y: IBig::ZERO,
            n: 0,
            escaped: false,
            radius2,
            dz: Cfe::ZERO,
            period: None,
        }
    }

    /// The index of the current point.
    pub fn index(&self) -> u64 {
        self.n
    }

    pub fn precision_bits(&self) -> u32 {
        self.bits
    }

    /// The view's period, if the orbit stopped there.
    pub fn period(&self) -> Option<u64> {
        self.period
    }

    /// Whether the orbit is complete: it escaped (`|Z|² > 4`), reached the
    /// view's period or reached `Z_{max_iter}`.
    pub fn is_done(&self, max_iter: u64) -> bool {
        self.escaped || self.period.is_some() || self.n >= max_iter
    }

    /// The current point in low precision.
    pub fn point(&self) -> OrbitPoint {
        let (mx, ex) = ibig_parts(&self.x);
        let (my, ey) = ibig_parts(&self.y);
        let e = ex.max(ey);
        let z = Cfe::from_parts(
            mx * super::number::pow2(ex - e),
            my * super::number::pow2(ey - e),
            e - i64::from(self.bits),
        );
        OrbitPoint::from_cfe(z)
    }

    /// Steps the orbit, pushing each new point, until it is done or
    /// `keep_going` (asked every 1024 steps) says stop. The first call also
    /// pushes `Z_0`. Returns whether the orbit is done.
    pub fn run(
        &mut self,
        max_iter: u64,
        points: &mut Vec<OrbitPoint>,
        mut keep_going: impl FnMut() -> bool,
    ) -> bool {
        if self.n == 0 && points.is_empty() {
            points.push(self.point());
        }
        while !self.is_done(max_iter) {
            if self.n.is_multiple_of(1024) && !keep_going() {
                return false;
            }
            let two_xy = self.two_xy();
            self.x = self.x2_y2();
            self.y = two_xy;
            self.advance(points);
        }
        true
    }

    /// `2XY + Cy`.
    fn two_xy(&self) -> IBig {
        let mut two_xy = &self.x * &self.y;
        two_xy >>= self.bits as usize - 1;
        two_xy += &self.cy;
        two_xy
    }

    /// `X² − Y² + Cx`, as `(X + Y)(X − Y)`.
    fn x2_y2(&self) -> IBig {
        let mut x2_y2 = (&self.x + &self.y) * (&self.x - &self.y);
        x2_y2 >>= self.bits as usize;
        x2_y2 += &self.cx;
        x2_y2
    }

    /// Counts the new point, checks it for escape and the period, and
    /// pushes it.
    fn advance(&mut self, points: &mut Vec<OrbitPoint>) {
        // dZ_n = 2 Z_{n-1} dZ_{n-1} + 1, from the previous point.
        let previous = points.last().map_or(Cfe::ZERO, |p| p.to_cfe());
        self.dz = previous
            .double()
            .mul(self.dz)
            .add(Cfe::from_parts(1.0, 0.0, 0));
        self.n += 1;
        let p = self.point();
        let z = p.to_cfe();
        let (re, im) = z.to_f64();
        self.escaped = re * re + im * im > 4.0;
        if !self.escaped && z.norm() < self.dz.norm() * self.radius2 {
            self.period = Some(self.n);
        }
        points.push(p);
    }

    /// The state's byte form (resumed with [`OrbitState::from_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = STATE_MAGIC.to_vec();
        out.extend(self.bits.to_le_bytes());
        out.extend(self.n.to_le_bytes());
        out.push(u8::from(self.escaped));
        let (r_m, r_e) = self.radius2.parts();
        let (d_re, d_im, d_e) = self.dz.parts();
        out.extend(r_m.to_le_bytes());
        out.extend(r_e.to_le_bytes());
        out.extend(d_re.to_le_bytes());
        out.extend(d_im.to_le_bytes());
        out.extend(d_e.to_le_bytes());
        out.extend(self.period.map_or(u64::MAX, |p| p).to_le_bytes());
        for v in [&self.cx, &self.cy, &self.x, &self.y] {
            let bytes = v.to_le_bytes();
            out.extend((bytes.len() as u64).to_le_bytes());
            out.extend(bytes.iter());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<OrbitState, OrbitFormatError> {
        let mut r = Reader(bytes);
        let v1 = match r.take(8)? {
            m if m == STATE_MAGIC => false,
            m if m == STATE_MAGIC_V1 => true,
            _ => return Err(OrbitFormatError("not an orbit state")),
        };
        let bits = u32::from_le_bytes(r.take(4)?.try_into().unwrap());
        let n = u64::from_le_bytes(r.take(8)?.try_into().unwrap());
        let escaped = r.take(1)?[0] != 0;
        let (radius2, dz, period) = if v1 {
            (Fe::ZERO, Cfe::ZERO, None)
        } else {
            let mut f =
                || -> Result<[u8; 8], OrbitFormatError> { Ok(r.take(8)?.try_into().unwrap()) };
            let radius2 = Fe::new(f64::from_le_bytes(f()?), i64::from_le_bytes(f()?));
            let dz = Cfe::from_parts(
                f64::from_le_bytes(f()?),
                f64::from_le_bytes(f()?),
                i64::from_le_bytes(f()?),
            );
            let period = Some(u64::from_le_bytes(f()?)).filter(|&p| p != u64::MAX);
            (radius2, dz, period)
        };
        let mut ints = Vec::new();
        for _ in 0..4 {
            let len = u64::from_le_bytes(r.take(8)?.try_into().unwrap());
            let len = usize::try_from(len).map_err(|_| OrbitFormatError("length"))?;
            ints.push(IBig::from_le_bytes(r.take(len)?));
        }
        if !r.0.is_empty() || bits < 2 {
            return Err(OrbitFormatError("trailing bytes or bad precision"));
        }
        let [cx, cy, x, y] = ints.try_into().unwrap();
        Ok(OrbitState {
            bits,
            cx,
            cy,
            x,
            y,
            n,
            escaped,
            radius2,
            dz,
            period,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], OrbitFormatError> {
        if self.0.len() < n {
            return Err(OrbitFormatError("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
}

/// Encodes orbit points: the magic `MDORBIT1`, a u64 count, then each
/// point's [`OrbitPoint::BYTES`], all little-endian.
pub fn encode_points(points: &[OrbitPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + points.len() * OrbitPoint::BYTES);
    out.extend(POINTS_MAGIC);
    out.extend((points.len() as u64).to_le_bytes());
    for p in points {
        out.extend(p.re.to_le_bytes());
        out.extend(p.im.to_le_bytes());
        out.extend(p.exp.to_le_bytes());
    }
    out
}

/// Decodes [`encode_points`]' bytes, appending to `into`.
pub fn decode_points(bytes: &[u8], into: &mut Vec<OrbitPoint>) -> Result<(), OrbitFormatError> {
    let mut r = Reader(bytes);
    if r.take(8)? != POINTS_MAGIC {
        return Err(OrbitFormatError("not an orbit"));
    }
    let count = u64::from_le_bytes(r.take(8)?.try_into().unwrap());
    if r.0.len() as u64 != count.saturating_mul(OrbitPoint::BYTES as u64) {
        return Err(OrbitFormatError("size does not match the point count"));
    }
    into.reserve(count as usize);
    for p in r.0.chunks_exact(OrbitPoint::BYTES) {
        into.push(OrbitPoint {
            re: f64::from_le_bytes(p[0..8].try_into().unwrap()),
            im: f64::from_le_bytes(p[8..16].try_into().unwrap()),
            exp: i32::from_le_bytes(p[16..20].try_into().unwrap()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orbit_f64(cr: f64, ci: f64, n: usize) -> Vec<(f64, f64)> {
        let (mut x, mut y) = (0.0f64, 0.0f64);
        let mut out = vec![(x, y)];
        for _ in 0..n {
            (x, y) = (x * x - y * y + cr, 2.0 * x * y + ci);
            out.push((x, y));
            if x * x + y * y > 4.0 {
                break;
            }
        }
        out
    }

    #[test]
    fn a_shallow_orbit_equals_f64_iteration_early_on() {
        // Inside the main cardioid: bounded, and f64 stays close (zoomed
        // in, so the view holds no nucleus and the orbit has no period).
        let view = DeepView::parse("-0.12", "0.5", "1e6").unwrap();
        let mut state = OrbitState::new(&view, 200);
        let mut points = Vec::new();
        assert!(state.run(40, &mut points, || true));
        let f = orbit_f64(-0.12, 0.5, 40);
        assert_eq!(points.len(), 41);
        for (k, (p, q)) in points.iter().zip(&f).enumerate() {
            let (re, im) = p.to_cfe().to_f64();
            assert!(
                (re - q.0).abs() < 1e-12 && (im - q.1).abs() < 1e-12,
                "Z_{k}"
            );
        }
    }

    #[test]
    fn the_orbit_stops_at_escape() {
        let view = DeepView::parse("0.5", "0.5", "1e6").unwrap();
        let mut state = OrbitState::new(&view, 128);
        let mut points = Vec::new();
        assert!(state.run(1000, &mut points, || true));
        assert_eq!(points.len(), orbit_f64(0.5, 0.5, 1000).len());
        assert!(state.is_done(1000));
    }

    #[test]
    fn the_orbit_stops_at_the_period_of_a_nucleus_in_view() {
        // The period-3 nucleus on the real axis ("airship"), to 25 digits:
        // Z_3 is within the view's radius of 0, times the derivative.
        let nucleus = "-1.754877666246692760049508896";
        let view = DeepView::parse(nucleus, "0", "1e20").unwrap();
        let mut state = OrbitState::new(&view, 160);
        let mut points = Vec::new();
        assert!(state.run(1000, &mut points, || true));
        assert_eq!(state.period(), Some(3));
        assert_eq!(points.len(), 4, "Z_0 to Z_3");
        // A view beside it, 1e-7 away, holds no nucleus of low period.
        let view = DeepView::parse(nucleus, "0.0000001", "1e20").unwrap();
        let mut state = OrbitState::new(&view, 160);
        let mut points = Vec::new();
        assert!(state.run(1000, &mut points, || true));
        assert_eq!(state.period(), None);
        assert_eq!(points.len(), 1001);
        // Zoomed out until the disc holds that nucleus, it stops again.
        let view = DeepView::parse(nucleus, "0.0000001", "1e6").unwrap();
        let mut state = OrbitState::new(&view, 160);
        assert!(state.run(1000, &mut Vec::new(), || true));
        assert_eq!(state.period(), Some(3));
    }

    #[test]
    fn segments_resumed_from_bytes_give_the_same_orbit() {
        let view = DeepView::parse("-1.7548776662466927600495", "0.0000001", "1e20").unwrap();
        let mut whole = Vec::new();
        OrbitState::new(&view, 160).run(5000, &mut whole, || true);

        let mut state = OrbitState::new(&view, 160);
        let mut points = Vec::new();
        let mut asked = 0;
        loop {
            let mut budget = 2;
            let done = state.run(5000, &mut points, || {
                budget -= 1;
                budget >= 0
            });
            asked += 1;
            // What a segment leaves behind: its points and its state.
            let bytes = encode_points(&points);
            points.clear();
            decode_points(&bytes, &mut points).unwrap();
            state = OrbitState::from_bytes(&state.to_bytes()).unwrap();
            if done {
                break;
            }
        }
        assert!(asked > 2, "the orbit should take several segments");
        assert_eq!(points, whole);
    }

    #[test]
    fn malformed_bytes_are_refused() {
        let view = DeepView::parse("0", "0", "1").unwrap();
        let state = OrbitState::new(&view, 64);
        let bytes = state.to_bytes();
        assert!(OrbitState::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(OrbitState::from_bytes(b"nonsense").is_err());
        let pts = encode_points(&[OrbitPoint {
            re: 1.0,
            im: 0.0,
            exp: 0,
        }]);
        assert!(decode_points(&pts[..pts.len() - 1], &mut Vec::new()).is_err());
    }
}
