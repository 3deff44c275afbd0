//! The client's use cases: submit a job, wait for its result, cancel it.

use std::time::Duration;

use bytes::Bytes;
use mandel_core::RenderParams;

use crate::error::PipelineError;
use crate::job::{Failure, JobId, ResultManifest, StitchMessage, TileMessage};
use crate::queue::Queue;
use crate::store::{Metadata, ObjectStore, PutMode, PutOutcome, StoreError};
use crate::worker::{stored_tiles, whole_tiles};

/// What [`submit`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub job: JobId,
    /// Tile messages sent now.
    pub enqueued: u64,
    /// Tiles already stored by an earlier run, not sent again.
    pub already_stored: u64,
    /// The job already has a result; nothing was sent.
    pub finished: bool,
}

/// Validates `params` (nothing is written if they are invalid), writes
/// `params.json` once, and enqueues one message per tile not yet stored. A
/// re-run of the same job therefore resumes it, and a finished job is left
/// alone. If every tile is stored but no result exists, a stitch message is
/// sent instead. A re-run also clears the job's failure records and cancel
/// marker: it is a fresh attempt at what is missing.
pub async fn submit(
    store: &dyn ObjectStore,
    tiles_queue: &dyn Queue,
    stitch_queue: &dyn Queue,
    params: &RenderParams,
    job: Option<JobId>,
) -> Result<Submitted, PipelineError> {
    params.validate()?;
    let job = job.unwrap_or_else(|| JobId::for_params(params));
    if store.head(&job.result_key()).await?.is_some() {
        return Ok(Submitted {
            job,
            enqueued: 0,
            already_stored: params.tile_count(),
            finished: true,
        });
    }
    let body = Bytes::from(params.canonical_json());
    let key = job.params_key();
    if store
        .put(&key, body.clone(), Metadata::new(), PutMode::Create)
        .await?
        == PutOutcome::AlreadyExists
    {
        let stored = store.get(&key).await?.body;
        if stored != body {
            return Err(PipelineError::ParamsConflict { job });
        }
    }
    clear_failures(store, &job).await?;
    store.delete(&job.cancelled_key()).await?;
    let stored = stored_tiles(store, &job, params).await?;
    let messages: Vec<String> = params
        .tiles()
        .filter(|t| stored.binary_search(t).is_err())
        .map(|t| {
            serde_json::to_string(&TileMessage {
                job: job.clone(),
                row: t.row,
                col: t.col,
            })
            .expect("serialises")
        })
        .collect();
    if messages.is_empty() {
        let body = serde_json::to_string(&StitchMessage { job: job.clone() }).expect("serialises");
        stitch_queue.send_batch(&[body]).await?;
    } else {
        tiles_queue.send_batch(&messages).await?;
    }
    Ok(Submitted {
        job,
        enqueued: messages.len() as u64,
        already_stored: stored.len() as u64,
        finished: false,
    })
}

async fn clear_failures(store: &dyn ObjectStore, job: &JobId) -> Result<(), PipelineError> {
    for record in store.list(&job.failed_prefix()).await? {
        store.delete(&record.key).await?;
    }
    Ok(())
}

/// Marks the job cancelled: workers acknowledge its remaining messages
/// without rendering, the stitch skips it, and a client waiting for it
/// stops with [`PipelineError::Cancelled`]. Submitting the job again
/// resumes it. A finished job cannot be cancelled (its result stays).
pub async fn cancel(store: &dyn ObjectStore, job: &JobId) -> Result<CancelOutcome, PipelineError> {
    if store.head(&job.params_key()).await?.is_none() {
        return Err(PipelineError::UnknownJob { job: job.clone() });
    }
    if store.head(&job.result_key()).await?.is_some() {
        return Ok(CancelOutcome::AlreadyFinished);
    }
    store
        .put(
            &job.cancelled_key(),
            Bytes::new(),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await?;
    Ok(CancelOutcome::Cancelled)
}

/// What [`cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    /// The job has its result; nothing to cancel.
    AlreadyFinished,
}

/// The job's failure records, if any.
pub async fn read_failures(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Vec<Failure>, PipelineError> {
    let mut failures = Vec::new();
    for record in store.list(&job.failed_prefix()).await? {
        let body = match store.get(&record.key).await {
            Ok(o) => o.body,
            // Cleared by a re-run between the list and the get.
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        failures.push(
            serde_json::from_slice(&body).map_err(|e| PipelineError::BadMessage {
                reason: format!("failure record {} is unreadable: {e}", record.key),
            })?,
        );
    }
    Ok(failures)
}

/// Polls the store until the job's result is published, calling `progress`
/// with the number of stored tiles whenever it changes. Stops with
/// [`PipelineError::JobFailed`] as soon as a worker records a final failure
/// (the job cannot finish without help) and with
/// [`PipelineError::Cancelled`] if the job is cancelled.
pub async fn wait_for_result(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
    poll_every: Duration,
    mut progress: impl FnMut(u64),
) -> Result<ResultManifest, PipelineError> {
    let mut last = None;
    loop {
        // One listing of the whole job answers every question of a poll:
        // result, failures, cancel, progress.
        let listed = store.list(&job.prefix()).await?;
        let has = |key: &str| listed.iter().any(|m| m.key == key);
        if has(&job.result_key())
            && let Some(manifest) = read_result(store, job).await?
        {
            progress(params.tile_count());
            return Ok(manifest);
        }
        let failed_prefix = job.failed_prefix();
        if listed.iter().any(|m| m.key.starts_with(&failed_prefix)) {
            let failures = read_failures(store, job).await?;
            if !failures.is_empty() {
                return Err(PipelineError::JobFailed {
                    job: job.clone(),
                    failures,
                });
            }
        }
        if has(&job.cancelled_key()) {
            return Err(PipelineError::Cancelled { job: job.clone() });
        }
        let done = whole_tiles(&listed, job, params).count() as u64;
        if last != Some(done) {
            progress(done);
            last = Some(done);
        }
        tokio::time::sleep(poll_every).await;
    }
}

/// The job's result manifest, if published.
pub async fn read_result(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<Option<ResultManifest>, PipelineError> {
    match store.get(&job.result_key()).await {
        Ok(o) => serde_json::from_slice(&o.body)
            .map(Some)
            .map_err(|e| PipelineError::BadMessage {
                reason: format!("result.json of job {job} is unreadable: {e}"),
            }),
        Err(crate::store::StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
