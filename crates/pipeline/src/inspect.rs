//! A bucket's jobs, for people: `--list` (every job, newest first) and
//! `--status` (one job in detail). Both only read the bucket, so any
//! laptop with read access can ask.

use futures::StreamExt;
use mandel_core::RenderParams;
use serde::Serialize;

use crate::error::PipelineError;
use crate::estimate::{Estimate, Submission};
use crate::job::{Failure, JobId};
use crate::progress::Progress;
use crate::records::{read_attempt, read_failures, read_params, read_result, read_submission};
use crate::store::ObjectStore;

/// Where all jobs live.
const JOBS_PREFIX: &str = "jobs/";

/// Jobs read at once by [`list_jobs`].
const PARALLEL_JOBS: usize = 8;

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Finished,
    /// A tile or the stitch failed its last attempt (re-run to retry).
    Failed,
    Cancelled,
}

/// One line of `--list`.
#[derive(Clone, Debug, Serialize)]
pub struct JobSummary {
    pub job: JobId,
    pub params: RenderParams,
    pub width: u64,
    pub tiles: u64,
    pub state: JobState,
    /// Tiles stored: exact for a job listed whole; above, whole rows (from the
    /// row markers), so a running big job costs one listing.
    pub stored: u64,
    /// When it was last submitted (Unix ms), if the client recorded it.
    pub submitted_ms: Option<u64>,
    /// From submit to the stitched result, for a finished job.
    pub seconds: Option<f64>,
}

/// `--status`: one job in detail.
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    #[serde(flatten)]
    pub summary: JobSummary,
    /// Tiles neither stored nor failed: queued or rendering.
    pub pending: u64,
    pub failures: Vec<Failure>,
    pub stitch: StitchState,
    /// The estimate shown when it was submitted.
    pub estimate: Option<Estimate>,
}

/// The stitch of a job.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum StitchState {
    /// Tiles are still missing.
    Waiting,
    /// Every tile is in; no stitch has started yet.
    Due,
    /// Started (delivery `attempt`), `age_seconds` ago.
    Running {
        attempt: u32,
        age_seconds: f64,
    },
    Finished,
}

/// Every job in the bucket, newest first (jobs with no recorded submit
/// time last, by id). Objects under `jobs/` that are not a job (no
/// readable params) are left out.
pub async fn list_jobs(store: &dyn ObjectStore) -> Result<Vec<JobSummary>, PipelineError> {
    let ids: Vec<JobId> = store
        .list_children(JOBS_PREFIX)
        .await?
        .iter()
        .filter_map(|name| JobId::parse(name).ok())
        .collect();
    let read: Vec<_> = futures::stream::iter(ids.iter().map(|job| summary(store, job)))
        .buffered(PARALLEL_JOBS)
        .collect()
        .await;
    let mut jobs = Vec::new();
    for r in read {
        match r {
            Ok(s) => jobs.push(s),
            Err(PipelineError::UnknownJob { .. } | PipelineError::BadStoredParams { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    jobs.sort_by(|a, b| {
        b.submitted_ms
            .cmp(&a.submitted_ms)
            .then_with(|| a.job.cmp(&b.job))
    });
    Ok(jobs)
}

/// One job's summary: its params, its submission, one look at its
/// progress, and its result if finished.
async fn summary(store: &dyn ObjectStore, job: &JobId) -> Result<JobSummary, PipelineError> {
    Ok(look(store, job, false).await?.0)
}

/// A job's summary and its submission, from one look at its progress;
/// `exact`: a running job tracked by rows counts its tiles one by one
/// (every page of them) instead of its whole rows.
async fn look(
    store: &dyn ObjectStore,
    job: &JobId,
    exact: bool,
) -> Result<(JobSummary, Option<Submission>), PipelineError> {
    let params = read_params(store, job).await?;
    let submission = read_submission(store, job).await?;
    let tiles = params.tile_count();
    let progress = Progress::read(store, job, &params).await?;
    let result = match progress.finished().await? {
        true => read_result(store, job).await?,
        false => None,
    };
    let state = if result.is_some() {
        JobState::Finished
    } else if progress.cancelled().await? {
        JobState::Cancelled
    } else if !progress.failure_keys().await?.is_empty() {
        JobState::Failed
    } else {
        JobState::Running
    };
    let stored = match result {
        Some(_) => tiles,
        None if exact => progress.stored_exactly().await?,
        None => progress.stored(),
    };
    let submitted_ms = submission.as_ref().map(|s| s.submitted_ms);
    let seconds = result
        .as_ref()
        .zip(submitted_ms)
        .map(|(m, at)| m.finished_ms().saturating_sub(at) as f64 / 1e3);
    let summary = JobSummary {
        job: job.clone(),
        width: params.image_side(),
        params,
        tiles,
        state,
        stored,
        submitted_ms,
        seconds,
    };
    Ok((summary, submission))
}

/// One job in detail: its summary with every tile counted, its failures
/// with their reasons, and its stitch.
pub async fn job_status(store: &dyn ObjectStore, job: &JobId) -> Result<JobStatus, PipelineError> {
    let (summary, submission) = look(store, job, true).await?;
    let failures = read_failures(store, job).await?;
    let tiles_failed = failures
        .iter()
        .filter(|f| matches!(f.what, crate::job::Failed::Tile(_)))
        .count() as u64;
    let stitch = match summary.state {
        JobState::Finished => StitchState::Finished,
        _ if summary.stored < summary.tiles => StitchState::Waiting,
        _ => match read_attempt(store, job).await? {
            Some(a) => StitchState::Running {
                attempt: a.attempt,
                age_seconds: a.age().as_secs_f64(),
            },
            None => StitchState::Due,
        },
    };
    let estimate = submission.map(|s| s.estimate);
    Ok(JobStatus {
        pending: (summary.tiles - summary.stored).saturating_sub(tiles_failed),
        summary,
        failures,
        stitch,
        estimate,
    })
}
