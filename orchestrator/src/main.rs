//! `mandel-orchestrate`: validate a render, fan its tiles out to workers and
//! write the stitched picture. With no `--bucket` everything runs embedded,
//! in this process, on every core.

mod cli;
mod cloud;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mandel_core::png;
use mandel_pipeline::{
    ObjectStore, PipelineError, ResultManifest, Submitted, render_embedded, stitch::STORED_COLORMAP,
};
use serde::Serialize;
use serde_json::json;

use cli::{Cli, Mode, UsageError};

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
    match runtime.block_on(run(&request)) {
        Ok(()) => ExitCode::SUCCESS,
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
    let started = Instant::now();
    let bar = progress_bar(req.params.tile_count());
    // Scratch space beside the output: the embedded render's tiles and
    // outputs (on the same filesystem, so the outputs are linked into place,
    // not copied), or counts to recolour.
    let scratch_parent = match req.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (manifest, workers, submitted) = match &req.mode {
        Mode::Embedded { workers } => {
            let r = render_embedded(&req.params, *workers, &scratch_parent, |done| {
                bar.set_position(done)
            })
            .await?;
            bar.finish_and_clear();
            write_outputs(r.store(), &r.manifest, req, &scratch_parent).await?;
            (r.manifest, workers.to_string(), None)
        }
        Mode::Cancel { bucket, job } => return cloud::cancel_job(bucket, job, req.json).await,
        Mode::Cloud {
            bucket,
            job,
            fresh,
            wait,
        } => {
            let cloud = cloud::connect(bucket).await?;
            let announce = wait.is_some() && !req.json;
            let submitted =
                cloud::submit_job(&cloud, req, job.clone(), *fresh, announce, &bar).await?;
            let Some(wait) = wait else {
                match req.json {
                    true => println!("{}", json!({ "submitted": Enqueued::from(&submitted) })),
                    false => println!("{}", submitted.job),
                }
                return Ok(());
            };
            let manifest = cloud::wait(&cloud, &submitted.job, &req.params, wait, &bar).await?;
            bar.finish_and_clear();
            write_outputs(&*cloud.store, &manifest, req, &scratch_parent).await?;
            (manifest, "remote".to_string(), Some(submitted))
        }
    };

    let secs = started.elapsed().as_secs_f64();
    let m = &manifest;
    let peak_mib = mandel_pipeline::process::peak_rss_bytes().map(|b| b >> 20);
    if req.json {
        let summary = Summary {
            job: m.job.as_str(),
            width: m.width,
            height: m.height,
            tiles: m.tiles,
            max_iter: m.params.max_iter,
            workers: &workers,
            seconds: secs,
            iterations: m.iterations,
            peak_memory_mib: peak_mib,
            image: &req.out,
            counts: req.counts_out.as_deref(),
            submitted: submitted.as_ref().map(Enqueued::from),
        };
        println!("{}", serde_json::to_string(&summary).expect("serialises"));
        return Ok(());
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
        mpx = (m.width * m.height) as f64 / secs / 1e6,
        gits = m.iterations as f64 / secs / 1e9,
        out = req.out.display(),
    );
    Ok(())
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
    /// What the submission sent (cloud only).
    submitted: Option<Enqueued<'a>>,
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
    if req.colormap == STORED_COLORMAP {
        download(&manifest.image_key, &req.out).await?;
        return Ok(());
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
    let (colormap, out) = (req.colormap, req.out.clone());
    tokio::task::spawn_blocking(move || -> Result<()> {
        let npy = std::io::BufReader::new(
            std::fs::File::open(&counts)
                .with_context(|| format!("reading {}", counts.display()))?,
        );
        let file =
            std::fs::File::create(&out).with_context(|| format!("writing {}", out.display()))?;
        let mut png = std::io::BufWriter::new(file);
        png::recolour_npy(npy, colormap, &mut png).context("encoding the PNG")?;
        png.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", out.display()))?;
        Ok(())
    })
    .await
    .expect("recolouring panicked")
}

pub(crate) fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} tiles (ETA {eta})",
            )
            .expect("valid template"),
        );
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}
