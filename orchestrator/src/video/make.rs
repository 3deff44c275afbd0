//! Making the video: keyframes rendered (or found kept) in order, frames
//! written as they arrive. Built with the `video` feature only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use mandel_core::video::{Plan, keyframe_rgb};
use mandel_core::{CountsImage, RenderParams};
use mandel_pipeline::JobId;
use mandel_pipeline::estimate::Submission;
use mandel_pipeline::render_embedded;
use mandel_video::Assembler;
use serde::Serialize;

use super::estimate_of;
use crate::cli::{Mode, Output, Request, UsageError, VideoRequest, Wait};
use crate::cloud;

/// Renders the keyframes (or finds them kept) and writes the video.
pub(super) async fn make(req: &Request, v: &VideoRequest, started: Instant) -> Result<()> {
    let plan = &v.plan;
    std::fs::create_dir_all(&v.keyframes)
        .with_context(|| format!("making {}", v.keyframes.display()))?;
    let cached: Vec<bool> = (0..plan.keyframes())
        .map(|k| keyframe_path(v, &plan.keyframe(k)).exists())
        .collect();
    let source = match &req.mode {
        Mode::Embedded { workers } => Source::Embedded {
            workers: *workers,
            scratch: v.keyframes.clone(),
        },
        Mode::Cloud {
            bucket,
            wait,
            max_cost,
            ..
        } => {
            let cloud = cloud::connect(bucket).await?;
            let jobs = submit_keyframes(req, plan, &cloud, &cached, *max_cost).await?;
            let wait = wait.expect("--no-wait conflicts with --video");
            Source::Cloud {
                cloud: Box::new(cloud),
                jobs,
                wait,
            }
        }
        _ => unreachable!(),
    };
    let bar = crate::progress_bar(u64::from(plan.keyframes()), "keyframes");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut assembler = Assembler::create(plan.clone(), &v.out, threads)
        .with_context(|| format!("writing {}", v.out.display()))?;
    let mut rendering = 0.0;
    for k in 0..plan.keyframes() {
        let params = plan.keyframe(k);
        let path = keyframe_path(v, &params);
        let counts = match read_keyframe(&path, &params) {
            Some(counts) => counts,
            None => {
                let t = Instant::now();
                let npy = source.render(&params, k).await?;
                let took = t.elapsed().as_secs_f64();
                tracing::info!(keyframe = k, seconds = took, "keyframe rendered");
                rendering += took;
                let counts = keyframe_counts(&npy, &params)
                    .with_context(|| format!("keyframe {k} is not its job's counts"))?;
                write_atomically(&path, &npy)?;
                counts
            }
        };
        let side = plan.keyframe_side() as usize;
        let colormap = req.colormap;
        tokio::task::block_in_place(|| {
            let rgb = keyframe_rgb(&counts, side, params.max_iter, colormap);
            assembler.keyframe(k, rgb)
        })?;
        bar.inc(1);
    }
    let time = tokio::task::block_in_place(|| assembler.finish())?;
    bar.finish_and_clear();
    let summary = Summary {
        video: &v.out,
        width: plan.width,
        height: plan.height,
        fps: plan.fps,
        frames: time.frames,
        seconds: f64::from(plan.seconds),
        keyframes: plan.keyframes(),
        keyframes_reused: cached.iter().filter(|&&c| c).count() as u32,
        keyframe_side: plan.keyframe_side(),
        keyframe_folder: &v.keyframes,
        wall_seconds: started.elapsed().as_secs_f64(),
        keyframe_seconds: rendering,
        resampling_seconds: time.resampling.as_secs_f64(),
        encoding_seconds: time.encoding.as_secs_f64(),
    };
    print_summary(&summary, req.output);
    Ok(())
}

/// Where keyframes come from.
enum Source {
    /// Rendered here, their scratch files beside the kept keyframes.
    Embedded { workers: usize, scratch: PathBuf },
    /// Submitted already; `jobs[k]` is keyframe `k`'s job.
    Cloud {
        cloud: Box<mandel_aws::Cloud>,
        jobs: Vec<Option<JobId>>,
        wait: Wait,
    },
}

impl Source {
    /// Keyframe `k`'s counts, as `.npy` bytes.
    async fn render(&self, params: &RenderParams, k: u32) -> Result<Vec<u8>> {
        match self {
            Source::Embedded { workers, scratch } => {
                let r = render_embedded(params, *workers, scratch, None, None, |_| {}).await?;
                Ok(r.counts_npy().await?.to_vec())
            }
            Source::Cloud { cloud, jobs, wait } => {
                let job = jobs[k as usize].as_ref().expect("submitted when not kept");
                let hidden = ProgressBar::hidden();
                let manifest = cloud::wait(cloud, job, params, wait, &hidden).await?;
                Ok(cloud
                    .ports
                    .store
                    .get(&manifest.counts_key)
                    .await?
                    .body
                    .to_vec())
            }
        }
    }
}

/// Keyframe `params`' file in the keyframe folder: its job id.
fn keyframe_path(v: &VideoRequest, params: &RenderParams) -> PathBuf {
    v.keyframes
        .join(format!("{}.npy", JobId::for_params(params).as_str()))
}

/// A kept keyframe's counts, if the file is there and has its shape.
fn read_keyframe(path: &Path, params: &RenderParams) -> Option<Vec<u32>> {
    keyframe_counts(&std::fs::read(path).ok()?, params)
}

/// The counts of a keyframe's `.npy`, if it has the keyframe's shape.
fn keyframe_counts(npy: &[u8], params: &RenderParams) -> Option<Vec<u32>> {
    let image = CountsImage::from_npy(npy).ok()?;
    let side = params.image_side() as usize;
    (image.width() == side && image.height() == side).then(|| image.data().to_vec())
}

/// Written whole or not at all: a rerun after a crash never reads half.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("npy.partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Submits every keyframe not kept locally (the bucket answers at once for
/// those it has), after checking their total against `--max-cost`.
async fn submit_keyframes(
    req: &Request,
    plan: &Plan,
    cloud: &mandel_aws::Cloud,
    cached: &[bool],
    max_cost: Option<f64>,
) -> Result<Vec<Option<JobId>>> {
    let mut pending = Vec::new();
    for k in 0..plan.keyframes() {
        if cached[k as usize] {
            continue;
        }
        let params = plan.keyframe(k);
        let e = estimate_of(&params, Some(cloud), 0).await?;
        pending.push((k, params, e));
    }
    let cost: f64 = pending
        .iter()
        .map(|(_, _, e)| e.cost.as_ref().map_or(0.0, |c| c.total))
        .sum();
    if let Some(max) = max_cost
        && cost > max
    {
        return Err(UsageError {
            flag: "max-cost".to_string(),
            message: format!(
                "the video's {} keyframes still to render are estimated to cost ${cost:.4}, \
                 more than --max-cost ${max}; nothing was submitted",
                pending.len()
            ),
        }
        .into());
    }
    let mut jobs = vec![None; plan.keyframes() as usize];
    for (k, params, e) in pending {
        let submission = Submission::now(e, Some(cloud.deployment.clone()));
        let announce = false;
        let submitted =
            cloud::submit_job(cloud, &params, None, false, &submission, announce).await?;
        jobs[k as usize] = Some(submitted.job);
    }
    if req.output == Output::Human {
        eprintln!(
            "mandel-orchestrate: {} keyframes submitted to the fleet ({} kept locally)",
            jobs.iter().filter(|j| j.is_some()).count(),
            cached.iter().filter(|&&c| c).count()
        );
    }
    Ok(jobs)
}

#[derive(Serialize)]
struct Summary<'a> {
    video: &'a Path,
    width: u32,
    height: u32,
    fps: u32,
    frames: u64,
    seconds: f64,
    keyframes: u32,
    keyframes_reused: u32,
    keyframe_side: u32,
    keyframe_folder: &'a Path,
    wall_seconds: f64,
    keyframe_seconds: f64,
    resampling_seconds: f64,
    encoding_seconds: f64,
}

fn print_summary(s: &Summary, output: Output) {
    output.answer("video", s, || {
        format!(
            "made {} ({}x{}, {} frames at {} fps, {:.1} s) from {} keyframes of {}² \
             ({} reused) in {:.2} s: keyframes {:.2} s, resampling {:.2} s, encoding {:.2} s\n",
            s.video.display(),
            s.width,
            s.height,
            s.frames,
            s.fps,
            s.seconds,
            s.keyframes,
            s.keyframe_side,
            s.keyframes_reused,
            s.wall_seconds,
            s.keyframe_seconds,
            s.resampling_seconds,
            s.encoding_seconds,
        )
    });
}
