//! One way to render a job's tiles, whatever its view: the f64 kernel for a
//! viewport, perturbation from the job's reference orbit for a deep view.
//! The worker, the embedded pipeline and the estimate's sample all render
//! through a [`TileRenderer`], made once per job.

use std::sync::atomic::AtomicBool;

use crate::counts::CountsImage;
use crate::deep::{BLA_EPSILON, DeepRenderer, OrbitPoint, Work};
use crate::geometry::TileId;
use crate::kernel;
use crate::params::{RenderParams, View};

/// A job's tiles' renderer: its params, and for a deep job its reference
/// orbit prepared (in the number type the zoom needs, with its BLA table).
pub struct TileRenderer {
    params: RenderParams,
    deep: Option<DeepRenderer>,
}

impl std::fmt::Debug for TileRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileRenderer")
            .field("params", &self.params)
            .field("orbit_points", &self.deep.as_ref().map(|d| d.orbit_len()))
            .finish()
    }
}

impl TileRenderer {
    /// The renderer of a viewport job.
    ///
    /// # Panics
    /// For a deep job (it needs its orbit: [`TileRenderer::deep`]).
    pub fn viewport(params: RenderParams) -> TileRenderer {
        assert!(params.as_viewport().is_some(), "a deep job needs its orbit");
        TileRenderer { params, deep: None }
    }

    /// The renderer of a deep job from its reference orbit (`Z_0` first).
    ///
    /// # Panics
    /// For a viewport job, or an empty orbit.
    pub fn deep(params: RenderParams, orbit: &[OrbitPoint]) -> TileRenderer {
        let View::Deep(view) = &params.view else {
            panic!("a viewport job has no orbit");
        };
        let renderer = DeepRenderer::new(
            view,
            params.image_side(),
            params.max_iter,
            orbit,
            BLA_EPSILON,
        );
        TileRenderer {
            deep: Some(renderer),
            params,
        }
    }

    pub fn params(&self) -> &RenderParams {
        &self.params
    }

    /// The whole image, tile by tile on this thread: what a job of these
    /// params must produce (tests and tools; the pipeline renders tiles).
    pub fn render_image(&self) -> CountsImage {
        let mut image = CountsImage::for_params(&self.params);
        for tile in self.params.tiles() {
            let counts = self.render_tile(tile);
            image.place_tile(self.params.tile_pixels as usize, tile, &counts);
        }
        image
    }

    /// The tile's counts, row-major, row 0 the lowest imaginary part.
    pub fn render_tile(&self, tile: TileId) -> Vec<u32> {
        self.render_tile_until(tile, &AtomicBool::new(false))
            .expect("never stopped")
    }

    /// The tile's counts, or `None` if `stop` was set between two bands of
    /// rows (a worker leaving a tile it cannot finish before its deadline).
    pub fn render_tile_until(&self, tile: TileId, stop: &AtomicBool) -> Option<Vec<u32>> {
        self.render_tile_counting(tile, stop)
            .map(|(counts, _)| counts)
    }

    /// [`render_tile_until`](Self::render_tile_until), with what a deep
    /// tile's pixels cost (zero for a viewport tile).
    pub fn render_tile_counting(
        &self,
        tile: TileId,
        stop: &AtomicBool,
    ) -> Option<(Vec<u32>, Work)> {
        let Some(deep) = &self.deep else {
            let counts = kernel::render_tile_until(&self.params, tile, stop)?;
            return Some((counts, Work::default()));
        };
        let p = u64::from(self.params.tile_pixels);
        let (row0, col0) = (u64::from(tile.row) * p, u64::from(tile.col) * p);
        let mut out = vec![0u32; (p * p) as usize];
        let work = deep.render_until(row0..row0 + p, col0..col0 + p, &mut out, stop)?;
        Some((out, work))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deep::{self, DeepView};

    #[test]
    fn a_viewport_tile_is_the_kernel_s() {
        let params = RenderParams {
            tiles_per_side: 4,
            tile_pixels: 32,
            max_iter: 200,
            ..RenderParams::default()
        };
        let r = TileRenderer::viewport(params.clone());
        let tile = TileId::new(1, 2);
        assert_eq!(r.render_tile(tile), kernel::render_tile(&params, tile));
    }

    #[test]
    fn a_deep_image_in_tiles_is_the_image_in_one_piece() {
        let view = DeepView::parse("-1.7497", "0.00003", "1e6").unwrap();
        let tiled = RenderParams {
            view: View::Deep(view.clone()),
            tiles_per_side: 3,
            tile_pixels: 20,
            max_iter: 3000,
        };
        let orbit = deep::reference_orbit(&view, 60, 3000);
        let r = TileRenderer::deep(tiled.clone(), &orbit);
        let whole = DeepRenderer::new(&view, 60, 3000, &orbit, BLA_EPSILON);
        let mut image = vec![0u32; 60 * 60];
        whole.render(0..60, 0..60, &mut image);
        // Tile by tile, the image rendered in one piece.
        assert_eq!(r.render_image().data(), &image[..]);
        let stop = AtomicBool::new(true);
        assert_eq!(r.render_tile_until(TileId::new(0, 0), &stop), None);
    }
}
