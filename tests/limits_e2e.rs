//! Lambda's limits, emulated where the functions run locally: each poller
//! gives a batch its function's timeout (from the deployment record) as a
//! deadline and caps its own memory at the function's. The failure paths
//! those limits open are safe: a tile slower than the worker's timeout
//! fails its job with the reason, a stitch killed for memory is reported,
//! a lost stitch message is sent again, and a job too big for the
//! deployment is refused before anything is written. On LocalStack, each
//! test a deployment of its own ([`Lane::with_limits`]).

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mandel_e2e::lane::Lane;
use mandel_e2e::{REFERENCE_IMAGE_SHA256, Running, counts_sha256, finish};
use mandel_pipeline::FunctionLimits;

fn client(lane: &Lane, dir: &std::path::Path, args: &[&str]) -> Child {
    lane.command("mandel-orchestrate")
        .current_dir(dir)
        .args(["--bucket", &lane.bucket, "--timeout", "120"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning mandel-orchestrate")
}

/// Waits until the client has submitted (its params are stored).
fn submitted(lane: &Lane) {
    lane.wait_until("the job is submitted", Duration::from_secs(30), || {
        lane.keys("jobs/")
            .iter()
            .any(|k| k.ends_with("params.json"))
    });
}

/// One tile deep inside the period-3 bulb runs ~16 G iterations (several
/// seconds), beside three fast tiles: with the worker's timeout lowered to
/// 2 s after submission, the worker stops it at its deadline (and lives),
/// keeps the tiles it finished, and on the last delivery records why; the
/// waiting client stops and says so.
#[test]
fn a_tile_slower_than_the_worker_timeout_fails_the_job_with_the_reason() {
    let lane = Lane::with_limits("slow-tile", FunctionLimits::WORKER, FunctionLimits::STITCH);
    let dir = tempfile::tempdir().unwrap();
    let waiting = client(
        &lane,
        dir.path(),
        &[
            "--viewport",
            "-0.1240,-0.1220,0.7445,0.7465",
            "--tiles-per-side",
            "2",
            "--tile-pixels",
            "512",
            "--max-iter",
            "60000",
        ],
    );
    submitted(&lane);
    lane.set_limits(
        FunctionLimits {
            timeout_secs: 2,
            ..FunctionLimits::WORKER
        },
        FunctionLimits::STITCH,
    );
    let mut worker = lane.worker(&dir.path().join("worker.log"));
    let (status, stderr, took) = finish(waiting, Duration::from_secs(90));
    eprintln!("stopped after {took:?}: {stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not finish before the worker's deadline"),
        "{stderr}"
    );
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the worker was killed instead of stopping its tiles"
    );
}

/// The stitch holds a row of tiles at a time: with 2048-px tiles, a row of
/// this 4096² job is 16 MiB of counts, several times that with its
/// encodings and the next row; with the stitch's memory lowered to 48 MiB
/// after submission, every attempt is killed (the
/// process aborts when an allocation fails, as Lambda kills a function out
/// of memory; like Lambda, a new one starts for the next delivery). The
/// waiting client sees the last attempt die and reports it.
#[test]
fn a_stitch_larger_than_its_memory_is_killed_and_reported() {
    let lane = Lane::with_limits(
        "stitch-oom",
        FunctionLimits::WORKER,
        FunctionLimits {
            timeout_secs: 2,
            ..FunctionLimits::STITCH
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let big_tiles = [
        "--tiles-per-side",
        "2",
        "--tile-pixels",
        "2048",
        "--max-iter",
        "100",
    ];
    let waiting = client(&lane, dir.path(), &big_tiles);
    submitted(&lane);
    lane.set_limits(
        FunctionLimits::WORKER,
        FunctionLimits {
            timeout_secs: 2,
            memory_mb: 48,
        },
    );
    let _workers = [
        lane.worker(&dir.path().join("worker-1.log")),
        lane.worker(&dir.path().join("worker-2.log")),
    ];
    // The event-source mapping starts a new function for each delivery
    // after one is killed: keep one stitch poller alive, noting each death.
    let stop = AtomicBool::new(false);
    let (status, stderr, took, deaths) = std::thread::scope(|scope| {
        let respawner = scope.spawn(|| {
            let mut deaths = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let mut stitch = Running::spawn(
                    lane.command("mandel-stitch")
                        .args(["--poll", "--bucket", &lane.bucket])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped()),
                );
                while !stop.load(Ordering::Relaxed) {
                    if let Some(status) = stitch.0.try_wait().unwrap() {
                        let mut err = String::new();
                        let _ = stitch.0.stderr.take().unwrap().read_to_string(&mut err);
                        deaths.push((status, err));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            deaths
        });
        let (status, stderr, took) = finish(waiting, Duration::from_secs(90));
        stop.store(true, Ordering::Relaxed);
        (status, stderr, took, respawner.join().unwrap())
    });
    eprintln!(
        "stopped after {took:?}, {} stitch deaths: {stderr}",
        deaths.len()
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("killed by its timeout (2 s) or by its memory limit"),
        "{stderr}"
    );
    assert!(!deaths.is_empty(), "no stitch was killed");
    for (status, err) in &deaths {
        assert!(!status.success());
        assert!(err.contains("memory allocation"), "{status}: {err}");
    }
}

/// Every tile stored, then the stitch message purged before any stitch
/// ran: the waiting client sends another and the job ends exactly.
#[test]
fn a_stitch_message_purged_while_the_client_waits_still_ends_in_the_exact_image() {
    let lane = Lane::new("purged-stitch");
    let dir = tempfile::tempdir().unwrap();
    let waiting = lane
        .command("mandel-orchestrate")
        .current_dir(dir.path())
        .args(["--bucket", &lane.bucket, "--fresh", "--timeout", "120"])
        .args(["--restitch-after", "2", "--counts-out", "counts.npy"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let workers = [
        lane.worker(&dir.path().join("worker-1.log")),
        lane.worker(&dir.path().join("worker-2.log")),
    ];
    lane.wait_until(
        "the stitch message is sent",
        Duration::from_secs(60),
        || lane.depth(&lane.stitch) >= 1,
    );
    // Killed, so nothing more is sent. Two workers that mark the last two
    // rows at once may each send one (a duplicate stitch is harmless).
    drop(workers);
    let purged = lane.drain(&lane.stitch);
    assert!(matches!(purged.len(), 1 | 2), "{purged:?}");
    let _stitch = lane.stitcher(&dir.path().join("stitch.log"));
    let (status, stderr, took) = finish(waiting, Duration::from_secs(90));
    eprintln!("finished {took:?} after the purge: {stderr}");
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("sending the stitch message again"),
        "{stderr}"
    );
    assert_eq!(
        counts_sha256(&dir.path().join("counts.npy")),
        REFERENCE_IMAGE_SHA256
    );
}

/// Too big for the deployment's functions: refused with exit code 2 and
/// the limit named, before anything is written or sent.
#[test]
fn a_job_too_big_for_the_deployment_is_refused_before_anything_is_written() {
    // A stitch holds a row of tiles: the largest image fits the default
    // stitch memory, so a small one is given here.
    let small_stitch = FunctionLimits {
        timeout_secs: 300,
        memory_mb: 256,
    };
    let lane = Lane::with_limits("capacity", FunctionLimits::WORKER, small_stitch);
    let dir = tempfile::tempdir().unwrap();
    for (args, names) in [
        (
            &[
                "--tile-pixels",
                "4096",
                "--tiles-per-side",
                "1",
                "--max-iter",
                "60000",
            ][..],
            "worker's timeout of 60 s",
        ),
        (
            &[
                "--tile-pixels",
                "2048",
                "--tiles-per-side",
                "4",
                "--max-iter",
                "100",
            ][..],
            "stitch's memory of 256 MiB",
        ),
        // A million tiles fit the stitch's memory a row at a time, but
        // fetching them outlasts its timeout: refused by the estimate's
        // model, after the sample and before any write.
        (
            &[
                "--tile-pixels",
                "32",
                "--tiles-per-side",
                "1024",
                "--max-iter",
                "100",
            ][..],
            "stitch's timeout of 300 s",
        ),
    ] {
        let out = lane.orchestrate(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(names), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(lane.keys("jobs/").is_empty(), "something was written");
        assert_eq!(lane.depth(&lane.tiles), 0);
    }
}

/// A deep job whose reference orbit outlasts the worker's invocation (its
/// timeout lowered to 2 s, so each invocation computes for about 1 s):
/// the orbit is computed in segments, each resuming from the
/// full-precision state the last one wrote, and the job's counts are those
/// of the orbit computed in one go.
#[test]
fn an_orbit_longer_than_the_worker_timeout_is_computed_in_segments() {
    use mandel_core::deep::{self, DeepView};
    use mandel_core::render::TileRenderer;
    use mandel_core::{CountsImage, RenderParams, View};

    let lane = Lane::with_limits(
        "deep-segments",
        FunctionLimits {
            timeout_secs: 2,
            ..FunctionLimits::WORKER
        },
        FunctionLimits::STITCH,
    );
    let dir = tempfile::tempdir().unwrap();
    // Inside the main cardioid at zoom 1e1000: an orbit of 400,001 points
    // at about 3,400 bits, some 2 s of one core.
    let args = [
        "--center",
        "-0.1,0.1",
        "--zoom",
        "1e1000",
        "--max-iter",
        "400000",
        "--tiles-per-side",
        "2",
        "--tile-pixels",
        "4",
        "--counts-out",
        "counts.npy",
    ];
    let waiting = client(&lane, dir.path(), &args);
    let _workers = [
        lane.worker(&dir.path().join("worker-1.log")),
        lane.worker(&dir.path().join("worker-2.log")),
    ];
    let _stitch = lane.stitcher(&dir.path().join("stitch.log"));
    let (status, stderr, took) = finish(waiting, Duration::from_secs(120));
    eprintln!("finished in {took:?}: {stderr}");
    assert!(status.success(), "{stderr}");
    let states = lane
        .keys("jobs/")
        .into_iter()
        .filter(|k| k.contains("/reference/") && k.ends_with(".state"))
        .count();
    assert!(states >= 2, "the orbit took {states} segment(s)");

    let view = DeepView::parse("-0.1", "0.1", "1e1000").unwrap();
    let params = RenderParams {
        view: View::Deep(view.clone()),
        tiles_per_side: 2,
        tile_pixels: 4,
        max_iter: 400_000,
    };
    let orbit = deep::reference_orbit(&view, 8, 400_000);
    let expected = TileRenderer::deep(params.clone(), &orbit).render_image();
    let npy = std::fs::read(dir.path().join("counts.npy")).unwrap();
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), expected);
}
