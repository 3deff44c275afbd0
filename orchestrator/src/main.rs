//! `mandel-orchestrate`: validate a render, fan its tiles out to workers and
//! write the stitched picture. With no `--bucket` everything runs embedded,
//! in this process, on every core.

mod cli;
mod cloud;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mandel_core::{CountsImage, png};
use mandel_pipeline::{PipelineError, ResultManifest, render_embedded, stitch::STORED_COLORMAP};

use cli::{Cli, Mode, UsageError};

fn main() -> ExitCode {
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
    let (rendered, workers) = match &req.mode {
        Mode::Embedded { workers } => {
            let r = render_embedded(&req.params, *workers, |done| bar.set_position(done)).await?;
            let rendered = Rendered {
                manifest: r.manifest,
                png: Some(r.png),
                npy: Some(r.npy),
            };
            (rendered, workers.to_string())
        }
        Mode::Cancel { bucket, job } => return cloud::cancel_job(bucket, job).await,
        Mode::Cloud {
            bucket,
            job,
            fresh,
            wait,
        } => {
            let cloud = cloud::connect(bucket).await?;
            let job =
                cloud::submit_job(&cloud, req, job.clone(), *fresh, wait.is_some(), &bar).await?;
            let Some(wait) = wait else {
                println!("{job}");
                return Ok(());
            };
            let manifest = cloud::wait(&cloud, &job, &req.params, wait, &bar).await?;
            let need_npy = req.counts_out.is_some() || req.colormap != STORED_COLORMAP;
            let rendered =
                cloud::download(&cloud, manifest, req.colormap == STORED_COLORMAP, need_npy)
                    .await?;
            (rendered, "remote".to_string())
        }
    };
    bar.finish_and_clear();

    let Rendered { manifest, png, npy } = rendered;
    let png_bytes = match (req.colormap == STORED_COLORMAP, png) {
        (true, Some(png)) => png,
        _ => {
            let npy = npy.as_deref().context("counts were not downloaded")?;
            let counts = CountsImage::from_npy(npy).context("reading back the counts")?;
            png::encode_png(&counts, req.colormap).context("encoding the PNG")?
        }
    };
    write(&req.out, &png_bytes)?;
    if let Some(path) = &req.counts_out {
        write(path, npy.as_deref().context("counts were not downloaded")?)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let m = &manifest;
    let peak = mandel_pipeline::process::peak_rss_bytes()
        .map(|b| format!(", peak memory {} MiB", b >> 20))
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

/// A finished job's result and the outputs fetched for it.
pub(crate) struct Rendered {
    pub manifest: ResultManifest,
    /// The PNG in the stored colormap, if fetched.
    pub png: Option<Vec<u8>>,
    /// The counts as `.npy`, if fetched.
    pub npy: Option<Vec<u8>>,
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
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
