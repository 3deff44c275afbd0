//! Rendering one tile: the worker's use case.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mandel_core::{TileId, blob, kernel};
use sha2::{Digest, Sha256};

use crate::error::PipelineError;
use crate::job::{JobId, StitchMessage, TileMessage, hex};
use crate::params_cache::ParamsCache;
use crate::queue::Queue;
use crate::store::{Metadata, ObjectStore, PutMode};

/// Metadata names written with every tile blob.
pub const META_SHA256: &str = "sha256";
pub const META_COMPUTE_US: &str = "compute-us";
pub const META_WORKER: &str = "worker";

/// What rendering a tile did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileOutcome {
    pub job: JobId,
    pub tile: TileId,
    pub compute_us: u64,
    /// This tile was the last one missing, and a stitch message was sent.
    pub completed_job: bool,
}

/// Renders tiles of any job: stateless apart from the params cache.
#[derive(Debug)]
pub struct TileWorker {
    store: Arc<dyn ObjectStore>,
    stitch_queue: Arc<dyn Queue>,
    params: ParamsCache,
    worker_id: String,
}

impl TileWorker {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        stitch_queue: Arc<dyn Queue>,
        worker_id: impl Into<String>,
    ) -> Self {
        TileWorker {
            store,
            stitch_queue,
            params: ParamsCache::new(),
            worker_id: worker_id.into(),
        }
    }

    /// Parses a tiles-queue message body and renders its tile.
    pub async fn handle_message(&self, body: &str) -> Result<TileOutcome, PipelineError> {
        let msg: TileMessage =
            serde_json::from_str(body).map_err(|e| PipelineError::BadMessage {
                reason: e.to_string(),
            })?;
        self.render(&msg).await
    }

    /// Computes the tile, stores its blob (a keyed overwrite with the same
    /// bytes, so a redelivery is harmless), then checks whether the job is
    /// complete. S3 listing is read-after-write consistent, so whoever writes
    /// the last tile sees all of them and sends the stitch message.
    pub async fn render(&self, msg: &TileMessage) -> Result<TileOutcome, PipelineError> {
        let params = self.params.get(&*self.store, &msg.job).await?;
        let tile = msg.tile();
        if !params.contains(tile) {
            return Err(PipelineError::TileOutOfRange {
                job: msg.job.clone(),
                tile,
                tiles_per_side: params.tiles_per_side,
            });
        }
        let (bytes, compute_us) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let counts = kernel::render_tile(&params, tile);
            let compute_us = started.elapsed().as_micros() as u64;
            (blob::encode(&counts), compute_us)
        })
        .await
        .expect("tile kernel panicked");
        let metadata = Metadata::from([
            (META_SHA256.to_string(), hex(&Sha256::digest(&bytes))),
            (META_COMPUTE_US.to_string(), compute_us.to_string()),
            (META_WORKER.to_string(), self.worker_id.clone()),
        ]);
        self.store
            .put(
                &msg.job.tile_key(tile),
                Bytes::from(bytes),
                metadata,
                PutMode::Overwrite,
            )
            .await?;

        let done = count_tiles(&*self.store, &msg.job, &params).await?;
        let completed_job = done == params.tile_count();
        if completed_job {
            let body = serde_json::to_string(&StitchMessage {
                job: msg.job.clone(),
            })
            .expect("serialises");
            self.stitch_queue.send_batch(&[body]).await?;
        }
        Ok(TileOutcome {
            job: msg.job.clone(),
            tile,
            compute_us,
            completed_job,
        })
    }
}

/// How many of the job's tiles are stored.
pub async fn count_tiles(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &mandel_core::RenderParams,
) -> Result<u64, PipelineError> {
    Ok(stored_tiles(store, job, params).await?.len() as u64)
}

/// The job's tiles that are stored, sorted.
pub async fn stored_tiles(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &mandel_core::RenderParams,
) -> Result<Vec<TileId>, PipelineError> {
    let listed = store.list(&job.tiles_prefix()).await?;
    let mut tiles: Vec<TileId> = listed
        .iter()
        .filter_map(|m| job.tile_of_key(&m.key))
        .filter(|t| params.contains(*t))
        .collect();
    tiles.sort();
    Ok(tiles)
}
