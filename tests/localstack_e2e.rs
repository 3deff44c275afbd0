//! The serverless pipeline end to end on LocalStack: the real binaries,
//! talking to S3 and SQS. Needs the environment from `localstack/up.sh`
//! (the README's test command provides it); fails without it.

use mandel_core::CountsImage;
use mandel_e2e::lane::Lane;
use mandel_e2e::{
    REFERENCE_IMAGE_SHA256, counts_sha256, localstack_bucket, orchestrate, start_pollers,
};

/// The default job through 2 worker pollers and 1 stitch poller: the counts
/// equal the notebook's image and the PNG equals the embedded mode's.
#[test]
fn default_job_through_pollers_matches_the_reference_and_embedded_mode() {
    let bucket = localstack_bucket();
    let _pollers = start_pollers(&bucket, 2);

    let dir = tempfile::tempdir().unwrap();
    let out = orchestrate(
        dir.path(),
        &[
            "--bucket",
            &bucket,
            "--fresh",
            "--timeout",
            "300",
            "--out",
            "cloud.png",
            "--counts-out",
            "cloud.npy",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        counts_sha256(&dir.path().join("cloud.npy")),
        REFERENCE_IMAGE_SHA256
    );

    let out = orchestrate(dir.path(), &["--out", "embedded.png"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cloud_png = std::fs::read(dir.path().join("cloud.png")).unwrap();
    let embedded_png = std::fs::read(dir.path().join("embedded.png")).unwrap();
    assert!(
        cloud_png == embedded_png,
        "the PNG from the bucket differs from the embedded one"
    );
}

/// Two jobs submitted at once to one bucket, served by the same pollers,
/// each get exactly their own counts. On queues of its own (a lane): the
/// other test's pollers, killed when it ends, must not hold these jobs'
/// messages.
#[test]
fn two_jobs_at_once_stay_isolated() {
    let bucket = localstack_bucket();
    let lane = Lane::new("isolated");
    let dir = tempfile::tempdir().unwrap();
    let _pollers = [
        lane.worker(&dir.path().join("w.log")),
        lane.worker(&dir.path().join("w.log")),
        lane.stitcher(&dir.path().join("s.log")),
    ];

    let jobs = [("a", "-2,0.5,-1.25,1.25"), ("b", "-0.8,-0.7,0.05,0.15")];
    let children: Vec<_> = jobs
        .iter()
        .map(|(name, viewport)| {
            lane.command("mandel-orchestrate")
                .current_dir(dir.path())
                .args(["--bucket", &bucket, "--fresh", "--timeout", "120"])
                .args([
                    "--viewport",
                    viewport,
                    "--tiles-per-side",
                    "4",
                    "--tile-pixels",
                    "32",
                    "--max-iter",
                    "300",
                ])
                .args([
                    "--out",
                    &format!("{name}.png"),
                    "--counts-out",
                    &format!("{name}.npy"),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    for (name, viewport) in jobs {
        let cloud =
            CountsImage::from_npy(&std::fs::read(dir.path().join(format!("{name}.npy"))).unwrap())
                .unwrap();
        let out = orchestrate(
            dir.path(),
            &[
                "--viewport",
                viewport,
                "--tiles-per-side",
                "4",
                "--tile-pixels",
                "32",
                "--max-iter",
                "300",
            ]
            .iter()
            .copied()
            .chain(["--out", "local.png", "--counts-out", "local.npy"])
            .collect::<Vec<_>>(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let local =
            CountsImage::from_npy(&std::fs::read(dir.path().join("local.npy")).unwrap()).unwrap();
        assert!(
            cloud == local,
            "job {name} through the bucket differs from the same job embedded"
        );
    }
}
