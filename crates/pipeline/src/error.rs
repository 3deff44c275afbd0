use mandel_core::{ParamError, TileId};
use thiserror::Error;

use crate::job::{Failure, JobId};
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
    #[error("{reason}")]
    Deployment { reason: String },
    #[error("the job does not fit this deployment: {reason}")]
    OverCapacity { reason: String },
    #[error("malformed message: {reason}")]
    BadMessage { reason: String },
    #[error("job {job} has no params.json in this store; was it submitted here?")]
    UnknownJob { job: JobId },
    #[error("job {job}: stored params.json is invalid: {reason}")]
    BadStoredParams { job: JobId, reason: String },
    /// A job's params.json holds another job's params: a job's id is the
    /// hash of its params, so these were written by hand (or to poison a
    /// shared bucket) and are not the job's.
    #[error(
        "job {job}: its params.json holds the params of job {hashed} (a job's id is the hash of \
         its canonical params, alone or with a --fresh suffix); refused"
    )]
    NotItsParams { job: JobId, hashed: JobId },
    /// A deep job's tile was asked for before its reference orbit is whole.
    #[error("job {job}: its reference orbit is not computed yet")]
    NoReference { job: JobId },
    #[error(
        "job {job}: reference orbit segment {segment} stopped before its first point (the \
         worker's deadline); it is retried"
    )]
    ReferenceUnfinished { job: JobId, segment: u32 },
    /// A record the pipeline wrote (a result, the stats) does not parse.
    #[error("{key} is unreadable: {reason}")]
    Unreadable { key: String, reason: String },
    /// The stitch stopped short of its invocation's deadline: the job's
    /// picture takes longer to stitch than the stitch function may run.
    #[error(
        "job {job}: the stitch stopped at its deadline after {:.1} s of its {:.0} s invocation \
         (the rest kept to record this); the picture takes longer to stitch than the stitch \
         function may run: give it a longer timeout (Terraform: stitch_timeout_seconds, up to \
         900) or more memory (faster vCPUs), or render fewer pixels",
        ran.as_secs_f64(),
        invocation.as_secs_f64()
    )]
    StitchOutOfTime {
        job: JobId,
        ran: std::time::Duration,
        invocation: std::time::Duration,
    },
    /// A record read whole is larger than any the pipeline writes: it was
    /// planted (a principal that may write the job's records), and is not
    /// read.
    #[error(
        "{key} is larger than {limit} bytes, more than the pipeline ever writes there: not read"
    )]
    RecordTooLarge { key: String, limit: u64 },
    #[error(
        "job {job} was submitted with other parameters than these; \
         pass that job's own parameters, or leave out the job id for a new job"
    )]
    ParamsConflict { job: JobId },
    #[error("job {job}: tile {tile} is outside the {tiles_per_side}x{tiles_per_side} grid")]
    TileOutOfRange {
        job: JobId,
        tile: TileId,
        tiles_per_side: u32,
    },
    #[error("job {job}: {} tiles missing, e.g. {}", missing.len(), list_some(missing))]
    MissingTiles { job: JobId, missing: Vec<TileId> },
    /// The embedded mode's scratch folder could not be made.
    #[error("cannot make a scratch folder in {}: {reason}", dir.display())]
    Scratch {
        dir: std::path::PathBuf,
        reason: String,
    },
    #[error("job {job}: encoding the image failed: {reason}")]
    Encode { job: JobId, reason: String },
    #[error(
        "job {job} failed: {}{}",
        failures.iter().take(8).map(|f| f.to_string()).collect::<Vec<_>>().join("; "),
        if failures.len() > 8 { format!("; and {} more", failures.len() - 8) } else { String::new() }
    )]
    JobFailed { job: JobId, failures: Vec<Failure> },
    #[error("job {job} was cancelled")]
    Cancelled { job: JobId },
    #[error(
        "job {job}: tile {tile} did not finish before the worker's deadline (its Lambda timeout); \
         use more tiles, fewer iterations or a longer worker timeout"
    )]
    Unfinished { job: JobId, tile: TileId },
}

impl PipelineError {
    /// Whether retrying the same message can never succeed: the message or
    /// what it points at is wrong, not the weather.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            PipelineError::InvalidParams(_)
                | PipelineError::BadMessage { .. }
                | PipelineError::UnknownJob { .. }
                | PipelineError::BadStoredParams { .. }
                | PipelineError::NotItsParams { .. }
                | PipelineError::ParamsConflict { .. }
                | PipelineError::TileOutOfRange { .. }
                | PipelineError::RecordTooLarge { .. }
        ) || self.is_denied()
    }

    /// Whether an access policy refused a call: the job cannot go on
    /// until someone fixes the policy, so this is recorded for the client
    /// at once instead of after the last delivery.
    pub fn is_denied(&self) -> bool {
        match self {
            PipelineError::Store(StoreError::Denied { .. }) => true,
            PipelineError::Queue(e) => e.denied.is_some(),
            _ => false,
        }
    }
}

fn list_some(tiles: &[TileId]) -> String {
    let shown: Vec<String> = tiles.iter().take(8).map(|t| t.to_string()).collect();
    shown.join(", ")
}
