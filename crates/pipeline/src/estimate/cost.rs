//! What a job uses of the AWS services and what that costs: one function
//! counts a job's requests ([`Usage::of_job`]) from its [`JobShape`],
//! predicted or observed, and [`Usage::cost`] prices it at [`PRICES`].

use mandel_core::TileId;
use serde::{Deserialize, Serialize};

use super::lambda::{MODEL, rows_in};
use crate::deployment::Deployment;
use crate::job::{ResultManifest, TileStat};

/// AWS list prices in US dollars (us-east-1, on-demand, no free tier),
/// from the services' pricing pages as of 2026-11; `docs/cost.md` names
/// the pages.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Prices {
    pub lambda_gb_second_x86: f64,
    pub lambda_gb_second_arm: f64,
    pub lambda_request: f64,
    /// S3 Standard PUT, COPY, POST and LIST requests.
    pub s3_put_request: f64,
    /// S3 Standard GET and HEAD requests.
    pub s3_get_request: f64,
    /// SQS standard queue requests (each 64 KiB chunk).
    pub sqs_request: f64,
    /// Data out of AWS to the internet, per GB (first 10 TB a month).
    pub transfer_out_gb: f64,
    /// S3 Standard storage per GB-month (first 50 TB).
    pub storage_gb_month: f64,
}

pub const PRICES: Prices = Prices {
    lambda_gb_second_x86: 0.000_016_666_7,
    lambda_gb_second_arm: 0.000_013_333_4,
    lambda_request: 0.20e-6,
    s3_put_request: 0.005e-3,
    s3_get_request: 0.0004e-3,
    sqs_request: 0.40e-6,
    transfer_out_gb: 0.09,
    storage_gb_month: 0.023,
};

/// What a job uses of the AWS services.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub lambda_gb_seconds: f64,
    pub lambda_requests: u64,
    pub s3_put_requests: u64,
    pub s3_get_requests: u64,
    pub sqs_requests: u64,
    pub transfer_out_gb: f64,
    pub storage_gb_months: f64,
}

/// A usage priced, item by item, in US dollars.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub lambda_compute: f64,
    pub lambda_requests: f64,
    pub s3_requests: f64,
    pub sqs_requests: f64,
    pub transfer_out: f64,
    pub storage: f64,
    pub total: f64,
}

/// The facts of a job that decide its requests and its bill: predicted
/// for an estimate, observed for a finished job.
#[derive(Clone, Debug, Default)]
pub struct JobShape {
    pub tiles: u64,
    pub rows: u64,
    /// Worker invocations, and the rows they wrote to, summed over them.
    pub invocations: u64,
    pub rows_touched: u64,
    /// Worker processes started (each a cold start).
    pub cold_starts: u64,
    /// Seconds of worker invocations and of the stitch.
    pub worker_seconds: f64,
    pub stitch_seconds: f64,
    /// The client's wait, which decides how often it polls.
    pub wait_seconds: f64,
    pub image_bytes: u64,
    pub counts_bytes: u64,
    /// The size of the job's Deep Zoom pyramid, one pack written as a
    /// multipart upload by the stitch (0: none).
    pub pyramid_bytes: u64,
    /// The outputs the client downloads: how many, and their bytes.
    pub downloads: u64,
    pub downloaded_bytes: u64,
    /// A deep job's reference orbit: its segments (one worker invocation
    /// each; 0 for a viewport job) and the client's looks at it before
    /// it was whole ([`crate::progress::reference_polls_during`]).
    pub reference_segments: u64,
    pub reference_polls: u64,
}

/// A tile's entry in `stats.json`, about: 137 bytes for an embedded
/// worker's tile of a million-tile job (the entry's form, counted), more
/// with a Lambda log stream's name for the worker.
const STAT_JSON_BYTES: u64 = 180;

/// S3 requests by price class: PUT, COPY, POST and LIST; GET and HEAD
/// (DELETE is free).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct S3Requests {
    pub put: u64,
    pub get: u64,
}

/// A job's S3 requests by who makes them, as the protocol makes them: the
/// model behind [`Usage::of_job`], which a test compares with the requests
/// the use cases make through a recording store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobRequests {
    /// Submit, the wait's polls, then the result, stats and outputs.
    pub client: S3Requests,
    pub workers: S3Requests,
    pub stitch: S3Requests,
}

impl JobRequests {
    pub fn of(s: &JobShape) -> JobRequests {
        let parts = |bytes: u64| bytes.div_ceil(crate::upload::PART_SIZE as u64).max(1);
        // An object sent in pieces (`upload::Pieces`): one PUT up to a
        // part, else a multipart upload.
        let pieces = |bytes: u64| {
            if bytes <= crate::upload::PART_SIZE as u64 {
                1
            } else {
                2 + parts(bytes)
            }
        };
        // A job of at most a thousand tiles is seen in one listing of it;
        // a larger one through row markers (`crate::progress`).
        let whole = crate::progress::listed_whole(s.tiles);
        // Client: submit: params and estimate PUTs, then one listing (over
        // a thousand tiles: `rows/`, a HEAD of the result, `failed/`, and
        // `tiles/`, one page for a new job; deletes are free); then a poll
        // every `progress::poll_interval` (one listing; over 1000 tiles, `rows/`,
        // `failed/` and two HEADs, of which the last poll, which finds the
        // result, makes `rows/` and a HEAD); then result.json, stats.json and the
        // outputs. (A poll that sees a stitch running also reads its
        // marker, once per attempt: one GET, not counted.)
        let interval = crate::progress::poll_interval(s.tiles).as_secs_f64();
        let polls = (s.wait_seconds / interval).ceil() as u64;
        let (submit_lists, submit_heads, poll_lists, poll_heads) = if whole {
            (1, 0, polls, 0)
        } else {
            let polls = polls.max(1);
            (3, 1, 2 * polls - 1, 2 * polls - 1)
        };
        // A deep job's reference (`crate::reference`): the client looks
        // (manifest GET, cancel HEAD, listings of `failed/` and of the
        // orbit's segments) until a GET finds the manifest. Segment k reads
        // the params, the manifest and the k states before it, and writes
        // its points and state; the last one the manifest. Every worker
        // process reads the manifest and the segments' points once; the
        // stitch reads the manifest for the report.
        let (segs, deep) = (s.reference_segments, u64::from(s.reference_segments > 0));
        let client = S3Requests {
            put: 2 + submit_lists + poll_lists + 2 * s.reference_polls,
            get: submit_heads + poll_heads + 2 + s.downloads + 2 * s.reference_polls + deep,
        };
        let reference = S3Requests {
            put: 2 * segs + deep,
            get: 2 * segs + segs * segs.saturating_sub(1) / 2 + s.cold_starts * (segs + deep),
        };
        // Workers: per process its params; a cancel HEAD per process and
        // second of work at most; per tile its PUT; per invocation one
        // listing of the job, or over a thousand tiles a listing per row
        // written to and, per row, its marker and a listing of the markers.
        let cancel_heads = s
            .invocations
            .min(s.cold_starts + s.worker_seconds.ceil() as u64);
        let workers = S3Requests {
            put: s.tiles
                + if whole {
                    s.invocations
                } else {
                    s.rows_touched + 2 * s.rows
                }
                + reference.put,
            get: s.cold_starts + cancel_heads + reference.get,
        };
        // Stitch: its marker, one listing of the job (over a thousand
        // tiles, of `rows/` and of each row), two multipart uploads (start,
        // parts, complete) and the pyramid's if it has one, stats.json (one
        // PUT, or a multipart upload past a part), report.html and
        // result.json; params, estimate.json and every tile (over a
        // thousand tiles, two HEADs too).
        let stitch_lists = if whole { 1 } else { 1 + s.rows };
        let stitch = S3Requests {
            put: 1
                + stitch_lists
                + 2 * 2
                + parts(s.image_bytes)
                + parts(s.counts_bytes)
                + if s.pyramid_bytes > 0 {
                    2 + parts(s.pyramid_bytes)
                } else {
                    0
                }
                + pieces(s.tiles * STAT_JSON_BYTES)
                + 2,
            get: 2 + s.tiles + if whole { 0 } else { 2 } + deep,
        };
        JobRequests {
            client,
            workers,
            stitch,
        }
    }

    pub fn total(&self) -> S3Requests {
        let roles = [self.client, self.workers, self.stitch];
        S3Requests {
            put: roles.iter().map(|r| r.put).sum(),
            get: roles.iter().map(|r| r.get).sum(),
        }
    }
}

impl Usage {
    /// Counts the requests of a job run by the protocol in `crate::job`,
    /// and its Lambda time, for `deployment`.
    pub fn of_job(shape: &JobShape, deployment: &Deployment) -> Usage {
        let s = shape;
        let gb = |mb: u32| f64::from(mb) / 1024.0;
        let worker_seconds = s.worker_seconds + s.cold_starts as f64 * MODEL.cold_start_s;
        let requests = JobRequests::of(s);
        Usage {
            lambda_gb_seconds: worker_seconds * gb(deployment.worker.memory_mb)
                + (s.stitch_seconds + MODEL.cold_start_s) * gb(deployment.stitch.memory_mb),
            lambda_requests: s.invocations + s.reference_segments + 1,
            s3_put_requests: requests.total().put,
            s3_get_requests: requests.total().get,
            // Sends in batches of 10, one receive and one batch delete per
            // invocation; the stitch message's send, receive and delete, and
            // each reference segment's.
            sqs_requests: s.tiles.div_ceil(10) + 2 * s.invocations + 3 + 3 * s.reference_segments,
            transfer_out_gb: s.downloaded_bytes as f64 / 1e9,
            // The tiles (as many bytes as the counts) and the outputs,
            // kept for the retention period.
            storage_gb_months: (2 * s.counts_bytes + s.image_bytes + s.pyramid_bytes) as f64 / 1e9
                * f64::from(deployment.fleet.job_retention_days)
                / 30.0,
        }
    }

    /// This usage at `prices`, on `architecture`'s GB-second price.
    pub fn cost(&self, prices: &Prices, architecture: &str) -> Cost {
        let gb_second = match architecture {
            "arm64" => prices.lambda_gb_second_arm,
            _ => prices.lambda_gb_second_x86,
        };
        let mut c = Cost {
            lambda_compute: self.lambda_gb_seconds * gb_second,
            lambda_requests: self.lambda_requests as f64 * prices.lambda_request,
            s3_requests: self.s3_put_requests as f64 * prices.s3_put_request
                + self.s3_get_requests as f64 * prices.s3_get_request,
            sqs_requests: self.sqs_requests as f64 * prices.sqs_request,
            transfer_out: self.transfer_out_gb * prices.transfer_out_gb,
            storage: self.storage_gb_months * prices.storage_gb_month,
            total: 0.0,
        };
        c.total = c.lambda_compute
            + c.lambda_requests
            + c.s3_requests
            + c.sqs_requests
            + c.transfer_out
            + c.storage;
        c
    }
}

impl JobShape {
    /// The shape of a finished job from its manifest: its invocations
    /// are its tiles grouped by worker and batch, each lasting from the
    /// batch's start to its last kernel's end, plus the requests after it
    /// (a tile's PUT, the row listings) at [`Model::request_s`](super::Model::request_s) each.
    /// `wait_seconds` is how long the client waited.
    pub fn observed(
        m: &ResultManifest,
        stats: &[TileStat],
        wait_seconds: f64,
        counts_downloaded: bool,
    ) -> JobShape {
        let mut batches: std::collections::BTreeMap<(&str, u64), (u64, Vec<u32>)> =
            Default::default();
        for s in stats.iter().filter(|s| s.batch_ms > 0) {
            let (end, rows) = batches.entry((&s.worker, s.batch_ms)).or_default();
            *end = (*end).max(s.started_ms * 1000 + s.compute_us);
            rows.push(s.row);
        }
        let worker_seconds = batches
            .iter()
            .map(|((_, start), (end_us, _))| {
                end_us.saturating_sub(start * 1000) as f64 / 1e6 + 3.0 * MODEL.request_s
            })
            .sum();
        let rows_touched = batches
            .values_mut()
            .map(|(_, rows)| {
                rows.sort_unstable();
                rows_in(rows.iter().map(|&r| TileId::new(r, 0)))
            })
            .sum();
        let workers: std::collections::BTreeSet<&str> =
            batches.keys().map(|(worker, _)| *worker).collect();
        let counts_bytes = m.params.count_width().bytes() as u64 * m.width * m.height;
        let reference_segments = m.reference.as_ref().map_or(0, |r| u64::from(r.segments));
        let reference_polls = m.reference.as_ref().map_or(0, |r| {
            crate::progress::reference_polls_during(
                r.finished_ms.saturating_sub(r.started_ms) as f64 / 1e3,
            )
        });
        JobShape {
            tiles: m.tiles,
            rows: u64::from(m.params.tiles_per_side),
            invocations: batches.len() as u64,
            rows_touched,
            cold_starts: workers.len() as u64,
            worker_seconds,
            stitch_seconds: m.stitch_us as f64 / 1e6,
            wait_seconds,
            image_bytes: m.image_bytes,
            counts_bytes,
            pyramid_bytes: m.pyramid_bytes,
            downloads: 1 + u64::from(counts_downloaded),
            downloaded_bytes: m.image_bytes + if counts_downloaded { counts_bytes } else { 0 },
            reference_segments,
            reference_polls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandel_core::RenderParams;

    fn deployment() -> Deployment {
        Deployment::defaults("us-east-1")
    }

    #[test]
    fn a_finished_job_counts_its_batches_and_workers() {
        let stat = |row, col, worker: &str, batch_ms, started_ms, compute_us| TileStat {
            row,
            col,
            compute_us,
            worker: worker.into(),
            started_ms,
            batch_ms,
            boot_ms: 1,
        };
        let stats = [
            stat(0, 0, "a", 1000, 1000, 5000),
            stat(0, 1, "a", 1000, 1005, 5000),
            stat(1, 0, "a", 2000, 2000, 1000),
            stat(1, 1, "b", 1000, 1001, 20_000),
        ];
        let m = ResultManifest {
            job: crate::job::JobId::parse("j").unwrap(),
            params: RenderParams {
                tiles_per_side: 2,
                ..RenderParams::default()
            },
            width: 512,
            height: 512,
            tiles: 4,
            image_key: String::new(),
            counts_key: String::new(),
            colormap: String::new(),
            iterations: 0,
            compute_us_total: 0,
            stitch_us: 500_000,
            stitch_started_ms: 0,
            image_bytes: 1000,
            pyramid_bytes: 0,
            reference: None,
        };
        let shape = JobShape::observed(&m, &stats, 2.0, false);
        assert_eq!(shape.invocations, 3);
        assert_eq!(shape.cold_starts, 2);
        assert_eq!(shape.rows_touched, 3);
        // Batches: a@1000 ends at 1010 ms, a@2000 at 2001, b@1000 at 1021.
        let spans = 0.010 + 0.001 + 0.021 + 3.0 * 3.0 * MODEL.request_s;
        assert!((shape.worker_seconds - spans).abs() < 1e-9, "{shape:?}");
        let usage = Usage::of_job(&shape, &deployment());
        assert_eq!(usage.lambda_requests, 4);
        // Two sends of ten, a receive and a delete per invocation, the
        // stitch message's three.
        assert_eq!(usage.sqs_requests, 1 + 6 + 3);
    }

    #[test]
    fn cost_is_the_sum_of_its_items_and_arm_seconds_are_cheaper() {
        let usage = Usage {
            lambda_gb_seconds: 100.0,
            lambda_requests: 1_000_000,
            s3_put_requests: 1000,
            s3_get_requests: 1000,
            sqs_requests: 1_000_000,
            transfer_out_gb: 1.0,
            storage_gb_months: 1.0,
        };
        let x86 = usage.cost(&PRICES, "x86_64");
        assert!((x86.lambda_compute - 0.001_666_67).abs() < 1e-9);
        assert!((x86.lambda_requests - 0.20).abs() < 1e-12);
        assert!((x86.s3_requests - 0.0054).abs() < 1e-12);
        assert!((x86.sqs_requests - 0.40).abs() < 1e-12);
        let items = x86.lambda_compute
            + x86.lambda_requests
            + x86.s3_requests
            + x86.sqs_requests
            + x86.transfer_out
            + x86.storage;
        assert!((x86.total - items).abs() < 1e-12);
        assert!(usage.cost(&PRICES, "arm64").lambda_compute < x86.lambda_compute);
    }
}
