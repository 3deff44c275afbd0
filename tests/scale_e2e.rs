//! Scale: a 64×64-tile job (4096 tiles, a 16384×16384 image) completes
//! embedded and through LocalStack with equal counts and equal PNGs. Prints
//! the submit time, wall times and peak memory of the orchestrator and the
//! stitch. A test binary of its own so its load does not slow other tests.

use std::time::Instant;

use mandel_e2e::lane::Lane;
use mandel_e2e::{counts_sha256, log_events, orchestrate};
use mandel_pipeline::events;

const LARGE: &[&str] = &[
    "--viewport",
    "-2,0.5,-1.25,1.25",
    "--tiles-per-side",
    "64",
    "--tile-pixels",
    "256",
    "--max-iter",
    "100",
];

#[test]
fn a_4096_tile_job_completes_embedded_and_on_localstack_alike() {
    let lane = Lane::new("scale");
    let dir = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let out = orchestrate(
        dir.path(),
        &[
            LARGE,
            &[
                "--out",
                "embedded.png",
                "--counts-out",
                "embedded.npy",
                "--json",
            ],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["width"].as_u64(), summary["tiles"].as_u64()),
        (Some(16384), Some(4096))
    );
    eprintln!(
        "embedded: {:.1} s: {summary}",
        started.elapsed().as_secs_f64()
    );

    let log = dir.path().join("worker.log");
    let stitch_log = dir.path().join("stitch.log");
    let _workers = [lane.worker(&log), lane.worker(&log)];
    let _stitcher = lane.stitcher(&stitch_log);
    let started = Instant::now();
    let out = lane.orchestrate(
        dir.path(),
        &[
            LARGE,
            &[
                "--fresh",
                "--timeout",
                "900",
                "--out",
                "cloud.png",
                "--counts-out",
                "cloud.npy",
                "--json",
            ],
        ]
        .concat(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["submitted"]["enqueued"], 4096, "{summary}");
    let stitched = log_events(&stitch_log, events::STITCHED);
    eprintln!(
        "LocalStack: {:.1} s; {summary}; stitch: {}",
        started.elapsed().as_secs_f64(),
        stitched
            .last()
            .map(|e| e["fields"].to_string())
            .unwrap_or_default()
    );
    assert_eq!(
        counts_sha256(&dir.path().join("cloud.npy")),
        counts_sha256(&dir.path().join("embedded.npy"))
    );
    assert!(
        std::fs::read(dir.path().join("cloud.png")).unwrap()
            == std::fs::read(dir.path().join("embedded.png")).unwrap(),
        "the PNGs differ"
    );
}
