//! The job protocol: ids, the bucket layout, and the messages.
//!
//! ```text
//! jobs/<job>/params.json          RenderParams, written once (create-only)
//! jobs/<job>/tiles/<row>-<col>.<min>-<max>.u16 (.u32 for a deep job)
//!                                 one tile blob each, named with its count range;
//!                                 metadata: sha256, compute-us, worker
//! jobs/<job>/rows/<row>.<min>-<max>  marker: the row's tiles are all stored, with
//!                                 their range (only jobs of over a thousand tiles:
//!                                 smaller ones are seen whole in one listing)
//! jobs/<job>/reference/<k>.orbit  a deep job's reference orbit, segment k: its
//!                                 points (mandel_core::deep::encode_points)
//! jobs/<job>/reference/<k>.state  the orbit's full-precision state after segment k,
//!                                 which segment k+1 resumes from
//! jobs/<job>/reference.json       ReferenceManifest: the orbit is whole (create-only)
//! jobs/<job>/stitching.json       StitchAttempt: the stitch started (delivery, time)
//! jobs/<job>/image.png            the picture (default colormap)
//! jobs/<job>/counts.npy           the stitched counts array
//! jobs/<job>/estimate.json        Submission: the client's estimate, written at submit
//! jobs/<job>/stats.json           [TileStat]: who rendered each tile and when (stitch)
//! jobs/<job>/report.html          the report, written by the stitch before the result
//! jobs/<job>/pyramid/image.pack   the Deep Zoom pyramid in one object, read by byte
//!                                 range (mandel_core::pyramid::pack; the cloud stitch)
//! jobs/<job>/result.json          ResultManifest, written last, create-only
//! jobs/<job>/failed/<row>-<col>.json  Failure: a tile that failed its last attempt
//! jobs/<job>/failed/job.json      Failure: params.json unreadable, no tile can render
//! jobs/<job>/failed/stitch.json   Failure: the stitch failed its last attempt
//! jobs/<job>/cancelled            marker: workers skip the job's messages
//! ```
//!
//! Failure records and the cancel marker are cleared when the job is
//! submitted again, which is how a re-run retries what failed.
//!
//! The job id is a hash of the params' canonical JSON, so the same render is
//! the same job wherever and whenever it is submitted. How a job's progress
//! is seen from these keys: [`progress`](crate::progress); who reads and
//! writes each record: [`records`](crate::records).

use std::fmt;

use mandel_core::{CountRange, CountWidth, RenderParams, TileId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A job's id: lowercase letters, digits and `-`, at most 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

/// A job id that breaks the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job id must be 1 to 64 characters of [a-z0-9-], got {0:?}")]
pub struct InvalidJobId(pub String);

impl JobId {
    /// The content-addressed id of a render: the first 20 hex digits of the
    /// SHA-256 of the canonical params JSON.
    pub fn for_params(params: &RenderParams) -> JobId {
        JobId(hex(
            &Sha256::digest(params.canonical_json().as_bytes())[..10]
        ))
    }

    /// Whether this id names a job of `params`: their hash, or that hash
    /// and a `-suffix` (a `--fresh` run of the same params). Nothing else
    /// may hold them: see [`read_params`](crate::records::read_params).
    pub fn names(&self, params: &RenderParams) -> bool {
        let hash = JobId::for_params(params);
        self.0
            .strip_prefix(hash.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    }

    pub fn parse(s: &str) -> Result<JobId, InvalidJobId> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(JobId(s.to_string()))
        } else {
            Err(InvalidJobId(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Everything of the job: `jobs/<job>/`.
    pub fn prefix(&self) -> String {
        format!("jobs/{}/", self.0)
    }

    pub fn params_key(&self) -> String {
        format!("{}params.json", self.prefix())
    }

    pub fn tiles_prefix(&self) -> String {
        format!("{}tiles/", self.prefix())
    }

    /// The prefix of one row's tiles (`tiles/<row>-`; the `-` keeps row 1
    /// from matching row 10).
    pub fn row_prefix(&self, row: u32) -> String {
        format!("{}{row}-", self.tiles_prefix())
    }

    /// The prefix of one tile's key (`tiles/<row>-<col>.`; the `.` keeps
    /// column 1 from matching column 10).
    pub fn tile_prefix(&self, tile: TileId) -> String {
        format!("{}{}-{}.", self.tiles_prefix(), tile.row, tile.col)
    }

    /// A tile's key, which names the range of its counts, so listing the
    /// tiles tells the colour normalisation what it needs.
    pub fn tile_key(&self, tile: TileId, range: CountRange, width: CountWidth) -> String {
        format!(
            "{}{}-{}.{}",
            self.tile_prefix(tile),
            range.min,
            range.max,
            width.suffix()
        )
    }

    /// The tile, range and count width a key under
    /// [`tiles_prefix`](Self::tiles_prefix) names.
    pub fn tile_of_key(&self, key: &str) -> Option<(TileId, CountRange, CountWidth)> {
        // Called for every key of every listing: no allocation.
        let name = self.strip_own(key)?.strip_prefix("tiles/")?;
        let (name, width) = if let Some(name) = name.strip_suffix(".u16") {
            (name, CountWidth::U16)
        } else {
            (name.strip_suffix(".u32")?, CountWidth::U32)
        };
        let (tile, range) = name.split_once('.')?;
        let (row, col) = tile.split_once('-')?;
        let tile = TileId::new(canonical(row)?, canonical(col)?);
        Some((tile, parse_range(range)?, width))
    }

    /// `key` without this job's `jobs/<job>/` prefix.
    fn strip_own<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix("jobs/")?
            .strip_prefix(self.0.as_str())?
            .strip_prefix('/')
    }

    /// Where the finished rows are marked.
    pub fn rows_prefix(&self) -> String {
        format!("{}rows/", self.prefix())
    }

    /// The marker of a finished row, naming the range of its counts.
    pub fn row_key(&self, row: u32, range: CountRange) -> String {
        format!("{}{row}.{}-{}", self.rows_prefix(), range.min, range.max)
    }

    /// The row and range a key under [`rows_prefix`](Self::rows_prefix)
    /// names.
    pub fn row_of_key(&self, key: &str) -> Option<(u32, CountRange)> {
        let name = self.strip_own(key)?.strip_prefix("rows/")?;
        let (row, range) = name.split_once('.')?;
        Some((canonical(row)?, parse_range(range)?))
    }

    pub fn image_key(&self) -> String {
        format!("{}image.png", self.prefix())
    }

    pub fn counts_key(&self) -> String {
        format!("{}counts.npy", self.prefix())
    }

    /// What the client recorded at submit: its estimate
    /// ([`Submission`](crate::estimate::Submission)).
    pub fn estimate_key(&self) -> String {
        format!("{}estimate.json", self.prefix())
    }

    /// Every tile's [`TileStat`], as a JSON array, written by the stitch
    /// before the result.
    pub fn stats_key(&self) -> String {
        format!("{}stats.json", self.prefix())
    }

    /// The job's report (an HTML page), written by the stitch.
    pub fn report_key(&self) -> String {
        format!("{}report.html", self.prefix())
    }

    /// The job's Deep Zoom pyramid, written by the stitch as one pack
    /// ([`crate::pyramid`]).
    pub fn pyramid_pack_key(&self) -> String {
        format!(
            "{}pyramid/{}",
            self.prefix(),
            mandel_core::pyramid::pack::FILE
        )
    }

    pub fn result_key(&self) -> String {
        format!("{}result.json", self.prefix())
    }

    pub fn failed_prefix(&self) -> String {
        format!("{}failed/", self.prefix())
    }

    /// Where the failure of `what` is recorded.
    pub fn failed_key(&self, what: Failed) -> String {
        match what {
            Failed::Tile(t) => format!("{}{}-{}.json", self.failed_prefix(), t.row, t.col),
            Failed::Job => format!("{}job.json", self.failed_prefix()),
            Failed::Stitch => format!("{}stitch.json", self.failed_prefix()),
        }
    }

    /// Where a deep job's reference orbit is kept, segment by segment.
    pub fn reference_prefix(&self) -> String {
        format!("{}reference/", self.prefix())
    }

    /// The points of segment `k` of the reference orbit.
    pub fn reference_points_key(&self, k: u32) -> String {
        format!("{}{k}.orbit", self.reference_prefix())
    }

    /// The full-precision orbit state at the end of segment `k`.
    pub fn reference_state_key(&self, k: u32) -> String {
        format!("{}{k}.state", self.reference_prefix())
    }

    /// The segment a key under [`reference_prefix`](Self::reference_prefix)
    /// names the state of.
    pub fn reference_state_of_key(&self, key: &str) -> Option<u32> {
        let name = self.strip_own(key)?.strip_prefix("reference/")?;
        canonical(name.strip_suffix(".state")?)
    }

    /// The [`ReferenceManifest`]: written once the orbit is whole.
    pub fn reference_key(&self) -> String {
        format!("{}reference.json", self.prefix())
    }

    pub fn cancelled_key(&self) -> String {
        format!("{}cancelled", self.prefix())
    }

    /// The stitch's [`StitchAttempt`] marker.
    pub fn stitching_key(&self) -> String {
        format!("{}stitching.json", self.prefix())
    }
}

/// `<min>-<max>`, as tile and row keys name a range.
fn parse_range(s: &str) -> Option<CountRange> {
    let (min, max) = s.split_once('-')?;
    let range = CountRange {
        min: canonical(min)?,
        max: canonical(max)?,
    };
    (range.min <= range.max).then_some(range)
}

/// A number as the code writes it: decimal digits, no sign, no leading
/// zero. Only canonical names count: `01` or `+1` would parse to the same
/// number and name one tile twice.
fn canonical<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
}

/// `stitching.json`, written by the stitch as it starts on a job: lets a
/// waiting client tell a stitch that never started (its message was lost:
/// send another) from one that started and never finished (killed by its
/// timeout or memory limit: after its last attempt, report it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StitchAttempt {
    /// Deliveries of the stitch message so far.
    pub attempt: u32,
    /// This is the queue's last delivery: no retry follows if it dies.
    pub last: bool,
    pub started_unix_ms: u64,
}

impl StitchAttempt {
    /// The marker of delivery `attempt`, starting now.
    pub fn starting(attempt: u32, last: bool) -> Self {
        StitchAttempt {
            attempt,
            last,
            started_unix_ms: unix_ms(),
        }
    }

    /// How long ago it started, by this machine's wall clock against the
    /// stitch's: for people (`--status`), never for deciding that a stitch
    /// died (another machine's clock may be minutes off).
    pub fn age(&self) -> std::time::Duration {
        std::time::Duration::from_millis(unix_ms().saturating_sub(self.started_unix_ms))
    }
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What part of a job failed for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failed {
    Tile(TileId),
    /// The whole job: its params cannot be read.
    Job,
    Stitch,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::Tile(t) => write!(f, "tile {t}"),
            Failed::Job => f.write_str("params.json"),
            Failed::Stitch => f.write_str("stitch"),
        }
    }
}

/// `failed/*.json`: why part of a job gave up; its message is on its way to
/// the dead-letter queue (or, for [`Failed::Job`], will follow).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub what: Failed,
    pub reason: String,
    /// Deliveries of the message so far (SQS `ApproximateReceiveCount`).
    pub attempts: u32,
    pub worker: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (attempt {}, {}): {}",
            self.what, self.attempts, self.worker, self.reason
        )
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidJobId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        JobId::parse(&s)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// "Render this tile": one per tile on the tiles queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileMessage {
    pub job: JobId,
    pub row: u32,
    pub col: u32,
    /// An explorer's request for a one-tile job: the tile is all that is
    /// wanted, so the worker stores it and checks nothing for completion
    /// (no row marker, no stitch). Absent from other messages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explore: bool,
}

impl TileMessage {
    /// A job's tile, for the stitched picture.
    pub fn new(job: JobId, tile: TileId) -> Self {
        TileMessage {
            job,
            row: tile.row,
            col: tile.col,
            explore: false,
        }
    }

    pub fn tile(&self) -> TileId {
        TileId::new(self.row, self.col)
    }
}

/// "Compute segment `reference` of this deep job's reference orbit": on
/// the tiles queue, before the job's tile messages (which need the orbit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceMessage {
    pub job: JobId,
    pub reference: u32,
}

/// A message on the tiles queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkMessage {
    Tile(TileMessage),
    Reference(ReferenceMessage),
}

impl WorkMessage {
    pub fn job(&self) -> &JobId {
        match self {
            WorkMessage::Tile(m) => &m.job,
            WorkMessage::Reference(m) => &m.job,
        }
    }
}

/// A deep job's reference orbit is whole: `reference.json`, written after
/// its last segment, create-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceManifest {
    /// Segments `0..segments` hold the points.
    pub segments: u32,
    /// Points in the orbit (`Z_0` first).
    pub points: u64,
    pub precision_bits: u32,
    /// Compute time of each segment, in order.
    pub segment_us: Vec<u64>,
    /// When the first segment started and the last ended (Unix ms, by the
    /// workers' clocks).
    pub started_ms: u64,
    pub finished_ms: u64,
}

/// "All tiles of this job are in": on the stitch queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StitchMessage {
    pub job: JobId,
}

/// Per-tile facts recorded by the worker that wrote it (as the blob's
/// metadata): who rendered
/// it, and when. Times are Unix milliseconds by the worker's clock; 0 is
/// unknown (a tile written before they were recorded).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileStat {
    pub row: u32,
    pub col: u32,
    /// The kernel's time.
    pub compute_us: u64,
    /// The process that rendered it (a Lambda log stream, a poller, an
    /// embedded worker, or `stitch` for a tile the stitch rendered again).
    pub worker: String,
    /// When the kernel started on it.
    #[serde(default)]
    pub started_ms: u64,
    /// When the batch (the Lambda invocation) that rendered it started.
    #[serde(default)]
    pub batch_ms: u64,
    /// When the worker process started: the first batch of a process
    /// follows its cold start.
    #[serde(default)]
    pub boot_ms: u64,
}

impl TileStat {
    pub fn tile(&self) -> TileId {
        TileId::new(self.row, self.col)
    }
}

/// `result.json`: published last, exactly once per job. Small whatever the
/// job's size: each tile's [`TileStat`] is in `stats.json`
/// ([`JobId::stats_key`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultManifest {
    pub job: JobId,
    pub params: RenderParams,
    pub width: u64,
    pub height: u64,
    pub tiles: u64,
    pub image_key: String,
    pub counts_key: String,
    pub colormap: String,
    /// Iterations a brute-force kernel would run for this image.
    pub iterations: u64,
    /// Sum of the workers' kernel times.
    pub compute_us_total: u64,
    pub stitch_us: u64,
    /// When the stitch started (Unix ms), and the size of the PNG it wrote.
    #[serde(default)]
    pub stitch_started_ms: u64,
    #[serde(default)]
    pub image_bytes: u64,
    /// The size of the pyramid's pack (0: the job has none).
    #[serde(default)]
    pub pyramid_bytes: u64,
    /// A deep job's reference orbit, as `reference.json` recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceManifest>,
}

impl ResultManifest {
    /// When the stitch finished (Unix ms, by its clock).
    pub fn finished_ms(&self) -> u64 {
        self.stitch_started_ms + self.stitch_us / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_is_a_stable_content_hash() {
        let a = JobId::for_params(&RenderParams::default());
        assert_eq!(a.as_str().len(), 20);
        assert_eq!(a, JobId::for_params(&RenderParams::default()));
        let other = RenderParams {
            max_iter: 100,
            ..RenderParams::default()
        };
        assert_ne!(a, JobId::for_params(&other));
        // An id names its params' job: the hash, or a --fresh run of it.
        let p = RenderParams::default();
        assert!(a.names(&p));
        assert!(JobId::parse(&format!("{a}-18f3a")).unwrap().names(&p));
        assert!(!JobId::for_params(&other).names(&p));
        assert!(!JobId::parse(&format!("{a}0")).unwrap().names(&p));
        assert!(!JobId::parse(&a.as_str()[..19]).unwrap().names(&p));
        assert!(!JobId::parse("edited").unwrap().names(&p));
    }

    #[test]
    fn keys_and_tile_names_round_trip() {
        let job = JobId::parse("abc").unwrap();
        let range = CountRange { min: 7, max: 2000 };
        let (tile, key) = (TileId::new(3, 12), "jobs/abc/tiles/3-12.7-2000.u16");
        let u16 = CountWidth::U16;
        assert_eq!(job.tile_key(tile, range, u16), key);
        assert_eq!(job.tile_of_key(key), Some((tile, range, u16)));
        let deep = "jobs/abc/tiles/3-12.7-2000.u32";
        assert_eq!(job.tile_key(tile, range, CountWidth::U32), deep);
        assert_eq!(job.tile_of_key(deep), Some((tile, range, CountWidth::U32)));
        assert_eq!(job.tile_of_key("jobs/abc/tiles/3-12.7-2000.u8"), None);
        assert!(key.starts_with(&job.tile_prefix(tile)));
        assert!(
            !job.tile_key(TileId::new(3, 120), range, u16)
                .starts_with(&job.tile_prefix(tile))
        );
        assert_eq!(job.tile_of_key("jobs/abc/tiles/x.u16"), None);
        assert_eq!(job.tile_of_key("jobs/abc/tiles/3-12.u16"), None);
        // Only canonical keys name a tile, so no tile counts twice.
        for other in [
            "03-12.7-2000",
            "+3-12.7-2000",
            "3-012.7-2000",
            "3-+12.7-2000",
            " 3-12.7-2000",
            "3-12.07-2000",
            "3-12.9-8",
            "3-12.7-7000000000",
        ] {
            assert_eq!(
                job.tile_of_key(&format!("jobs/abc/tiles/{other}.u16")),
                None,
                "{other}"
            );
        }
        assert!(
            job.tile_key(TileId::new(1, 5), range, u16)
                .starts_with(&job.row_prefix(1))
        );
        assert!(
            !job.tile_key(TileId::new(10, 5), range, u16)
                .starts_with(&job.row_prefix(1))
        );
        assert_eq!(job.row_key(4, range), "jobs/abc/rows/4.7-2000");
        assert_eq!(job.row_of_key("jobs/abc/rows/4.7-2000"), Some((4, range)));
        assert_eq!(job.row_of_key("jobs/abc/rows/04.7-2000"), None);
        assert_eq!(job.row_of_key("jobs/abc/rows/4"), None);
        assert_eq!(job.result_key(), "jobs/abc/result.json");
        assert_eq!(
            job.failed_key(Failed::Tile(TileId::new(3, 12))),
            "jobs/abc/failed/3-12.json"
        );
        assert_eq!(job.failed_key(Failed::Job), "jobs/abc/failed/job.json");
        assert_eq!(job.cancelled_key(), "jobs/abc/cancelled");
        // A failure record under failed/ is never mistaken for a tile.
        assert_eq!(job.tile_of_key("jobs/abc/failed/3-12.json"), None);
        assert_eq!(job.row_of_key("jobs/abc/failed/3.1-2"), None);
    }

    #[test]
    fn bad_ids_and_messages_are_refused() {
        assert!(JobId::parse("").is_err());
        assert!(JobId::parse("../x").is_err());
        assert!(JobId::parse("ABC").is_err());
        assert!(serde_json::from_str::<TileMessage>(r#"{"job":"a/b","row":0,"col":0}"#).is_err());
        assert!(serde_json::from_str::<TileMessage>(r#"{"job":"a","row":-1,"col":0}"#).is_err());
        assert!(serde_json::from_str::<TileMessage>(r#"{"job":"a","row":0}"#).is_err());
        let m: TileMessage = serde_json::from_str(r#"{"job":"a","row":1,"col":2}"#).unwrap();
        assert_eq!(m.tile(), TileId::new(1, 2));
    }
}
