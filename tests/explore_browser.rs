//! The explorer in a real browser (Chromium, headless, through WebDriver):
//! `mandel-explore` serves the viewer; a permalink deep in seahorse valley
//! shows exactly the tiles the kernel renders for that view; zooming
//! fetches new tiles and rewrites the permalink; the depth limit is said
//! on the page; a pyramid from `--pyramid` opens, as a file and through
//! the server, showing the picture's own pixels.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use image::{GenericImageView, RgbImage, RgbaImage};
use mandel_core::Colormap;
use mandel_core::explore::{self, WorldTile, max_iter_for};
use mandel_e2e::chrome::{Browser, number};
use mandel_e2e::{binary, cached_tiles, orchestrate, start_explorer};
use serde_json::Value;

/// Waits until `condition` (a script's boolean expression) holds.
async fn wait_for(c: &Client, condition: &str) {
    let started = Instant::now();
    loop {
        let v = c
            .execute(&format!("return Boolean({condition});"), vec![])
            .await
            .unwrap();
        if v == Value::Bool(true) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still not {condition} after a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

/// Every tile on screen, as the page placed it.
struct Placed {
    level: u32,
    x: u64,
    y: u64,
    left: i64,
    top: i64,
    width: i64,
}

async fn placed(c: &Client) -> Vec<Placed> {
    let drawn = c.execute("return mandel.drawn();", vec![]).await.unwrap();
    drawn
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Placed {
            level: number(&t["level"]) as u32,
            x: number(&t["x"]) as u64,
            y: number(&t["y"]) as u64,
            left: number(&t["left"]) as i64,
            top: number(&t["top"]) as i64,
            width: number(&t["width"]) as i64,
        })
        .collect()
}

/// The canvas as shown, without the panels laid over it.
async fn canvas_shot(c: &Client) -> RgbaImage {
    c.execute(
        "document.querySelectorAll('.panel').forEach(p => p.style.visibility = 'hidden');",
        vec![],
    )
    .await
    .unwrap();
    let canvas = c.find(Locator::Id("view")).await.unwrap();
    let shot = image::load_from_memory(&canvas.screenshot().await.unwrap())
        .unwrap()
        .to_rgba8();
    c.execute(
        "document.querySelectorAll('.panel').forEach(p => p.style.visibility = '');",
        vec![],
    )
    .await
    .unwrap();
    shot
}

/// Compares each placed tile's visible pixels with `expected(tile)`;
/// returns how many pixels were compared.
fn compare(shot: &RgbaImage, tiles: &[Placed], expected: impl Fn(&Placed) -> RgbImage) -> usize {
    let mut compared = 0;
    for t in tiles {
        let want = expected(t);
        for (px, py, p) in want.enumerate_pixels() {
            let (sx, sy) = (t.left + i64::from(px), t.top + i64::from(py));
            if sx < 0 || sy < 0 || sx >= i64::from(shot.width()) || sy >= i64::from(shot.height()) {
                continue;
            }
            let got = shot.get_pixel(sx as u32, sy as u32).0;
            assert_eq!(
                got[..3],
                p.0,
                "tile {}/{}/{} pixel {px},{py} (screen {sx},{sy})",
                t.level,
                t.x,
                t.y
            );
            compared += 1;
        }
    }
    compared
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_shows_the_kernels_tiles_zooms_and_opens_a_pyramid() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // A small picture with its pyramid, to open later.
    let out = orchestrate(
        dir.path(),
        &[
            "--tiles-per-side",
            "4",
            "--tile-pixels",
            "128",
            "--max-iter",
            "300",
            "--pyramid",
            "pyramid",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_server, url) = start_explorer(
        Command::new(binary("mandel-explore"))
            .arg("--cache")
            .arg(&cache)
            .arg("--pyramid")
            .arg(dir.path().join("pyramid")),
    );

    let browser = Browser::start().await;
    let c = &browser.client;
    c.set_window_size(900, 700).await.unwrap();

    // A permalink deep in seahorse valley, at a whole zoom, so each tile's
    // pixel is one screen pixel.
    let zoom = 12;
    c.goto(&format!(
        "{url}#re=-0.7436438&im=0.1318259&z={zoom}&iter=auto"
    ))
    .await
    .unwrap();
    wait_for(
        c,
        "window.mandel && mandel.drawn().length > 0 && document.body.dataset.missing === '0'",
    )
    .await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    let tiles = placed(c).await;
    assert!(tiles.len() >= 6, "{} tiles on screen", tiles.len());
    assert!(tiles.iter().all(|t| t.level == zoom && t.width == 256));
    let shot = canvas_shot(c).await;
    let compared = compare(&shot, &tiles, |t| {
        let params = WorldTile::new(t.level, t.x, t.y)
            .unwrap()
            .params(max_iter_for(zoom))
            .unwrap();
        let png = explore::tile_png(
            &explore::render(&params),
            max_iter_for(zoom),
            Colormap::TwilightShifted,
        )
        .unwrap();
        image::load_from_memory(&png).unwrap().to_rgb8()
    });
    // The window's whole canvas was compared.
    assert_eq!(compared, (shot.width() * shot.height()) as usize);
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // Zooming in fetches the next level's tiles and moves the permalink.
    let before = cached_tiles(&cache);
    click(c, "zoom-in").await;
    wait_for(
        c,
        &format!(
            "mandel.drawn().length > 0 && mandel.drawn().every(t => t.level === {})",
            zoom + 1
        ),
    )
    .await;
    wait_for(c, "document.body.dataset.missing === '0'").await;
    wait_for(c, &format!("location.hash.includes('z={}')", zoom + 1)).await;
    assert!(cached_tiles(&cache) > before, "no new tile was rendered");

    // The command that renders this view as a still.
    click(c, "render").await;
    let command = text(c, "command").await;
    assert!(
        command.starts_with("mandel-orchestrate --viewport -0.74")
            && command.contains("--max-iter 2450"),
        "{command}"
    );

    // At the depth limit the page says why it goes no deeper.
    c.goto(&format!("{url}#re=-0.7436438&im=0.1318259&z=45&iter=100"))
        .await
        .unwrap();
    c.refresh().await.unwrap();
    click(c, "zoom-in").await;
    let note = text(c, "note").await;
    assert!(
        note.contains("f64 can no longer tell neighbouring pixels apart"),
        "{note:?}"
    );
    wait_for(c, "location.hash.includes('z=45')").await;

    // The pyramid, as a file and through the server, at its full
    // resolution: the picture's own pixels.
    let picture = image::open(dir.path().join("mandelbrot.png"))
        .unwrap()
        .to_rgb8();
    for page in [
        format!("file://{}", dir.path().join("pyramid/index.html").display()),
        format!("{url}pyramid/"),
    ] {
        c.goto(&format!("{page}#u=0.5&v=0.5&z=9")).await.unwrap();
        c.refresh().await.unwrap();
        wait_for(
            c,
            "window.mandel && mandel.drawn().length === 4 && document.body.dataset.missing === '0'",
        )
        .await;
        assert_eq!(
            browser.console_errors().await,
            Vec::<String>::new(),
            "{page}"
        );
        let tiles = placed(c).await;
        assert!(tiles.iter().all(|t| t.level == 9));
        let shot = canvas_shot(c).await;
        let compared = compare(&shot, &tiles, |t| {
            picture
                .view(t.x as u32 * 256, t.y as u32 * 256, 256, 256)
                .to_image()
        });
        // The whole 512² picture fits the window.
        assert_eq!(compared, 512 * 512, "{page}");
    }
    c.clone().close().await.unwrap();
}
