//! Tile geometry: which tile is where, and the exact pixel coordinates.
//!
//! The coordinates reproduce the notebook's `np.linspace(x0, x0 + tile_w, P,
//! endpoint=False)` operation by operation, because a one-ulp difference in
//! `c` can change an escape count near the boundary.

use serde::{Deserialize, Serialize};

use crate::params::RenderParams;

/// A tile's position in the grid. Row 0 holds the lowest imaginary parts
/// (`ymin`), column 0 the lowest real parts (`xmin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TileId {
    pub row: u32,
    pub col: u32,
}

impl TileId {
    pub fn new(row: u32, col: u32) -> Self {
        TileId { row, col }
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.row, self.col)
    }
}

/// The real (`xs`, one per column) and imaginary (`ys`, one per row)
/// coordinates of a tile's pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct TileAxes {
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
}

impl RenderParams {
    /// Every tile of the job, row-major from `(0, 0)`.
    pub fn tiles(&self) -> impl Iterator<Item = TileId> + use<> {
        let n = self.tiles_per_side;
        (0..n).flat_map(move |row| (0..n).map(move |col| TileId { row, col }))
    }

    /// Whether `tile` lies inside this job's grid.
    pub fn contains(&self, tile: TileId) -> bool {
        tile.row < self.tiles_per_side && tile.col < self.tiles_per_side
    }

    /// The pixel coordinates of `tile`, exactly as the notebook computes them.
    ///
    /// # Panics
    /// For a deep view: its pixels are not f64 coordinates
    /// ([`crate::deep::DeepRenderer`] renders them).
    pub fn tile_axes(&self, tile: TileId) -> TileAxes {
        let v = self
            .as_viewport()
            .expect("tile_axes is for viewport jobs; deep jobs render by perturbation");
        let tiles = f64::from(self.tiles_per_side);
        let tile_w = (v.xmax - v.xmin) / tiles;
        let tile_h = (v.ymax - v.ymin) / tiles;
        let x0 = v.xmin + f64::from(tile.col) * tile_w;
        let y0 = v.ymin + f64::from(tile.row) * tile_h;
        let n = self.tile_pixels as usize;
        TileAxes {
            xs: linspace_open(x0, x0 + tile_w, n),
            ys: linspace_open(y0, y0 + tile_h, n),
        }
    }
}

/// `np.linspace(start, stop, n, endpoint=False)` for float64, bit for bit:
/// numpy computes `step = (stop - start) / n` and then `j * step + start`
/// (two roundings, no fused multiply-add), falling back to
/// `(j / n) * delta + start` when the step underflows to zero.
pub fn linspace_open(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let div = n as f64;
    let delta = stop - start;
    let step = delta / div;
    (0..n)
        .map(|j| {
            let j = j as f64;
            if step == 0.0 {
                (j / div) * delta + start
            } else {
                j * step + start
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_row_major_and_inside() {
        let p = RenderParams {
            tiles_per_side: 3,
            ..RenderParams::default()
        };
        let all: Vec<_> = p.tiles().collect();
        assert_eq!(all.len(), 9);
        assert_eq!(all[0], TileId::new(0, 0));
        assert_eq!(all[1], TileId::new(0, 1));
        assert_eq!(all[8], TileId::new(2, 2));
        assert!(all.iter().all(|t| p.contains(*t)));
        assert!(!p.contains(TileId::new(3, 0)));
        assert!(!p.contains(TileId::new(0, 3)));
    }

    #[test]
    fn linspace_matches_numpy_values() {
        // np.linspace(0.1, 0.2, 3, endpoint=False) printed with repr().
        let xs = linspace_open(0.1, 0.2, 3);
        assert_eq!(xs, vec![0.1, 0.13333333333333333, 0.16666666666666669]);
        assert_eq!(linspace_open(-1.0, 1.0, 4), vec![-1.0, -0.5, 0.0, 0.5]);
    }

    #[test]
    fn axes_start_at_the_tile_origin() {
        let p = RenderParams::default();
        let a = p.tile_axes(TileId::new(0, 0));
        assert_eq!(a.xs[0], -0.745);
        assert_eq!(a.ys[0], 0.105);
        assert_eq!(a.xs.len(), 256);
        let b = p.tile_axes(TileId::new(15, 15));
        assert!(b.xs[255] < -0.735 && b.ys[255] < 0.115);
    }
}
