//! Deep zoom: views far past f64, rendered by perturbation from one
//! reference orbit per job.
//!
//! How the parts relate:
//!
//! - [`DeepView`] is a centre as decimal strings and a zoom (or a
//!   [`Location`] file's, as Kalles Fraktaler writes them); pixel `(i, j)`
//!   of an `N×N` image is `C + ((j + ½ − N/2)·s, (i + ½ − N/2)·s)` with
//!   `s = 4/(zoom·N)`, row 0 the lowest imaginary part.
//! - [`OrbitState`] computes the centre's orbit `Z_m` in arbitrary
//!   precision, resumable, into [`OrbitPoint`]s (stored once per job,
//!   [`encode_points`]).
//! - [`DeepRenderer`] holds the orbit in the number type the zoom needs
//!   (f64, or floatexp past ~1e290) with its BLA table, and renders tiles
//!   of `u32` counts (`perturb` has the algorithm).
//! - [`brute_force`] is the slow definition the renderer is tested against:
//!   every pixel iterated in arbitrary precision.
//!
//! Correctness is agreement with brute force on test grids at published
//! locations (docs/deep-zoom.md), not bit-exactness: the f64 kernel's
//! exactness contract is for viewport jobs only.

mod location;
mod number;
mod orbit;
mod perturb;
mod view;

pub mod brute;

pub use location::{Location, LocationError};
pub use number::{C64, Cfe, Complex, Fe};
pub use orbit::{OrbitFormatError, OrbitPoint, OrbitState, decode_points, encode_points};
pub use perturb::{BLA_EPSILON, Work};
pub use view::{DeepView, MAX_COORDINATE_CHARS, MAX_ZOOM_EXP10, ViewError};

use std::sync::atomic::{AtomicBool, Ordering};

use perturb::{BlaTable, Engine};

/// Pixels rendered between two looks at a stop flag
/// ([`DeepRenderer::render_until`]).
const BAND_PIXELS: u64 = 4 * 1024;

/// Below this pixel spacing (as a power of two) deltas' squared magnitudes,
/// which decide BLA and rebasing, leave f64's normal range, so the
/// renderer starts pixels in floatexp (and moves them to f64 once they
/// have grown).
const F64_SPACING_LOG2: f64 = perturb::FAST_FROM as f64;

/// The reference orbit of a view, prepared for rendering one image size.
pub struct DeepRenderer {
    side: u64,
    max_iter: u32,
    spacing: Fe,
    /// The image's centre less the orbit's point.
    offset: Cfe,
    mode: Mode,
}

enum Mode {
    F64(Engine<C64>),
    Exp(Engine<Cfe>),
}

impl DeepRenderer {
    /// Memory a prepared orbit takes a point, at most (floatexp): the
    /// orbit in floatexp (24 bytes) and in f64 (16), and both BLA tables,
    /// about two maps a point each (72 and 48 bytes a map).
    pub const BYTES_PER_POINT: f64 = 24.0 + 16.0 + 2.0 * 72.0 + 2.0 * 48.0;

    /// Prepares `orbit` (the centre's reference orbit, `Z_0` first) for
    /// rendering `view` as a `side`-pixel image, with BLA's tolerance
    /// `epsilon` ([`BLA_EPSILON`]; 0 turns BLA off).
    ///
    /// # Panics
    /// If `orbit` is empty.
    pub fn new(
        view: &DeepView,
        side: u64,
        max_iter: u32,
        orbit: &[OrbitPoint],
        epsilon: f64,
    ) -> DeepRenderer {
        DeepRenderer::with_offset(view, side, max_iter, orbit, epsilon, Cfe::ZERO)
    }

    /// [`DeepRenderer::new`] for an image centred `offset` away from the
    /// orbit's point: `view` gives the image's size in the plane, the
    /// orbit is another point's (the explorer's tiles share their
    /// region's orbit).
    pub fn with_offset(
        view: &DeepView,
        side: u64,
        max_iter: u32,
        orbit: &[OrbitPoint],
        epsilon: f64,
        offset: Cfe,
    ) -> DeepRenderer {
        assert!(!orbit.is_empty(), "a reference orbit has at least Z_0");
        let spacing = view.pixel_spacing(side);
        // The largest delta: half the image's diagonal, past the offset.
        let c_max =
            spacing * Fe::from_f64(side as f64 * std::f64::consts::FRAC_1_SQRT_2) + offset.abs();
        let mode = if spacing.log2() > F64_SPACING_LOG2 {
            Mode::F64(engine(orbit, c_max.to_f64(), epsilon))
        } else {
            let mut exp = engine(orbit, c_max, epsilon);
            // Deltas grown into f64's range continue in f64, where the
            // pixel offset (below its range) no longer matters.
            exp.fast = Some(Box::new(engine(orbit, c_max.to_f64(), epsilon)));
            Mode::Exp(exp)
        };
        DeepRenderer {
            side,
            max_iter,
            spacing,
            offset,
            mode,
        }
    }

    /// Whether deltas are floatexp (the view is past f64's range).
    pub fn is_extended(&self) -> bool {
        matches!(self.mode, Mode::Exp(_))
    }

    /// Points in the reference orbit.
    pub fn orbit_len(&self) -> usize {
        match &self.mode {
            Mode::F64(e) => e.orbit.len(),
            Mode::Exp(e) => e.orbit.len(),
        }
    }

    /// Linear maps in the BLA table.
    pub fn bla_len(&self) -> usize {
        match &self.mode {
            Mode::F64(e) => e.bla.len(),
            Mode::Exp(e) => e.bla.len(),
        }
    }

    /// Renders the pixels `rows × cols` of the image (row 0 the lowest
    /// imaginary part) into `out`, row-major; returns what they cost.
    ///
    /// # Panics
    /// If `out` is not `rows.len() · cols.len()` long or a pixel is outside
    /// the image.
    pub fn render(
        &self,
        rows: std::ops::Range<u64>,
        cols: std::ops::Range<u64>,
        out: &mut [u32],
    ) -> Work {
        assert!(
            rows.end <= self.side && cols.end <= self.side,
            "outside the image"
        );
        let width = (cols.end - cols.start) as usize;
        assert_eq!(out.len(), (rows.end - rows.start) as usize * width);
        match &self.mode {
            Mode::F64(e) => self.fill(e, rows, cols, out),
            Mode::Exp(e) => self.fill(e, rows, cols, out),
        }
    }

    /// [`DeepRenderer::render`] in bands of about [`BAND_PIXELS`], looking
    /// at `stop` before each: `None` once it is set (nobody wants the
    /// pixels any more, or a worker's deadline is near).
    pub fn render_until(
        &self,
        rows: std::ops::Range<u64>,
        cols: std::ops::Range<u64>,
        out: &mut [u32],
        stop: &AtomicBool,
    ) -> Option<Work> {
        let width = cols.end - cols.start;
        let band = (BAND_PIXELS / width.max(1)).max(1);
        let mut work = Work::default();
        for (k, chunk) in out.chunks_mut((band * width) as usize).enumerate() {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let first = rows.start + k as u64 * band;
            let n = chunk.len() as u64 / width;
            work += self.render(first..first + n, cols.clone(), chunk);
        }
        Some(work)
    }

    fn fill<T: Complex>(
        &self,
        engine: &Engine<T>,
        rows: std::ops::Range<u64>,
        cols: std::ops::Range<u64>,
        out: &mut [u32],
    ) -> Work {
        let (s, e) = self.spacing.parts();
        let half = self.side as f64 / 2.0;
        let width = (cols.end - cols.start) as usize;
        let (ore, oim, oe) = self.offset.parts();
        let offset = T::from_parts(ore, oim, oe);
        let mut work = Work::default();
        for (i, row) in rows.zip(out.chunks_exact_mut(width)) {
            let y = (i as f64 + 0.5 - half) * s;
            for (j, px) in cols.clone().zip(row.iter_mut()) {
                let x = (j as f64 + 0.5 - half) * s;
                let dc = T::from_parts(x, y, e).add(offset);
                *px = engine.pixel(dc, self.max_iter, &mut work);
            }
        }
        work
    }
}

fn engine<T: Complex>(orbit: &[OrbitPoint], c_max: T::Mag, epsilon: f64) -> Engine<T> {
    let orbit: Vec<T> = orbit
        .iter()
        .map(|p| T::from_parts(p.re, p.im, i64::from(p.exp)))
        .collect();
    let bla = if epsilon > 0.0 {
        BlaTable::new(&orbit, c_max, epsilon)
    } else {
        BlaTable::new(&orbit[..0], c_max, epsilon)
    };
    Engine {
        orbit,
        bla,
        fast: None,
    }
}

/// Computes a view's whole reference orbit in one go (no segments).
pub fn reference_orbit(view: &DeepView, side: u64, max_iter: u32) -> Vec<OrbitPoint> {
    let mut state = OrbitState::new(view, view.precision_bits(side));
    let mut points = Vec::new();
    state.run(u64::from(max_iter), &mut points, || true);
    points
}
