//! Knowing a job before and after it runs, on LocalStack, each test on a
//! deployment of its own ([`Lane::with_limits`]): `--estimate` and a
//! refusing `--max-cost` write nothing; `--list` and `--status` follow
//! jobs from the bucket alone; a finished job has its stats, its report and
//! the summary's estimate against what it used.

use std::time::Duration;

use mandel_e2e::lane::Lane;
use mandel_pipeline::{FunctionLimits, JobId};
use serde_json::Value;

const SMALL: [&str; 6] = [
    "--tiles-per-side",
    "4",
    "--tile-pixels",
    "32",
    "--max-iter",
    "200",
];

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document on stdout")
}

#[test]
fn estimate_and_a_refusing_max_cost_write_nothing() {
    let lane = Lane::with_limits("estimate", FunctionLimits::WORKER, FunctionLimits::STITCH);
    let dir = tempfile::tempdir().unwrap();
    let doc = json(&lane.orchestrate(dir.path(), &["--estimate", "--json"]));
    let e = &doc["estimate"];
    assert_eq!(e["target"], "lambda");
    // 256 tiles in batches of 10: 26 invocations and the stitch's.
    assert_eq!(e["usage"]["lambda_requests"], 27);
    assert!(e["workers"].as_u64().unwrap() <= 50);
    let cost = &e["cost"];
    let items: f64 = [
        "lambda_compute",
        "lambda_requests",
        "s3_requests",
        "sqs_requests",
        "transfer_out",
        "storage",
    ]
    .iter()
    .map(|k| cost[k].as_f64().unwrap())
    .sum();
    let total = cost["total"].as_f64().unwrap();
    assert!(total > 0.0 && (items - total).abs() < 1e-12, "{cost}");
    assert!(
        lane.keys("jobs/").is_empty(),
        "--estimate wrote {:?}",
        lane.keys("jobs/")
    );

    let out = lane.orchestrate(dir.path(), &["--max-cost", "0.000001"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--max-cost: the job is estimated to cost $"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("estimate on Lambda"));
    assert!(
        lane.keys("jobs/").is_empty(),
        "a refused job wrote {:?}",
        lane.keys("jobs/")
    );
    assert_eq!(lane.depth(&lane.tiles), 0, "a refused job sent messages");

    // A budget above the estimate lets the job through, and the job
    // records the estimate it was submitted with.
    let job = lane.submit(dir.path(), &[&SMALL[..], &["--max-cost", "1"]].concat());
    let recorded = lane
        .rt
        .block_on(lane.store.get(&job.estimate_key()))
        .expect("estimate.json")
        .body;
    let recorded: Value = serde_json::from_slice(&recorded).unwrap();
    assert_eq!(recorded["estimate"]["tiles"], 16);
    assert_eq!(recorded["deployment"]["bucket"], lane.bucket.as_str());
}

#[test]
fn list_and_status_follow_jobs_and_a_finished_job_has_its_report() {
    let lane = Lane::with_limits("inspect", FunctionLimits::WORKER, FunctionLimits::STITCH);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pollers.log");

    // A job nobody works on yet: running, nothing stored.
    let idle = lane.submit(
        dir.path(),
        &[
            "--tiles-per-side",
            "2",
            "--tile-pixels",
            "16",
            "--max-iter",
            "50",
        ],
    );
    let status = json(&lane.orchestrate(dir.path(), &["--status", idle.as_str(), "--json"]));
    let s = &status["status"];
    assert_eq!(s["state"], "running");
    assert_eq!(
        (s["stored"].as_u64(), s["pending"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(s["stitch"]["state"], "waiting");
    assert!(s["estimate"]["seconds"].as_f64().unwrap() > 0.0);
    let out = lane.orchestrate(dir.path(), &["--cancel", idle.as_str()]);
    assert!(out.status.success());
    // Its messages are acknowledged without work once workers run.
    let _worker = lane.worker(&log);
    let _stitcher = lane.stitcher(&log);

    let doc = json(
        &lane.orchestrate(
            dir.path(),
            &[
                &SMALL[..],
                &["--report", "r.html", "--json", "--timeout", "120"],
            ]
            .concat(),
        ),
    );
    let job = JobId::parse(doc["job"].as_str().unwrap()).unwrap();
    assert_eq!(doc["estimate"]["target"], "lambda");
    let actual = &doc["actual"];
    assert!(actual["cost"]["total"].as_f64().unwrap() > 0.0, "{actual}");
    // Every tile was rendered in some batch: at least one invocation
    // besides the stitch's, at most one per tile.
    let invocations = actual["usage"]["lambda_requests"].as_u64().unwrap() - 1;
    assert!((1..=16).contains(&invocations), "{actual}");
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    for part in [
        "<svg id=\"timeline\"",
        "<svg id=\"heatmap\"",
        "Lambda compute",
    ] {
        assert!(html.contains(part), "the report lacks {part:?}");
    }
    for key in [job.report_key(), job.stats_key(), job.estimate_key()] {
        assert!(lane.keys(&key).contains(&key), "{key} is missing");
    }

    lane.wait_until(
        "the cancelled job's messages are gone",
        Duration::from_secs(30),
        || lane.depth(&lane.tiles) == 0 && lane.in_flight(&lane.tiles) == 0,
    );
    let list = json(&lane.orchestrate(dir.path(), &["--list", "--json"]));
    let jobs = list["jobs"].as_array().unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j["job"].as_str().unwrap()).collect();
    assert_eq!(ids, [job.as_str(), idle.as_str()], "newest first");
    assert_eq!(jobs[0]["state"], "finished");
    assert_eq!(jobs[0]["stored"], 16);
    assert!(jobs[0]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(jobs[1]["state"], "cancelled");
    assert_eq!(jobs[1]["stored"], 0);

    let status = json(&lane.orchestrate(dir.path(), &["--status", job.as_str(), "--json"]));
    assert_eq!(status["status"]["stitch"]["state"], "finished");
    assert_eq!(status["status"]["pending"], 0);
    // The same for people: a header and a line per job.
    let out = lane.orchestrate(dir.path(), &["--list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("JOB"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    let out = lane.orchestrate(dir.path(), &["--status", "no-such-job"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job no-such-job"));
}
