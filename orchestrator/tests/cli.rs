//! `mandel-orchestrate` as a user runs it: the real binary, in a temp folder.

use std::path::Path;
use std::process::{Command, Output};

use mandel_core::{Colormap, CountsImage};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mandel-orchestrate"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn bad_input_exits_2_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--max-iter", "0"],
            "--max-iter: max_iter must be in 1..=65535, got 0",
        ),
        (
            &["--max-iter", "70000"],
            "--max-iter: max_iter must be in 1..=65535, got 70000",
        ),
        (
            &["--tiles-per-side", "0"],
            "--tiles-per-side: tiles_per_side must be in 1..=1024, got 0",
        ),
        (
            &["--tile-pixels", "0"],
            "--tile-pixels: tile_pixels must be in 1..=4096, got 0",
        ),
        (
            &["--tiles-per-side", "64", "--tile-pixels", "1024"],
            "must be at most 32768 pixels",
        ),
        (
            &["--viewport", "1,0,0,1"],
            "--viewport: viewport: xmin must be less than xmax",
        ),
        (&["--viewport", "0,1,2,2"], "ymin must be less than ymax"),
        (
            &["--viewport", "nan,1,0,1"],
            "viewport.xmin must be a finite number",
        ),
        (
            &["--viewport", "0,inf,0,1"],
            "viewport.xmax must be a finite number",
        ),
        (
            &["--viewport", "0,1,0"],
            "viewport must be four numbers XMIN,XMAX,YMIN,YMAX",
        ),
        (&["--viewport", "a,b,c,d"], "viewport must be four numbers"),
        (
            &["--colormap", "jet"],
            "--colormap: colormap must be one of twilight_shifted, viridis, magma, gray",
        ),
        (&["--workers", "0"], "--workers: workers must be at least 1"),
        (
            &["--out", "no/such/dir/x.png"],
            "--out: folder no/such/dir does not exist",
        ),
        (&["--cancel", "abc"], "--cancel: --cancel needs --bucket"),
        (&["--job", "abc"], "--job: --job needs --bucket"),
        (
            &["--bucket", "b", "--job", "../etc"],
            "--job: job id must be 1 to 64 characters of [a-z0-9-]",
        ),
        (
            &["--bucket", "b", "--cancel", "UPPER"],
            "--cancel: job id must be 1 to 64 characters of [a-z0-9-]",
        ),
        (&["--bucket", ""], "--bucket: bucket must not be empty"),
        (
            &["--bucket", "b", "--timeout", "0"],
            "--timeout: timeout must be at least 1 second",
        ),
        (
            &["--bucket", "b", "--restitch-after", "0"],
            "--restitch-after: restitch-after must be at least 1 second",
        ),
        (
            &["--bucket", "b", "--workers", "2"],
            "--workers: --workers applies to embedded renders",
        ),
        // Flags of the cloud mode are refused without --bucket.
        (&["--no-wait"], "--no-wait: --no-wait needs --bucket"),
        (&["--fresh"], "--fresh: --fresh needs --bucket"),
        (&["--timeout", "5"], "--timeout: --timeout needs --bucket"),
        (
            &["--restitch-after", "5"],
            "--restitch-after: --restitch-after needs --bucket",
        ),
        (
            &["--max-cost", "1"],
            "--max-cost: --max-cost needs --bucket",
        ),
        (&["--list"], "--list: --list needs --bucket"),
        (&["--status", "abc"], "--status: --status needs --bucket"),
        (
            &["--bucket", "b", "--max-cost", "0"],
            "--max-cost: max-cost must be a positive number of US dollars, got 0",
        ),
        (
            &["--bucket", "b", "--max-cost", "nan"],
            "--max-cost: max-cost must be a positive number",
        ),
        (
            &["--bucket", "b", "--no-wait", "--report", "r.html"],
            "--report: --report needs the job's result",
        ),
        (
            &["--report", "no/such/dir/r.html"],
            "--report: folder no/such/dir does not exist",
        ),
        (
            &["--bucket", "b", "--no-wait", "--pyramid", "p"],
            "--pyramid: --pyramid needs the job's result",
        ),
        // Deep views.
        (
            &["--center", "5,0", "--zoom", "1e10"],
            "--center: center.re must be in -4..=4, got 5",
        ),
        (
            &["--center", "-1.5,x", "--zoom", "1e10"],
            "--center: center.im must be a decimal number",
        ),
        (
            &["--center", "-1.5", "--zoom", "1e10"],
            "--center: center must be two decimal numbers RE,IM",
        ),
        (
            &["--center", "0,0", "--zoom", "0.5"],
            "--zoom: zoom must be in 1..=1e10000, got 0.5",
        ),
        (
            &[
                "--center",
                "0,0",
                "--zoom",
                "1e10",
                "--max-iter",
                "100000001",
            ],
            "--max-iter: max_iter must be in 1..=100000000, got 100000001",
        ),
        (
            &["--location", "no-such.kfr"],
            "--location: cannot read no-such.kfr",
        ),
    ];
    for (args, want) in cases {
        let out = run(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: one line expected, got {stderr:?}"
        );
        assert!(
            stderr.contains(want),
            "{args:?}: {stderr:?} does not contain {want:?}"
        );
        assert!(
            files_in(dir.path()).is_empty(),
            "{args:?} wrote {:?}",
            files_in(dir.path())
        );
    }
    // clap's own parse errors (a negative count, two actions at once)
    // also exit 2 and write nothing.
    for args in [
        &["--max-iter", "-5"][..],
        &["--center", "0,0"],
        &["--zoom", "1e5"],
        &["--viewport", "0,1,0,1", "--center", "0,0", "--zoom", "2"],
        &["--bucket", "b", "--estimate", "--list"],
        &["--bucket", "b", "--status", "abc", "--cancel", "abc"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(files_in(dir.path()).is_empty());
    }
    // A flag that does not apply to the action is refused (exit 2, both
    // flags named), not silently ignored, before any connection.
    for (args, flags) in [
        (
            &["--bucket", "b", "--list", "--fresh"][..],
            ["--list", "--fresh"],
        ),
        (
            &["--bucket", "b", "--cancel", "abc", "--report", "r.html"],
            ["--cancel", "--report"],
        ),
        (
            &["--bucket", "b", "--status", "abc", "--max-iter", "5"],
            ["--status", "--max-iter"],
        ),
        (&["--estimate", "--out", "x.png"], ["--estimate", "--out"]),
        (&["--estimate", "--no-wait"], ["--estimate", "--no-wait"]),
    ] {
        let out = run(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for flag in flags {
            assert!(
                stderr.contains(flag),
                "{args:?}: {stderr:?} does not name {flag}"
            );
        }
        assert!(files_in(dir.path()).is_empty(), "{args:?}");
    }
}

/// `--estimate` samples the job and writes nothing; its prediction of the
/// default job's iterations is within 2 % of the render's.
#[test]
fn estimate_predicts_the_job_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--estimate", "--json", "--workers", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &doc["estimate"];
    assert_eq!(e["target"], "embedded");
    assert_eq!(e["tiles"], 256);
    assert_eq!(e["workers"], 2);
    assert_eq!(e["cost"], serde_json::Value::Null);
    assert!(e["sample"]["pixels"].as_u64().unwrap() >= 4096);

    let rendered = run(dir.path(), &["--json", "--workers", "2"]);
    assert!(rendered.status.success());
    let r: serde_json::Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let (predicted, actual) = (
        e["iterations"].as_f64().unwrap(),
        r["iterations"].as_f64().unwrap(),
    );
    assert!(
        (predicted / actual - 1.0).abs() < 0.02,
        "predicted {predicted} iterations, the render ran {actual}"
    );
    // The summary carries its own estimate and the actual figures.
    assert_eq!(r["actual"]["iterations"], r["iterations"]);
    // Times are compared by the benchmark (mandel-bench --estimator), not
    // here, where other tests share the cores.
    assert!(r["estimate"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(r["actual"]["seconds"].as_f64().unwrap() > 0.0);
}

/// `--report` writes one self-contained page: the picture inline, the
/// timeline and the heat map as SVG, nothing fetched from elsewhere.
#[test]
fn report_is_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "--tiles-per-side",
            "4",
            "--tile-pixels",
            "32",
            "--max-iter",
            "200",
            "--report",
            "r.html",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["report"], "r.html");
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    for part in [
        "<svg id=\"timeline\"",
        "<svg id=\"heatmap\"",
        "src=\"data:image/png;base64,",
        "class=\"tile\"",
        "Cost and time against the estimate",
    ] {
        assert!(html.contains(part), "the report lacks {part:?}");
    }
    // A cell per tile in the heat map, and nothing loaded from a network.
    assert_eq!(html.matches("<rect x=").count(), 16);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script"));
}

#[test]
fn help_documents_every_flag_with_its_default() {
    let out = run(Path::new("."), &["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--viewport",
        "--center",
        "--zoom",
        "--location",
        "--tiles-per-side",
        "--tile-pixels",
        "--max-iter",
        "--out",
        "--counts-out",
        "--colormap",
        "--workers",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for default in [
        "-0.745,-0.735,0.105,0.115",
        "[default: 16]",
        "[default: 256]",
        "[default: 2000]",
        "mandelbrot.png",
        "twilight_shifted",
        "one per core",
    ] {
        assert!(help.contains(default), "--help lacks the default {default}");
    }
}

/// A viewport whose top and bottom differ: the picture must have ymax at the
/// top, pixel for pixel the colormap of the counts flipped vertically.
#[test]
fn png_is_the_counts_flipped_with_ymax_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "--viewport=-2,0.5,0,1.5",
            "--tiles-per-side",
            "3",
            "--tile-pixels",
            "20",
            "--max-iter",
            "50",
            "--colormap",
            "gray",
            "--out",
            "pic.png",
            "--counts-out",
            "counts.npy",
            "--workers",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("rendered 60x60 (9 tiles, max_iter 50)"),
        "{summary}"
    );
    assert!(
        summary.contains("Mpixel/s") && summary.contains("G iterations/s"),
        "{summary}"
    );

    let counts =
        CountsImage::from_npy(&std::fs::read(dir.path().join("counts.npy")).unwrap()).unwrap();
    assert_eq!((counts.width(), counts.height()), (60, 60));
    let png = image::open(dir.path().join("pic.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (60, 60));

    let (lo, hi) = counts
        .data()
        .iter()
        .fold((u32::MAX, 0), |(a, b), &c| (a.min(c), b.max(c)));
    let palette = Colormap::Gray.palette(lo, hi);
    for y in 0..60 {
        for x in 0..60 {
            let c = counts.row(59 - y)[x];
            assert_eq!(
                png.get_pixel(x as u32, y as u32).0,
                palette.colour(c),
                "pixel ({x},{y})"
            );
        }
    }
    // Independent of the palette: the bottom edge (Im = 0) crosses the
    // interior of the set, the top edge (Im ≈ 1.5) escapes quickly.
    let bottom_max = (0..60).map(|x| png.get_pixel(x, 59).0[0]).max().unwrap();
    let top_max = (0..60).map(|x| png.get_pixel(x, 0).0[0]).max().unwrap();
    assert_eq!(bottom_max, 255);
    assert!(top_max < 128, "top row should be dark, max {top_max}");
}

/// The README's render command, checked against the notebook's image.
#[test]
fn default_render_matches_the_notebook_image() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--counts-out", "counts.npy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let npy = std::fs::read(dir.path().join("counts.npy")).unwrap();
    let counts = CountsImage::from_npy(&npy).unwrap();
    assert_eq!((counts.width(), counts.height()), (4096, 4096));
    assert_eq!(
        mandel_e2e::counts_sha256(&dir.path().join("counts.npy")),
        mandel_e2e::REFERENCE_IMAGE_SHA256
    );
    let png = image::open(dir.path().join("mandelbrot.png")).unwrap();
    assert_eq!((png.width(), png.height()), (4096, 4096));
}

/// `--json`: the result as one JSON document of the README's shape.
#[test]
fn json_summarises_the_render_in_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--tiles-per-side",
        "3",
        "--tile-pixels",
        "20",
        "--max-iter",
        "50",
    ];
    let out = run(
        dir.path(),
        &[
            &args[..],
            &["--workers", "2", "--counts-out", "c.npy", "--json"],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts = CountsImage::from_npy(&std::fs::read(dir.path().join("c.npy")).unwrap()).unwrap();
    let iterations = mandel_core::kernel::brute_force_iterations(counts.data(), 50);
    assert_eq!(doc["width"], 60);
    assert_eq!(doc["height"], 60);
    assert_eq!(doc["tiles"], 9);
    assert_eq!(doc["max_iter"], 50);
    assert_eq!(doc["workers"], "2");
    assert_eq!(doc["iterations"], iterations);
    assert_eq!(doc["image"], "mandelbrot.png");
    assert_eq!(doc["counts"], "c.npy");
    assert_eq!(doc["submitted"], serde_json::Value::Null);
    assert_eq!(doc["job"].as_str().unwrap().len(), 20);
    assert!(doc["seconds"].as_f64().unwrap() > 0.0);
    assert!(doc["peak_memory_mib"].as_u64().unwrap() > 0);
}

/// The files' bytes are the product's contract: restructuring the stitch
/// (streaming, multipart uploads) must not change one. SHA-256 of the PNG
/// and `.npy` as written by 553abed, before the stitch streamed.
#[test]
fn outputs_are_byte_identical_to_the_recorded_ones() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[],
            "b9fdef011e1669959a9a7342365356c8fcb64d5e83d4135eb9d69e034f959575",
            "4fdc01ee7a27ed0bfb3fb18f8072353d02c5d8ac51e523cf69c4e3d460ac6772",
        ),
        (
            &[
                "--tiles-per-side",
                "7",
                "--tile-pixels",
                "33",
                "--max-iter",
                "300",
                "--viewport=-2,1,-1.5,1.5",
            ],
            "336f80e7dd46016ad1b9097bba7d343e6960604cd9d6dba17fba40fc8e174500",
            "296ff0d0202867396c15bdd5e87471d06cf291d0c6c2ecdbe2d0801d2c7a9f47",
        ),
        (
            &[
                "--tiles-per-side",
                "3",
                "--tile-pixels",
                "400",
                "--max-iter",
                "100",
                "--colormap",
                "viridis",
            ],
            "97a48b789723ec34f6f08eaf9b80e3e16d28f9ed9516cb601d55d52e3cddd24e",
            "ebdb931459fc8328179e0ebf5d727b09099a8c2a90d36893dc1f0486cd910667",
        ),
    ];
    for (args, png_sha, npy_sha) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args.to_vec();
        args.extend(["--out", "out.png", "--counts-out", "out.npy"]);
        let out = run(dir.path(), &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (file, expected) in [("out.png", png_sha), ("out.npy", npy_sha)] {
            let bytes = std::fs::read(dir.path().join(file)).unwrap();
            assert_eq!(
                &mandel_e2e::sha256_hex(&bytes),
                expected,
                "{file} of {args:?}"
            );
        }
    }
}

/// `--pyramid DIR`: a Deep Zoom pyramid whose top level is the PNG, cut in
/// 256-px tiles, and whose lower levels halve it down to one pixel.
#[test]
fn pyramid_tiles_are_the_picture_at_every_level() {
    let dir = tempfile::tempdir().unwrap();
    for colormap in ["twilight_shifted", "viridis"] {
        let out = run(
            dir.path(),
            &[
                "--tiles-per-side",
                "3",
                "--tile-pixels",
                "100",
                "--max-iter",
                "300",
                "--colormap",
                colormap,
                "--out",
                "p.png",
                "--pyramid",
                "pyr",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let picture = image::open(dir.path().join("p.png")).unwrap().to_rgb8();
        let dzi = std::fs::read_to_string(dir.path().join("pyr/image.dzi")).unwrap();
        assert!(dzi.contains(r#"<Size Width="300" Height="300"/>"#), "{dzi}");
        assert!(dzi.contains(r#"TileSize="256""#) && dzi.contains(r#"Overlap="0""#));
        // 300 px: level 9 is full resolution, in 2×2 tiles.
        let tile = |level: u32, col: u32, row: u32| {
            let path = dir
                .path()
                .join(format!("pyr/image_files/{level}/{col}_{row}.png"));
            image::open(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .to_rgb8()
        };
        for (col, row) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let t = tile(9, col, row);
            let crop =
                image::imageops::crop_imm(&picture, col * 256, row * 256, t.width(), t.height())
                    .to_image();
            assert_eq!(t, crop, "{colormap}: level 9 tile {col}_{row}");
        }
        assert_eq!(tile(9, 1, 1).dimensions(), (44, 44));
        assert_eq!(tile(8, 0, 0).dimensions(), (150, 150));
        assert_eq!(tile(0, 0, 0).dimensions(), (1, 1));
        assert!(!dir.path().join("pyr/image_files/10").exists());
    }
}

/// A published location past 1e1000 (rust-fractal-core's `e1000`, as a
/// Kalles Fraktaler `.kfr`), rendered embedded as 2×2 tiles of 32 px: the
/// MPFR brute-force grid of the same view (tools/deep_truth.py, in
/// crates/core/tests/data/deep) is matched on every pixel but at most
/// 0.1 %.
#[test]
fn a_location_file_past_1e1000_renders_as_brute_force_says() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/core/tests/data/deep");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("e1000.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kfr = format!(
        "Re: {}\r\nIm: {}\r\nZoom: {}\r\nIterations: {}\r\nSmooth: 1\r\n",
        truth["re"].as_str().unwrap(),
        truth["im"].as_str().unwrap(),
        truth["zoom"].as_str().unwrap(),
        truth["max_iter"],
    );
    std::fs::write(dir.path().join("e1000.kfr"), kfr).unwrap();
    let out = run(
        dir.path(),
        &[
            "--location",
            "e1000.kfr",
            "--tiles-per-side",
            "2",
            "--tile-pixels",
            "32",
            "--counts-out",
            "c.npy",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let npy = std::fs::read(dir.path().join("c.npy")).unwrap();
    let counts = CountsImage::from_npy(&npy).unwrap();
    let expected: Vec<u32> = truth["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as u32)
        .collect();
    let agree = counts
        .data()
        .iter()
        .zip(&expected)
        .filter(|(a, b)| a == b)
        .count();
    assert!(agree * 1000 >= 999 * 4096, "{agree} of 4096 pixels agree");
    let png = image::open(dir.path().join("mandelbrot.png")).unwrap();
    assert_eq!((png.width(), png.height()), (64, 64));
}
