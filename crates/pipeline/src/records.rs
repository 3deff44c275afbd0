//! A job's records: typed reads and writes of every small object the
//! protocol keeps under `jobs/<job>/` besides tiles and outputs (the
//! layout is on [`JobId`]). Each record has its reader and its
//! writer here and nowhere else, so the use cases (submit, worker, stitch,
//! client) and the views of a job (inspect, report) share one rule for
//! each: which writes are create-only, which reads treat a missing or
//! unreadable record as absent, and which as an error.
//!
//! | record | written by | read by |
//! |---|---|---|
//! | `params.json` ([`write_params`], create-only) | submit, explorer | everyone ([`read_params`]) |
//! | `estimate.json` ([`write_submission`]) | submit | stitch (report), inspect |
//! | `reference/<k>.orbit`, `.state` ([`write_reference_segment`]) | worker | worker, stitch ([`tile_renderer`]) |
//! | `reference.json` ([`publish_reference`], create-only) | worker | client, worker, stitch |
//! | `stitching.json` ([`mark_attempt`]) | stitch | client, inspect |
//! | `stats.json` ([`write_stats`]) | stitch | client |
//! | `report.html` ([`write_report`]) | stitch | client |
//! | `result.json` ([`publish_result`], create-only) | stitch | client, inspect |
//! | `failed/*.json` ([`record_failure`]) | worker, stitch | client, inspect |
//! | `cancelled` ([`mark_cancelled`]) | client | worker, stitch, client |

use bytes::Bytes;
use mandel_core::RenderParams;
use mandel_core::deep::{OrbitPoint, OrbitState, decode_points, encode_points};
use mandel_core::render::TileRenderer;
use tracing::warn;

use crate::error::PipelineError;
use crate::estimate::Submission;
use crate::job::{
    Failure, JobId, ReferenceManifest, ResultManifest, StitchAttempt, StitchMessage, TileStat,
};
use crate::queue::Queue;
use crate::store::{Metadata, ObjectStore, PutMode, PutOutcome, StoreError, put_json};

/// Writes the job's `params.json` once (create-only); a job whose stored
/// params differ is refused with [`PipelineError::ParamsConflict`].
pub async fn write_params(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
) -> Result<(), PipelineError> {
    let body = Bytes::from(params.canonical_json());
    let key = job.params_key();
    if store
        .put(&key, body.clone(), Metadata::new(), PutMode::Create)
        .await?
        == PutOutcome::AlreadyExists
    {
        let stored = store.get(&key).await?.body;
        if stored != body {
            return Err(PipelineError::ParamsConflict { job: job.clone() });
        }
    }
    Ok(())
}

/// Reads and validates `jobs/<job>/params.json`: a job without one is
/// [`PipelineError::UnknownJob`], one that breaks the rules
/// [`PipelineError::BadStoredParams`], one whose hash is not the job's id
/// [`PipelineError::NotItsParams`]. Every reader of a job (worker, stitch,
/// client, explorer) reads its params here, so none renders, stitches or
/// serves params planted under another job's id.
pub async fn read_params(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<RenderParams, PipelineError> {
    let Some(body) = get_bounded(store, &job.params_key(), PARAMS_MAX_BYTES).await? else {
        return Err(PipelineError::UnknownJob { job: job.clone() });
    };
    let bad = |reason: String| PipelineError::BadStoredParams {
        job: job.clone(),
        reason,
    };
    let params: RenderParams = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    params.validate().map_err(|e| bad(e.to_string()))?;
    if !job.names(&params) {
        return Err(PipelineError::NotItsParams {
            job: job.clone(),
            hashed: JobId::for_params(&params),
        });
    }
    Ok(params)
}

/// Records what the client estimated when it submitted the job.
pub async fn write_submission(
    store: &dyn ObjectStore,
    job: &JobId,
    submission: &Submission,
) -> Result<(), PipelineError> {
    Ok(put_json(store, &job.estimate_key(), submission).await?)
}

/// The client's record of the job's submit, if any (an unreadable one
/// counts as none: it only informs).
pub async fn read_submission(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Option<Submission>, PipelineError> {
    read_informative(store, &job.estimate_key()).await
}

/// Writes the job's [`StitchAttempt`] marker; best effort (a client that
/// cannot see it only waits longer to report a killed stitch).
pub async fn mark_attempt(store: &dyn ObjectStore, job: &JobId, attempt: &StitchAttempt) {
    if let Err(e) = put_json(store, &job.stitching_key(), attempt).await {
        warn!(%job, error = %e, "could not mark the stitch attempt");
    }
}

/// The job's [`StitchAttempt`] marker, if any (an unreadable one counts as
/// none).
pub async fn read_attempt(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Option<StitchAttempt>, PipelineError> {
    read_informative(store, &job.stitching_key()).await
}

/// A record that only informs: one unreadable or too large counts as none;
/// only the store's own errors are errors.
async fn read_informative<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<Option<T>, PipelineError> {
    match read_record(store, key).await {
        Err(e @ PipelineError::Store(_)) => Err(e),
        other => Ok(other.ok().flatten()),
    }
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

/// Writes every tile's [`TileStat`] (`stats.json`), compact: a
/// million-tile job's stats are tens of megabytes.
///
/// The JSON is made and sent a thousand tiles at a time, so a million
/// tiles' (about 137 MB of it) never sit in memory beside the stats
/// themselves; up to one upload part of it is one PUT.
pub async fn write_stats(
    store: &dyn ObjectStore,
    job: &JobId,
    stats: &[TileStat],
) -> Result<(), PipelineError> {
    let mut out = crate::upload::Pieces::new(store, &job.stats_key());
    let mut piece = Vec::new();
    let written = async {
        for (i, chunk) in stats.chunks(1000).enumerate() {
            piece.clear();
            piece.push(if i == 0 { b'[' } else { b',' });
            for (j, stat) in chunk.iter().enumerate() {
                if j > 0 {
                    piece.push(b',');
                }
                serde_json::to_writer(&mut piece, stat).expect("stats serialise");
            }
            out.write(&piece).await?;
        }
        out.write(if stats.is_empty() { b"[]" } else { b"]" }).await
    }
    .await;
    match written {
        Ok(()) => out.finish().await?,
        Err(e) => {
            out.abort().await;
            return Err(e.into());
        }
    };
    Ok(())
}

/// Every tile's [`TileStat`] of a finished job (`stats.json`), at most
/// [`STAT_MAX_BYTES`] a tile.
pub async fn read_stats(
    store: &dyn ObjectStore,
    manifest: &ResultManifest,
) -> Result<Vec<TileStat>, PipelineError> {
    let key = manifest.job.stats_key();
    let limit = RECORD_MAX_BYTES + manifest.tiles * STAT_MAX_BYTES;
    let body = get_bounded(store, &key, limit)
        .await?
        .ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
    serde_json::from_slice(&body).map_err(|e| PipelineError::Unreadable {
        key,
        reason: e.to_string(),
    })
}

/// Writes the job's report page (before its result, so a finished job
/// always has one).
pub async fn write_report(
    store: &dyn ObjectStore,
    job: &JobId,
    html: String,
) -> Result<(), PipelineError> {
    store
        .put(
            &job.report_key(),
            Bytes::from(html),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await?;
    Ok(())
}

/// Publishes `result.json`, create-only: whether this call wrote it (one
/// result per job, however many stitches race).
pub async fn publish_result(
    store: &dyn ObjectStore,
    manifest: &ResultManifest,
) -> Result<PutOutcome, PipelineError> {
    let body = serde_json::to_vec(manifest).expect("manifest serialises");
    Ok(store
        .put(
            &manifest.job.result_key(),
            Bytes::from(body),
            Metadata::new(),
            PutMode::Create,
        )
        .await?)
}

/// The job's result manifest, if published.
pub async fn read_result(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Option<ResultManifest>, PipelineError> {
    read_record(store, &job.result_key()).await
}

/// The most bytes of a record read whole (result, estimate, stitch marker,
/// failure, reference manifest): each is a few kB at most as the pipeline
/// writes it, so a larger one was planted and is refused unread.
pub const RECORD_MAX_BYTES: u64 = 1 << 20;

/// The most bytes of `params.json`: two coordinates of the longest length
/// a deep view allows, and room for the rest.
pub const PARAMS_MAX_BYTES: u64 = 2 * mandel_core::deep::MAX_COORDINATE_CHARS as u64 + 4096;

/// The most bytes of one tile's entry in `stats.json` (about 150 as the
/// workers write them, with a Lambda log stream's name).
pub const STAT_MAX_BYTES: u64 = 1024;

/// The object at `key` if it has at most `limit` bytes, read in one ranged
/// GET of `limit + 1` bytes; `None` if there is none;
/// [`PipelineError::RecordTooLarge`] if it is larger.
async fn get_bounded(
    store: &dyn ObjectStore,
    key: &str,
    limit: u64,
) -> Result<Option<Bytes>, PipelineError> {
    match store.get_range(key, 0..limit + 1).await {
        Ok(body) if body.len() as u64 > limit => Err(PipelineError::RecordTooLarge {
            key: key.to_string(),
            limit,
        }),
        Ok(body) => Ok(Some(body)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A JSON record the pipeline wrote, if it exists, read bounded
/// ([`RECORD_MAX_BYTES`]): one that does not parse is
/// [`PipelineError::Unreadable`] (it decides what happens next).
async fn read_record<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<Option<T>, PipelineError> {
    let Some(body) = get_bounded(store, key, RECORD_MAX_BYTES).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| PipelineError::Unreadable {
            key: key.to_string(),
            reason: e.to_string(),
        })
}

/// Writes `failure` under the job's `failed/` prefix (overwriting: the
/// latest reason wins).
pub async fn record_failure(
    store: &dyn ObjectStore,
    job: &JobId,
    failure: &Failure,
) -> Result<(), PipelineError> {
    let body = serde_json::to_vec_pretty(failure).expect("failure serialises");
    store
        .put(
            &job.failed_key(failure.what),
            Bytes::from(body),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await?;
    Ok(())
}

/// The failure records at `keys` (as a listing of the job's `failed/`
/// showed them); one cleared since is skipped.
pub async fn read_failures_at(
    store: &dyn ObjectStore,
    keys: &[String],
) -> Result<Vec<Failure>, PipelineError> {
    let mut failures = Vec::new();
    for key in keys {
        // None: cleared by a re-run between the list and the get.
        let Some(body) = get_bounded(store, key, RECORD_MAX_BYTES).await? else {
            continue;
        };
        failures.push(
            serde_json::from_slice(&body).map_err(|e| PipelineError::Unreadable {
                key: key.clone(),
                reason: e.to_string(),
            })?,
        );
    }
    Ok(failures)
}

/// The job's failure records, if any: one listing, then each record.
pub async fn read_failures(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Vec<Failure>, PipelineError> {
    let keys: Vec<String> = store
        .list(&job.failed_prefix())
        .await?
        .into_iter()
        .map(|m| m.key)
        .collect();
    read_failures_at(store, &keys).await
}

/// Marks the job cancelled (see [`cancel`](crate::cancel)).
pub async fn mark_cancelled(store: &dyn ObjectStore, job: &JobId) -> Result<(), PipelineError> {
    store
        .put(
            &job.cancelled_key(),
            Bytes::new(),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await?;
    Ok(())
}

/// Metadata of a reference segment's state: its compute time and start.
const META_COMPUTE_US: &str = "compute-us";
const META_STARTED_MS: &str = "started-ms";

/// Writes segment `k` of a deep job's reference orbit: its points, then the
/// state it ended in (which marks the segment done). Keyed overwrites of
/// deterministic bytes: a segment computed twice writes the same.
pub async fn write_reference_segment(
    store: &dyn ObjectStore,
    job: &JobId,
    k: u32,
    points: &[OrbitPoint],
    state: &OrbitState,
    compute_us: u64,
    started_ms: u64,
) -> Result<(), PipelineError> {
    let put = |key: String, body: Vec<u8>, metadata: Metadata| async move {
        store
            .put(&key, Bytes::from(body), metadata, PutMode::Overwrite)
            .await
    };
    put(
        job.reference_points_key(k),
        encode_points(points),
        Metadata::new(),
    )
    .await?;
    let metadata = Metadata::from([
        (META_COMPUTE_US.to_string(), compute_us.to_string()),
        (META_STARTED_MS.to_string(), started_ms.to_string()),
    ]);
    put(job.reference_state_key(k), state.to_bytes(), metadata).await?;
    Ok(())
}

/// The orbit state at the end of segment `k`, with the segment's compute
/// time and start; `None` if the segment is not done.
pub async fn read_reference_state(
    store: &dyn ObjectStore,
    job: &JobId,
    k: u32,
) -> Result<Option<(OrbitState, u64, u64)>, PipelineError> {
    let key = job.reference_state_key(k);
    let object = match store.get(&key).await {
        Ok(o) => o,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let state = OrbitState::from_bytes(&object.body).map_err(|e| PipelineError::Unreadable {
        key,
        reason: e.to_string(),
    })?;
    let number = |name: &str| {
        object
            .metadata
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Some((
        state,
        number(META_COMPUTE_US),
        number(META_STARTED_MS),
    )))
}

/// Publishes `reference.json` (create-only): the orbit is whole.
pub async fn publish_reference(
    store: &dyn ObjectStore,
    job: &JobId,
    manifest: &ReferenceManifest,
) -> Result<(), PipelineError> {
    let body = serde_json::to_vec(manifest).expect("manifest serialises");
    store
        .put(
            &job.reference_key(),
            Bytes::from(body),
            Metadata::new(),
            PutMode::Create,
        )
        .await?;
    Ok(())
}

/// The job's reference manifest, if its orbit is whole.
pub async fn read_reference_manifest(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Option<ReferenceManifest>, PipelineError> {
    read_record(store, &job.reference_key()).await
}

/// A deep job's whole reference orbit: its manifest, then every segment's
/// points. [`PipelineError::NoReference`] if it is not whole yet.
pub async fn read_reference(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Vec<OrbitPoint>, PipelineError> {
    let manifest = read_reference_manifest(store, job)
        .await?
        .ok_or_else(|| PipelineError::NoReference { job: job.clone() })?;
    let mut points = Vec::with_capacity(manifest.points as usize);
    for k in 0..manifest.segments {
        let key = job.reference_points_key(k);
        let body = store.get(&key).await?.body;
        decode_points(&body, &mut points).map_err(|e| PipelineError::Unreadable {
            key,
            reason: e.to_string(),
        })?;
    }
    if points.len() as u64 != manifest.points || points.is_empty() {
        return Err(PipelineError::Unreadable {
            key: job.reference_key(),
            reason: format!(
                "the segments hold {} points, the manifest says {}",
                points.len(),
                manifest.points
            ),
        });
    }
    Ok(points)
}

/// How a job's tiles are rendered: the f64 kernel for a viewport job; for a
/// deep job, perturbation from its reference orbit (read here, once).
pub async fn tile_renderer(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
) -> Result<TileRenderer, PipelineError> {
    if params.as_deep().is_none() {
        return Ok(TileRenderer::viewport(params.clone()));
    }
    let points = read_reference(store, job).await?;
    let params = params.clone();
    // Preparing the orbit (its BLA table) is CPU work.
    Ok(
        tokio::task::spawn_blocking(move || TileRenderer::deep(params, &points))
            .await
            .expect("preparing a reference orbit panicked"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    /// `stats.json` is the JSON of the stats, however many: in one PUT or,
    /// past an upload part (about 60,000 tiles), in a multipart upload.
    #[tokio::test]
    async fn stats_written_in_pieces_are_their_json() {
        let store = MemoryStore::new();
        let job = JobId::for_params(&RenderParams::default());
        for n in [0usize, 1, 999, 1000, 1001, 70_000] {
            let stats: Vec<TileStat> = (0..n)
                .map(|i| TileStat {
                    row: (i / 300) as u32,
                    col: (i % 300) as u32,
                    compute_us: i as u64 * 7,
                    worker: format!("embedded-{}", i % 2),
                    started_ms: 1_764_918_000_000 + i as u64,
                    batch_ms: 1_764_918_000_000,
                    boot_ms: 1_764_917_000_000,
                })
                .collect();
            write_stats(&store, &job, &stats).await.unwrap();
            let body = store.get(&job.stats_key()).await.unwrap().body;
            assert_eq!(body, serde_json::to_vec(&stats).unwrap(), "{n} stats");
        }
        // The largest is more than a part: it went up in parts.
        let size = store.head(&job.stats_key()).await.unwrap().unwrap().size;
        assert!(size > crate::upload::PART_SIZE as u64, "{size}");
    }
}
