//! LocalStack itself stops answering for a few seconds (SIGSTOP, then
//! SIGCONT) in the middle of a job: the workers' and the stitch's calls
//! stall or fail and are retried, and the job completes exactly. A test
//! binary of its own, so the pause cannot disturb other tests.

use std::time::{Duration, Instant};

use mandel_e2e::REFERENCE_IMAGE_SHA256;
use mandel_e2e::lane::Lane;

const PAUSE: Duration = Duration::from_secs(4);

fn signal(sig: &str, pid: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn a_job_completes_exactly_across_a_localstack_outage() {
    let pid_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../localstack/.state/pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; start LocalStack with localstack/up.sh (the README's test command does)",
                pid_file.display()
            )
        })
        .trim()
        .to_string();
    let lane = Lane::new("outage");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.log");
    let _workers = [lane.worker(&log), lane.worker(&log)];
    let _stitcher = lane.stitcher(&dir.path().join("stitch.log"));
    let job = lane.submit(dir.path(), &["--fresh"]);
    lane.wait_until("the job is under way", Duration::from_secs(60), || {
        lane.keys(&job.tiles_prefix()).len() >= 20
    });
    signal("-STOP", &pid);
    std::thread::sleep(PAUSE);
    signal("-CONT", &pid);
    let resumed = Instant::now();
    lane.wait_until("the job is finished", Duration::from_secs(180), || {
        lane.finished(&job)
    });
    eprintln!(
        "LocalStack paused {PAUSE:?} mid-job; result {:.1} s after it resumed",
        resumed.elapsed().as_secs_f64()
    );
    assert_eq!(lane.counts_sha256(&job), REFERENCE_IMAGE_SHA256);
    assert_eq!(lane.depth(&lane.tiles_dlq), 0, "nothing dead-lettered");
    assert_eq!(lane.depth(&lane.stitch_dlq), 0, "nothing dead-lettered");
}
