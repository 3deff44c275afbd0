//! `--video`: a zoom video made of keyframe jobs.
//!
//! Each keyframe is an ordinary deep job ([`Plan::keyframe`]), rendered
//! embedded or submitted to the bucket's fleet (all at once, so the
//! workers render them side by side), and its counts kept in the keyframe
//! folder under the job's id: a rerun resumes, a deeper or longer video
//! reuses them. The frames are resampled and encoded here, on the laptop,
//! as the keyframes arrive in order: the frames are many times the
//! keyframes' pixels (900 1080p frames from 334 keyframes of 1920²), so
//! downloading keyframes and encoding where the file is wanted moves the
//! least data, and encoding is one sequential stream that a fleet of
//! stateless functions could not share without passing the encoder's
//! state between them.

use std::time::Instant;

use anyhow::Result;
use mandel_core::RenderParams;
use mandel_core::video::Plan;
use mandel_pipeline::estimate::Estimate;
use serde::Serialize;

#[cfg(not(feature = "video"))]
use crate::cli::UsageError;
use crate::cli::{Mode, Output, Request, VideoRequest};
use crate::cloud;

/// Makes the video `v` asks for, as `req.mode` says.
pub async fn run(req: &Request, v: &VideoRequest) -> Result<()> {
    let started = Instant::now();
    let plan = &v.plan;
    match &req.mode {
        Mode::Estimate { bucket, workers } => {
            let estimates = estimates(plan, bucket.as_deref(), *workers).await?;
            print_estimate(plan, &estimates, req.output);
            Ok(())
        }
        Mode::Embedded { .. } | Mode::Cloud { .. } => make(req, v, started).await,
        _ => unreachable!("--cancel, --list and --status take no --video"),
    }
}

#[cfg(feature = "video")]
mod make;
#[cfg(feature = "video")]
use make::make;

/// Built without the encoder: refused before anything is rendered.
#[cfg(not(feature = "video"))]
async fn make(_: &Request, _: &VideoRequest, _: Instant) -> Result<()> {
    Err(UsageError {
        flag: "video".to_string(),
        message: "this mandel-orchestrate was built without the video encoder; build it with \
                  `cargo build --release -p mandel-orchestrate --features video` (OpenH264 is \
                  compiled from source: that needs a C++ compiler)"
            .to_string(),
    }
    .into())
}

/// Every keyframe's estimate (the deployment's, with a bucket).
async fn estimates(plan: &Plan, bucket: Option<&str>, workers: usize) -> Result<Vec<Estimate>> {
    let cloud = match bucket {
        Some(b) => Some(cloud::connect(b).await?),
        None => None,
    };
    let mut out = Vec::new();
    for k in 0..plan.keyframes() {
        let params = plan.keyframe(k);
        out.push(estimate_of(&params, cloud.as_ref(), workers).await?);
    }
    Ok(out)
}

/// A keyframe's estimate: on the deployment (its counts downloaded: the
/// video is made from them), or embedded on `workers`.
async fn estimate_of(
    params: &RenderParams,
    cloud: Option<&mandel_aws::Cloud>,
    workers: usize,
) -> Result<Estimate> {
    Ok(match cloud {
        Some(cloud) => crate::lambda_estimate(params, cloud, true).await?,
        None => Estimate::embedded(&crate::profile(params).await, workers),
    })
}

#[derive(Serialize)]
struct VideoEstimate {
    keyframes: u32,
    frames: u32,
    seconds: f64,
    iterations: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
}

fn print_estimate(plan: &Plan, estimates: &[Estimate], output: Output) {
    let seconds: f64 = estimates.iter().map(|e| e.seconds).sum();
    let iterations: u64 = estimates.iter().map(|e| e.iterations).sum();
    let cost = estimates
        .iter()
        .map(|e| e.cost.as_ref().map(|c| c.total))
        .sum::<Option<f64>>();
    let doc = VideoEstimate {
        keyframes: plan.keyframes(),
        frames: plan.frames(),
        seconds,
        iterations,
        cost_usd: cost,
    };
    output.answer("video_estimate", &doc, || {
        format!(
            "video: {} keyframes ({}² each) for {} frames; estimated {seconds:.1} s of \
             keyframes, {:.2} G iterations{}\n",
            doc.keyframes,
            plan.keyframe_side(),
            doc.frames,
            iterations as f64 / 1e9,
            cost.map(|c| format!(", ${c:.4}")).unwrap_or_default()
        )
    });
}
