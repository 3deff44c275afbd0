//! One view of a job's progress: what is stored, missing, failed,
//! cancelled, finished. Every use case that asks (the worker's completion
//! check, the submit, the stitch, the waiting client, `--list` and
//! `--status`) builds a [`Progress`] once and asks it, so the rule of how a
//! job is tracked lives here alone.
//!
//! How a job is tracked depends on its size, decided once by
//! [`listed_whole`]. A job of at most [`ONE_LISTING`] tiles fits in one S3
//! listing page, so one listing of the job ([`JobListing`]) answers every
//! question at once: which tiles are stored whole, and whether the job is
//! finished, failed, cancelled or being stitched.
//!
//! A larger job is tracked per row, so no check grows with the job: the
//! writer of a row's last tile sees the row whole in one listing of the
//! row and marks it ([`Progress::after_storing`]); the job is complete
//! when every row is marked (one listing of the small `rows/` prefix). A
//! row marker names its range, so a stitch knows the image's range from
//! that one listing. Its other facts cost a request each when asked (a
//! HEAD of the result or cancel marker, a listing of `failed/`).

use std::collections::BTreeMap;

use bytes::Bytes;
use mandel_core::{CountRange, RenderParams, TileId};

use crate::error::PipelineError;
use crate::job::JobId;
use crate::store::{Metadata, ObjectStore, PutMode};
use crate::tiles::{self, StoredTile};

/// The most tiles of a job seen whole in one listing: an S3 listing page
/// holds 1000 keys.
pub const ONE_LISTING: u64 = 1000;

/// How often a waiting client looks at a job of `tiles` tiles: every
/// 250 ms per [`ONE_LISTING`] tiles, so that a look (a listing page per
/// thousand tiles at most) costs about four requests a second, whatever
/// the job's size. The estimate's request model counts the same looks.
pub fn poll_interval(tiles: u64) -> std::time::Duration {
    std::time::Duration::from_millis(250 * tiles.div_ceil(ONE_LISTING))
}

/// Whether a job of `tiles` tiles is tracked by listing it whole
/// ([`JobListing`]), not by row markers.
pub fn listed_whole(tiles: u64) -> bool {
    tiles <= ONE_LISTING
}

/// A job's progress as one look saw it: its whole listing, or its row
/// markers. Facts the look did not see are asked of the store on demand.
pub struct Progress<'a> {
    store: &'a dyn ObjectStore,
    job: &'a JobId,
    params: &'a RenderParams,
    seen: Seen,
}

enum Seen {
    /// A job [`listed_whole`]: one listing of `jobs/<job>/`.
    Listed(JobListing),
    /// A larger job: its finished rows with their ranges (one listing of
    /// `rows/`).
    Rows(BTreeMap<u32, CountRange>),
}

impl<'a> Progress<'a> {
    /// One look at the job: one listing (of the job, or of its row
    /// markers).
    pub async fn read(
        store: &'a dyn ObjectStore,
        job: &'a JobId,
        params: &'a RenderParams,
    ) -> Result<Progress<'a>, PipelineError> {
        let seen = if listed_whole(params.tile_count()) {
            Seen::Listed(JobListing::read(store, job, params).await?)
        } else {
            Seen::Rows(finished_rows(store, job, params).await?)
        };
        Ok(Progress {
            store,
            job,
            params,
            seen,
        })
    }

    /// The look after a worker stored tiles in `rows`: for a job tracked
    /// by rows, it first marks those of `rows` that are now whole, and if
    /// it marked none the job cannot have completed: `None`, and no look.
    pub async fn after_storing(
        store: &'a dyn ObjectStore,
        job: &'a JobId,
        params: &'a RenderParams,
        rows: impl IntoIterator<Item = u32>,
    ) -> Result<Option<Progress<'a>>, PipelineError> {
        if !listed_whole(params.tile_count()) {
            let mut marked = false;
            for row in rows {
                marked |= mark_row(store, job, params, row).await?.is_some();
            }
            if !marked {
                return Ok(None);
            }
        }
        Ok(Some(Progress::read(store, job, params).await?))
    }

    /// The job's whole listing, if it is [`listed_whole`].
    pub fn listing(&self) -> Option<&JobListing> {
        match &self.seen {
            Seen::Listed(l) => Some(l),
            Seen::Rows(_) => None,
        }
    }

    /// Tiles stored whole; for a job tracked by rows, those of its
    /// finished rows.
    pub fn stored(&self) -> u64 {
        match &self.seen {
            Seen::Listed(l) => l.stored(),
            Seen::Rows(rows) => rows.len() as u64 * u64::from(self.params.tiles_per_side),
        }
    }

    /// Tiles stored whole, exactly: a job tracked by rows lists its tiles
    /// (every page of them).
    pub async fn stored_exactly(&self) -> Result<u64, PipelineError> {
        Ok(match &self.seen {
            Seen::Listed(l) => l.stored(),
            Seen::Rows(_) => stored_tiles(self.store, self.job, self.params).await?.len() as u64,
        })
    }

    /// Every tile is stored.
    pub fn complete(&self) -> bool {
        self.stored() == self.params.tile_count()
    }

    /// The tiles not stored whole, in grid order. A job tracked by rows
    /// lists its tiles (for submitting and resuming, not for polling).
    pub async fn missing(&self) -> Result<Vec<TileId>, PipelineError> {
        Ok(match &self.seen {
            Seen::Listed(l) => l.missing(self.params),
            Seen::Rows(_) => {
                let stored = stored_tiles(self.store, self.job, self.params).await?;
                self.params
                    .tiles()
                    .filter(|t| stored.binary_search(t).is_err())
                    .collect()
            }
        })
    }

    /// Whether `key`, an object of the job other than a tile, may exist:
    /// false only if the job's listing shows it absent.
    pub fn may_have(&self, key: &str) -> bool {
        self.listing().is_none_or(|l| l.has(key))
    }

    /// Whether `key` exists: from the listing, or by a HEAD.
    pub async fn has(&self, key: &str) -> Result<bool, PipelineError> {
        Ok(match self.listing() {
            Some(l) => l.has(key),
            None => self.store.head(key).await?.is_some(),
        })
    }

    /// The result is published.
    pub async fn finished(&self) -> Result<bool, PipelineError> {
        self.has(&self.job.result_key()).await
    }

    /// The job is cancelled.
    pub async fn cancelled(&self) -> Result<bool, PipelineError> {
        self.has(&self.job.cancelled_key()).await
    }

    /// Whether a stitch has started, if the look could tell (a job
    /// listed whole).
    pub fn stitching(&self) -> Option<bool> {
        self.listing().map(|l| l.has(&self.job.stitching_key()))
    }

    /// The keys of the job's failure records: from the listing, or by a
    /// listing of `failed/`.
    pub async fn failure_keys(&self) -> Result<Vec<String>, PipelineError> {
        Ok(match self.listing() {
            Some(l) => l.failures(self.job).cloned().collect(),
            None => self
                .store
                .list(&self.job.failed_prefix())
                .await?
                .into_iter()
                .map(|m| m.key)
                .collect(),
        })
    }

    /// What a stitch needs: the image's count range, and where each row's
    /// tiles are found. A row with no marker (its last writer died after
    /// storing its tile) is listed; a row with tiles missing fails the
    /// stitch, naming them.
    pub(crate) async fn into_stitch_rows(self) -> Result<(CountRange, RowTiles), PipelineError> {
        let (marked, rows) = match self.seen {
            Seen::Listed(l) => (BTreeMap::new(), RowTiles::Listed(l.into_listed_rows())),
            Seen::Rows(marked) => (marked, RowTiles::ToList),
        };
        let tps = self.params.tiles_per_side;
        let mut range = marked.values().fold(CountRange::EMPTY, |r, &m| r.merge(m));
        let mut missing = Vec::new();
        for row in (0..tps).filter(|r| !marked.contains_key(r)) {
            let listed;
            let stored = match &rows {
                RowTiles::Listed(rows) => match rows.get(&row) {
                    Some(r) => r,
                    None => &BTreeMap::new(),
                },
                RowTiles::ToList => {
                    listed = tiles::row_tiles(self.store, self.job, self.params, row).await?;
                    &listed
                }
            };
            range = stored.values().fold(range, |r, t| r.merge(t.range));
            missing.extend(
                (0..tps)
                    .filter(|col| !stored.contains_key(col))
                    .map(|col| TileId::new(row, col)),
            );
        }
        if !missing.is_empty() {
            return Err(PipelineError::MissingTiles {
                job: self.job.clone(),
                missing,
            });
        }
        Ok((range, rows))
    }
}

/// Where a stitch finds each row's tiles: in the job's one listing, or
/// row by row (a job tracked by row markers).
pub(crate) enum RowTiles {
    Listed(BTreeMap<u32, BTreeMap<u32, StoredTile>>),
    ToList,
}

impl RowTiles {
    /// The listed tiles of `row` (taken: each row is fetched once), or
    /// `None` if the row is to be listed.
    pub(crate) fn take(&mut self, row: u32) -> Option<BTreeMap<u32, StoredTile>> {
        match self {
            RowTiles::Listed(rows) => Some(rows.remove(&row).unwrap_or_default()),
            RowTiles::ToList => None,
        }
    }
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
    /// One listing of the job.
    async fn read(
        store: &dyn ObjectStore,
        job: &JobId,
        params: &RenderParams,
    ) -> Result<JobListing, PipelineError> {
        let mut seen = JobListing::default();
        for m in store.list(&job.prefix()).await? {
            match tiles::as_tile(&m, job, params) {
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
        Ok(seen)
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
    fn into_listed_rows(self) -> BTreeMap<u32, BTreeMap<u32, StoredTile>> {
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
    fn missing(&self, params: &RenderParams) -> Vec<TileId> {
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

/// If every tile of `row` is stored, marks the row finished (a keyed
/// overwrite, so two writers of the row's last tiles may both do it) and
/// returns its range.
async fn mark_row(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
    row: u32,
) -> Result<Option<CountRange>, PipelineError> {
    let tiles = tiles::row_tiles(store, job, params, row).await?;
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
async fn finished_rows(
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

/// The job's tiles that are stored whole, sorted. Lists every tile.
pub async fn stored_tiles(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
) -> Result<Vec<TileId>, PipelineError> {
    let listed = store.list(&job.tiles_prefix()).await?;
    let mut tiles: Vec<TileId> = tiles::whole_tiles(&listed, job, params)
        .map(|t| t.tile)
        .collect();
    tiles.sort();
    tiles.dedup();
    Ok(tiles)
}

/// The client's waits between looks at the orbit: often at first (an orbit
/// of a shallow view takes milliseconds), then twice a second.
pub fn reference_poll_delays() -> impl Iterator<Item = std::time::Duration> {
    std::iter::successors(Some(std::time::Duration::from_millis(10)), |d| {
        Some((*d * 2).min(std::time::Duration::from_millis(500)))
    })
}

/// How many looks at an unfinished orbit [`await_reference`](crate::reference::await_reference) makes while a
/// worker computes it for `seconds` (each a GET of the manifest, a HEAD of
/// the cancel marker and two listings; the look that finds the manifest
/// is one GET more).
pub fn reference_polls_during(seconds: f64) -> u64 {
    let mut waited = 0.0;
    let mut polls = 0;
    for delay in reference_poll_delays() {
        polls += 1;
        waited += delay.as_secs_f64();
        if waited >= seconds {
            return polls;
        }
    }
    unreachable!("the delays are endless")
}
