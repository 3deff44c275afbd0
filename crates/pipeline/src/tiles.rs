//! A job's tile objects: every rule about them in one place. A tile's key
//! is [`JobId::tile_key`], which names the range of its counts; its blob is
//! `P × P` little-endian u16 counts ([`blob_size`] bytes), written by
//! [`put_tile`] with its SHA-256, compute time and writer as metadata. A
//! tile counts as stored when a listing shows its canonical key with the
//! whole size ([`whole_tiles`]); a blob of any other size is rendered again,
//! and so is one whose bytes break its recorded SHA-256 or the range its
//! key names ([`check_blob`], when it is read).
//!
//! How a job's progress is seen depends on its size, decided once by
//! [`listed_whole`]. A job of at most [`ONE_LISTING`] tiles fits in one S3
//! listing page, so one listing of the job ([`JobListing`]) answers every
//! question at once: which tiles are stored whole, and whether the job is
//! finished, failed, cancelled or being stitched. The worker, the stitch,
//! the submit and the waiting client each ask it with that one request.
//!
//! A larger job is tracked per row, so no check grows with the job: the
//! writer of a row's last tile sees the row whole in one listing of the
//! row and marks it ([`mark_row`]); the job is complete when every row is
//! marked ([`finished_rows`], one listing of the small `rows/` prefix). A
//! row marker names its range, so a stitch knows the image's range from
//! that one listing.

use std::collections::BTreeMap;

use bytes::Bytes;
use mandel_core::{CountRange, RenderParams, TileId, blob};
use sha2::{Digest, Sha256};

use crate::error::PipelineError;
use crate::job::{JobId, TileStat, hex};
use crate::store::{Metadata, Object, ObjectMeta, ObjectStore, PutMode};

/// How many tile GETs a reader of a job's tiles (the stitch) keeps in
/// flight; the estimate's model of the stitch reads it too.
pub(crate) const PARALLEL_GETS: usize = 32;

/// The most tiles of a job seen whole in one listing: an S3 listing page
/// holds 1000 keys.
pub const ONE_LISTING: u64 = 1000;

/// Whether a job of `tiles` tiles is tracked by listing it whole
/// ([`JobListing`]), not by row markers.
pub fn listed_whole(tiles: u64) -> bool {
    tiles <= ONE_LISTING
}

/// What one listing of a job ([`listed_whole`]) shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobListing {
    /// Its tiles stored whole, by row, then column.
    pub rows: BTreeMap<u32, BTreeMap<u32, StoredTile>>,
    /// Tiles listed with the wrong size: not stored.
    pub damaged: Vec<StoredTile>,
    /// Every other key of the job, sorted.
    others: Vec<String>,
}

impl JobListing {
    /// The job's listing if it is [`listed_whole`]: one request while it
    /// renders (a finished job's listing also pages through its Deep Zoom
    /// pyramid).
    pub async fn read(
        store: &dyn ObjectStore,
        job: &JobId,
        params: &RenderParams,
    ) -> Result<Option<JobListing>, PipelineError> {
        if !listed_whole(params.tile_count()) {
            return Ok(None);
        }
        let mut seen = JobListing::default();
        for m in store.list(&job.prefix()).await? {
            match as_tile(&m, job, params) {
                Some((t, true)) => {
                    seen.rows
                        .entry(t.tile.row)
                        .or_default()
                        .insert(t.tile.col, t);
                }
                Some((t, false)) => seen.damaged.push(t),
                None => seen.others.push(m.key),
            }
        }
        Ok(Some(seen))
    }

    /// Whether the listing shows `key`, an object of the job other than a
    /// tile (its result, cancel marker, stitch marker…).
    pub fn has(&self, key: &str) -> bool {
        self.others
            .binary_search_by(|k| k.as_str().cmp(key))
            .is_ok()
    }

    /// The keys of the job's failure records.
    pub fn failures<'a>(&'a self, job: &JobId) -> impl Iterator<Item = &'a String> + 'a {
        let failed = job.failed_prefix();
        self.others.iter().filter(move |k| k.starts_with(&failed))
    }

    /// How many tiles are stored whole.
    pub fn stored(&self) -> u64 {
        self.rows.values().map(|r| r.len() as u64).sum()
    }

    /// Every tile listed, whole or damaged, by row and column: for a
    /// stitch, which renders a damaged one again (every tile of a job it
    /// stitches was seen whole, so one that is not was damaged since).
    pub fn into_listed_rows(self) -> BTreeMap<u32, BTreeMap<u32, StoredTile>> {
        let mut rows = self.rows;
        for t in self.damaged {
            rows.entry(t.tile.row)
                .or_default()
                .entry(t.tile.col)
                .or_insert(t);
        }
        rows
    }

    /// The tiles not stored whole, in grid order.
    pub fn missing(&self, params: &RenderParams) -> Vec<TileId> {
        params
            .tiles()
            .filter(|t| {
                self.rows
                    .get(&t.row)
                    .is_none_or(|r| !r.contains_key(&t.col))
            })
            .collect()
    }
}

/// Metadata names written with every tile blob: its SHA-256, and the
/// [`TileStat`] facts of who rendered it and when.
pub const META_SHA256: &str = "sha256";
const META_COMPUTE_US: &str = "compute-us";
const META_WORKER: &str = "worker";
const META_STARTED_MS: &str = "started-ms";
const META_BATCH_MS: &str = "batch-ms";
const META_BOOT_MS: &str = "boot-ms";

/// The size of a whole tile blob: u16 counts.
pub fn blob_size(params: &RenderParams) -> u64 {
    2 * params.pixels_per_tile() as u64
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
    counts: &[u16],
    stat: &TileStat,
) -> Result<(), PipelineError> {
    let bytes = blob::encode(counts);
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
            &job.tile_key(stat.tile(), CountRange::of(counts)),
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
fn as_tile(m: &ObjectMeta, job: &JobId, params: &RenderParams) -> Option<(StoredTile, bool)> {
    let (tile, range) = job.tile_of_key(&m.key)?;
    let key = m.key.clone();
    params
        .contains(tile)
        .then(|| (StoredTile { tile, range, key }, m.size == blob_size(params)))
}

/// Whether `key` exists: in the job's `listing` if it has one, else by a
/// HEAD.
pub async fn exists(
    store: &dyn ObjectStore,
    listing: Option<&JobListing>,
    key: &str,
) -> Result<bool, PipelineError> {
    Ok(match listing {
        Some(l) => l.has(key),
        None => store.head(key).await?.is_some(),
    })
}

/// Decodes a tile's blob into `counts`; what is wrong with it, if anything:
/// its size, its recorded SHA-256, or the range its key names.
pub fn check_blob(object: &Object, range: CountRange, counts: &mut [u16]) -> Option<String> {
    if let Err(e) = blob::decode_into(&object.body, counts) {
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

/// If every tile of `row` is stored, marks the row finished (a keyed
/// overwrite, so two writers of the row's last tiles may both do it) and
/// returns its range.
pub async fn mark_row(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
    row: u32,
) -> Result<Option<CountRange>, PipelineError> {
    let tiles = row_tiles(store, job, params, row).await?;
    if tiles.len() < params.tiles_per_side as usize {
        return Ok(None);
    }
    let range = tiles
        .values()
        .fold(CountRange::EMPTY, |r, t| r.merge(t.range));
    store
        .put(
            &job.row_key(row, range),
            Bytes::new(),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await?;
    Ok(Some(range))
}

/// The rows marked finished, with their ranges: one listing of `rows/`.
pub async fn finished_rows(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
) -> Result<BTreeMap<u32, CountRange>, PipelineError> {
    let listed = store.list(&job.rows_prefix()).await?;
    Ok(listed
        .iter()
        .filter_map(|m| job.row_of_key(&m.key))
        .filter(|(row, _)| *row < params.tiles_per_side)
        .collect())
}

/// The job's tiles that are stored whole, sorted. Lists the whole job:
/// for submitting and resuming, not for polling.
pub async fn stored_tiles(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
) -> Result<Vec<TileId>, PipelineError> {
    let listed = store.list(&job.tiles_prefix()).await?;
    let mut tiles: Vec<TileId> = whole_tiles(&listed, job, params).map(|t| t.tile).collect();
    tiles.sort();
    tiles.dedup();
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
