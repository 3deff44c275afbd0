//! Reliability on LocalStack, with the real binaries on private queues
//! ([`Lane`]: visibility timeout 3 s, 2 deliveries before the dead-letter
//! queue): a worker killed mid-batch, duplicate deliveries, poison
//! messages, a hand-edited params.json, resume after interruption, cancel.
//! Each prints how long recovery took. Needs `localstack/up.sh`'s
//! environment (the README's test command provides it); fails without it.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use mandel_e2e::lane::{Lane, MAX_RECEIVES, VISIBILITY_SECS};
use mandel_e2e::{REFERENCE_IMAGE_SHA256, finish, log_events};
use mandel_pipeline::JobId;
use mandel_pipeline::events;

/// A 4×4-tile job that renders in well under a second.
const SMALL: &[&str] = &[
    "--viewport",
    "-2,0.5,-1.25,1.25",
    "--tiles-per-side",
    "4",
    "--tile-pixels",
    "32",
    "--max-iter",
    "300",
];

const MINUTE: Duration = Duration::from_secs(60);

fn spawn_waiting(lane: &Lane, dir: &std::path::Path, job: &JobId, args: &[&str]) -> Child {
    lane.command("mandel-orchestrate")
        .current_dir(dir)
        .args(["--bucket", &lane.bucket, "--job", job.as_str()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning mandel-orchestrate")
}

/// SIGKILL a worker poller while it holds a batch: the job still completes
/// (the held messages come back after the visibility timeout) with the
/// notebook's exact counts, and nothing reaches the dead-letter queue.
#[test]
fn a_worker_killed_while_holding_messages_loses_nothing() {
    let lane = Lane::new("kill");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let victim = lane.worker(&log);
    let job = lane.submit(dir.path(), &["--fresh"]);
    let mut held = 0;
    lane.wait_until(
        "the worker is mid-job with messages in hand",
        MINUTE,
        || {
            held = lane.in_flight(&lane.tiles);
            held > 0 && lane.keys(&job.tiles_prefix()).len() >= 20
        },
    );
    drop(victim); // SIGKILL
    let killed = Instant::now();
    let stored_at_kill = lane.keys(&job.tiles_prefix()).len();
    let _workers = [lane.worker(&log), lane.worker(&log)];
    let _stitcher = lane.stitcher(&dir.path().join("stitch.log"));
    lane.wait_until("the job is finished", 2 * MINUTE, || lane.finished(&job));
    eprintln!(
        "killed a worker holding {held} messages with {stored_at_kill}/256 tiles stored; \
         result {:.1} s later (visibility timeout {VISIBILITY_SECS} s)",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(lane.counts_sha256(&job), REFERENCE_IMAGE_SHA256);
    assert_eq!(lane.depth(&lane.tiles_dlq), 0, "nothing dead-lettered");
}

/// Every tile message sent twice, and two more stitch messages after the
/// result: identical output, exactly one result published.
#[test]
fn duplicate_deliveries_publish_exactly_one_result() {
    let lane = Lane::new("dup");
    let dir = tempfile::tempdir().unwrap();
    let job = lane.submit(dir.path(), &[&["--fresh"], SMALL].concat());
    // Same job again before any worker runs: all 16 tiles enqueued twice.
    lane.submit(dir.path(), &[&["--job", job.as_str()], SMALL].concat());
    assert_eq!(lane.depth(&lane.tiles), 32);

    let stitch_log = dir.path().join("stitch.log");
    let _workers = [
        lane.worker(&dir.path().join("w.log")),
        lane.worker(&dir.path().join("w.log")),
    ];
    let _stitcher = lane.stitcher(&stitch_log);
    lane.wait_until("the job is finished", MINUTE, || lane.finished(&job));
    let body = format!(r#"{{"job":"{job}"}}"#);
    lane.send(&lane.stitch, &[&body, &body]);
    lane.wait_until("both queues are empty", MINUTE, || {
        lane.depth(&lane.tiles) + lane.depth(&lane.stitch) == 0
    });
    let stitched = log_events(&stitch_log, events::STITCHED)
        .into_iter()
        .filter(|e| e["fields"]["job"] == job.as_str())
        .count();
    assert_eq!(stitched, 1, "exactly one result published");

    let out = mandel_e2e::orchestrate(
        dir.path(),
        &[SMALL, &["--out", "local.png", "--counts-out", "local.npy"]].concat(),
    );
    assert!(out.status.success());
    assert_eq!(
        lane.counts_sha256(&job),
        mandel_e2e::counts_sha256(&dir.path().join("local.npy")),
        "duplicates changed the output"
    );
}

/// Malformed JSON, an unknown job, tiles outside the grid, huge and
/// negative numbers, a missing field: each fails only itself, lands in the
/// dead-letter queue after MAX_RECEIVES deliveries, and writes nothing; a
/// real job on the same queue finishes meanwhile.
#[test]
fn poison_messages_fail_alone_and_reach_the_dead_letter_queue() {
    let lane = Lane::new("poison");
    let dir = tempfile::tempdir().unwrap();
    let job = lane.submit(dir.path(), &[&["--fresh"], SMALL].concat());
    let unknown = format!("nosuchjob-{}", std::process::id());
    let poison = [
        "not json".to_string(),
        format!(r#"{{"job":"{unknown}","row":0,"col":0}}"#),
        format!(r#"{{"job":"{job}","row":4,"col":0}}"#),
        format!(r#"{{"job":"{job}","row":0,"col":99999999999}}"#),
        format!(r#"{{"job":"{job}","row":-1,"col":0}}"#),
        format!(r#"{{"job":"{job}","row":0}}"#),
        format!(r#"{{"job":"../{job}","row":0,"col":0}}"#),
    ];
    lane.send(
        &lane.tiles,
        &poison.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let started = Instant::now();
    let _worker = lane.worker(&dir.path().join("w.log"));
    let _stitcher = lane.stitcher(&dir.path().join("stitch.log"));
    lane.wait_until("the real job is finished", MINUTE, || lane.finished(&job));
    lane.wait_until("all poison is dead-lettered", MINUTE, || {
        lane.depth(&lane.tiles_dlq) == poison.len() as u64
    });
    eprintln!(
        "{} poison messages dead-lettered after {:.1} s ({MAX_RECEIVES} deliveries, \
         visibility timeout {VISIBILITY_SECS} s)",
        poison.len(),
        started.elapsed().as_secs_f64()
    );
    let mut dead = lane.drain(&lane.tiles_dlq);
    dead.sort();
    let mut want = poison.to_vec();
    want.sort();
    assert_eq!(dead, want);
    assert!(lane.keys(&format!("jobs/{unknown}/")).is_empty());
    let tiles = lane.keys(&job.tiles_prefix());
    assert_eq!(tiles.len(), 16, "only the job's own tiles: {tiles:?}");
    assert!(
        lane.keys(&job.failed_prefix()).is_empty(),
        "poison is not the job's failure"
    );
}

/// A params.json edited in the bucket after submission: the workers refuse
/// it, and the waiting orchestrator stops at once, exit code 1, naming
/// params.json, the rule it breaks and the dead-letter queue.
#[test]
fn the_orchestrator_names_the_failure_when_params_json_is_hand_edited() {
    let lane = Lane::new("edited");
    let dir = tempfile::tempdir().unwrap();
    let job = lane.submit(dir.path(), &[&["--fresh"], SMALL].concat());
    let waiting = spawn_waiting(&lane, dir.path(), &job, SMALL);
    lane.wait_until("the orchestrator has submitted", MINUTE, || {
        lane.depth(&lane.tiles) == 32
    });
    let edited =
        r#"{"viewport":[-2.0,0.5,-1.25,1.25],"tiles_per_side":4,"tile_pixels":32,"max_iter":0}"#;
    lane.rt
        .block_on(lane.store.put(
            &job.params_key(),
            edited.into(),
            Default::default(),
            mandel_pipeline::PutMode::Overwrite,
        ))
        .unwrap();
    let started = Instant::now();
    let _worker = lane.worker(&dir.path().join("w.log"));
    let (status, stderr, _) = finish(waiting, MINUTE);
    eprintln!(
        "orchestrator stopped {:.1} s after the worker started",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    for want in ["params.json", "max_iter", "dead-letter queue", job.as_str()] {
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
    }
    assert!(lane.keys(&job.tiles_prefix()).is_empty(), "no tile written");
}

/// A job whose orchestrator got Ctrl-C and whose worker died: re-running
/// the same command enqueues only the missing tiles and finishes the job
/// exactly; running it once more returns at once from the stored result;
/// `--fresh` starts a new job.
#[test]
fn a_rerun_resumes_an_interrupted_job_and_returns_a_finished_one_at_once() {
    let lane = Lane::new("resume");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let job = lane.submit(dir.path(), &["--fresh"]);
    let waiting = spawn_waiting(&lane, dir.path(), &job, &[]);
    let worker = lane.worker(&log);
    lane.wait_until("some tiles are stored", MINUTE, || {
        lane.keys(&job.tiles_prefix()).len() >= 30
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &waiting.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    drop(worker);
    let (status, stderr, _) = finish(waiting, MINUTE);
    assert!(!status.success(), "Ctrl-C stops the orchestrator");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!("job {job} keeps running"))
            && stderr.contains(&format!("--job {job}"))
            && stderr.contains(&format!("--cancel {job}")),
        "the interrupted client says how to wait again or stop the job: {stderr}"
    );
    let stored = lane.keys(&job.tiles_prefix()).len();
    assert!(stored < 256, "the job was interrupted");

    let _workers = [lane.worker(&log), lane.worker(&log)];
    let _stitcher = lane.stitcher(&dir.path().join("stitch.log"));
    let started = Instant::now();
    let out = lane.orchestrate(
        dir.path(),
        &[
            "--job",
            job.as_str(),
            "--counts-out",
            "resumed.npy",
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The dead worker's messages may come back and be rendered meanwhile,
    // so at least `stored` tiles are done when the re-run looks.
    let (enqueued, already, _) = submitted(&out.stdout);
    assert_eq!(enqueued + already, 256, "{stderr}");
    assert!(already >= stored as u64 && enqueued > 0, "{stderr}");
    eprintln!(
        "resumed with {stored}/256 tiles stored: finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        mandel_e2e::counts_sha256(&dir.path().join("resumed.npy")),
        REFERENCE_IMAGE_SHA256
    );

    // The killed worker's messages come back after the visibility timeout
    // and are acknowledged as duplicates; a resume faster than that leaves
    // some still queued. Let them drain, so the queue shows what the
    // re-run below sends.
    lane.wait_until("the dead worker's messages are drained", MINUTE, || {
        lane.depth(&lane.tiles) == 0
    });
    let started = Instant::now();
    let out = lane.orchestrate(dir.path(), &["--job", job.as_str(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(submitted(&out.stdout), (0, 256, true), "{stderr}");
    eprintln!(
        "re-running the finished job took {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lane.depth(&lane.tiles), 0, "nothing enqueued");

    let other = lane.submit(dir.path(), &["--fresh"]);
    assert_ne!(other, job, "--fresh is a new job");
}

/// `(enqueued, already stored, finished)` from the orchestrator's `--json`
/// summary.
fn submitted(stdout: &[u8]) -> (u64, u64, bool) {
    let summary: serde_json::Value = serde_json::from_slice(stdout).expect("a JSON summary");
    let s = &summary["submitted"];
    let n = |field: &str| s[field].as_u64().unwrap_or_else(|| panic!("{summary}"));
    let finished = s["finished"]
        .as_bool()
        .unwrap_or_else(|| panic!("{summary}"));
    (n("enqueued"), n("already_stored"), finished)
}

/// `--cancel`: the waiting orchestrator stops with a clear message, workers
/// acknowledge the job's remaining messages without rendering, and nothing
/// more is written.
#[test]
fn a_cancelled_job_stops_its_client_and_workers_skip_it() {
    let lane = Lane::new("cancel");
    let dir = tempfile::tempdir().unwrap();
    let job = lane.submit(dir.path(), &[&["--fresh"], SMALL].concat());
    let waiting = spawn_waiting(&lane, dir.path(), &job, SMALL);
    lane.wait_until("the orchestrator has submitted", MINUTE, || {
        lane.depth(&lane.tiles) == 32
    });
    let out = lane.orchestrate(dir.path(), &["--cancel", job.as_str()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("cancelled job {job}")));
    let (status, stderr, _) = finish(waiting, MINUTE);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("was cancelled"), "{stderr}");

    let log = dir.path().join("w.log");
    let _worker = lane.worker(&log);
    let _stitcher = lane.stitcher(&dir.path().join("stitch.log"));
    lane.wait_until("the queues are empty", MINUTE, || {
        lane.depth(&lane.tiles) + lane.depth(&lane.stitch) == 0
    });
    let skipped: u64 = log_events(&log, events::TILE_BATCH_DONE)
        .iter()
        .map(|e| e["fields"]["skipped"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(skipped, 32);
    assert!(lane.keys(&job.tiles_prefix()).is_empty());
    assert!(!lane.finished(&job));
    assert_eq!(lane.depth(&lane.tiles_dlq), 0);
}
