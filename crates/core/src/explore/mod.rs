//! The explorer's world: the plane cut into a quadtree of 256-pixel tiles
//! (XYZ addressing, as web maps do), each tile an ordinary one-tile render,
//! so it obeys the kernel's contract and its bytes are a function of its
//! parameters alone: render it once, cache it for good.
//!
//! - Zoom 0 is one tile covering the square re ∈ [−2.5, 1.5], im ∈ [−2, 2];
//!   zoom `z` has `2^z` tiles a side, tile `(x, y)` counting from the left
//!   and from the top.
//! - The tile's side is a power of two and its corners are multiples of
//!   it, so every corner and every pixel step is exact in f64 down to
//!   [`MAX_ZOOM`], the deepest zoom at which f64 still tells neighbouring
//!   pixels apart everywhere in the world.
//! - The iteration budget grows with depth ([`max_iter_for`]): deeper views
//!   need more iterations to separate the set from its slow escapers.
//! - Colours are stable while panning ([`palette`]): a function of the
//!   count and the budget only, never of a tile's own range, so
//!   neighbouring tiles agree at their seams.

mod deep;

pub use deep::{
    DEEP_TILES_VERSION, DeepTile, MAX_DEEP_ZOOM, REFERENCE_LEVELS, Region, RegionOrbit,
};

use crate::colormap::Palette;
use crate::png::{EncodingError, PngRows};
use crate::{Colormap, RenderParams, TileId, Viewport, kernel};

/// Pixels on a tile's side.
pub const TILE_PIXELS: u32 = 256;
/// The world's left edge (re) and top edge (im).
pub const WORLD_LEFT: f64 = -2.5;
pub const WORLD_TOP: f64 = 2.0;
/// The world's side at zoom 0.
pub const WORLD_SIDE: f64 = 4.0;

/// The deepest zoom: a pixel is `2^-(6+z)` wide, and at `|re|` up to 2.5 a
/// double's spacing is `2^-51`, so beyond zoom 45 neighbouring pixels near
/// the world's left edge would get the same coordinate.
pub const MAX_ZOOM: u32 = 45;

/// The iteration budget at zoom 0, and what each zoom level adds.
pub const ITER_BASE: u32 = 500;
pub const ITER_PER_ZOOM: u32 = 150;

/// The most iterations a tile may be given: f64 tiles keep the counts'
/// limit of a viewport job (65535); deep tiles' counts are u32, and this
/// bounds what one tile's region orbit may cost.
pub const MAX_TILE_BUDGET: u32 = 1_000_000;

/// The default iteration budget at `zoom`: `500 + 150·zoom`, at most
/// [`MAX_TILE_BUDGET`]. Zoom 10, where a 1024-pixel window shows about the
/// notebook's default view, gets its 2000; the deepest f64 zoom (45) 7250;
/// zoom 3,322 (a pixel near 1e-1002) 498,800.
pub fn max_iter_for(zoom: u32) -> u32 {
    ITER_BASE
        .saturating_add(ITER_PER_ZOOM.saturating_mul(zoom))
        .min(MAX_TILE_BUDGET)
}

/// One tile of the world; only [`WorldTile::new`] makes one, so every
/// value is inside the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WorldTile {
    zoom: u32,
    x: u64,
    y: u64,
}

/// Why a tile address was refused; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error(
        "zoom {zoom} is past {MAX_ZOOM}, the deepest at which f64 can still tell neighbouring pixels apart"
    )]
    TooDeep { zoom: u32 },
    #[error("tile {x},{y} is outside zoom {zoom}'s grid of {side}×{side} tiles")]
    OutsideWorld {
        zoom: u32,
        x: u64,
        y: u64,
        side: u64,
    },
    #[error("max_iter must be in 1..=65535, got {0}")]
    MaxIter(u32),
    #[error("a deep tile's max_iter must be in 1..={MAX_TILE_BUDGET}, got {0}")]
    DeepMaxIter(u32),
    #[error("a deep tile's zoom must be in {}..={MAX_DEEP_ZOOM}, got {zoom}", MAX_ZOOM + 1)]
    DeepZoom { zoom: u32 },
    #[error("tile x and y at zoom {zoom} must be whole numbers below 2^{zoom}")]
    OutsideDeepWorld { zoom: u32 },
}

impl WorldTile {
    /// Checks the address: zoom at most [`MAX_ZOOM`], `x` and `y` inside
    /// the grid.
    pub fn new(zoom: u32, x: u64, y: u64) -> Result<Self, TileError> {
        if zoom > MAX_ZOOM {
            return Err(TileError::TooDeep { zoom });
        }
        let side = 1u64 << zoom;
        if x >= side || y >= side {
            return Err(TileError::OutsideWorld { zoom, x, y, side });
        }
        Ok(WorldTile { zoom, x, y })
    }

    pub fn zoom(&self) -> u32 {
        self.zoom
    }

    /// The tile's side in the plane: `4 / 2^zoom`, exact.
    pub fn side(&self) -> f64 {
        WORLD_SIDE / (1u64 << self.zoom) as f64
    }

    /// The tile as a one-tile render of `max_iter` iterations: its
    /// viewport's corners are exact multiples of its side.
    pub fn params(&self, max_iter: u32) -> Result<RenderParams, TileError> {
        if !(1..=crate::params::MAX_ITER_LIMIT).contains(&max_iter) {
            return Err(TileError::MaxIter(max_iter));
        }
        let side = self.side();
        let xmin = WORLD_LEFT + self.x as f64 * side;
        let ymax = WORLD_TOP - self.y as f64 * side;
        let viewport = Viewport {
            xmin,
            xmax: xmin + side,
            ymin: ymax - side,
            ymax,
        };
        Ok(RenderParams::viewport(viewport, 1, TILE_PIXELS, max_iter))
    }
}

/// The counts of a tile's render (`params` from [`WorldTile::params`]).
pub fn render(params: &RenderParams) -> Vec<u32> {
    kernel::render_tile(params, TileId::new(0, 0))
}

/// How many times a cyclic colormap wraps around between count 0 and
/// `max_iter`.
pub const CYCLES: f64 = 3.0;

/// The explorer's colour of every count `0..=max_iter`: `x = log1p(count)
/// / log1p(max_iter)`, wrapped [`CYCLES`] times around a cyclic colormap
/// (`x·3 mod 1`) and used as is by the others, then looked up as the
/// picture's colours are (`floor(x·N)`). A deep view's counts span a small
/// part of `0..=max_iter`; wrapping keeps them in the colormap's full
/// range without a range of their own. Points that never escape get the
/// colour of `max_iter`: a cyclic map's first, the others' last.
pub fn palette(max_iter: u32, colormap: Colormap) -> Palette {
    let top = f64::from(max_iter).ln_1p();
    let scale = |count: u32| {
        let x = f64::from(count).ln_1p() / top;
        if colormap.is_cyclic() {
            (x * CYCLES).fract()
        } else {
            x
        }
    };
    tabulate(0, max_iter.min(u32::from(u16::MAX)), colormap, scale)
}

/// Counts a deep tile's colours take to go once round the colormap.
pub const DEEP_PERIOD: u32 = 64;

/// A deep tile's colours of its counts `min..=max`: linear in the count,
/// once round the colormap every [`DEEP_PERIOD`] counts (there and back
/// for a map that is not cyclic), whatever the budget. Past zoom 45 a
/// view's counts span a narrow band far from 0 (3,265..=3,286 in a tile at
/// 2^1100 on the way to the e1000 location) where [`palette`]'s log scale
/// runs flat: a screen of three colours. Never escaping gets the colour
/// [`palette`] gives it.
pub fn deep_palette(min: u32, max: u32, max_iter: u32, colormap: Colormap) -> Palette {
    let scale = |count: u32| {
        if count >= max_iter {
            return if colormap.is_cyclic() { 0.0 } else { 1.0 };
        }
        let x = f64::from(count % DEEP_PERIOD) / f64::from(DEEP_PERIOD);
        if colormap.is_cyclic() {
            x
        } else {
            1.0 - (2.0 * x - 1.0).abs()
        }
    };
    tabulate(min, max, colormap, scale)
}

/// The colours of `min..=max`, each count's position `scale(count)` in
/// `0..=1` looked up as the picture's colours are (`floor(x·N)`).
fn tabulate(min: u32, max: u32, colormap: Colormap, scale: impl Fn(u32) -> f64) -> Palette {
    let lut = colormap.lut();
    let n = lut.len();
    let table = (min..=max)
        .map(|count| lut[((scale(count) * n as f64) as usize).min(n - 1)])
        .collect();
    Palette::from_table_at(min, table)
}

/// A tile's counts as the explorer shows them: a PNG, top row = highest
/// imaginary part, coloured by [`palette`].
pub fn tile_png(
    counts: &[u32],
    max_iter: u32,
    colormap: Colormap,
) -> Result<Vec<u8>, EncodingError> {
    assert!(max_iter <= u32::from(u16::MAX), "an f64 tile's budget");
    encode(counts, palette(max_iter, colormap))
}

/// A deep tile's counts as the explorer shows them, coloured by
/// `deep_palette`, tabulated over the counts the tile has.
pub fn deep_tile_png(
    counts: &[u32],
    max_iter: u32,
    colormap: Colormap,
) -> Result<Vec<u8>, EncodingError> {
    let min = counts.iter().copied().min().unwrap_or(0).min(max_iter);
    let max = counts.iter().copied().max().unwrap_or(0).min(max_iter);
    encode(counts, deep_palette(min, max, max_iter, colormap))
}

fn encode(counts: &[u32], palette: Palette) -> Result<Vec<u8>, EncodingError> {
    let side = TILE_PIXELS as usize;
    assert_eq!(counts.len(), side * side, "a world tile has 256² counts");
    let mut png = PngRows::with_palette(side, side, palette)?;
    let mut bytes = Vec::new();
    for row in counts.chunks_exact(side).rev() {
        png.write_row(row)?;
        bytes.extend(png.take_bytes());
    }
    bytes.extend(png.finish()?);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_zero_is_the_whole_world() {
        let p = WorldTile::new(0, 0, 0).unwrap().params(500).unwrap();
        assert_eq!(
            <[f64; 4]>::from(*p.as_viewport().unwrap()),
            [-2.5, 1.5, -2.0, 2.0]
        );
        assert!(p.validate().is_ok());
    }

    #[test]
    fn children_tile_their_parent_exactly() {
        let parent = WorldTile::new(3, 5, 2)
            .unwrap()
            .params(100)
            .unwrap()
            .as_viewport()
            .copied()
            .unwrap();
        let child = |dx: u64, dy: u64| {
            WorldTile::new(4, 10 + dx, 4 + dy)
                .unwrap()
                .params(100)
                .unwrap()
                .as_viewport()
                .copied()
                .unwrap()
        };
        assert_eq!(child(0, 0).xmin, parent.xmin);
        assert_eq!(child(1, 0).xmax, parent.xmax);
        assert_eq!(child(0, 0).ymax, parent.ymax);
        assert_eq!(child(0, 1).ymin, parent.ymin);
        assert_eq!(child(0, 0).xmax, child(1, 0).xmin);
    }

    /// Pixel coordinates of a tile, by the contract's rule.
    fn axes(tile: WorldTile) -> (Vec<f64>, Vec<f64>) {
        let p = tile.params(10).unwrap();
        let a = p.tile_axes(TileId::new(0, 0));
        (a.xs, a.ys)
    }

    fn strictly_increasing(v: &[f64]) -> bool {
        v.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn the_deepest_zoom_still_tells_every_pixel_apart_and_the_next_would_not() {
        let last = (1u64 << MAX_ZOOM) - 1;
        // The world's corners and the tiles beside the origin.
        for (x, y) in [(0, 0), (last, last), (0, last), (last / 8 * 5, last / 2)] {
            let (xs, ys) = axes(WorldTile::new(MAX_ZOOM, x, y).unwrap());
            assert!(strictly_increasing(&xs), "x axis of {x},{y}");
            assert!(strictly_increasing(&ys), "y axis of {x},{y}");
        }
        // One zoom deeper, the leftmost tile's pixels would collide.
        let viewport = Viewport {
            xmin: WORLD_LEFT,
            xmax: WORLD_LEFT + WORLD_SIDE / (1u64 << (MAX_ZOOM + 1)) as f64,
            ymin: 0.0,
            ymax: 1.0,
        };
        let deeper = RenderParams::viewport(viewport, 1, TILE_PIXELS, 10);
        assert!(!strictly_increasing(
            &deeper.tile_axes(TileId::new(0, 0)).xs
        ));
        assert_eq!(
            WorldTile::new(MAX_ZOOM + 1, 0, 0),
            Err(TileError::TooDeep { zoom: MAX_ZOOM + 1 })
        );
    }

    #[test]
    fn addresses_outside_the_grid_and_bad_budgets_are_refused() {
        assert!(matches!(
            WorldTile::new(2, 4, 0),
            Err(TileError::OutsideWorld { side: 4, .. })
        ));
        let t = WorldTile::new(2, 3, 3).unwrap();
        assert_eq!(t.params(0), Err(TileError::MaxIter(0)));
        assert_eq!(t.params(65536), Err(TileError::MaxIter(65536)));
    }

    #[test]
    fn the_budget_grows_with_depth_and_is_capped() {
        assert_eq!(max_iter_for(0), 500);
        assert_eq!(max_iter_for(10), 2000);
        assert_eq!(max_iter_for(MAX_ZOOM), 7250);
        assert_eq!(max_iter_for(3322), 498_800);
        assert_eq!(max_iter_for(u32::MAX), MAX_TILE_BUDGET);
    }

    #[test]
    fn the_palette_depends_on_the_budget_only_and_wraps_cyclic_maps() {
        let lut = Colormap::TwilightShifted.lut();
        let p = palette(2000, Colormap::TwilightShifted);
        // Never escaping: the cyclic map's first colour, as the picture's
        // interior (x = 1) wraps to 0.
        assert_eq!(p.colour(2000), lut[0]);
        // Three times round: past a third of the log scale the map starts
        // again, from its end to its beginning.
        let index = |c: [u8; 3]| lut.iter().position(|&l| l == c).unwrap();
        let third = (2001f64.powf(1.0 / 3.0) - 1.0).ceil() as usize;
        let third = third as u32;
        let at = |c| index(p.colour(c));
        assert!(at(third) < lut.len() / 20, "{}", at(third));
        assert!(at(third - 1) > lut.len() * 19 / 20);
        let gray = palette(100, Colormap::Gray);
        assert_eq!(gray.colour(100), *Colormap::Gray.lut().last().unwrap());
    }

    /// A deep tile's colours go round the colormap every DEEP_PERIOD
    /// counts, whatever the budget (past 65535 too) and the tile's range;
    /// never escaping is the f64 tiles' colour of the budget.
    #[test]
    fn a_deep_tiles_colours_cycle_with_the_count() {
        let lut = Colormap::TwilightShifted.lut();
        let max_iter = 498_800;
        let mut counts = vec![300_000u32; 256 * 256];
        counts[0] = 300_000 + DEEP_PERIOD / 2;
        counts[1] = max_iter;
        counts[2] = 300_000 + DEEP_PERIOD;
        let png = deep_tile_png(&counts, max_iter, Colormap::TwilightShifted).unwrap();
        let decoded = image::load_from_memory(&png).unwrap().to_rgb8();
        let at = |x: u32| decoded.get_pixel(x, 255).0;
        // 300,000 = 4,687·64 + 32: half way round, then the same again.
        assert_eq!(at(3), lut[lut.len() / 2]);
        assert_eq!(at(2), at(3));
        assert_eq!(at(0), lut[0]);
        assert_eq!(at(1), lut[0], "never escaping");
        // The same counts at another budget: the same colours.
        let other = deep_tile_png(&counts, 400_000, Colormap::TwilightShifted).unwrap();
        assert_eq!(other, png);
        // Not cyclic: there and back.
        let gray = deep_palette(0, 64, 1000, Colormap::Gray);
        let g = Colormap::Gray.lut();
        assert_eq!(gray.colour(0), g[0]);
        assert_eq!(gray.colour(32), g[g.len() - 1]);
        assert_eq!(gray.colour(16), gray.colour(48));
    }

    #[test]
    fn a_tile_png_is_its_counts_on_the_budget_scale_top_row_first() {
        let mut counts = vec![0u32; 256 * 256];
        counts[0] = 100; // bottom-left pixel
        let png = tile_png(&counts, 100, Colormap::Gray).unwrap();
        let decoded = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(decoded.dimensions(), (256, 256));
        let lut = Colormap::Gray.lut();
        assert_eq!(decoded.get_pixel(0, 255).0, lut[lut.len() - 1]);
        assert_eq!(decoded.get_pixel(0, 0).0, lut[0]);
    }
}
