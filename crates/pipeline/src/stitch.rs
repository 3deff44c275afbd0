//! Stitching a finished job: the stitch function's use case.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mandel_core::{Colormap, CountsImage, RenderParams, TileId, blob, kernel, png};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::error::PipelineError;
use crate::job::{
    Failed, Failure, JobId, ResultManifest, StitchAttempt, StitchMessage, TileStat, hex,
};
use crate::params_cache::load_params;
use crate::queue::{Delivery, Queue};
use crate::store::{Metadata, ObjectStore, PutMode, PutOutcome, StoreError};
use crate::tiles::{META_COMPUTE_US, META_SHA256, META_WORKER, put_tile, record_failure};

/// How many tile GETs a stitch keeps in flight.
const PARALLEL_GETS: usize = 32;

/// The colormap of the stored `image.png`. Other colormaps are applied by
/// the client from `counts.npy`.
pub const STORED_COLORMAP: Colormap = Colormap::TwilightShifted;

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

/// Parses a stitch-queue message body and stitches its job.
pub async fn handle_stitch_message(
    store: &Arc<dyn ObjectStore>,
    body: &str,
) -> Result<StitchOutcome, PipelineError> {
    stitch(store, &parse_stitch(body)?.job).await
}

/// [`handle_stitch_message`] for a queue delivery, as the stitch function
/// runs it: it marks the attempt ([`StitchAttempt`]) when it starts on a
/// known job, and if it fails on the delivery that is the queue's last
/// (`max_receive_count`), or in a way no retry can mend (a policy refuses a
/// call, the stored params are invalid), a [`Failed::Stitch`] record tells
/// the waiting client.
pub async fn handle_stitch_delivery(
    store: &Arc<dyn ObjectStore>,
    delivery: &Delivery,
    max_receive_count: Option<u32>,
) -> Result<StitchOutcome, PipelineError> {
    let msg = parse_stitch(&delivery.body)?;
    let last = delivery.is_final(max_receive_count);
    let attempt = StitchAttempt::starting(delivery.receive_count, last);
    let result = stitch_marked(store, &msg.job, Some(attempt)).await;
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

/// Asks for `job` to be stitched: one message on the stitch queue. The
/// worker that stores a job's last tile sends it; a client re-sends it.
pub async fn send_stitch(stitch_queue: &dyn Queue, job: &JobId) -> Result<(), PipelineError> {
    let body = serde_json::to_string(&StitchMessage { job: job.clone() }).expect("serialises");
    Ok(stitch_queue.send_batch(&[body]).await?)
}

/// A fresh stitch attempt: forgets the last attempt's marker (so the new
/// one is judged on its own), then asks for a stitch.
pub async fn restart_stitch(
    store: &dyn ObjectStore,
    stitch_queue: &dyn Queue,
    job: &JobId,
) -> Result<(), PipelineError> {
    store.delete(&job.stitching_key()).await?;
    send_stitch(stitch_queue, job).await
}

/// The job's [`StitchAttempt`] marker, if any (an unreadable one counts as
/// none).
pub async fn read_attempt(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Option<StitchAttempt>, PipelineError> {
    match store.get(&job.stitching_key()).await {
        Ok(o) => Ok(serde_json::from_slice(&o.body).ok()),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes the job's [`StitchAttempt`] marker; best effort (a client that
/// cannot see it only waits longer to report a killed stitch).
async fn mark_attempt(store: &Arc<dyn ObjectStore>, job: &JobId, attempt: &StitchAttempt) {
    let body = serde_json::to_vec(attempt).expect("serialises");
    if let Err(e) = store
        .put(
            &job.stitching_key(),
            Bytes::from(body),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await
    {
        warn!(%job, error = %e, "could not mark the stitch attempt");
    }
}

/// Reads every tile, writes `image.png` and `counts.npy`, and publishes
/// `result.json` last with create-only semantics, so exactly one result is
/// published however many stitch messages arrive. Idempotent: a job with a
/// result is left alone.
pub async fn stitch(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
) -> Result<StitchOutcome, PipelineError> {
    stitch_marked(store, job, None).await
}

/// [`stitch`], marking `attempt` once the job is known to exist.
async fn stitch_marked(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    attempt: Option<StitchAttempt>,
) -> Result<StitchOutcome, PipelineError> {
    if store.head(&job.result_key()).await?.is_some() {
        return Ok(StitchOutcome::AlreadyDone);
    }
    if store.head(&job.cancelled_key()).await?.is_some() {
        return Ok(StitchOutcome::Cancelled);
    }
    let started = Instant::now();
    let params = load_params(&**store, job).await?;
    if let Some(attempt) = &attempt {
        mark_attempt(store, job, attempt).await;
    }
    let (counts, tile_stats) = fetch_tiles(store, job, &params).await?;
    let fetched = started.elapsed();

    let job_for_encode = job.clone();
    let (counts, png_bytes, npy_bytes) = tokio::task::spawn_blocking(move || {
        // The two encodings are independent: run them side by side.
        let (png, npy) = std::thread::scope(|s| {
            let npy = s.spawn(|| counts.to_npy());
            (
                png::encode_png(&counts, STORED_COLORMAP),
                npy.join().expect("npy encoder panicked"),
            )
        });
        let png = png.map_err(|e| PipelineError::Encode {
            job: job_for_encode,
            reason: e.to_string(),
        })?;
        Ok::<_, PipelineError>((counts, png, npy))
    })
    .await
    .expect("encoder panicked")?;

    let encoded = started.elapsed();
    store
        .put(
            &job.image_key(),
            Bytes::from(png_bytes),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await?;
    store
        .put(
            &job.counts_key(),
            Bytes::from(npy_bytes),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await?;

    let manifest = ResultManifest {
        job: job.clone(),
        params,
        width: counts.width() as u64,
        height: counts.height() as u64,
        tiles: params.tile_count(),
        image_key: job.image_key(),
        counts_key: job.counts_key(),
        colormap: STORED_COLORMAP.name().to_string(),
        iterations: kernel::brute_force_iterations(counts.data(), params.max_iter),
        compute_us_total: tile_stats.iter().map(|s| s.compute_us).sum(),
        stitch_us: started.elapsed().as_micros() as u64,
        tile_stats,
    };
    let body = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    match store
        .put(
            &job.result_key(),
            Bytes::from(body),
            Metadata::new(),
            PutMode::Create,
        )
        .await?
    {
        PutOutcome::Written => {
            let peak_rss_mib = crate::process::peak_rss_bytes().map(|b| b >> 20);
            info!(%job, ?fetched, ?encoded, total = ?started.elapsed(), peak_rss_mib, "stitched");
            Ok(StitchOutcome::Published(Box::new(manifest)))
        }
        PutOutcome::AlreadyExists => Ok(StitchOutcome::AlreadyDone),
    }
}

/// Fetches all tiles with bounded parallelism, checking each blob's size and
/// recorded checksum, and places them into the counts image.
async fn fetch_tiles(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
) -> Result<(CountsImage, Vec<TileStat>), PipelineError> {
    let mut image = CountsImage::for_params(params);
    let mut stats = Vec::with_capacity(params.tile_count() as usize);
    let mut missing = Vec::new();
    let mut pending = params.tiles();
    let mut in_flight = JoinSet::new();
    let spawn = |set: &mut JoinSet<_>, tile: TileId| {
        let store = Arc::clone(store);
        let key = job.tile_key(tile);
        set.spawn(async move { (tile, store.get(&key).await) });
    };
    for tile in pending.by_ref().take(PARALLEL_GETS) {
        spawn(&mut in_flight, tile);
    }
    let pixels = params.pixels_per_tile();
    let mut counts = vec![0u16; pixels];
    let mut rerendered = Vec::new();
    while let Some(joined) = in_flight.join_next().await {
        let (tile, got) = joined.expect("tile fetch panicked");
        if let Some(next) = pending.next() {
            spawn(&mut in_flight, next);
        }
        let object = match got {
            Ok(o) => o,
            Err(StoreError::NotFound { .. }) => {
                missing.push(tile);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let problem = match blob::decode_into(&object.body, &mut counts) {
            Err(e) => Some(e.to_string()),
            Ok(()) => object
                .metadata
                .get(META_SHA256)
                .map(|expected| (expected, hex(&Sha256::digest(&object.body))))
                .filter(|(expected, actual)| actual != *expected)
                .map(|(expected, actual)| {
                    format!("sha256 {actual} differs from the recorded {expected}")
                }),
        };
        if let Some(reason) = problem {
            // Never stitch a damaged blob: render the tile again here and
            // put the good bytes back in its place.
            warn!(%job, %tile, %reason, "corrupt tile; rendering it again");
            counts = rerender(store, job, params, tile).await?;
            rerendered.push(tile);
        }
        image.place_tile(params.tile_pixels as usize, tile, &counts);
        stats.push(TileStat {
            row: tile.row,
            col: tile.col,
            compute_us: object
                .metadata
                .get(META_COMPUTE_US)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            worker: if rerendered.last() == Some(&tile) {
                "stitch".to_string()
            } else {
                object
                    .metadata
                    .get(META_WORKER)
                    .cloned()
                    .unwrap_or_default()
            },
        });
    }
    if !missing.is_empty() {
        missing.sort();
        return Err(PipelineError::MissingTiles {
            job: job.clone(),
            missing,
        });
    }
    stats.sort_by_key(|s| (s.row, s.col));
    Ok((image, stats))
}

/// Renders `tile` again and overwrites its blob with the good bytes.
async fn rerender(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
    tile: TileId,
) -> Result<Vec<u16>, PipelineError> {
    let params = *params;
    let counts = tokio::task::spawn_blocking(move || kernel::render_tile(&params, tile))
        .await
        .expect("tile kernel panicked");
    put_tile(&**store, job, tile, blob::encode(&counts), "stitch", None).await?;
    Ok(counts)
}
