//! A job's tile objects: every rule about them in one place. A tile's key
//! is [`JobId::tile_key`], which names the range of its counts; its blob is
//! `P × P` little-endian counts, u16 for a viewport job and u32 for a deep
//! one ([`blob_size`] bytes; the key's suffix names the width), written by
//! [`put_tile`] with its SHA-256, compute time and writer as metadata. A
//! tile counts as stored when a listing shows its canonical key with the
//! whole size ([`whole_tiles`]); a blob of any other size is rendered again,
//! and so is one whose bytes break its recorded SHA-256 or the range its
//! key names ([`check_blob`], when it is read).
//!
//! How a job's progress is tracked from its tiles (one listing, or row
//! markers) is [`progress`](crate::progress)'s.

use std::collections::BTreeMap;

use bytes::Bytes;
use mandel_core::{CountRange, CountWidth, RenderParams, TileId, blob};
use sha2::{Digest, Sha256};

use crate::error::PipelineError;
use crate::job::{JobId, TileStat, hex};
use crate::store::{Metadata, Object, ObjectMeta, ObjectStore, PutMode};

/// How many tile GETs a reader of a job's tiles (the stitch) keeps in
/// flight; the estimate's model of the stitch reads it too.
pub(crate) const PARALLEL_GETS: usize = 32;

/// Metadata names written with every tile blob: its SHA-256, and the
/// [`TileStat`] facts of who rendered it and when.
pub const META_SHA256: &str = "sha256";
const META_COMPUTE_US: &str = "compute-us";
const META_WORKER: &str = "worker";
const META_STARTED_MS: &str = "started-ms";
const META_BATCH_MS: &str = "batch-ms";
const META_BOOT_MS: &str = "boot-ms";

/// The size of a whole tile blob: `P × P` counts of the job's width.
pub fn blob_size(params: &RenderParams) -> u64 {
    (params.count_width().bytes() * params.pixels_per_tile()) as u64
}

/// A tile stored whole, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTile {
    pub tile: TileId,
    /// The range of its counts, as its key names it.
    pub range: CountRange,
    pub key: String,
}

/// Writes the blob of `stat`'s tile with its metadata: a keyed overwrite
/// with deterministic bytes, so writing it twice is harmless (only the
/// metadata, who rendered it and when, may differ).
pub async fn put_tile(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
    counts: &[u32],
    stat: &TileStat,
) -> Result<(), PipelineError> {
    let width = params.count_width();
    let bytes = blob::encode(counts, width);
    let metadata = Metadata::from([
        (META_SHA256.to_string(), hex(&Sha256::digest(&bytes))),
        (META_WORKER.to_string(), stat.worker.clone()),
        (META_COMPUTE_US.to_string(), stat.compute_us.to_string()),
        (META_STARTED_MS.to_string(), stat.started_ms.to_string()),
        (META_BATCH_MS.to_string(), stat.batch_ms.to_string()),
        (META_BOOT_MS.to_string(), stat.boot_ms.to_string()),
    ]);
    store
        .put(
            &job.tile_key(stat.tile(), CountRange::of(counts), width),
            Bytes::from(bytes),
            metadata,
            PutMode::Overwrite,
        )
        .await?;
    Ok(())
}

/// The [`TileStat`] a tile blob's metadata records (what is missing reads
/// as zero or empty).
pub fn tile_stat(tile: TileId, metadata: &Metadata) -> TileStat {
    let number = |name: &str| metadata.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    TileStat {
        row: tile.row,
        col: tile.col,
        compute_us: number(META_COMPUTE_US),
        worker: metadata.get(META_WORKER).cloned().unwrap_or_default(),
        started_ms: number(META_STARTED_MS),
        batch_ms: number(META_BATCH_MS),
        boot_ms: number(META_BOOT_MS),
    }
}

/// The tiles of `job` in a listing whose blobs are whole: a blob of the
/// wrong size (truncated or padded) does not count, so it is rendered again.
pub fn whole_tiles<'a>(
    listed: &'a [ObjectMeta],
    job: &'a JobId,
    params: &'a RenderParams,
) -> impl Iterator<Item = StoredTile> + 'a {
    listed
        .iter()
        .filter_map(|m| as_tile(m, job, params))
        .filter_map(|(t, whole)| whole.then_some(t))
}

/// A listed object as a tile of `job` in its grid, and whether its blob is
/// whole (of [`blob_size`]).
pub(crate) fn as_tile(
    m: &ObjectMeta,
    job: &JobId,
    params: &RenderParams,
) -> Option<(StoredTile, bool)> {
    let (tile, range, width) = job.tile_of_key(&m.key)?;
    let key = m.key.clone();
    let whole = m.size == blob_size(params) && width == params.count_width();
    params
        .contains(tile)
        .then_some((StoredTile { tile, range, key }, whole))
}

/// Decodes a tile's blob into `counts`; what is wrong with it, if anything:
/// its size, its recorded SHA-256, or the range its key names.
pub fn check_blob(
    object: &Object,
    range: CountRange,
    width: CountWidth,
    counts: &mut [u32],
) -> Option<String> {
    if let Err(e) = blob::decode_into(&object.body, width, counts) {
        return Some(e.to_string());
    }
    if let Some(expected) = object.metadata.get(META_SHA256) {
        let actual = hex(&Sha256::digest(&object.body));
        if &actual != expected {
            return Some(format!(
                "sha256 {actual} differs from the recorded {expected}"
            ));
        }
    }
    let actual = CountRange::of(counts);
    (actual != range).then(|| format!("counts span {actual:?}, its key says {range:?}"))
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
    let listed = store.list(&job.tile_prefix(tile)).await?;
    Ok(whole_tiles(&listed, job, params).any(|t| t.tile == tile))
}

/// The tiles of `row` stored whole, by column: one listing of the row.
pub async fn row_tiles(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
    row: u32,
) -> Result<BTreeMap<u32, StoredTile>, PipelineError> {
    let listed = store.list(&job.row_prefix(row)).await?;
    Ok(whole_tiles(&listed, job, params)
        .filter(|t| t.tile.row == row)
        .map(|t| (t.tile.col, t))
        .collect())
}
