//! Command-line flags and their validation into a [`Request`].

use std::path::PathBuf;

use clap::Parser;
use mandel_core::deep::{DeepView, Location};
use mandel_core::video::{self, Plan};
use mandel_core::{Colormap, ParamError, RenderParams, View, Viewport};
use mandel_pipeline::{JobId, WaitPolicy};

/// Render the Mandelbrot set by fanning tiles out to workers.
///
/// With no --bucket, the whole pipeline (store, queues, workers, stitch)
/// runs embedded in this process on every core.
#[derive(Debug, Parser)]
#[command(name = "mandel-orchestrate", version)]
pub struct Cli {
    /// Region of the complex plane: XMIN,XMAX,YMIN,YMAX (real axis, then imaginary).
    #[arg(
        long,
        value_name = "XMIN,XMAX,YMIN,YMAX",
        default_value = "-0.745,-0.735,0.105,0.115",
        allow_hyphen_values = true,
        conflicts_with_all = ["center", "location"]
    )]
    pub viewport: String,

    /// A deep view's centre: RE,IM as decimal numbers of any length
    /// (rendered by perturbation, far past f64). Needs --zoom.
    #[arg(
        long,
        value_name = "RE,IM",
        allow_hyphen_values = true,
        requires = "zoom",
        conflicts_with = "location"
    )]
    pub center: Option<String>,

    /// A deep view's zoom: the image's side spans 4/ZOOM of the plane
    /// (e.g. 5e113) [1..=1e10000].
    #[arg(long, value_name = "ZOOM", requires = "center")]
    pub zoom: Option<String>,

    /// A deep view from a Kalles Fraktaler location file: its Re, Im, Zoom
    /// and Iterations (--max-iter overrides the iterations).
    #[arg(long, value_name = "FILE.kfr", conflicts_with_all = ["center", "zoom"])]
    pub location: Option<PathBuf>,

    /// Tiles per image side; the job has this many squared tiles [1..=1024].
    #[arg(long, default_value_t = 16)]
    pub tiles_per_side: u32,

    /// Pixels per tile side [1..=4096]; the image side is tiles-per-side × tile-pixels (at most 32768).
    #[arg(long, default_value_t = 256)]
    pub tile_pixels: u32,

    /// Iteration budget per pixel [1..=65535 with --viewport, counts
    /// stored as u16; 1..=100000000 for a deep view, counts u32]
    /// [default: 2000] (with --location: the file's Iterations).
    #[arg(long)]
    pub max_iter: Option<u32>,

    /// Where to write the PNG.
    #[arg(long, value_name = "PATH", default_value = "mandelbrot.png")]
    pub out: PathBuf,

    /// Also write the escape counts as NumPy .npy (u16, or u32 for a deep
    /// view; shape (H, W), row 0 = the lowest imaginary part).
    #[arg(long, value_name = "PATH")]
    pub counts_out: Option<PathBuf>,

    /// Colormap: twilight_shifted, viridis, magma or gray.
    #[arg(long, value_name = "NAME", default_value = "twilight_shifted")]
    pub colormap: String,

    /// Tile workers to run [default: one per core]. Embedded mode only.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Render through this S3 bucket and its queues (found in the bucket's
    /// deployment record) instead of embedded.
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,

    /// With --bucket: submit, print the job id and exit.
    #[arg(long)]
    pub no_wait: bool,

    /// With --bucket: give up waiting after this many seconds, listing the
    /// missing tiles [default: 900].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,

    /// With --bucket: when every tile is stored but no result appears for
    /// this many seconds, send the stitch message again (then after twice
    /// as long, ...): a lost stitch message or a killed stitch never leaves
    /// the job stuck [default: 60].
    #[arg(long, value_name = "SECS")]
    pub restitch_after: Option<u64>,

    /// With --bucket: a new job id instead of the content hash of the params.
    #[arg(long)]
    pub fresh: bool,

    /// With --bucket: submit under this job id (as printed by an earlier
    /// run) instead of the params' content hash: resumes or waits for a
    /// --fresh job. The params must be the job's own.
    #[arg(long, value_name = "JOB", conflicts_with = "fresh")]
    pub job: Option<String>,

    /// With --bucket: cancel the job with this id (printed when it was
    /// submitted) and exit. Workers skip its remaining tiles; running the
    /// job's command again resumes it.
    #[arg(long, value_name = "JOB", group = "action", conflicts_with_all = RENDER_FLAGS,
        conflicts_with_all = SUBMIT_FLAGS)]
    pub cancel: Option<String>,

    /// Print the result as one JSON document on stdout (shape in the
    /// README) instead of a line for people
    #[arg(long)]
    pub json: bool,

    /// Print what the job would take (iterations, wall time and, with
    /// --bucket, its AWS cost), from a sample run through the kernel, and
    /// exit without writing anything.
    #[arg(long, group = "action", conflicts_with_all = SUBMIT_FLAGS,
        conflicts_with = "out")]
    pub estimate: bool,

    /// With --bucket: refuse (exit 2, writing nothing) a job whose
    /// estimated AWS cost is above this many US dollars.
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,

    /// Write the job's report (an HTML page: the picture, a timeline of
    /// the tiles on the workers, compute time per tile, cost against the
    /// estimate) to this file.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Also write a Deep Zoom pyramid of the picture (DIR/image.dzi and
    /// 256-px PNG tiles at every level, coloured as the PNG) and its
    /// viewer, DIR/index.html (or any Deep Zoom viewer); DIR is created.
    #[arg(long, value_name = "DIR")]
    pub pyramid: Option<PathBuf>,

    /// Make a zoom video (H.264 in MP4) of the dive from the whole set down
    /// to the deep view of --center/--zoom (or --location) instead of a
    /// picture: keyframes at zoom 1, 2, 4, … rendered as ordinary jobs
    /// (embedded, or on the fleet with --bucket), frames resampled from
    /// them. --max-iter, if given, is every keyframe's budget.
    #[arg(long, value_name = "OUT.mp4", conflicts_with_all = VIDEO_CONFLICTS)]
    pub video: Option<PathBuf>,

    /// The video's length in seconds [1..=600].
    #[arg(long, default_value_t = 10, requires = "video")]
    pub seconds: u32,

    /// The video's frames per second [1..=60].
    #[arg(long, default_value_t = 30, requires = "video")]
    pub fps: u32,

    /// The video's frame size, WIDTHxHEIGHT, each even, 16..=3840.
    #[arg(
        long,
        value_name = "WxH",
        default_value = "1280x720",
        requires = "video"
    )]
    pub size: String,

    /// Where a video's keyframes are kept, by job id, so a rerun resumes
    /// and a deeper or longer dive reuses them [default: OUT.mp4.keyframes].
    #[arg(long, value_name = "DIR", requires = "video")]
    pub keyframes: Option<PathBuf>,

    /// With --bucket: list the bucket's jobs, newest first, and exit.
    #[arg(long, group = "action", conflicts_with_all = RENDER_FLAGS,
        conflicts_with_all = SUBMIT_FLAGS)]
    pub list: bool,

    /// With --bucket: show one job in detail (tiles stored and pending,
    /// failures and their reasons, the stitch) and exit.
    #[arg(long, value_name = "JOB", group = "action", conflicts_with_all = RENDER_FLAGS,
        conflicts_with_all = SUBMIT_FLAGS)]
    pub status: Option<String>,
}

/// Flags of a submission: they apply to a render only, not to
/// `--estimate` (which writes and submits nothing) nor to `--cancel`,
/// `--list` and `--status` (which act on jobs already in the bucket).
/// clap refuses them with exit code 2, naming both flags.
const SUBMIT_FLAGS: [&str; 8] = [
    "report",
    "pyramid",
    "no_wait",
    "fresh",
    "job",
    "timeout",
    "restitch_after",
    "max_cost",
];

/// Flags of a picture that a video (made of many jobs) does not take.
const VIDEO_CONFLICTS: [&str; 10] = [
    "viewport",
    "tiles_per_side",
    "tile_pixels",
    "out",
    "counts_out",
    "report",
    "pyramid",
    "no_wait",
    "fresh",
    "job",
];

/// Flags that say what to render and where (`--estimate` takes all but
/// `--out`: it prices the `--counts-out` download); `--cancel`, `--list`
/// and `--status` take none.
const RENDER_FLAGS: [&str; 12] = [
    "viewport",
    "video",
    "center",
    "zoom",
    "location",
    "tiles_per_side",
    "tile_pixels",
    "max_iter",
    "out",
    "counts_out",
    "colormap",
    "workers",
];

/// A fully validated request: what to render and how ([`Mode`]).
#[derive(Debug)]
pub struct Request {
    pub params: RenderParams,
    pub out: PathBuf,
    pub counts_out: Option<PathBuf>,
    /// `--report`: where to copy the job's report.
    pub report: Option<PathBuf>,
    /// `--pyramid`: where to write the Deep Zoom pyramid.
    pub pyramid: Option<PathBuf>,
    pub colormap: Colormap,
    pub mode: Mode,
    /// `--video`: a zoom video instead of a picture.
    pub video: Option<VideoRequest>,
    /// What stdout carries, decided once.
    pub output: Output,
}

/// What stdout carries: lines for people, or exactly one JSON document
/// (`--json`). Progress and announcements go to stderr only for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
}

impl Output {
    /// Prints the answer: `{"<key>": value}` as JSON, or `human()`'s text.
    pub fn answer(self, key: &str, value: &impl serde::Serialize, human: impl FnOnce() -> String) {
        match self {
            Output::Json => println!("{}", serde_json::json!({ key: value })),
            Output::Human => print!("{}", human()),
        }
    }
}

/// What the command does, decided once after parsing; every flag that does
/// not apply to it has been refused.
#[derive(Debug)]
pub enum Mode {
    /// The whole pipeline in this process, on `workers` tile workers.
    Embedded { workers: usize },
    /// Submit to a bucket's deployment and, unless `wait` is `None`
    /// (`--no-wait`), wait for the result and download it.
    Cloud {
        bucket: String,
        /// `--job`: this id instead of the params' content hash.
        job: Option<JobId>,
        /// `--fresh`: a new id.
        fresh: bool,
        wait: Option<Wait>,
        /// `--max-cost`: the most the job may be estimated to cost, USD.
        max_cost: Option<f64>,
    },
    /// `--estimate`: predict the job (on the bucket's deployment, or
    /// embedded on `workers`) and write nothing.
    Estimate {
        bucket: Option<String>,
        workers: usize,
    },
    /// `--cancel`: cancel a job in a bucket.
    Cancel { bucket: String, job: JobId },
    /// `--list`: the bucket's jobs.
    List { bucket: String },
    /// `--status`: one job of the bucket.
    Status { bucket: String, job: JobId },
}

/// A zoom video: its plan, the file, and where its keyframes are kept
/// (read only by a build with the encoder, the `video` feature).
#[derive(Debug)]
#[cfg_attr(not(feature = "video"), allow(dead_code))]
pub struct VideoRequest {
    pub plan: Plan,
    pub out: PathBuf,
    pub keyframes: PathBuf,
}

/// How a cloud client waits for its job.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    pub timeout: std::time::Duration,
    pub restitch_after: std::time::Duration,
}

/// A flag the user got wrong; printed on one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {message}")]
pub struct UsageError {
    pub flag: String,
    pub message: String,
}

impl From<ParamError> for UsageError {
    fn from(e: ParamError) -> Self {
        let flag = match e.field() {
            "tiles_per_side*tile_pixels" => "tiles-per-side/--tile-pixels".to_string(),
            f => f.replace('_', "-"),
        };
        UsageError {
            flag,
            message: e.to_string(),
        }
    }
}

fn usage(flag: &str, message: impl Into<String>) -> UsageError {
    UsageError {
        flag: flag.to_string(),
        message: message.into(),
    }
}

fn parse_viewport(s: &str) -> Result<Viewport, UsageError> {
    let bad = || {
        usage(
            "viewport",
            format!("viewport must be four numbers XMIN,XMAX,YMIN,YMAX, got {s:?}"),
        )
    };
    let values: Vec<f64> = s
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let values: [f64; 4] = values.try_into().map_err(|_| bad())?;
    Ok(Viewport::from(values))
}

/// The max_iter a render takes when none is given.
const DEFAULT_MAX_ITER: u32 = 2000;

/// A deep view's `--center RE,IM` and `--zoom`.
fn parse_center(center: &str, zoom: &str) -> Result<DeepView, UsageError> {
    let Some((re, im)) = center.split_once(',') else {
        return Err(usage(
            "center",
            format!("center must be two decimal numbers RE,IM, got {center:?}"),
        ));
    };
    DeepView::parse(re, im, zoom).map_err(|e| {
        let flag = if e.field() == "zoom" {
            "zoom"
        } else {
            "center"
        };
        usage(flag, e.to_string())
    })
}

/// A deep view and its iterations from a `.kfr` location file.
fn read_location(path: &std::path::Path) -> Result<Location, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage("location", format!("cannot read {}: {e}", path.display())))?;
    Location::from_kfr(&text).map_err(|e| usage("location", format!("{}: {e}", path.display())))
}

impl Cli {
    /// `--video` and its flags, checked.
    fn video_request(&self, view: &View) -> Result<Option<VideoRequest>, UsageError> {
        let Some(out) = &self.video else {
            return Ok(None);
        };
        let View::Deep(target) = view else {
            return Err(usage(
                "video",
                "--video needs the dive's target: --center RE,IM --zoom Z, or --location FILE.kfr",
            ));
        };
        let as_usage = |e: video::VideoError| usage(e.field(), e.to_string());
        let size = video::parse_size(&self.size).map_err(as_usage)?;
        // A location's iterations are its target's alone: keyframes follow
        // the depth rule unless --max-iter gives them all one budget.
        let plan = Plan::new(target.clone(), size, self.seconds, self.fps, self.max_iter)
            .map_err(as_usage)?;
        let keyframes = self.keyframes.clone().unwrap_or_else(|| {
            let mut name = out.file_name().unwrap_or_default().to_os_string();
            name.push(".keyframes");
            out.with_file_name(name)
        });
        Ok(Some(VideoRequest {
            plan,
            out: out.clone(),
            keyframes,
        }))
    }

    /// The view and the iterations the flags ask for.
    fn view(&self) -> Result<(View, u64), UsageError> {
        let given = self.max_iter.map(u64::from);
        if let Some(path) = &self.location {
            let location = read_location(path)?;
            let iterations = given.or(location.iterations);
            return Ok((
                View::Deep(location.view),
                iterations.unwrap_or(u64::from(DEFAULT_MAX_ITER)),
            ));
        }
        let iterations = given.unwrap_or(u64::from(DEFAULT_MAX_ITER));
        if let (Some(center), Some(zoom)) = (&self.center, &self.zoom) {
            return Ok((View::Deep(parse_center(center, zoom)?), iterations));
        }
        Ok((View::Viewport(parse_viewport(&self.viewport)?), iterations))
    }

    pub fn request(&self) -> Result<Request, UsageError> {
        let (view, iterations) = self.view()?;
        let video = self.video_request(&view)?;
        let max_iter = u32::try_from(iterations).map_err(|_| {
            usage(
                "max-iter",
                format!("max_iter must be in 1..=100000000, got {iterations}"),
            )
        })?;
        let params = RenderParams {
            view,
            tiles_per_side: self.tiles_per_side,
            tile_pixels: self.tile_pixels,
            max_iter,
        };
        params.validate()?;
        let colormap: Colormap = self
            .colormap
            .parse()
            .map_err(|e| usage("colormap", format!("{e}")))?;
        let workers = match self.workers {
            Some(0) => return Err(usage("workers", "workers must be at least 1, got 0")),
            Some(_) if self.bucket.is_some() => {
                return Err(usage(
                    "workers",
                    "--workers applies to embedded renders; with --bucket the deployment's \
                     functions render",
                ));
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        for (flag, path) in [
            ("out", Some(&self.out)),
            ("counts-out", self.counts_out.as_ref()),
            ("report", self.report.as_ref()),
            ("pyramid", self.pyramid.as_ref()),
            ("video", self.video.as_ref()),
        ] {
            let Some(path) = path else { continue };
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = dir
                && !dir.is_dir()
            {
                return Err(usage(
                    flag,
                    format!("folder {} does not exist", dir.display()),
                ));
            }
        }
        if self.bucket.as_deref() == Some("") {
            return Err(usage("bucket", "bucket must not be empty"));
        }
        let job_flag = |flag: &str, id: &Option<String>| match id {
            None => Ok(None),
            Some(_) if self.bucket.is_none() => Err(usage(
                flag,
                format!("--{flag} needs --bucket (embedded jobs live only as long as the command)"),
            )),
            Some(id) => JobId::parse(id)
                .map(Some)
                .map_err(|e| usage(flag, e.to_string())),
        };
        let cancel = job_flag("cancel", &self.cancel)?;
        let status = job_flag("status", &self.status)?;
        let job = job_flag("job", &self.job)?;
        if self.list && self.bucket.is_none() {
            return Err(usage(
                "list",
                "--list needs --bucket (embedded jobs live only as long as the command)",
            ));
        }
        match self.max_cost {
            Some(_) if self.bucket.is_none() => {
                return Err(usage(
                    "max-cost",
                    "--max-cost needs --bucket (an embedded render costs no AWS money)",
                ));
            }
            Some(usd) if !(usd.is_finite() && usd > 0.0) => {
                return Err(usage(
                    "max-cost",
                    format!("max-cost must be a positive number of US dollars, got {usd}"),
                ));
            }
            _ => {}
        }
        if self.pyramid.is_some() && self.no_wait {
            return Err(usage(
                "pyramid",
                "--pyramid needs the job's result; it cannot be written with --no-wait",
            ));
        }
        if self.report.is_some() && self.no_wait {
            return Err(usage(
                "report",
                "--report needs the job's result; with --no-wait, fetch \
                 jobs/<job>/report.html from the bucket when it is done",
            ));
        }
        // Flags of the cloud mode are refused without --bucket rather than
        // silently ignored.
        if self.bucket.is_none() {
            for (flag, given) in [
                ("no-wait", self.no_wait),
                ("fresh", self.fresh),
                ("timeout", self.timeout.is_some()),
                ("restitch-after", self.restitch_after.is_some()),
            ] {
                if given {
                    return Err(usage(
                        flag,
                        format!("--{flag} needs --bucket (it applies to jobs in a bucket)"),
                    ));
                }
            }
        }
        let seconds = |flag: &str, value: Option<u64>, default: u64| match value.unwrap_or(default)
        {
            0 => Err(usage(
                flag,
                format!("{flag} must be at least 1 second, got 0"),
            )),
            n => Ok(std::time::Duration::from_secs(n)),
        };
        let timeout = seconds("timeout", self.timeout, 900)?;
        let restitch_after = seconds(
            "restitch-after",
            self.restitch_after,
            WaitPolicy::RESTITCH_AFTER.as_secs(),
        )?;
        // At most one of --estimate, --cancel, --list and --status (clap's
        // "action" group); each needs --bucket but --estimate.
        let mode = match (self.bucket.clone(), cancel, status) {
            (bucket, _, _) if self.estimate => Mode::Estimate { bucket, workers },
            (None, _, _) => Mode::Embedded { workers },
            (Some(bucket), Some(job), _) => Mode::Cancel { bucket, job },
            (Some(bucket), _, Some(job)) => Mode::Status { bucket, job },
            (Some(bucket), _, _) if self.list => Mode::List { bucket },
            (Some(bucket), None, None) => Mode::Cloud {
                bucket,
                job,
                fresh: self.fresh,
                wait: (!self.no_wait).then_some(Wait {
                    timeout,
                    restitch_after,
                }),
                max_cost: self.max_cost,
            },
        };
        // A video's jobs are its keyframes; the deepest stands for them
        // where one job's parameters are wanted.
        let params = match &video {
            Some(v) => v.plan.keyframe(v.plan.keyframes() - 1),
            None => params,
        };
        Ok(Request {
            params,
            video,
            out: self.out.clone(),
            counts_out: self.counts_out.clone(),
            report: self.report.clone(),
            pyramid: self.pyramid.clone(),
            colormap,
            mode,
            output: if self.json {
                Output::Json
            } else {
                Output::Human
            },
        })
    }
}
