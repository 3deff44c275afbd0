//! The deployed system under IAM as AWS evaluates it: every binary signs
//! its requests as its own IAM principal whose only policy is the one
//! `infra/iam.tf` gives it (rendered from the HCL), against a local cloud
//! that enforces IAM (moto, see `moto.rs`): the worker and stitch as their
//! Lambda roles, `mandel-orchestrate` as the laptop user with the client
//! policy (and `mandel-explore --bucket` too). A job must complete
//! exactly; with a statement a binary needs taken away, it must fail at
//! once, naming the refused action.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mandel_core::explore::{self, WorldTile, max_iter_for};
use mandel_core::{Colormap, RenderParams};
use mandel_e2e::moto::IamCloud;
use mandel_e2e::terraform::{policy_document, terraform};
use mandel_e2e::{REFERENCE_IMAGE_SHA256, counts_sha256, finish, http_get, start_explorer};
use mandel_pipeline::JobId;
use serde_json::Value;

/// The three principals' policies, as `infra/` renders them for `name`.
fn policies(name: &str) -> BTreeMap<&'static str, Value> {
    let tf = terraform();
    let arns = IamCloud::arns(name);
    ["worker", "stitch", "client"]
        .into_iter()
        .map(|p| (p, policy_document(&tf, p, &arns)))
        .collect()
}

/// Removes the statement `sid` (or, with `resource`, only that resource of
/// it) from a policy; panics if there is no such thing to remove.
fn without(mut policy: Value, sid: &str, resource: Option<&str>) -> Value {
    let statements = policy["Statement"].as_array_mut().unwrap();
    let at = statements
        .iter()
        .position(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid}"));
    match resource {
        None => {
            statements.remove(at);
        }
        Some(suffix) => {
            let resources = statements[at]["Resource"].as_array_mut().unwrap();
            let before = resources.len();
            resources.retain(|r| !r.as_str().unwrap().ends_with(suffix));
            assert_eq!(resources.len(), before - 1, "{sid} has no {suffix}");
        }
    }
    policy
}

struct Run {
    status: std::process::ExitStatus,
    stderr: String,
    took: Duration,
    dir: tempfile::TempDir,
}

/// Two worker pollers and a stitch poller, each as its role, and the
/// orchestrator as the client, on one job.
fn run_job(cloud: &IamCloud, args: &[&str]) -> Run {
    run_job_with(cloud, args, &[], |_| {})
}

/// [`run_job`], calling `before_workers` once the job is submitted and
/// before the workers start.
/// `worker_env` is given to the workers.
fn run_job_with(
    cloud: &IamCloud,
    args: &[&str],
    worker_env: &[(&str, &str)],
    before_workers: impl FnOnce(&IamCloud),
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let client = cloud
        .command("mandel-orchestrate", "client")
        .current_dir(dir.path())
        .args(["--bucket", &cloud.bucket])
        .args(["--timeout", "120", "--counts-out", "counts.npy"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running mandel-orchestrate");
    let tiles = &cloud.deployment.tiles_queue_url;
    while cloud.depth(tiles) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing was enqueued"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    before_workers(cloud);
    let _pollers = [
        cloud.poller_with(
            "mandel-worker",
            "worker",
            &dir.path().join("worker-1.log"),
            worker_env,
        ),
        cloud.poller_with(
            "mandel-worker",
            "worker",
            &dir.path().join("worker-2.log"),
            worker_env,
        ),
        cloud.poller("mandel-stitch", "stitch", &dir.path().join("stitch.log")),
    ];
    let (status, stderr, _) = finish(client, Duration::from_secs(150));
    Run {
        status,
        stderr,
        took: started.elapsed(),
        dir,
    }
}

const SMALL_JOB: &[&str] = &["--tiles-per-side", "4", "--tile-pixels", "32"];

#[test]
fn the_default_job_completes_exactly_with_every_binary_under_its_own_policy() {
    let cloud = IamCloud::start("iam-ok", policies("iam-ok"));
    // Ten tile messages are received and dropped first, so the workers
    // also handle redeliveries (which check whether the tile is stored).
    let run = run_job_with(&cloud, &[], &[], |cloud| {
        assert!(cloud.receive_and_drop(&cloud.deployment.tiles_queue_url) > 0);
    });
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        counts_sha256(&run.dir.path().join("counts.npy")),
        REFERENCE_IMAGE_SHA256
    );
    // Nothing failed on the way: both dead-letter queues are empty.
    assert_eq!(cloud.depth(&cloud.deployment.tiles_dlq_url), 0);
    assert_eq!(cloud.depth(&cloud.deployment.stitch_dlq_url), 0);
}

/// Runs a small job with one statement (or one resource of it) taken
/// from `principal`'s policy, and asserts it failed within seconds (no
/// waiting for a timeout or for redeliveries), naming every needle.
fn fails_fast_without(
    name: &str,
    principal: &'static str,
    sid: &str,
    resource: Option<&str>,
    needles: &[&str],
) {
    fails_fast_without_on(name, principal, sid, resource, needles, SMALL_JOB)
}

/// [`fails_fast_without`] for the job `args` describe.
fn fails_fast_without_on(
    name: &str,
    principal: &'static str,
    sid: &str,
    resource: Option<&str>,
    needles: &[&str],
    args: &[&str],
) {
    let mut p = policies(name);
    let policy = p.remove(principal).unwrap();
    p.insert(principal, without(policy, sid, resource));
    let cloud = IamCloud::start(name, p);
    let run = run_job(&cloud, args);
    assert!(
        !run.status.success(),
        "the job succeeded without the permission"
    );
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    for needle in ["access denied"].iter().chain(needles) {
        assert!(
            run.stderr.contains(needle),
            "stderr does not name {needle}: {}",
            run.stderr
        );
    }
    // Redelivery takes VISIBILITY_SECS per try; a refusal is final at once.
    assert!(
        run.took < Duration::from_secs(20),
        "took {:?}: {}",
        run.took,
        run.stderr
    );
    eprintln!("failed in {:?}: {}", run.took, run.stderr.trim());
}

#[test]
fn without_the_workers_send_to_the_stitch_queue_the_job_fails_at_once_naming_it() {
    fails_fast_without(
        "iam-no-send",
        "worker",
        "SendStitch",
        None,
        &["sqs:SendMessage", "stitch"],
    );
}

#[test]
fn without_the_stitchs_write_of_the_image_the_job_fails_at_once_naming_it() {
    fails_fast_without(
        "iam-no-image",
        "stitch",
        "WriteResults",
        Some("/image.png"),
        &["s3:PutObject", "image.png"],
    );
}

#[test]
fn without_the_workers_write_of_tiles_the_job_fails_at_once_naming_it() {
    fails_fast_without(
        "iam-no-tiles",
        "worker",
        "WriteTiles",
        Some("/tiles/*"),
        &["s3:PutObject", "tiles/"],
    );
}

/// The published 1e1000 location's MPFR grid (crates/core/tests/data/deep)
/// and a `.kfr` file of it in `dir`: the file's path, the grid's counts.
fn e1000_location(dir: &std::path::Path) -> (String, Vec<u32>) {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/core/tests/data/deep/e1000.json");
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(data).unwrap()).unwrap();
    let kfr = format!(
        "Re: {}\r\nIm: {}\r\nZoom: {}\r\nIterations: {}\r\n",
        truth["re"].as_str().unwrap(),
        truth["im"].as_str().unwrap(),
        truth["zoom"].as_str().unwrap(),
        truth["max_iter"],
    );
    let path = dir.join("e1000.kfr");
    std::fs::write(&path, kfr).unwrap();
    let counts = truth["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as u32)
        .collect();
    (path.to_str().unwrap().to_string(), counts)
}

/// The flags of a small deep job of the location file `kfr`: 2×2 tiles of
/// 32 px, the grid's size.
fn deep_job(kfr: &str) -> [&str; 6] {
    [
        "--location",
        kfr,
        "--tiles-per-side",
        "2",
        "--tile-pixels",
        "32",
    ]
}

/// A deep job (a published location past 1e1000) through the fleet, every
/// binary under its own policy: the reference orbit computed by a worker
/// and read by the others, the counts as the MPFR brute force says.
#[test]
fn a_deep_job_past_1e1000_completes_under_the_policies_as_brute_force_says() {
    let cloud = IamCloud::start("iam-deep", policies("iam-deep"));
    let files = tempfile::tempdir().unwrap();
    let (kfr, truth) = e1000_location(files.path());
    let args = deep_job(&kfr);
    let run = run_job(&cloud, &args);
    assert!(run.status.success(), "{}", run.stderr);
    let npy = std::fs::read(run.dir.path().join("counts.npy")).unwrap();
    let counts = mandel_core::CountsImage::from_npy(&npy).unwrap();
    let agree = counts
        .data()
        .iter()
        .zip(&truth)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        agree * 1000 >= 999 * truth.len(),
        "{agree} of {} agree",
        truth.len()
    );
    assert_eq!(cloud.depth(&cloud.deployment.tiles_dlq_url), 0);
    assert_eq!(cloud.depth(&cloud.deployment.stitch_dlq_url), 0);
}

#[test]
fn without_the_workers_write_of_the_reference_orbit_a_deep_job_fails_at_once_naming_it() {
    let files = tempfile::tempdir().unwrap();
    let (kfr, _) = e1000_location(files.path());
    let args = deep_job(&kfr);
    fails_fast_without_on(
        "iam-no-reference",
        "worker",
        "WriteTiles",
        Some("/reference/*"),
        &["s3:PutObject", "reference/"],
        &args,
    );
}

/// The explorer answered 200; else says why, with the worker's log.
fn served(r: &mandel_e2e::Response, worker_log: &std::path::Path) {
    assert_eq!(
        r.status,
        200,
        "{}\nworker log:\n{}",
        String::from_utf8_lossy(&r.body),
        std::fs::read_to_string(worker_log).unwrap_or_default()
    );
}

#[test]
fn the_explorer_has_the_fleet_render_tiles_and_reads_pyramids_under_the_client_policy() {
    let cloud = IamCloud::start("iam-explore", policies("iam-explore"));
    let dir = tempfile::tempdir().unwrap();
    let worker = cloud.poller("mandel-worker", "worker", &dir.path().join("w.log"));
    let (_explorer, url) = start_explorer(
        cloud
            .command("mandel-explore", "client")
            .args(["--bucket", &cloud.bucket, "--tile-timeout", "30", "--cache"])
            .arg(dir.path().join("cache")),
    );
    let tile = WorldTile::new(10, 450, 483).unwrap();
    let r = http_get(&format!("{url}tiles/10/450/483.png"));
    served(&r, &dir.path().join("w.log"));
    assert_eq!(r.headers["x-mandel-tile"], "fleet");
    let counts = explore::render(&tile.params(max_iter_for(10)).unwrap());
    let direct = explore::tile_png(&counts, max_iter_for(10), Colormap::TwilightShifted).unwrap();
    assert_eq!(r.body, direct);

    // A deep tile (zoom 2^60) is a one-tile deep job on the fleet: a
    // worker computes and stores its reference orbit, then renders it.
    let view = mandel_core::deep::DeepView::parse(
        "-0.743643887037158704752191506114774",
        "0.131825904205311970493132056385139",
        "1",
    )
    .unwrap();
    let deep = mandel_core::explore::DeepTile::at(&view, 60).unwrap();
    let r = http_get(&format!("{url}tiles/{deep}.png?iter=3000"));
    served(&r, &dir.path().join("w.log"));
    assert_eq!(r.headers["x-mandel-tile"], "fleet");
    let scratch = tempfile::tempdir().unwrap();
    let npy = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let embedded = mandel_pipeline::render_embedded(
            &deep.job(3000),
            1,
            scratch.path(),
            None,
            None,
            |_| {},
        )
        .await
        .unwrap();
        embedded.counts_npy().await.unwrap()
    });
    let counts = mandel_core::CountsImage::from_npy(&npy).unwrap();
    let direct = explore::deep_tile_png(counts.data(), 3000, Colormap::TwilightShifted).unwrap();
    assert_eq!(r.body, direct, "the deep tile's bytes");

    // The explorer's tiles went to a queue of their own, not the tiles
    // queue batch jobs use.
    let explore_queue = cloud.deployment.explore_queue_url.clone().unwrap();
    assert_eq!(cloud.depth(&cloud.deployment.tiles_queue_url), 0);

    // Explorer tiles never delay a batch job: with a backlog of explorer
    // tiles of a second or more each (24 CPU-s: inside the period-3 bulb,
    // no shortcut, 4.3 G iterations) queued first, a job's workers (these
    // ones not consuming the explorer's queue, which its own trigger
    // does) finish the job without rendering one of them. On one shared
    // queue they would render them all first.
    drop(worker);
    let heavy: Vec<RenderParams> = (0..24)
        .map(|k| {
            WorldTile::new(6, 38, 20)
                .unwrap()
                .params(65535 - k)
                .unwrap()
        })
        .collect();
    cloud.plant_explore_tiles(&heavy);
    assert_eq!(cloud.depth(&explore_queue), 24);

    // A job, so the stitch writes its pyramid under the stitch's policy;
    // the explorer reads it under the client's.
    let tiles_only = [("MANDEL_EXPLORE_QUEUE_URL", "")];
    let run = run_job_with(&cloud, SMALL_JOB, &tiles_only, |_| {});
    assert!(run.status.success(), "{}", run.stderr);
    let rendered = cloud.stored_explore_tiles(&heavy);
    assert_eq!(
        rendered,
        0,
        "the job's workers rendered explorer tiles ({:.1} s)",
        run.took.as_secs_f64()
    );
    assert_eq!(cloud.depth(&explore_queue), 24, "the backlog is untouched");
    let params = RenderParams {
        tiles_per_side: 4,
        tile_pixels: 32,
        ..RenderParams::default()
    };
    let job = JobId::for_params(&params);
    let page = http_get(&format!("{url}jobs/{job}/pyramid/"));
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let top = http_get(&format!("{url}jobs/{job}/pyramid/image_files/7/0_0.png"));
    assert_eq!(top.status, 200, "{}", String::from_utf8_lossy(&top.body));
    assert_eq!(cloud.depth(&cloud.deployment.tiles_dlq_url), 0);
}

/// `--video --bucket`: the keyframes (ordinary deep jobs) are submitted
/// together and rendered by the fleet under the policies; the kept
/// keyframes are exactly the embedded renders of the same jobs, and a
/// rerun reuses every one of them.
#[test]
fn a_zoom_video_renders_its_keyframes_on_the_fleet_under_the_policies() {
    use mandel_core::deep::DeepView;
    use mandel_core::video::Plan;
    let cloud = IamCloud::start("iam-video", policies("iam-video"));
    let dir = tempfile::tempdir().unwrap();
    let _pollers = [
        cloud.poller("mandel-worker", "worker", &dir.path().join("w1.log")),
        cloud.poller("mandel-worker", "worker", &dir.path().join("w2.log")),
        cloud.poller("mandel-stitch", "stitch", &dir.path().join("s.log")),
    ];
    let (re, im) = (
        "-0.743643887037158704752191506114774",
        "0.131825904205311970493132056385139",
    );
    let center = format!("{re},{im}");
    let make = || {
        let client = cloud
            .command("mandel-orchestrate", "client")
            .current_dir(dir.path())
            .args(["--bucket", &cloud.bucket, "--timeout", "120"])
            .args(["--video", "dive.mp4", "--center", &center, "--zoom", "64"])
            .args(["--seconds", "1", "--fps", "8", "--size", "64x36", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running mandel-orchestrate");
        let out = client.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\nworker log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("w1.log")).unwrap_or_default()
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["video"].clone()
    };
    let made = make();
    assert_eq!(made["keyframes"], 7, "{made}");
    assert_eq!(made["keyframes_reused"], 0);
    assert_eq!(made["frames"], 8);
    let video = std::fs::read(dir.path().join("dive.mp4")).unwrap();
    assert_eq!(&video[4..8], b"ftyp");

    let plan = Plan::new(DeepView::parse(re, im, "64").unwrap(), (64, 36), 1, 8, None).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for k in [0, 6] {
        let params = plan.keyframe(k);
        let job = JobId::for_params(&params);
        let kept = std::fs::read(dir.path().join(format!("dive.mp4.keyframes/{job}.npy"))).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let embedded = runtime.block_on(async {
            let r =
                mandel_pipeline::render_embedded(&params, 1, scratch.path(), None, None, |_| {})
                    .await
                    .unwrap();
            r.counts_npy().await.unwrap()
        });
        assert_eq!(kept, embedded.to_vec(), "keyframe {k} ({job})");
    }
    let again = make();
    assert_eq!(again["keyframes_reused"], 7, "{again}");
    assert_eq!(cloud.depth(&cloud.deployment.tiles_dlq_url), 0);
}
