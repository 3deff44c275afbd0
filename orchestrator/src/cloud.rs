//! `--bucket`: the same job through S3 and SQS, rendered by remote workers:
//! connect, submit, wait, download, each a step of its own; and `--cancel`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use indicatif::ProgressBar;
use mandel_aws::{AwsClients, Cloud};
use mandel_core::RenderParams;
use mandel_pipeline::estimate::Submission;
use mandel_pipeline::inspect::{JobStatus, JobSummary, StitchState, job_status, list_jobs};
use mandel_pipeline::{
    CancelOutcome, Failed, JobId, PipelineError, ResultManifest, Submitted, WaitPolicy, cancel,
    progress::{self, Progress},
    submit, wait_for_result,
};

use crate::cli::{Output, Wait};

/// The bucket's deployment.
pub async fn connect(bucket: &str) -> Result<Cloud> {
    Ok(Cloud::connect(&AwsClients::from_env().await, bucket).await?)
}

/// Submits `params` under `job`, a fresh id, or the params' hash,
/// recording `submission` for its report. With `announce` (the command
/// goes on to wait for a human reader), says what was enqueued on stderr.
pub async fn submit_job(
    cloud: &Cloud,
    params: &RenderParams,
    job: Option<JobId>,
    fresh: bool,
    submission: &Submission,
    announce: bool,
) -> Result<Submitted> {
    let job = job.or_else(|| fresh.then(|| fresh_id(params)));
    let started = std::time::Instant::now();
    let submitted = submit(&cloud.ports, params, job, Some(submission)).await?;
    if announce {
        eprintln!(
            "job {} in s3://{}: {} tiles enqueued, {} already stored{} ({:.1} s)",
            submitted.job,
            cloud.deployment.bucket,
            submitted.enqueued,
            submitted.already_stored,
            if submitted.finished {
                ", already finished"
            } else {
                ""
            },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(submitted)
}

/// A new job id for `params`: their hash and the time.
fn fresh_id(params: &RenderParams) -> JobId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    JobId::parse(&format!("{}-{:x}", JobId::for_params(params), nanos)).expect("valid id")
}

/// Waits for the job's result, showing progress on `bar`. A failed job
/// names its failures and dead-letter queue; a timeout lists the missing
/// tiles.
pub async fn wait(
    cloud: &Cloud,
    job: &JobId,
    params: &RenderParams,
    wait: &Wait,
    bar: &ProgressBar,
) -> Result<ResultManifest> {
    let policy = WaitPolicy {
        poll_every: progress::poll_interval(params.tile_count()),
        restitch_after: wait.restitch_after,
        stitch_timeout: Some(cloud.deployment.stitch.timeout()),
    };
    let waited = tokio::time::timeout(
        wait.timeout,
        wait_for_result(&cloud.ports, job, params, policy, |n| bar.set_position(n)),
    )
    .await;
    match waited {
        Ok(Err(e @ PipelineError::JobFailed { .. })) => {
            let PipelineError::JobFailed { failures, .. } = &e else {
                unreachable!()
            };
            // The stitch's failures go to its own dead-letter queue.
            let dlq = if failures.iter().all(|f| f.what == Failed::Stitch) {
                &cloud.deployment.stitch_dlq_url
            } else {
                &cloud.deployment.tiles_dlq_url
            };
            bail!(
                "{e}\nthe failed messages are moved to the dead-letter queue {dlq}; \
                 fix the cause, then re-run the same command to retry what is missing"
            )
        }
        Ok(r) => Ok(r?),
        Err(_) => {
            let missing = Progress::read(&*cloud.ports.store, job, params)
                .await?
                .missing()
                .await?;
            let shown: Vec<String> = missing.iter().take(16).map(|t| t.to_string()).collect();
            bail!(
                "timed out after {} s waiting for job {job}: {} of {} tiles missing ({}{}); \
                 re-run the same command to resume",
                wait.timeout.as_secs(),
                missing.len(),
                params.tile_count(),
                shown.join(", "),
                if missing.len() > 16 { ", ..." } else { "" }
            );
        }
    }
}

/// `--cancel JOB`.
pub async fn cancel_job(bucket: &str, job: &JobId, output: Output) -> Result<()> {
    let cloud = connect(bucket).await?;
    let outcome = cancel(&*cloud.ports.store, job).await?;
    let name = match outcome {
        CancelOutcome::Cancelled => "cancelled",
        CancelOutcome::AlreadyFinished => "already_finished",
    };
    let doc = serde_json::json!({ "job": job.as_str(), "outcome": name });
    output.answer("cancel", &doc, || match outcome {
        CancelOutcome::Cancelled => format!(
            "cancelled job {job}; workers skip its remaining tiles (re-run its command to resume)\n"
        ),
        CancelOutcome::AlreadyFinished => {
            format!("job {job} already finished; nothing to cancel\n")
        }
    });
    Ok(())
}

/// `--list`.
pub async fn list(bucket: &str, output: Output) -> Result<()> {
    let cloud = connect(bucket).await?;
    let jobs = list_jobs(&*cloud.ports.store).await?;
    output.answer("jobs", &jobs, || {
        let mut text = format!(
            "{:<44} {:>11} {:>7} {:>9} {:>15} {:<20} {:>9}\n",
            "JOB", "SIZE", "TILES", "STATE", "STORED", "SUBMITTED (UTC)", "WALL"
        );
        for j in &jobs {
            text += &list_line(j);
            text += "\n";
        }
        text
    });
    Ok(())
}

fn list_line(j: &JobSummary) -> String {
    format!(
        "{:<44} {:>11} {:>7} {:>9} {:>15} {:<20} {:>9}",
        j.job.as_str(),
        format!("{0}x{0}", j.width),
        j.tiles,
        format!("{:?}", j.state).to_lowercase(),
        format!("{}/{}", j.stored, j.tiles),
        j.submitted_ms.map_or("-".to_string(), utc),
        j.seconds.map_or("-".to_string(), |s| format!("{s:.1} s")),
    )
}

/// A Unix time in milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
fn utc(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| "-".to_string())
}

/// `--status JOB`.
pub async fn status(bucket: &str, job: &JobId, output: Output) -> Result<()> {
    let cloud = connect(bucket).await?;
    let status = match job_status(&*cloud.ports.store, job).await {
        Err(PipelineError::UnknownJob { .. }) => bail!("no job {job} in s3://{bucket}"),
        r => r?,
    };
    output.answer("status", &status, || status_text(&status));
    Ok(())
}

fn status_text(s: &JobStatus) -> String {
    let j = &s.summary;
    let mut out = format!(
        "job {}: {:?}\n  {}x{} in {} tiles of {} px, max_iter {}, {}\n",
        j.job,
        j.state,
        j.width,
        j.width,
        j.tiles,
        j.params.tile_pixels,
        j.params.max_iter,
        j.params.view,
    );
    out += &format!(
        "  tiles: {} stored, {} pending (queued or rendering), {} failed\n",
        j.stored,
        s.pending,
        s.failures.len()
    );
    for f in &s.failures {
        out += &format!("    failed: {f}\n");
    }
    out += &match &s.stitch {
        StitchState::Waiting => "  stitch: waiting for tiles\n".to_string(),
        StitchState::Due => "  stitch: due (every tile is stored)\n".to_string(),
        StitchState::Running {
            attempt,
            age_seconds,
        } => format!("  stitch: attempt {attempt}, started {age_seconds:.0} s ago\n"),
        StitchState::Finished => "  stitch: finished\n".to_string(),
    };
    if let Some(at) = j.submitted_ms {
        out += &format!("  submitted {} UTC", utc(at));
        if let Some(secs) = j.seconds {
            out += &format!(", finished after {secs:.1} s");
        }
        out += "\n";
    }
    if let Some(e) = &s.estimate {
        out += &format!(
            "  estimate: {:.2} s{}\n",
            e.seconds,
            e.cost
                .as_ref()
                .map(|c| format!(", ${:.4}", c.total))
                .unwrap_or_default()
        );
    }
    out
}
