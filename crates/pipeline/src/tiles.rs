//! A job's tile objects: every rule about them in one place. A tile's key
//! is [`JobId::tile_key`]; its blob is `P × P` little-endian u16 counts
//! ([`blob_size`] bytes), written by [`put_tile`] with its SHA-256, compute
//! time and writer as metadata. A tile counts as stored when a listing
//! shows its canonical key with the whole size ([`whole_tiles`]); a blob of
//! any other size is rendered again. Failure records ([`record_failure`])
//! sit beside the tiles under `failed/`.

use bytes::Bytes;
use mandel_core::{RenderParams, TileId};
use sha2::{Digest, Sha256};

use crate::error::PipelineError;
use crate::job::{Failure, JobId, hex};
use crate::store::{Metadata, ObjectMeta, ObjectStore, PutMode};

/// Metadata names written with every tile blob.
pub const META_SHA256: &str = "sha256";
pub const META_COMPUTE_US: &str = "compute-us";
pub const META_WORKER: &str = "worker";

/// The size of a whole tile blob: u16 counts.
pub fn blob_size(params: &RenderParams) -> u64 {
    2 * params.pixels_per_tile() as u64
}

/// Writes a tile's blob with its metadata: a keyed overwrite with
/// deterministic bytes, so writing it twice is harmless.
pub async fn put_tile(
    store: &dyn ObjectStore,
    job: &JobId,
    tile: TileId,
    bytes: Vec<u8>,
    writer: &str,
    compute_us: Option<u64>,
) -> Result<(), PipelineError> {
    let mut metadata = Metadata::from([
        (META_SHA256.to_string(), hex(&Sha256::digest(&bytes))),
        (META_WORKER.to_string(), writer.to_string()),
    ]);
    if let Some(us) = compute_us {
        metadata.insert(META_COMPUTE_US.to_string(), us.to_string());
    }
    store
        .put(
            &job.tile_key(tile),
            Bytes::from(bytes),
            metadata,
            PutMode::Overwrite,
        )
        .await?;
    Ok(())
}

/// The tiles of `job` in a listing whose blobs are whole: a blob of the
/// wrong size (truncated or padded) does not count, so it is rendered again.
pub fn whole_tiles<'a>(
    listed: &'a [ObjectMeta],
    job: &'a JobId,
    params: &'a RenderParams,
) -> impl Iterator<Item = TileId> + 'a {
    let size = blob_size(params);
    listed
        .iter()
        .filter(move |m| m.size == size)
        .filter_map(|m| job.tile_of_key(&m.key))
        .filter(|t| params.contains(*t))
}

/// Whether `tile` is stored whole. A listing of its own key, not a HEAD:
/// the worker may list the bucket but not read tiles, and S3 authorizes a
/// HEAD as a read.
pub async fn is_stored(
    store: &dyn ObjectStore,
    job: &JobId,
    tile: TileId,
    params: &RenderParams,
) -> Result<bool, PipelineError> {
    let key = job.tile_key(tile);
    let listed = store.list(&key).await?;
    Ok(listed
        .iter()
        .any(|m| m.key == key && m.size == blob_size(params)))
}

/// The job's tiles that are stored whole, sorted.
pub async fn stored_tiles(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
) -> Result<Vec<TileId>, PipelineError> {
    let listed = store.list(&job.tiles_prefix()).await?;
    let mut tiles: Vec<TileId> = whole_tiles(&listed, job, params).collect();
    tiles.sort();
    Ok(tiles)
}

/// The job's tiles that are not stored whole, in grid order.
pub async fn missing_tiles(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
) -> Result<Vec<TileId>, PipelineError> {
    let stored = stored_tiles(store, job, params).await?;
    Ok(params
        .tiles()
        .filter(|t| stored.binary_search(t).is_err())
        .collect())
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
