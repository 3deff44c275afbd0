//! The world past f64: tiles deeper than [`MAX_ZOOM`](super::MAX_ZOOM),
//! addressed by big integers and rendered by perturbation (`crate::deep`).
//!
//! A deep tile's reference orbit is its **region's**: the orbit of the
//! centre of its ancestor [`REFERENCE_LEVELS`] to `2·REFERENCE_LEVELS − 1`
//! zooms up (tiles at zooms `kL … kL + L − 1` share the ancestor at zoom
//! `kL − L`), computed with the precision the region's deepest tile needs.
//! So neighbouring tiles share one orbit, a dive computes a new one every
//! `L` zooms, and a tile's counts are still a function of its address and
//! budget alone: cacheable for good, like the f64 tiles.

use std::sync::atomic::AtomicBool;

use dashu_base::UnsignedAbs;
use dashu_int::{IBig, UBig};

use super::{MAX_ZOOM, TILE_PIXELS, TileError};
use crate::deep::{BLA_EPSILON, Cfe, DeepRenderer, DeepView, OrbitPoint, OrbitState, Work};
use crate::params::{RenderParams, View};

/// The version of the deep tiles' bytes: bumped whenever a deep tile's
/// counts change for the same address and budget (the reference rule, the
/// perturbation kernel, the colours), so caches keyed by it never serve stale tiles.
pub const DEEP_TILES_VERSION: u32 = 2;

/// Zooms sharing one reference orbit (`L` above).
pub const REFERENCE_LEVELS: u32 = 2;

/// The deepest zoom a deep tile may have: a pixel `2^-(z+6)` wide, past
/// 1e-3600.
pub const MAX_DEEP_ZOOM: u32 = 12_000;

/// A tile of the world deeper than f64 reaches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeepTile {
    zoom: u32,
    x: UBig,
    y: UBig,
}

/// A region's reference orbit, with the region it is for.
#[derive(Clone, Debug)]
pub struct RegionOrbit {
    pub region: Region,
    pub points: Vec<OrbitPoint>,
}

/// The centre of a region whose tiles share one reference orbit: the
/// centre of tile `(x, y)` of `zoom` (an ancestor of theirs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    zoom: u32,
    x: UBig,
    y: UBig,
}

/// The centre of tile `(x, y)` of `zoom` as numerators over `2^(zoom+1)`:
/// `re = (4(2x+1) − 5·2^zoom) / 2^(zoom+1)`, `im = (2^(zoom+2) − 4(2y+1)) / 2^(zoom+1)`.
fn centre(zoom: u32, x: &UBig, y: &UBig) -> (IBig, IBig) {
    let one = IBig::ONE;
    let two_x1 = (IBig::from(x.clone()) << 1) + &one;
    let two_y1 = (IBig::from(y.clone()) << 1) + &one;
    let re = (two_x1 << 2) - (IBig::from(5) << zoom as usize);
    let im = (IBig::ONE << (zoom as usize + 2)) - (two_y1 << 2);
    (re, im)
}

/// `n / 2^k` as an exact decimal string (a dyadic has a finite one).
fn dyadic_decimal(n: &IBig, k: u32) -> String {
    let negative = *n < IBig::ZERO;
    let digits = (n.clone().unsigned_abs() * UBig::from(5u8).pow(k as usize)).to_string();
    let k = k as usize;
    let padded = if digits.len() <= k {
        format!("{}{digits}", "0".repeat(k + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - k);
    let frac = frac.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// `2^zoom` as a decimal integer (a [`DeepView`] zoom).
fn zoom_decimal(zoom: u32) -> String {
    (UBig::ONE << zoom as usize).to_string()
}

fn view_of(zoom: u32, x: &UBig, y: &UBig) -> DeepView {
    let (re, im) = centre(zoom, x, y);
    DeepView::parse(
        &dyadic_decimal(&re, zoom + 1),
        &dyadic_decimal(&im, zoom + 1),
        &zoom_decimal(zoom),
    )
    .expect("a world tile's centre and zoom are a valid view")
}

/// `zoom/x/y`, as in a tile's URL.
impl std::fmt::Display for DeepTile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.zoom, self.x, self.y)
    }
}

impl DeepTile {
    /// Checks the address: zoom past [`MAX_ZOOM`] up to [`MAX_DEEP_ZOOM`],
    /// `x` and `y` inside its grid.
    pub fn new(zoom: u32, x: UBig, y: UBig) -> Result<DeepTile, TileError> {
        if zoom <= MAX_ZOOM || zoom > MAX_DEEP_ZOOM {
            return Err(TileError::DeepZoom { zoom });
        }
        let side = UBig::ONE << zoom as usize;
        if x >= side || y >= side {
            return Err(TileError::OutsideDeepWorld { zoom });
        }
        Ok(DeepTile { zoom, x, y })
    }

    /// The tile of `zoom` that holds `view`'s centre.
    pub fn at(view: &DeepView, zoom: u32) -> Result<DeepTile, TileError> {
        let outside = || TileError::OutsideDeepWorld { zoom };
        let (re, im) = view.center_fixed(zoom);
        // x = (re + 2.5)/4 · 2^zoom, y = (2 − im)/4 · 2^zoom, floored.
        let x = (re + (IBig::from(5) << (zoom as usize - 1))) >> 2;
        let y = ((IBig::from(2) << zoom as usize) - im) >> 2;
        let x = UBig::try_from(x).map_err(|_| outside())?;
        let y = UBig::try_from(y).map_err(|_| outside())?;
        DeepTile::new(zoom, x, y)
    }

    /// The tile `dx` tiles right of this one (for benchmarks and tests).
    pub fn right(&self, dx: u32) -> Result<DeepTile, TileError> {
        DeepTile::new(self.zoom, &self.x + UBig::from(dx), self.y.clone())
    }

    /// [`DeepTile::new`] from decimal `x` and `y`.
    pub fn parse(zoom: u32, x: &str, y: &str) -> Result<DeepTile, TileError> {
        let parse = |s: &str| {
            s.parse::<UBig>()
                .map_err(|_| TileError::OutsideDeepWorld { zoom })
        };
        DeepTile::new(zoom, parse(x)?, parse(y)?)
    }

    pub fn zoom(&self) -> u32 {
        self.zoom
    }

    /// The tile as a view: its centre, exact, and zoom `2^zoom` (its side
    /// spans `4/2^zoom`).
    pub fn view(&self) -> DeepView {
        view_of(self.zoom, &self.x, &self.y)
    }

    /// The tile as a deep job of one tile at `max_iter`: its own centre's
    /// reference orbit, not its region's (how the fleet renders it: a job
    /// computes and stores its orbit). Its counts agree with
    /// [`DeepTile::render`]'s on at least 99.9 % of pixels, not on all.
    pub fn job(&self, max_iter: u32) -> RenderParams {
        RenderParams {
            view: View::Deep(self.view()),
            tiles_per_side: 1,
            tile_pixels: TILE_PIXELS,
            max_iter,
        }
    }

    /// The region whose reference orbit renders this tile.
    pub fn region(&self) -> Region {
        let l = REFERENCE_LEVELS;
        let zoom = (self.zoom / l) * l - l;
        let up = (self.zoom - zoom) as usize;
        Region {
            zoom,
            x: &self.x >> up,
            y: &self.y >> up,
        }
    }

    /// The tile's counts (`TILE_PIXELS`², row 0 the lowest imaginary part)
    /// by perturbation from its region's orbit ([`Region::orbit`]), and
    /// what they cost.
    ///
    /// # Panics
    /// If `orbit` is another region's.
    pub fn render(&self, max_iter: u32, orbit: &RegionOrbit) -> (Vec<u32>, Work) {
        self.render_until(max_iter, orbit, &AtomicBool::new(false))
            .expect("never stopped")
    }

    /// [`DeepTile::render`], or `None` if `stop` was set between two bands
    /// of rows (nobody wants the tile any more).
    pub fn render_until(
        &self,
        max_iter: u32,
        orbit: &RegionOrbit,
        stop: &AtomicBool,
    ) -> Option<(Vec<u32>, Work)> {
        let region = self.region();
        assert_eq!(
            orbit.region, region,
            "a tile renders from its own region's orbit"
        );
        let orbit = &orbit.points;
        let (re, im) = centre(self.zoom, &self.x, &self.y);
        let (rre, rim) = centre(region.zoom, &region.x, &region.y);
        let up = (self.zoom - region.zoom) as usize;
        // Both over 2^(zoom+1): the offset is exact, then rounded once.
        let offset = Cfe::from_dyadic(&(re - (rre << up)), &(im - (rim << up)), self.zoom + 1);
        let side = u64::from(TILE_PIXELS);
        let renderer =
            DeepRenderer::with_offset(&self.view(), side, max_iter, orbit, BLA_EPSILON, offset);
        let mut counts = vec![0; (side * side) as usize];
        let work = renderer.render_until(0..side, 0..side, &mut counts, stop)?;
        Some((counts, work))
    }
}

impl Region {
    /// The deepest zoom of the tiles that share this region's orbit.
    pub fn deepest(&self) -> u32 {
        self.zoom + 2 * REFERENCE_LEVELS - 1
    }

    /// The region's reference point and extent: the centre of its tile,
    /// zoom `2^zoom` (the orbit's period stop looks at this whole disc).
    pub fn view(&self) -> DeepView {
        view_of(self.zoom, &self.x, &self.y)
    }

    /// Fraction bits the orbit needs: those of the region's deepest tile.
    pub fn precision_bits(&self) -> u32 {
        self.deepest() + TILE_PIXELS.ilog2() + 64
    }

    /// The region's reference orbit, to `max_iter`, its escape or its
    /// period.
    pub fn orbit(&self, max_iter: u32) -> RegionOrbit {
        let mut state = OrbitState::new(&self.view(), self.precision_bits());
        let mut points = Vec::new();
        state.run(u64::from(max_iter), &mut points, || true);
        RegionOrbit {
            region: self.clone(),
            points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deep;

    #[test]
    fn centres_are_exact_decimals() {
        assert_eq!(dyadic_decimal(&IBig::from(-5), 1), "-2.5");
        assert_eq!(dyadic_decimal(&IBig::from(3), 3), "0.375");
        assert_eq!(dyadic_decimal(&IBig::from(0), 3), "0");
        assert_eq!(dyadic_decimal(&IBig::from(-1), 2), "-0.25");
        // Tile (0, 0) of zoom 46: the world's top-left corner plus half a tile.
        let t = DeepTile::parse(46, "0", "0").unwrap();
        let v = t.view();
        let half = 2.0f64.powi(-45);
        assert_eq!(v.re().parse::<f64>().unwrap(), -2.5 + half);
        assert_eq!(v.im().parse::<f64>().unwrap(), 2.0 - half);
        assert_eq!(v.zoom_log2().round(), 46.0);
    }

    #[test]
    fn addresses_are_checked() {
        assert!(DeepTile::parse(45, "0", "0").is_err());
        assert!(DeepTile::parse(MAX_DEEP_ZOOM + 1, "0", "0").is_err());
        let last = ((UBig::ONE << 50) - UBig::ONE).to_string();
        assert!(DeepTile::parse(50, &last, "0").is_ok());
        let past = (UBig::ONE << 50).to_string();
        assert!(DeepTile::parse(50, &past, "0").is_err());
        assert!(DeepTile::parse(50, "-1", "0").is_err());
    }

    /// The deepest tiles' centres have 12,000 decimal places; their views
    /// (and their regions') are still valid (they were refused as too long
    /// once, a count of the digits that added the exponent to them).
    #[test]
    fn the_deepest_tiles_have_views() {
        let x = ((UBig::ONE << MAX_DEEP_ZOOM as usize) / UBig::from(3u8)).to_string();
        let tile = DeepTile::parse(MAX_DEEP_ZOOM, &x, &x).unwrap();
        let view = tile.view();
        assert!(view.re().len() > 12_000, "{}", view.re().len());
        assert_eq!(view.zoom_log2().round(), f64::from(MAX_DEEP_ZOOM));
        assert_eq!(tile.region().view().zoom_log2().round(), 11_998.0);
    }

    #[test]
    fn tiles_of_a_region_share_its_reference() {
        let t = DeepTile::parse(61, "1000", "777").unwrap();
        let r = t.region();
        assert_eq!(r.zoom, 58);
        assert_eq!(
            (r.x.clone(), r.y.clone()),
            (UBig::from(125u32), UBig::from(97u32))
        );
        assert_eq!(DeepTile::parse(60, "500", "388").unwrap().region(), r);
        assert_eq!(r.deepest(), 61);
    }

    /// A deep tile rendered from its region's orbit agrees with the same
    /// view rendered from its own centre's orbit (a deep job of one tile)
    /// on at least 99.9 % of its pixels, with f64 deltas (zoom 2^60) and
    /// floatexp ones (2^1100, past 1e331), on the path to the published
    /// e1000 location.
    #[test]
    fn a_tile_from_its_regions_orbit_agrees_with_a_render_from_its_own_centre() {
        let kfr = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../locations/e1000.kfr"),
        )
        .unwrap();
        let location = crate::deep::Location::from_kfr(&kfr).unwrap();
        for (zoom, max_iter) in [(60u32, 3000u32), (1100, 20_000)] {
            let tile = DeepTile::at(&location.view, zoom).unwrap();
            let orbit = tile.region().orbit(max_iter);
            let (counts, _) = tile.render(max_iter, &orbit);
            let own = deep::reference_orbit(&tile.view(), u64::from(TILE_PIXELS), max_iter);
            let direct = DeepRenderer::new(
                &tile.view(),
                u64::from(TILE_PIXELS),
                max_iter,
                &own,
                BLA_EPSILON,
            );
            let mut expected = vec![0; counts.len()];
            direct.render(0..256, 0..256, &mut expected);
            let differ = counts.iter().zip(&expected).filter(|(a, b)| a != b).count();
            let distinct: std::collections::BTreeSet<u32> = counts.iter().copied().collect();
            eprintln!(
                "zoom 2^{zoom}: {differ} of {} pixels differ; {} distinct counts, {}..={}",
                counts.len(),
                distinct.len(),
                distinct.first().unwrap(),
                distinct.last().unwrap()
            );
            assert!(
                differ * 1000 <= counts.len(),
                "zoom {zoom}: {differ} of {} pixels differ",
                counts.len()
            );
            assert!(distinct.len() > 10, "zoom {zoom}: a flat tile");
        }
    }
}
