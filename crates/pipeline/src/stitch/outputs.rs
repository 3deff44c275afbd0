//! The stitch's outputs, one band (a row of tiles) at a time: the PNG and
//! the Deep Zoom pyramid (one [`PictureRows`], as the client's recolouring
//! makes them), the `.npy` written back to front, the report's thumbnail
//! and the iteration count. Memory is a band and the encoders' state,
//! whatever the image size.

use std::sync::Arc;

use mandel_core::counts::npy_header;
use mandel_core::picture::{self, PictureRows};
use mandel_core::png::PngRows;
use mandel_core::{CountRange, RenderParams, blob, kernel};

use super::fetch::fetch_band;
use super::{Pyramid, STORED_COLORMAP};
use crate::error::PipelineError;
use crate::job::{JobId, TileStat};
use crate::progress::RowTiles;
use crate::pyramid::PackUpload;
use crate::store::ObjectStore;
use crate::upload::{Appender, Prepender};

/// What [`write_outputs`] wrote and gathered.
pub(super) struct Written {
    /// Brute-force iterations of the image.
    pub(super) iterations: u64,
    /// Every tile's stat, by row and column.
    pub(super) stats: Vec<TileStat>,
    /// The report's picture (a PNG).
    pub(super) thumbnail: Vec<u8>,
    /// The size of `image.png`, and of the pyramid's pack (0: none).
    pub(super) image_bytes: u64,
    pub(super) pyramid_bytes: u64,
}

/// Where the outputs go as they are encoded.
struct Outputs<'a> {
    png: Appender<'a>,
    npy: Prepender<'a>,
    pyramid: Option<PackUpload>,
}

/// Writes the PNG (rows top first) and the `.npy` (back to front) of the
/// job, one row of tiles at a time, fetching the next row while one
/// encodes, and, with [`Pyramid::Write`], the pyramid's tiles as the rows
/// complete them. An output that fails is aborted, never left half written
/// under its key.
pub(super) async fn write_outputs(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
    rows: RowTiles,
    range: CountRange,
    pyramid: Pyramid,
) -> Result<Written, PipelineError> {
    let side = params.image_side();
    let width = params.count_width();
    let npy_size = npy_header(side as usize, side as usize, width).len() as u64
        + width.bytes() as u64 * side * side;
    let mut out = Outputs {
        png: Appender::start(&**store, &job.image_key()).await?,
        npy: Prepender::start(&**store, &job.counts_key(), npy_size).await?,
        pyramid: (pyramid == Pyramid::Write)
            .then(|| PackUpload::start(store, job, side as usize, side as usize)),
    };
    match stream_bands(store, job, params, rows, range, &mut out).await {
        Ok(mut written) => {
            written.image_bytes = out.png.finish().await?;
            out.npy.finish().await?;
            if let Some(pack) = out.pyramid {
                written.pyramid_bytes = pack.finish().await?;
            }
            Ok(written)
        }
        Err(e) => {
            out.png.abort().await;
            out.npy.abort().await;
            if let Some(pack) = out.pyramid {
                pack.abort().await;
            }
            Err(e)
        }
    }
}

/// The bands, top row of tiles first, into `out`.
async fn stream_bands(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
    mut rows: RowTiles,
    range: CountRange,
    out: &mut Outputs<'_>,
) -> Result<Written, PipelineError> {
    let side = params.image_side() as usize;
    let p = params.tile_pixels as usize;
    let encode_err = |e: mandel_core::png::EncodingError| PipelineError::Encode {
        job: job.clone(),
        reason: e.to_string(),
    };
    let outputs = picture::Outputs {
        png: true,
        pyramid: out.pyramid.is_some(),
    };
    let mut encoder =
        PictureRows::new(side, side, STORED_COLORMAP, range, outputs).map_err(encode_err)?;
    let mut fetch = |row: u32| {
        let (store, job, params) = (Arc::clone(store), job.clone(), params.clone());
        let listed = rows.take(row);
        tokio::spawn(async move { fetch_band(&store, &job, &params, row, listed).await })
    };
    let mut next = Some(fetch(params.tiles_per_side - 1));
    let mut iterations = 0;
    let mut stats = Vec::with_capacity(params.tile_count() as usize);
    let mut thumbnail = Thumbnail::new(side);
    for row in (0..params.tiles_per_side).rev() {
        let band = next
            .take()
            .expect("fetched")
            .await
            .expect("tile fetch panicked")?;
        if row > 0 {
            next = Some(fetch(row - 1));
        }
        // The picture row by row on one core; the .npy bytes and the
        // iteration count on another.
        let counts = Arc::new(band.counts);
        let (max_iter, width) = (params.max_iter, params.count_width());
        let for_png = Arc::clone(&counts);
        let (png_encoded, npy_encoded) = tokio::join!(
            tokio::task::spawn_blocking(move || {
                let mut tiles = Vec::new();
                for y in (0..p).rev() {
                    tiles.extend(encoder.write_row(&for_png[y * side..(y + 1) * side])?);
                }
                let bytes = encoder.take_png_bytes();
                Ok::<_, mandel_core::png::EncodingError>((encoder, bytes, tiles))
            }),
            tokio::task::spawn_blocking(move || {
                let its = kernel::brute_force_iterations(&counts, max_iter);
                thumbnail.take(&counts, row as usize * p, side);
                (blob::encode(&counts, width), its, thumbnail)
            }),
        );
        let (enc, png_bytes, pyramid_tiles) =
            png_encoded.expect("encoder panicked").map_err(encode_err)?;
        let (npy_bytes, its, thumb) = npy_encoded.expect("encoder panicked");
        (encoder, thumbnail) = (enc, thumb);
        iterations += its;
        stats.extend(band.stats);
        out.png.write(&png_bytes).await?;
        out.npy.write_front(&npy_bytes).await?;
        if let Some(pack) = &out.pyramid {
            pack.send(pyramid_tiles).await;
        }
    }
    let (png_tail, pyramid_tail) = encoder.finish().map_err(encode_err)?;
    out.png.write(&png_tail).await?;
    out.npy
        .write_front(&npy_header(side, side, params.count_width()))
        .await?;
    if let Some(pack) = &out.pyramid {
        pack.send(pyramid_tail).await;
    }
    stats.sort_by_key(|s| (s.row, s.col));
    Ok(Written {
        iterations,
        stats,
        thumbnail: thumbnail.encode(range).map_err(encode_err)?,
        image_bytes: 0,
        pyramid_bytes: 0,
    })
}

/// The report's picture: at most this many pixels a side.
const THUMBNAIL_SIDE: usize = 512;

/// Every `step`th pixel of every `step`th row of the image, top row first:
/// the picture the report shows, gathered as the bands stream past.
struct Thumbnail {
    step: usize,
    width: usize,
    counts: Vec<u32>,
}

impl Thumbnail {
    fn new(side: usize) -> Self {
        let step = side.div_ceil(THUMBNAIL_SIDE).max(1);
        Thumbnail {
            step,
            width: side.div_ceil(step),
            counts: Vec::new(),
        }
    }

    /// Takes its rows of a band whose first row is image row `first`.
    fn take(&mut self, band: &[u32], first: usize, side: usize) {
        for (y, row) in band.chunks_exact(side).enumerate().rev() {
            if (first + y).is_multiple_of(self.step) {
                self.counts.extend(row.iter().step_by(self.step));
            }
        }
    }

    /// The thumbnail as a PNG, coloured like the picture.
    fn encode(&self, range: CountRange) -> Result<Vec<u8>, mandel_core::png::EncodingError> {
        let height = self.counts.len() / self.width;
        let mut png = PngRows::new(self.width, height, STORED_COLORMAP, range)?;
        for row in self.counts.chunks_exact(self.width) {
            png.write_row(row)?;
        }
        png.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnail_takes_every_step_th_pixel_top_row_first() {
        // A 1030-pixel side: step 3 (at most 512 a side), 344 a side.
        let side = 1030;
        let mut thumb = Thumbnail::new(side);
        assert_eq!((thumb.step, thumb.width), (3, 344));
        let value = |x: usize, y: usize| ((x * 7 + y * 13) % 65536) as u32;
        // Bands of 10 rows, top band first, as the stitch streams them.
        for first in (0..side).step_by(10).collect::<Vec<_>>().into_iter().rev() {
            let band: Vec<u32> = (first..first + 10)
                .flat_map(|y| (0..side).map(move |x| value(x, y)))
                .collect();
            thumb.take(&band, first, side);
        }
        let rows: Vec<usize> = (0..side).step_by(3).rev().collect();
        assert_eq!(thumb.counts.len(), rows.len() * 344);
        for (i, &y) in rows.iter().enumerate() {
            for (j, x) in (0..side).step_by(3).enumerate() {
                assert_eq!(thumb.counts[i * 344 + j], value(x, y));
            }
        }
        let png = thumb.encode(CountRange { min: 0, max: 65535 }).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }
}
