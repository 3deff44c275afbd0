//! The explorer on the fleet, on LocalStack: `mandel-explore --bucket`
//! has the worker pollers render the tiles it has not cached, as one-tile
//! jobs that leave only their params and their blob in the bucket; a
//! second explorer finds them there; every tile is the kernel's. A cloud
//! job's pyramid, written by the stitch, is served from the bucket.

use mandel_core::Colormap;
use mandel_core::explore::{self, WorldTile, max_iter_for};
use mandel_core::pyramid;
use mandel_e2e::lane::Lane;
use mandel_e2e::{http_get, start_explorer};
use mandel_pipeline::{FunctionLimits, JobId};

fn direct(tile: WorldTile, max_iter: u32) -> Vec<u8> {
    let counts = explore::render(&tile.params(max_iter).unwrap());
    explore::tile_png(&counts, max_iter, Colormap::TwilightShifted).unwrap()
}

#[test]
fn the_fleet_renders_the_explorers_tiles_and_the_bucket_keeps_them() {
    // A bucket of its own: the tiles' jobs are named by their params alone,
    // so in a shared bucket an earlier run's blobs would answer.
    let lane = Lane::with_limits("explore", FunctionLimits::WORKER, FunctionLimits::STITCH);
    let dir = tempfile::tempdir().unwrap();
    let _workers = [
        lane.worker(&dir.path().join("worker1.log")),
        lane.worker(&dir.path().join("worker2.log")),
    ];
    let _stitch = lane.stitcher(&dir.path().join("stitch.log"));
    let explorer = |cache: &str| {
        start_explorer(
            lane.command("mandel-explore")
                .args(["--bucket", &lane.bucket, "--cache"])
                .arg(dir.path().join(cache)),
        )
    };
    let (_first, url) = explorer("cache1");

    // Seahorse valley at the default job's depth and budget.
    let tiles = [(10, 450, 483), (10, 451, 484), (11, 901, 967)];
    for &(z, x, y) in &tiles {
        let tile = WorldTile::new(z, x, y).unwrap();
        let r = http_get(&format!("{url}tiles/{z}/{x}/{y}.png"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.headers["x-mandel-tile"], "fleet");
        assert_eq!(r.headers["content-type"], "image/png");
        assert_eq!(r.body, direct(tile, max_iter_for(z)), "tile {z}/{x}/{y}");
        // Asked again: from this explorer's cache.
        let again = http_get(&format!("{url}tiles/{z}/{x}/{y}.png"));
        assert_eq!(again.headers["x-mandel-tile"], "cached");
        assert_eq!(again.body, r.body);
    }
    // Another budget is another tile.
    let r = http_get(&format!("{url}tiles/10/450/483.png?iter=300"));
    assert_eq!(r.headers["x-mandel-tile"], "fleet");
    let tile = WorldTile::new(10, 450, 483).unwrap();
    assert_eq!(r.body, direct(tile, 300));

    // Each one-tile job holds its params and its blob, nothing else: no
    // row marker, no stitch, no picture.
    let job = JobId::for_params(&tile.params(300).unwrap());
    let keys = lane.keys(&job.prefix());
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&job.params_key()));
    assert!(keys.iter().all(|k| !k.contains("/rows/")));
    assert_eq!(lane.depth(&lane.stitch), 0);

    // A second explorer, its cache empty, finds the blobs in the bucket.
    let (_second, url2) = explorer("cache2");
    let (z, x, y) = tiles[0];
    let r = http_get(&format!("{url2}tiles/{z}/{x}/{y}.png"));
    assert_eq!(r.headers["x-mandel-tile"], "bucket");
    assert_eq!(
        r.body,
        direct(WorldTile::new(z, x, y).unwrap(), max_iter_for(z))
    );

    // A bad address is refused with its reason, and nothing is sent.
    let r = http_get(&format!("{url}tiles/10/1024/0.png"));
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("outside"));
    // Deep tiles (past zoom 45) are one-tile deep jobs on the fleet.
    let r = http_get(&format!("{url}tiles/46/0/0.png?iter=300"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["x-mandel-tile"], "fleet");

    // A cloud job's pyramid, written by the stitch, through the explorer.
    let out = lane.orchestrate(
        dir.path(),
        &[
            "--tiles-per-side",
            "2",
            "--tile-pixels",
            "200",
            "--max-iter",
            "300",
            "--fresh",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = doc["job"].as_str().unwrap();
    let page = http_get(&format!("{url}jobs/{job}/pyramid/"));
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains(r#""kind":"dzi""#));
    let picture = image::open(dir.path().join("mandelbrot.png"))
        .unwrap()
        .to_rgb8();
    let top = pyramid::max_level(400, 400);
    let r = http_get(&format!(
        "{url}jobs/{job}/pyramid/{}",
        pyramid::tile_path(top, 1, 0)
    ));
    assert_eq!(r.status, 200);
    let tile = image::load_from_memory(&r.body).unwrap().to_rgb8();
    assert_eq!(
        tile,
        image::imageops::crop_imm(&picture, 256, 0, 144, 256).to_image()
    );
    // The pyramid is one object, read by range.
    let job = JobId::parse(job).unwrap();
    assert_eq!(
        lane.keys(&format!("{}pyramid/", job.prefix())),
        [job.pyramid_pack_key()]
    );
}
