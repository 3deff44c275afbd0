//! `--bucket`: the same job through S3 and SQS, rendered by remote workers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use mandel_aws::{AwsClients, Cloud};
use mandel_pipeline::stitch::STORED_COLORMAP;
use mandel_pipeline::{
    CancelOutcome, Failed, JobId, PipelineError, ResultManifest, WaitPolicy, cancel, submit,
    tiles::missing_tiles, wait_for_result,
};

use crate::cli::Request;

/// Submits the job and waits for its result. `None` with `--no-wait`.
pub async fn render(
    req: &Request,
    bucket: &str,
    bar: &ProgressBar,
) -> Result<Option<(ResultManifest, Option<Vec<u8>>, Option<Vec<u8>>)>> {
    let cloud = Cloud::connect(&AwsClients::from_env().await, bucket).await?;
    // Before anything is written: a job the functions cannot finish within
    // their timeout or memory is refused here, not discovered later.
    cloud.deployment.check_capacity(&req.params)?;
    let job = req.job.clone().or_else(|| {
        req.fresh.then(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            JobId::parse(&format!("{}-{:x}", JobId::for_params(&req.params), nanos))
                .expect("valid id")
        })
    });
    let submit_started = std::time::Instant::now();
    let submitted = submit(
        &*cloud.store,
        &*cloud.tiles,
        &*cloud.stitch,
        &req.params,
        job,
    )
    .await?;
    let job = submitted.job.clone();
    if req.no_wait {
        println!("{job}");
        return Ok(None);
    }
    bar.suspend(|| {
        eprintln!(
            "job {job} in s3://{bucket}: {} tiles enqueued, {} already stored{} ({:.1} s)",
            submitted.enqueued,
            submitted.already_stored,
            if submitted.finished {
                ", already finished"
            } else {
                ""
            },
            submit_started.elapsed().as_secs_f64()
        )
    });
    let waited = tokio::time::timeout(
        req.timeout,
        wait_for_result(
            &*cloud.store,
            &*cloud.stitch,
            &job,
            &req.params,
            WaitPolicy {
                // One listing page holds 1000 tiles: poll a big job less
                // often, so progress costs about one request per 250 ms
                // whatever its size.
                poll_every: Duration::from_millis(250 * req.params.tile_count().div_ceil(1000)),
                restitch_after: req.restitch_after,
                stitch_timeout: Some(cloud.deployment.stitch.timeout()),
            },
            |n| bar.set_position(n),
        ),
    )
    .await;
    let manifest = match waited {
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
        Ok(r) => r?,
        Err(_) => {
            let missing: Vec<String> = missing_tiles(&*cloud.store, &job, &req.params)
                .await?
                .iter()
                .map(|t| t.to_string())
                .collect();
            let shown = missing
                .iter()
                .take(16)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            bail!(
                "timed out after {} s waiting for job {job}: {} of {} tiles missing ({shown}{}); \
                 re-run the same command to resume",
                req.timeout.as_secs(),
                missing.len(),
                req.params.tile_count(),
                if missing.len() > 16 { ", ..." } else { "" }
            );
        }
    };
    let png = if req.colormap == STORED_COLORMAP {
        Some(
            cloud
                .store
                .get(&manifest.image_key)
                .await
                .context("downloading the PNG")?
                .body
                .to_vec(),
        )
    } else {
        None
    };
    let npy = if req.counts_out.is_some() || png.is_none() {
        Some(
            cloud
                .store
                .get(&manifest.counts_key)
                .await
                .context("downloading the counts")?
                .body
                .to_vec(),
        )
    } else {
        None
    };
    Ok(Some((manifest, png, npy)))
}

/// `--cancel JOB`.
pub async fn cancel_job(bucket: &str, job: &JobId) -> Result<()> {
    let cloud = Cloud::connect(&AwsClients::from_env().await, bucket).await?;
    match cancel(&*cloud.store, job).await? {
        CancelOutcome::Cancelled => println!(
            "cancelled job {job}; workers skip its remaining tiles (re-run its command to resume)"
        ),
        CancelOutcome::AlreadyFinished => println!("job {job} already finished; nothing to cancel"),
    }
    Ok(())
}
