//! Stitching a finished job: the stitch function's use case.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use mandel_core::counts::npy_header;
use mandel_core::png::PngRows;
use mandel_core::{Colormap, CountRange, RenderParams, TileId, blob, kernel, pyramid};
use tracing::{info, warn};

use crate::error::PipelineError;
use crate::events;
use crate::job::{Failed, Failure, JobId, ResultManifest, StitchAttempt, StitchMessage, TileStat};
use crate::progress::{Progress, RowTiles};
use crate::queue::Delivery;
use crate::records::{self, read_params, record_failure};
use crate::store::{Metadata, ObjectStore, PutMode, PutOutcome, StoreError};
use crate::tiles::{self, StoredTile, put_tile, tile_stat};
use crate::upload::{Appender, Prepender};

/// The colormap of the stored `image.png`. Other colormaps are applied by
/// the client from `counts.npy`.
pub const STORED_COLORMAP: Colormap = Colormap::TwilightShifted;

/// Whether a stitch also writes the job's Deep Zoom pyramid
/// (`jobs/<job>/pyramid/`, [`JobId::pyramid_prefix`]) as the picture
/// streams: the stitch function always does, so every cloud job can be
/// explored; the embedded mode does not (its `--pyramid` is cut from the
/// counts, in any colormap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pyramid {
    Write,
    Skip,
}

/// What a stitch did.
#[derive(Clone, Debug, PartialEq)]
pub enum StitchOutcome {
    /// This call published the result.
    Published(Box<ResultManifest>),
    /// A result was already there (a duplicate stitch message); nothing written.
    AlreadyDone,
    /// The job is cancelled; nothing written.
    Cancelled,
}

fn parse_stitch(body: &str) -> Result<StitchMessage, PipelineError> {
    serde_json::from_str(body).map_err(|e| PipelineError::BadMessage {
        reason: e.to_string(),
    })
}

/// Parses a stitch-queue delivery and stitches its job, as the stitch
/// function and the embedded mode run it: it marks the attempt
/// ([`StitchAttempt`]) when it starts on a known job, and if it fails on the delivery that is the queue's last
/// (`max_receive_count`), or in a way no retry can mend (a policy refuses a
/// call, the stored params are invalid), a [`Failed::Stitch`] record tells
/// the waiting client.
pub async fn handle_stitch_delivery(
    store: &Arc<dyn ObjectStore>,
    delivery: &Delivery,
    max_receive_count: Option<u32>,
    pyramid: Pyramid,
) -> Result<StitchOutcome, PipelineError> {
    let msg = parse_stitch(&delivery.body)?;
    let last = delivery.is_final(max_receive_count);
    let attempt = StitchAttempt::starting(delivery.receive_count, last);
    let result = stitch_marked(store, &msg.job, Some(attempt), pyramid).await;
    // Params gone from a job that has tiles: deleted by hand, not a
    // stranger's message (which must write nothing).
    let params_gone = async |e: &PipelineError| {
        matches!(e, PipelineError::UnknownJob { .. })
            && store
                .list(&msg.job.tiles_prefix())
                .await
                .is_ok_and(|tiles| !tiles.is_empty())
    };
    if let Err(e) = &result
        && (e.is_denied()
            || matches!(e, PipelineError::BadStoredParams { .. })
            || (last && !e.is_permanent())
            || params_gone(e).await)
    {
        let failure = Failure {
            what: Failed::Stitch,
            reason: e.to_string(),
            attempts: delivery.receive_count,
            worker: "stitch".to_string(),
        };
        if let Err(e) = record_failure(&**store, &msg.job, &failure).await {
            warn!(job = %msg.job, error = %e, "could not record the failure");
        }
    }
    result
}

/// Streams the tiles into `image.png` and `counts.npy`, then publishes
/// `result.json` last with create-only semantics, so exactly one result is
/// published however many stitch messages arrive. Idempotent: a job with a
/// result is left alone.
///
/// Memory is bounded by a row of tiles, whatever the image size: the
/// image's count range comes from one listing (of the job if it has at
/// most a thousand tiles, else of its row markers), then
/// rows are fetched top row first (the next one while the current one
/// encodes) and go out as multipart uploads as they are encoded.
pub async fn stitch(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    pyramid: Pyramid,
) -> Result<StitchOutcome, PipelineError> {
    stitch_marked(store, job, None, pyramid).await
}

/// [`stitch`], marking `attempt` once the job is known to exist.
async fn stitch_marked(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    attempt: Option<StitchAttempt>,
    pyramid: Pyramid,
) -> Result<StitchOutcome, PipelineError> {
    let started = Instant::now();
    let started_ms = crate::job::unix_ms();
    let params = read_params(&**store, job).await?;
    // A job listed whole answers everything below with this one listing.
    let progress = Progress::read(&**store, job, &params).await?;
    if progress.finished().await? {
        return Ok(StitchOutcome::AlreadyDone);
    }
    if progress.cancelled().await? {
        return Ok(StitchOutcome::Cancelled);
    }
    if let Some(attempt) = &attempt {
        records::mark_attempt(&**store, job, attempt).await;
    }
    let (range, mut rows) = progress.into_stitch_rows().await?;
    let side = params.image_side();
    let mut png = Appender::start(&**store, &job.image_key()).await?;
    let npy_size = npy_header(side as usize, side as usize).len() as u64 + 2 * side * side;
    let mut npy = Prepender::start(&**store, &job.counts_key(), npy_size).await?;
    let written = write_outputs(
        store, job, &params, &mut rows, range, &mut png, &mut npy, pyramid,
    )
    .await;
    let Written {
        iterations,
        stats: tile_stats,
        thumbnail,
    } = match written {
        Ok(w) => w,
        Err(e) => {
            png.abort().await;
            npy.abort().await;
            return Err(e);
        }
    };
    let image_bytes = png.finish().await?;
    npy.finish().await?;

    let manifest = ResultManifest {
        job: job.clone(),
        params,
        width: side,
        height: side,
        tiles: params.tile_count(),
        image_key: job.image_key(),
        counts_key: job.counts_key(),
        colormap: STORED_COLORMAP.name().to_string(),
        iterations,
        compute_us_total: tile_stats.iter().map(|s| s.compute_us).sum(),
        stitch_us: started.elapsed().as_micros() as u64,
        stitch_started_ms: started_ms,
        image_bytes,
    };
    records::write_stats(&**store, job, &tile_stats).await?;
    // The report before the result, so a finished job always has one.
    let submission = records::read_submission(&**store, job).await?;
    let html = crate::report::render(&manifest, &tile_stats, &thumbnail, submission.as_ref());
    records::write_report(&**store, job, html).await?;
    match records::publish_result(&**store, &manifest).await? {
        PutOutcome::Written => {
            let peak_rss_mib = crate::process::peak_rss_bytes().map(|b| b >> 20);
            info!(%job, total = ?started.elapsed(), peak_rss_mib, message = events::STITCHED);
            Ok(StitchOutcome::Published(Box::new(manifest)))
        }
        PutOutcome::AlreadyExists => Ok(StitchOutcome::AlreadyDone),
    }
}

/// One row of tiles, fetched: `P` rows of counts across the whole image.
struct Band {
    counts: Vec<u16>,
    stats: Vec<TileStat>,
}

/// The report's picture: at most this many pixels a side.
const THUMBNAIL_SIDE: usize = 512;

/// Every `step`th pixel of every `step`th row of the image, top row first:
/// the picture the report shows, gathered as the bands stream past.
struct Thumbnail {
    step: usize,
    width: usize,
    counts: Vec<u16>,
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
    fn take(&mut self, band: &[u16], first: usize, side: usize) {
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

/// What [`write_outputs`] gathered besides the outputs.
struct Written {
    iterations: u64,
    stats: Vec<TileStat>,
    thumbnail: Vec<u8>,
}

/// Writes the PNG (rows top first) and the `.npy` (back to front) one row
/// of tiles at a time, fetching the next row while one encodes, and the
/// pyramid's tiles as the PNG's rows complete them. Returns the
/// brute-force iteration count, the tiles' stats and a thumbnail.
#[allow(clippy::too_many_arguments)]
async fn write_outputs(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
    rows: &mut RowTiles,
    range: CountRange,
    png: &mut Appender<'_>,
    npy: &mut Prepender<'_>,
    pyramid: Pyramid,
) -> Result<Written, PipelineError> {
    let side = params.image_side() as usize;
    let p = params.tile_pixels as usize;
    let encode_err = |e: mandel_core::png::EncodingError| PipelineError::Encode {
        job: job.clone(),
        reason: e.to_string(),
    };
    let mut encoder = PngRows::new(side, side, STORED_COLORMAP, range).map_err(encode_err)?;
    let mut levels = (pyramid == Pyramid::Write).then(|| pyramid::Pyramid::new(side, side));
    let uploads = (pyramid == Pyramid::Write).then(|| PyramidUploads::start(store, job));
    let mut fetch = |row: u32| {
        let (store, job, params) = (Arc::clone(store), job.clone(), *params);
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
        // The PNG row by row on one core; the .npy bytes and the
        // iteration count on another.
        let counts = Arc::new(band.counts);
        let max_iter = params.max_iter;
        let for_png = Arc::clone(&counts);
        let (png_encoded, npy_encoded) = tokio::join!(
            tokio::task::spawn_blocking(move || {
                let mut tiles = Vec::new();
                for y in (0..p).rev() {
                    let rgb = encoder.write_row(&for_png[y * side..(y + 1) * side])?;
                    if let Some(levels) = &mut levels {
                        tiles.extend(levels.push_row(rgb)?);
                    }
                }
                let bytes = encoder.take_bytes();
                Ok::<_, mandel_core::png::EncodingError>((encoder, levels, bytes, tiles))
            }),
            tokio::task::spawn_blocking(move || {
                let its = kernel::brute_force_iterations(&counts, max_iter);
                thumbnail.take(&counts, row as usize * p, side);
                (blob::encode(&counts), its, thumbnail)
            }),
        );
        let (enc, pyr, png_bytes, pyramid_tiles) =
            png_encoded.expect("encoder panicked").map_err(encode_err)?;
        let (npy_bytes, its, thumb) = npy_encoded.expect("encoder panicked");
        (encoder, levels, thumbnail) = (enc, pyr, thumb);
        iterations += its;
        stats.extend(band.stats);
        png.write(&png_bytes).await?;
        npy.write_front(&npy_bytes).await?;
        if let Some(uploads) = &uploads {
            uploads.send(pyramid_tiles).await;
        }
    }
    png.write(&encoder.finish().map_err(encode_err)?).await?;
    npy.write_front(&npy_header(side, side)).await?;
    if let (Some(levels), Some(uploads)) = (levels, uploads) {
        uploads.send(levels.finish().map_err(encode_err)?).await;
        uploads.finish().await?;
        for (path, body) in mandel_core::viewer::pyramid_files(side, side) {
            let key = job.pyramid_key(path);
            store
                .put(&key, Bytes::from(body), Metadata::new(), PutMode::Overwrite)
                .await?;
        }
    }
    stats.sort_by_key(|s| (s.row, s.col));
    Ok(Written {
        iterations,
        stats,
        thumbnail: thumbnail.encode(range).map_err(encode_err)?,
    })
}

/// The pyramid's tiles going up in the background, a few at a time, while
/// the stitch goes on with the next band: keyed overwrites of
/// deterministic bytes, so a stitch that dies and runs again writes the
/// same objects.
struct PyramidUploads {
    tiles: tokio::sync::mpsc::Sender<pyramid::Tile>,
    task: tokio::task::JoinHandle<Result<(), PipelineError>>,
}

impl PyramidUploads {
    fn start(store: &Arc<dyn ObjectStore>, job: &JobId) -> Self {
        // About a band's top-level tiles of the widest image waiting.
        let (tiles, mut rx) = tokio::sync::mpsc::channel::<pyramid::Tile>(128);
        let (store, job) = (Arc::clone(store), job.clone());
        let task = tokio::spawn(async move {
            let incoming = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|t| t.map(Ok)));
            incoming
                .try_for_each_concurrent(crate::upload::PARALLEL_PUTS, |t: pyramid::Tile| {
                    let (store, key) = (Arc::clone(&store), job.pyramid_key(&t.path()));
                    async move {
                        store
                            .put(
                                &key,
                                Bytes::from(t.png),
                                Metadata::new(),
                                PutMode::Overwrite,
                            )
                            .await
                            .map(drop)
                            .map_err(PipelineError::from)
                    }
                })
                .await
        });
        PyramidUploads { tiles, task }
    }

    /// Queues tiles; if the uploads have failed, [`finish`](Self::finish)
    /// says why.
    async fn send(&self, tiles: Vec<pyramid::Tile>) {
        for t in tiles {
            if self.tiles.send(t).await.is_err() {
                return;
            }
        }
    }

    /// Waits for every queued tile to be stored.
    async fn finish(self) -> Result<(), PipelineError> {
        drop(self.tiles);
        self.task.await.expect("pyramid uploads panicked")
    }
}

/// Fetches one row of tiles with bounded parallelism into a band, checking
/// each blob's size, recorded checksum and named range. The row is known
/// whole ([`Progress::into_stitch_rows`]), so a tile that fails a check, or is no longer
/// listed whole, was damaged since: it is rendered again (and its good
/// bytes put back), never stitched as it is. The row's tiles are `listed`
/// already, or listed now.
async fn fetch_band(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
    row: u32,
    listed: Option<BTreeMap<u32, StoredTile>>,
) -> Result<Band, PipelineError> {
    let mut stored = match listed {
        Some(tiles) => tiles,
        None => tiles::row_tiles(&**store, job, params, row).await?,
    };
    let (p, side) = (params.tile_pixels as usize, params.image_side() as usize);
    let mut band = vec![0u16; p * side];
    let mut stats = Vec::with_capacity(params.tiles_per_side as usize);
    let mut gets = futures::stream::iter((0..params.tiles_per_side).map(|col| {
        let store = Arc::clone(store);
        let stored = stored.remove(&col);
        async move {
            let got = match &stored {
                Some(t) => Some(store.get(&t.key).await),
                None => None,
            };
            (TileId::new(row, col), stored, got)
        }
    }))
    .buffer_unordered(tiles::PARALLEL_GETS);
    let mut counts = vec![0u16; p * p];
    while let Some((tile, stored, got)) = gets.next().await {
        let object = match got {
            Some(Ok(o)) => Some(o),
            None | Some(Err(StoreError::NotFound { .. })) => None,
            Some(Err(e)) => return Err(e.into()),
        };
        let problem = match (&object, &stored) {
            (Some(object), Some(stored)) => tiles::check_blob(object, stored.range, &mut counts),
            _ => Some("not stored whole".to_string()),
        };
        let stat = if let Some(reason) = problem {
            warn!(%job, %tile, %reason, "damaged tile; rendering it again");
            let (again, stat) = rerender(store, job, params, tile).await?;
            counts = again;
            stat
        } else {
            tile_stat(tile, &object.as_ref().expect("checked").metadata)
        };
        let x0 = tile.col as usize * p;
        for (y, src) in counts.chunks_exact(p).enumerate() {
            band[y * side + x0..y * side + x0 + p].copy_from_slice(src);
        }
        stats.push(stat);
    }
    Ok(Band {
        counts: band,
        stats,
    })
}

/// Renders `tile` again and puts its blob back.
async fn rerender(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
    tile: TileId,
) -> Result<(Vec<u16>, TileStat), PipelineError> {
    let params = *params;
    let started_ms = crate::job::unix_ms();
    let (counts, compute_us) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let counts = kernel::render_tile(&params, tile);
        (counts, started.elapsed().as_micros() as u64)
    })
    .await
    .expect("tile kernel panicked");
    let stat = TileStat {
        row: tile.row,
        col: tile.col,
        compute_us,
        worker: "stitch".to_string(),
        started_ms,
        batch_ms: started_ms,
        boot_ms: started_ms,
    };
    put_tile(&**store, job, &counts, &stat).await?;
    Ok((counts, stat))
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
        let value = |x: usize, y: usize| ((x * 7 + y * 13) % 65536) as u16;
        // Bands of 10 rows, top band first, as the stitch streams them.
        for first in (0..side).step_by(10).collect::<Vec<_>>().into_iter().rev() {
            let band: Vec<u16> = (first..first + 10)
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
