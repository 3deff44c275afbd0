//! The client's use cases: submit a job, wait for its result, cancel it.

use std::time::Duration;

use mandel_core::RenderParams;

use crate::error::PipelineError;
use crate::estimate::Submission;
use crate::job::{Failure, JobId, ResultManifest, StitchAttempt, TileMessage};
use crate::ports::Ports;
use crate::progress::Progress;
use crate::records::{
    self, read_attempt, read_failures_at, read_result, restart_stitch, write_params,
    write_submission,
};
use crate::store::ObjectStore;
use tracing::warn;

/// Tile messages built and sent at a time by [`submit`].
const SEND_CHUNK: usize = 1000;

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
/// `params.json` once, for a deep job has its reference orbit computed
/// ([`crate::reference`]), and enqueues one message per tile not yet stored. A
/// re-run of the same job therefore resumes it, and a finished job is left
/// alone. If every tile is stored but no result exists, a stitch message is
/// sent instead. A re-run also clears the job's failure records and cancel
/// marker: it is a fresh attempt at what is missing.
///
/// `job` is the params' content hash unless given (`--job`, `--fresh`);
/// `submission` (the estimate shown to the user) is recorded in the job
/// for its report, unless the job is already finished.
pub async fn submit(
    ports: &Ports,
    params: &RenderParams,
    job: Option<JobId>,
    submission: Option<&Submission>,
) -> Result<Submitted, PipelineError> {
    let (store, tiles_queue, stitch_queue) = (&*ports.store, &*ports.tiles, &*ports.stitch);
    params.validate()?;
    let job = job.unwrap_or_else(|| JobId::for_params(params));
    // The params first: a job id given with other params (`--job X` and a
    // different viewport) is refused, even for a finished job, instead of
    // answering with X's picture.
    write_params(store, &job, params).await?;
    // A job listed whole: one listing answers every question below.
    let progress = Progress::read(store, &job, params).await?;
    if progress.finished().await? {
        return Ok(Submitted {
            job,
            enqueued: 0,
            already_stored: params.tile_count(),
            finished: true,
        });
    }
    for key in progress.failure_keys().await? {
        store.delete(&key).await?;
    }
    if progress.may_have(&job.cancelled_key()) {
        store.delete(&job.cancelled_key()).await?;
    }
    if let Some(submission) = submission {
        write_submission(store, &job, submission).await?;
    }
    // A deep job's tiles need its reference orbit: computed first, once.
    if params.as_deep().is_some() {
        crate::reference::await_reference(&*ports.store, &*ports.tiles, &job).await?;
    }
    let missing = progress.missing().await?;
    if missing.is_empty() {
        // A fresh stitch attempt: an earlier one that died is forgotten.
        restart_stitch(store, stitch_queue, &job).await?;
    }
    // In chunks, so a million tiles never exist as a million messages at
    // once here (the queue adapters send each chunk in SQS batches of 10).
    for chunk in missing.chunks(SEND_CHUNK) {
        let messages: Vec<String> = chunk
            .iter()
            .map(|t| serde_json::to_string(&TileMessage::new(job.clone(), *t)).expect("serialises"))
            .collect();
        tiles_queue.send_batch(&messages).await?;
    }
    Ok(Submitted {
        job,
        enqueued: missing.len() as u64,
        already_stored: params.tile_count() - missing.len() as u64,
        finished: false,
    })
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
    records::mark_cancelled(store, job).await?;
    Ok(CancelOutcome::Cancelled)
}

/// What [`cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    /// The job has its result; nothing to cancel.
    AlreadyFinished,
}

/// How [`wait_for_result`] polls, and when it un-sticks a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Between two listings of the job.
    pub poll_every: Duration,
    /// A job whose tiles are all stored but that has no result this long
    /// after is sent another stitch message: the first may have been lost
    /// or dead-lettered, or its stitch killed by a timeout or out of
    /// memory. Then again after twice as long, and so on. A duplicate
    /// stitch is harmless (one result, create-only).
    pub restitch_after: Duration,
    /// The stitch function's timeout: a stitch that started and has not
    /// finished this long after (and a little more) was killed. After its
    /// last attempt, or a second death, the wait fails and says so.
    /// `None`: no limit (embedded mode).
    pub stitch_timeout: Option<Duration>,
}

impl WaitPolicy {
    /// The default [`restitch_after`](Self::restitch_after): a minute.
    pub const RESTITCH_AFTER: Duration = Duration::from_secs(60);

    /// Polls every `poll_every`; re-sends a stitch after a minute.
    pub fn polling(poll_every: Duration) -> Self {
        WaitPolicy {
            poll_every,
            restitch_after: Self::RESTITCH_AFTER,
            stitch_timeout: None,
        }
    }
}

/// Past a stitch's timeout, how long before it counts as killed: Lambda
/// stops it at the timeout; this covers the marker's write and a poll.
const KILLED_AFTER: Duration = Duration::from_secs(10);

/// Polls the store until the job's result is published, calling `progress`
/// with the number of stored tiles whenever it changes. Stops with
/// [`PipelineError::JobFailed`] as soon as a worker records a final failure
/// (the job cannot finish without help) and with
/// [`PipelineError::Cancelled`] if the job is cancelled. A job left with
/// every tile and no result is sent a stitch message again
/// ([`WaitPolicy::restitch_after`]), so it is never stuck while a client
/// waits; a client that comes back (`--job`) re-submits, which does the same.
pub async fn wait_for_result(
    ports: &Ports,
    job: &JobId,
    params: &RenderParams,
    policy: WaitPolicy,
    mut progress: impl FnMut(u64),
) -> Result<ResultManifest, PipelineError> {
    let (store, stitch_queue) = (&*ports.store, &*ports.stitch);
    let mut last = None;
    let mut complete_since: Option<tokio::time::Instant> = None;
    let mut grace = policy.restitch_after;
    let mut resent_for_death = false;
    let mut attempt = None;
    loop {
        // A cost that does not grow with the job: one listing of a job
        // listed whole (progress by tile); for a larger one its row
        // markers (progress by row), its failure records and two HEADs.
        let seen = Progress::read(store, job, params).await?;
        if seen.finished().await?
            && let Some(manifest) = read_result(store, job).await?
        {
            progress(params.tile_count());
            return Ok(manifest);
        }
        let failures = read_failures_at(store, &seen.failure_keys().await?).await?;
        if !failures.is_empty() {
            return Err(PipelineError::JobFailed {
                job: job.clone(),
                failures,
            });
        }
        if seen.cancelled().await? {
            return Err(PipelineError::Cancelled { job: job.clone() });
        }
        let done = seen.stored();
        if last != Some(done) {
            progress(done);
            last = Some(done);
        }
        if done == params.tile_count() {
            // Killed: seen running longer than its timeout allows, by this
            // client's own clock since it first saw the attempt (the
            // marker's start is the stitch's wall clock, and two machines'
            // clocks may differ by minutes).
            let killed = |seen_at: &tokio::time::Instant| {
                policy
                    .stitch_timeout
                    .is_some_and(|timeout| seen_at.elapsed() > timeout + KILLED_AFTER)
            };
            // The marker is read once per attempt: it changes only when a
            // new attempt starts, which matters only once this one would
            // count as killed. The same attempt keeps the time it was
            // first seen.
            attempt = match (seen.stitching(), attempt) {
                (Some(false), _) => None,
                (_, Some((a, at))) if !killed(&at) => Some((a, at)),
                (_, previous) => read_attempt(store, job).await?.map(|a| {
                    let at = match previous {
                        Some((p, at)) if p == a => at,
                        _ => tokio::time::Instant::now(),
                    };
                    (a, at)
                }),
            };
            let since = *complete_since.get_or_insert_with(tokio::time::Instant::now);
            let resend = match &attempt {
                // Started and never finished: killed at its timeout or by
                // its memory limit. SQS retries it unless that was its last
                // delivery; a second death ends the wait.
                Some((a, at)) if killed(at) => {
                    if a.last || resent_for_death {
                        return Err(stitch_killed(job, a, policy));
                    }
                    resent_for_death = true;
                    true
                }
                // Running, or to be retried by SQS.
                Some(_) => false,
                // Never started: the message was lost or dead-lettered.
                None => since.elapsed() >= grace,
            };
            if resend {
                warn!(%job, after = ?since.elapsed(), "every tile is stored but there is no result: sending the stitch message again");
                restart_stitch(store, stitch_queue, job).await?;
                attempt = None;
                complete_since = Some(tokio::time::Instant::now());
                grace *= 2;
            }
        }
        tokio::time::sleep(policy.poll_every).await;
    }
}

/// The failure of a stitch that was killed.
fn stitch_killed(job: &JobId, a: &StitchAttempt, policy: WaitPolicy) -> PipelineError {
    let timeout = policy.stitch_timeout.map_or(0, |t| t.as_secs());
    PipelineError::JobFailed {
        job: job.clone(),
        failures: vec![Failure {
            what: crate::job::Failed::Stitch,
            reason: format!(
                "the stitch started and did not finish: it was killed by its timeout ({timeout} s) \
                 or by its memory limit (its log says which); render a smaller image or give the \
                 stitch function more memory or time"
            ),
            attempts: a.attempt,
            worker: "stitch".to_string(),
        }],
    }
}
