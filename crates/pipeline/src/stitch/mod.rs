//! Stitching a finished job: the stitch function's use case. This module
//! takes the message, decides whether there is work, and publishes the
//! result; [`outputs`] encodes the bands into the picture, the `.npy`, the
//! pyramid and the thumbnail; [`fetch`] gets each band's tiles.

mod fetch;
mod outputs;

use std::sync::Arc;
use std::time::Instant;

use mandel_core::Colormap;
use tracing::{info, warn};

use self::outputs::{Written, write_outputs};

use crate::error::PipelineError;
use crate::events;
use crate::job::{Failed, Failure, JobId, ResultManifest, StitchAttempt, StitchMessage};
use crate::progress::Progress;
use crate::queue::Delivery;
use crate::records::{self, read_params, record_failure};
use crate::store::{ObjectStore, PutOutcome};

/// The colormap of the stored `image.png`. Other colormaps are applied by
/// the client from `counts.npy`.
pub const STORED_COLORMAP: Colormap = Colormap::TwilightShifted;

/// Whether a stitch also writes the job's Deep Zoom pyramid (one pack,
/// [`crate::pyramid`], at [`JobId::pyramid_pack_key`]) as the picture
/// streams: the stitch function always does, so every cloud job can be
/// explored; the embedded mode does not (its `--pyramid` is cut from the
/// counts, in any colormap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pyramid {
    Write,
    Skip,
}

/// What a stitch did.
#[derive(Clone, Debug, PartialEq)]
pub enum StitchOutcome {
    /// This call published the result.
    Published(Box<ResultManifest>),
    /// A result was already there (a duplicate stitch message); nothing written.
    AlreadyDone,
    /// The job is cancelled; nothing written.
    Cancelled,
}

fn parse_stitch(body: &str) -> Result<StitchMessage, PipelineError> {
    serde_json::from_str(body).map_err(|e| PipelineError::BadMessage {
        reason: e.to_string(),
    })
}

/// Parses a stitch-queue delivery and stitches its job, as the stitch
/// function and the embedded mode run it: it marks the attempt
/// ([`StitchAttempt`]) when it starts on a known job, and if it fails on the delivery that is the queue's last
/// (`max_receive_count`), or in a way no retry can mend (a policy refuses a
/// call, the stored params are invalid), a [`Failed::Stitch`] record tells
/// the waiting client.
pub async fn handle_stitch_delivery(
    store: &Arc<dyn ObjectStore>,
    delivery: &Delivery,
    max_receive_count: Option<u32>,
    pyramid: Pyramid,
    deadline: Option<std::time::Instant>,
) -> Result<StitchOutcome, PipelineError> {
    let msg = parse_stitch(&delivery.body)?;
    let last = delivery.is_final(max_receive_count);
    let attempt = StitchAttempt::starting(delivery.receive_count, last);
    let stitching = stitch_job(store, &msg.job, Some(attempt), pyramid);
    // Stopped short of the invocation's deadline, by the workers' margin,
    // so there is time left to say why (Lambda would kill it silently).
    let started = std::time::Instant::now();
    let result = match deadline {
        None => stitching.await,
        Some(deadline) => {
            let invocation = deadline.saturating_duration_since(started);
            let stop_at = deadline - crate::deployment::stop_margin(invocation);
            // No time at all (a redelivery late in a batch): not started.
            let run = async {
                if std::time::Instant::now() >= stop_at {
                    return Err(());
                }
                tokio::time::timeout_at(stop_at.into(), stitching)
                    .await
                    .map_err(|_| ())
            };
            match run.await {
                Ok(result) => result,
                Err(()) => {
                    let e = PipelineError::StitchOutOfTime {
                        job: msg.job.clone(),
                        ran: started.elapsed(),
                        invocation,
                    };
                    warn!(job = %msg.job, error = %e, attempt = delivery.receive_count,
                          "stitch stopped at its deadline");
                    Err(e)
                }
            }
        }
    };
    // Params gone from a job that has tiles: deleted by hand, not a
    // stranger's message (which must write nothing).
    let params_gone = async |e: &PipelineError| {
        matches!(e, PipelineError::UnknownJob { .. })
            && store
                .list(&msg.job.tiles_prefix())
                .await
                .is_ok_and(|tiles| !tiles.is_empty())
    };
    if let Err(e) = &result
        && (e.is_denied()
            || matches!(e, PipelineError::BadStoredParams { .. })
            || (last && !e.is_permanent())
            || params_gone(e).await)
    {
        let failure = Failure {
            what: Failed::Stitch,
            reason: e.to_string(),
            attempts: delivery.receive_count,
            worker: "stitch".to_string(),
        };
        if let Err(e) = record_failure(&**store, &msg.job, &failure).await {
            warn!(job = %msg.job, error = %e, "could not record the failure");
        }
    }
    result
}

/// Streams the tiles into `image.png` and `counts.npy`, then publishes
/// `result.json` last with create-only semantics, so exactly one result is
/// published however many stitch messages arrive. Idempotent: a job with a
/// result is left alone.
///
/// Memory is bounded by a row of tiles, whatever the image size: the
/// image's count range comes from one listing (of the job if it has at
/// most a thousand tiles, else of its row markers), then
/// rows are fetched top row first (the next one while the current one
/// encodes) and go out as multipart uploads as they are encoded.
///
/// Marks `attempt` once the job is known to exist.
async fn stitch_job(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    attempt: Option<StitchAttempt>,
    pyramid: Pyramid,
) -> Result<StitchOutcome, PipelineError> {
    let started = Instant::now();
    let started_ms = crate::job::unix_ms();
    let params = read_params(&**store, job).await?;
    // A job listed whole answers everything below with this one listing.
    let progress = Progress::read(&**store, job, &params).await?;
    if progress.finished().await? {
        return Ok(StitchOutcome::AlreadyDone);
    }
    if progress.cancelled().await? {
        return Ok(StitchOutcome::Cancelled);
    }
    if let Some(attempt) = &attempt {
        records::mark_attempt(&**store, job, attempt).await;
    }
    let (range, rows) = progress.into_stitch_rows().await?;
    let side = params.image_side();
    let Written {
        iterations,
        stats: tile_stats,
        thumbnail,
        image_bytes,
        pyramid_bytes,
    } = write_outputs(store, job, &params, rows, range, pyramid).await?;

    // A deep job's orbit, for the report's reference phase.
    let reference = match params.as_deep() {
        Some(_) => records::read_reference_manifest(&**store, job).await?,
        None => None,
    };
    let manifest = ResultManifest {
        reference,
        job: job.clone(),
        tiles: params.tile_count(),
        params,
        width: side,
        height: side,
        image_key: job.image_key(),
        counts_key: job.counts_key(),
        colormap: STORED_COLORMAP.name().to_string(),
        iterations,
        compute_us_total: tile_stats.iter().map(|s| s.compute_us).sum(),
        stitch_us: started.elapsed().as_micros() as u64,
        stitch_started_ms: started_ms,
        image_bytes,
        pyramid_bytes,
    };
    records::write_stats(&**store, job, &tile_stats).await?;
    // The report before the result, so a finished job always has one.
    let submission = records::read_submission(&**store, job).await?;
    let html = crate::report::render(&manifest, &tile_stats, &thumbnail, submission.as_ref());
    records::write_report(&**store, job, html).await?;
    match records::publish_result(&**store, &manifest).await? {
        PutOutcome::Written => {
            let peak_rss_mib = crate::process::peak_rss_bytes().map(|b| b >> 20);
            info!(%job, total = ?started.elapsed(), peak_rss_mib, message = events::STITCHED);
            Ok(StitchOutcome::Published(Box::new(manifest)))
        }
        PutOutcome::AlreadyExists => Ok(StitchOutcome::AlreadyDone),
    }
}
