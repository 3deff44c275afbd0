//! `mandel-orchestrate`: validate a render, fan its tiles out to workers and
//! write the stitched picture. With no `--bucket` everything runs embedded,
//! in this process, on every core.

mod cli;
mod cloud;
mod video;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mandel_aws::Cloud;
use mandel_core::RenderParams;
use mandel_core::picture;
use mandel_pipeline::estimate::Submission;
use mandel_pipeline::estimate::{self, Actual, Cost, Estimate, Profile, Target};
use mandel_pipeline::{
    ObjectStore, PipelineError, ResultManifest, STORED_COLORMAP, Submitted, records::read_stats,
    render_embedded,
};
use serde::Serialize;
use serde_json::json;
use std::io::Write;

use cli::{Cli, Mode, Output, UsageError};

fn main() -> ExitCode {
    mandel_pipeline::process::return_freed_memory();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Everything the user typed is checked before any work or any write.
    let request = match cli.request() {
        Ok(r) => r,
        Err(e) => return usage_error(&e),
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let interrupted = runtime.block_on(async {
        // Our own handler, so Ctrl-C is seen even when the command was
        // started with SIGINT ignored (`nohup … &`, some CI runners).
        tokio::select! {
            r = run(&request) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(result) = interrupted else {
        // The render's future is dropped: an embedded job's scratch store
        // goes with it; a cloud job keeps running on its workers.
        match SUBMITTED.get() {
            Some(job) => eprintln!(
                "mandel-orchestrate: interrupted; job {job} keeps running in the bucket: \
                 --job {job} waits for it again, --cancel {job} stops it"
            ),
            None => eprintln!("mandel-orchestrate: interrupted"),
        }
        return ExitCode::from(130);
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Refused after a look at the bucket (--max-cost): bad input too.
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            usage_error(e.downcast_ref::<UsageError>().expect("checked"))
        }
        Err(e) => match e.downcast_ref::<PipelineError>() {
            Some(PipelineError::InvalidParams(p)) => usage_error(&UsageError::from(p.clone())),
            // `--job X` with parameters other than X's: bad input, nothing written.
            Some(e @ PipelineError::ParamsConflict { .. }) => {
                eprintln!("mandel-orchestrate: error: --job: {e}");
                ExitCode::from(2)
            }
            // Too big for the deployment's functions: refused before any write.
            Some(e @ PipelineError::OverCapacity { .. }) => {
                eprintln!("mandel-orchestrate: error: {e}");
                ExitCode::from(2)
            }
            _ => {
                eprintln!("mandel-orchestrate: error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn usage_error(e: &UsageError) -> ExitCode {
    eprintln!("mandel-orchestrate: error: {e}");
    ExitCode::from(2)
}

async fn run(req: &cli::Request) -> Result<()> {
    if let Some(v) = &req.video {
        return video::run(req, v).await;
    }
    let started = Instant::now();
    let rendered = match &req.mode {
        Mode::Estimate { bucket, workers } => {
            return estimate_only(req, bucket.as_deref(), *workers).await;
        }
        Mode::Cancel { bucket, job } => return cloud::cancel_job(bucket, job, req.output).await,
        Mode::List { bucket } => return cloud::list(bucket, req.output).await,
        Mode::Status { bucket, job } => return cloud::status(bucket, job, req.output).await,
        Mode::Embedded { workers } => render_here(req, *workers, started).await?,
        Mode::Cloud {
            bucket,
            job,
            fresh,
            wait,
            max_cost,
        } => {
            let cloud = cloud::connect(bucket).await?;
            let submission = submission_for(req, &cloud, *max_cost).await?;
            let announce = wait.is_some() && req.output == Output::Human;
            let submitted = cloud::submit_job(
                &cloud,
                &req.params,
                job.clone(),
                *fresh,
                &submission,
                announce,
            )
            .await?;
            let _ = SUBMITTED.set(submitted.job.clone());
            let Some(wait) = wait else {
                let enqueued = Enqueued::from(&submitted);
                req.output
                    .answer("submitted", &enqueued, || format!("{}\n", submitted.job));
                return Ok(());
            };
            render_remote(req, &cloud, submitted, submission, wait).await?
        }
    };
    print_summary(req, &rendered, started.elapsed().as_secs_f64());
    Ok(())
}

/// The cloud job this run submitted, for the message if it is interrupted.
static SUBMITTED: std::sync::OnceLock<mandel_pipeline::JobId> = std::sync::OnceLock::new();

/// A finished render, whichever mode ran it: what the summary reports.
struct Rendered {
    manifest: ResultManifest,
    /// A number, or "remote" for the cloud's workers.
    workers: String,
    /// What the submission sent (cloud only).
    submitted: Option<Submitted>,
    estimate: Estimate,
    actual: Actual,
}

/// `--estimate`: the prediction, and nothing written.
async fn estimate_only(req: &cli::Request, bucket: Option<&str>, workers: usize) -> Result<()> {
    let estimate = match bucket {
        Some(bucket) => {
            let cloud = cloud::connect(bucket).await?;
            lambda_estimate(&req.params, &cloud, req.counts_out.is_some()).await?
        }
        None => Estimate::embedded(&profile(&req.params).await, workers),
    };
    print_estimate(&estimate, req.output);
    Ok(())
}

/// Embedded: the whole pipeline on this machine's cores, then the outputs
/// written where asked.
async fn render_here(req: &cli::Request, workers: usize, started: Instant) -> Result<Rendered> {
    let bar = progress_bar(req.params.tile_count(), "tiles");
    let profile = profile(&req.params).await;
    let estimate = Estimate::embedded(&profile, workers);
    let submission = Submission::now(estimate, None);
    let scratch = scratch_parent(req);
    // The sample's reference orbit is the job's: stored, not computed twice.
    let orbit = profile.orbit.as_deref();
    let r = render_embedded(
        &req.params,
        workers,
        &scratch,
        Some(&submission),
        orbit,
        |done| bar.set_position(done),
    )
    .await?;
    bar.finish_and_clear();
    let actual = Actual::embedded(&r.manifest, started.elapsed().as_secs_f64());
    write_outputs(r.store(), &r.manifest, req, &scratch).await?;
    Ok(Rendered {
        workers: workers.to_string(),
        submitted: None,
        estimate: submission.estimate,
        actual,
        manifest: r.manifest,
    })
}

/// The cloud job's estimate, recorded with it at submit; a job the
/// functions cannot finish within their timeout or memory, or above the
/// budget, is refused before any write.
async fn submission_for(
    req: &cli::Request,
    cloud: &Cloud,
    max_cost: Option<f64>,
) -> Result<Submission> {
    let estimate = lambda_estimate(&req.params, cloud, req.counts_out.is_some()).await?;
    let cost = estimate.cost.as_ref().map_or(0.0, |c| c.total);
    if let Some(max) = max_cost
        && cost > max
    {
        print_estimate(&estimate, req.output);
        return Err(UsageError {
            flag: "max-cost".to_string(),
            message: format!(
                "the job is estimated to cost ${cost:.4}, more than --max-cost ${max}; \
                 nothing was submitted"
            ),
        }
        .into());
    }
    Ok(Submission::now(estimate, Some(cloud.deployment.clone())))
}

/// A job's estimate on `cloud`'s deployment (`counts`: its counts are
/// downloaded), after the checks that refuse, before any write, what the
/// functions cannot finish within their timeout or memory.
pub(crate) async fn lambda_estimate(
    params: &RenderParams,
    cloud: &Cloud,
    counts: bool,
) -> Result<Estimate> {
    cloud.deployment.check_capacity(params)?;
    let profile = profile(params).await;
    estimate::check_stitch_time(&profile, &cloud.deployment)?;
    Ok(Estimate::lambda(&profile, &cloud.deployment, counts))
}

/// A submitted cloud job: waits for its result, writes the outputs, and
/// sets what it used against its estimate.
async fn render_remote(
    req: &cli::Request,
    cloud: &Cloud,
    submitted: Submitted,
    submission: Submission,
    wait: &cli::Wait,
) -> Result<Rendered> {
    let bar = progress_bar(req.params.tile_count(), "tiles");
    let waiting = Instant::now();
    let manifest = cloud::wait(cloud, &submitted.job, &req.params, wait, &bar).await?;
    let waited = waiting.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let store = &*cloud.ports.store;
    write_outputs(store, &manifest, req, &scratch_parent(req)).await?;
    let stats = read_stats(store, &manifest).await?;
    let counts = req.counts_out.is_some();
    let actual = Actual::lambda(&manifest, &stats, &cloud.deployment, waited, counts);
    Ok(Rendered {
        manifest,
        workers: "remote".to_string(),
        submitted: Some(submitted),
        estimate: submission.estimate,
        actual,
    })
}

/// Where scratch files go: beside the output, on the same filesystem, so
/// the embedded render's outputs are linked into place, not copied.
fn scratch_parent(req: &cli::Request) -> PathBuf {
    match req.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The last word: one JSON document, or two lines for people.
fn print_summary(req: &cli::Request, r: &Rendered, secs: f64) {
    let m = &r.manifest;
    let peak_mib = mandel_pipeline::process::peak_rss_bytes().map(|b| b >> 20);
    if req.output == Output::Json {
        let summary = Summary {
            job: m.job.as_str(),
            width: m.width,
            height: m.height,
            tiles: m.tiles,
            max_iter: m.params.max_iter,
            workers: &r.workers,
            seconds: secs,
            iterations: m.iterations,
            peak_memory_mib: peak_mib,
            image: &req.out,
            counts: req.counts_out.as_deref(),
            report: req.report.as_deref(),
            submitted: r.submitted.as_ref().map(Enqueued::from),
            estimate: &r.estimate,
            actual: &r.actual,
        };
        println!("{}", serde_json::to_string(&summary).expect("serialises"));
        return;
    }
    let peak = peak_mib
        .map(|mib| format!(", peak memory {mib} MiB"))
        .unwrap_or_default();
    println!(
        "rendered {w}x{h} ({tiles} tiles, max_iter {mi}) with {workers} workers in {secs:.2} s: \
         {mpx:.1} Mpixel/s, {gits:.2} G iterations/s{peak}; wrote {out}",
        w = m.width,
        h = m.height,
        tiles = m.tiles,
        mi = m.params.max_iter,
        workers = r.workers,
        mpx = (m.width * m.height) as f64 / secs / 1e6,
        gits = m.iterations as f64 / secs / 1e9,
        out = req.out.display(),
    );
    let cost = |c: &Option<Cost>| {
        c.as_ref()
            .map(|c| format!(", ${:.4}", c.total))
            .unwrap_or_default()
    };
    let (e, a) = (&r.estimate, &r.actual);
    println!(
        "estimated {:.2} s, {:.2} G iterations{}; took {:.2} s, {:.2} G iterations{}",
        e.seconds,
        e.iterations as f64 / 1e9,
        cost(&e.cost),
        a.seconds,
        a.iterations as f64 / 1e9,
        cost(&a.cost),
    );
}

/// Samples the job through the kernel (tens of milliseconds of every core).
pub(crate) async fn profile(params: &RenderParams) -> Profile {
    let params = params.clone();
    tokio::task::spawn_blocking(move || estimate::profile(&params))
        .await
        .expect("sampling panicked")
}

/// `--estimate`, or the estimate a `--max-cost` refusal shows.
fn print_estimate(e: &Estimate, output: Output) {
    if output == Output::Json {
        println!("{}", json!({ "estimate": e }));
        return;
    }
    let place = match e.target {
        Target::Embedded => format!("embedded on {} workers", e.workers),
        Target::Lambda => format!("on Lambda, {} workers at once", e.workers),
    };
    println!(
        "estimate {place}: {its:.3} G iterations, {secs:.2} s ({core:.2} s of kernel on one core here; \
         sampled {px} pixels in {ms:.0} ms, {kernel})",
        its = e.iterations as f64 / 1e9,
        secs = e.seconds,
        core = e.core_seconds,
        px = e.sample.pixels,
        ms = e.sample.milliseconds,
        kernel = e.sample.kernel,
    );
    if e.reference_seconds > 0.0 {
        println!(
            "  of which the reference orbit, on one core before the tiles: {:.2} s",
            e.reference_seconds
        );
    }
    if let Some(c) = &e.cost {
        println!(
            "cost ${:.4}: Lambda compute ${:.4}, Lambda requests ${:.4}, S3 ${:.4}, SQS ${:.4}, \
             data out ${:.4}, storage ${:.4} (AWS list prices, us-east-1)",
            c.total,
            c.lambda_compute,
            c.lambda_requests,
            c.s3_requests,
            c.sqs_requests,
            c.transfer_out,
            c.storage
        );
    }
}

/// The result as `--json` prints it: one object, the shape documented in
/// the README (fields are only ever added).
#[derive(Serialize)]
struct Summary<'a> {
    job: &'a str,
    width: u64,
    height: u64,
    tiles: u64,
    max_iter: u32,
    /// A number, or "remote" for the cloud's workers.
    workers: &'a str,
    seconds: f64,
    /// Iterations a brute-force kernel would run for the image.
    iterations: u64,
    peak_memory_mib: Option<u64>,
    image: &'a Path,
    counts: Option<&'a Path>,
    report: Option<&'a Path>,
    /// What the submission sent (cloud only).
    submitted: Option<Enqueued<'a>>,
    /// What was predicted before it ran, and what it took.
    estimate: &'a Estimate,
    actual: &'a Actual,
}

/// A submission, as `--json` reports it.
#[derive(Serialize)]
struct Enqueued<'a> {
    job: &'a str,
    enqueued: u64,
    already_stored: u64,
    finished: bool,
}

impl<'a> From<&'a Submitted> for Enqueued<'a> {
    fn from(s: &'a Submitted) -> Self {
        Enqueued {
            job: s.job.as_str(),
            enqueued: s.enqueued,
            already_stored: s.already_stored,
            finished: s.finished,
        }
    }
}

/// Writes a finished job's outputs where the user asked, streaming: the
/// stored PNG, or one recoloured a row at a time from the counts, and the
/// counts if asked for.
async fn write_outputs(
    store: &dyn ObjectStore,
    manifest: &ResultManifest,
    req: &cli::Request,
    scratch_parent: &Path,
) -> Result<()> {
    let download = async |key: &str, dest: &Path| {
        store
            .download(key, dest)
            .await
            .with_context(|| format!("writing {}", dest.display()))
    };
    if let Some(path) = &req.counts_out {
        download(&manifest.counts_key, path).await?;
    }
    if let Some(path) = &req.report {
        download(&manifest.job.report_key(), path).await?;
    }
    let recolour = req.colormap != STORED_COLORMAP;
    if !recolour {
        download(&manifest.image_key, &req.out).await?;
        if req.pyramid.is_none() {
            return Ok(());
        }
    }
    let scratch = tempfile::Builder::new()
        .prefix(".mandel-recolour-")
        .tempdir_in(scratch_parent)
        .context("making a scratch folder")?;
    let counts = match &req.counts_out {
        Some(path) => path.clone(),
        None => {
            let path = scratch.path().join("counts.npy");
            download(&manifest.counts_key, &path).await?;
            path
        }
    };
    let (colormap, out, pyramid) = (req.colormap, req.out.clone(), req.pyramid.clone());
    tokio::task::spawn_blocking(move || {
        make_picture(
            &counts,
            colormap,
            recolour.then_some(&*out),
            pyramid.as_deref(),
        )
    })
    .await
    .expect("recolouring panicked")
}

/// Makes the picture of the counts at `npy` in `colormap`, in one pass: the
/// PNG at `out`, and with `pyramid` a Deep Zoom pyramid coloured as the PNG
/// (`DIR/image.dzi`, `DIR/image_files/<level>/<col>_<row>.png`, and
/// `DIR/index.html`, the viewer, which opens it even as a file).
fn make_picture(
    npy: &Path,
    colormap: mandel_core::Colormap,
    out: Option<&Path>,
    pyramid: Option<&Path>,
) -> Result<()> {
    let reading = || format!("reading {}", npy.display());
    let npy = std::io::BufReader::new(std::fs::File::open(npy).with_context(reading)?);
    let mut png = match out {
        Some(out) => Some(std::io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("writing {}", out.display()))?,
        )),
        None => None,
    };
    let put = |dir: &Path, path: &str, bytes: &[u8]| -> std::io::Result<()> {
        let path = dir.join(path);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        std::fs::write(&path, bytes)
    };
    let outputs = picture::Outputs {
        png: png.is_some(),
        pyramid: pyramid.is_some(),
    };
    let written = picture::from_npy(
        npy,
        colormap,
        outputs,
        |bytes| match &mut png {
            Some(png) => png.write_all(bytes),
            None => Ok(()),
        },
        |tiles| match pyramid {
            Some(dir) => tiles.iter().try_for_each(|t| put(dir, &t.path(), &t.png)),
            None => Ok(()),
        },
    );
    let (w, h) = written.context("making the picture")?;
    if let (Some(png), Some(out)) = (png, out) {
        png.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if let Some(dir) = pyramid {
        for (path, body) in mandel_core::viewer::pyramid_files(w, h) {
            put(dir, path, body.as_bytes())
                .with_context(|| format!("writing {}", dir.join(path).display()))?;
        }
    }
    Ok(())
}

/// A bar of `total` `unit`s (tiles, keyframes) on stderr when it is a
/// terminal; hidden otherwise.
pub(crate) fn progress_bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if std::io::stderr().is_terminal() {
        let template = format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} (ETA {{eta}})"
        );
        bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}
