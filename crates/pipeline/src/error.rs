use mandel_core::{ParamError, TileId};
use thiserror::Error;

use crate::job::JobId;
use crate::queue::QueueError;
use crate::store::StoreError;

/// Why a use case failed.
#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("invalid render parameters: {0}")]
    InvalidParams(#[from] ParamError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("malformed message: {reason}")]
    BadMessage { reason: String },
    #[error("job {job} has no params.json in this store; was it submitted here?")]
    UnknownJob { job: JobId },
    #[error("job {job}: stored params.json is invalid: {reason}")]
    BadStoredParams { job: JobId, reason: String },
    #[error("job {job}: a different params.json is already stored under this id")]
    ParamsConflict { job: JobId },
    #[error("job {job}: tile {tile} is outside the {tiles_per_side}x{tiles_per_side} grid")]
    TileOutOfRange {
        job: JobId,
        tile: TileId,
        tiles_per_side: u32,
    },
    #[error("job {job}: tile {tile} is corrupt: {reason}")]
    CorruptTile {
        job: JobId,
        tile: TileId,
        reason: String,
    },
    #[error("job {job}: {} tiles missing, e.g. {}", missing.len(), list_some(missing))]
    MissingTiles { job: JobId, missing: Vec<TileId> },
    #[error("job {job}: encoding the image failed: {reason}")]
    Encode { job: JobId, reason: String },
}

fn list_some(tiles: &[TileId]) -> String {
    let shown: Vec<String> = tiles.iter().take(8).map(|t| t.to_string()).collect();
    shown.join(", ")
}
