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

/// Opens `link` and waits until every tile on screen is drawn, with no
/// error in the console; returns the tiles as placed.
async fn open_and_draw(browser: &Browser, link: &str) -> Vec<Placed> {
    let c = &browser.client;
    c.goto(link).await.unwrap();
    wait_for(
        c,
        "window.mandel && mandel.drawn().length > 0 && document.body.dataset.missing === '0'",
    )
    .await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    placed(c).await
}

/// Clicking "+" draws only tiles of `level`, all loaded, moves the
/// permalink there, and renders tiles the cache did not have.
async fn zoom_in_renders_the_next_level(c: &Client, cache: &Path, level: u32) {
    let before = cached_tiles(cache);
    click(c, "zoom-in").await;
    wait_for(
        c,
        &format!("mandel.drawn().length > 0 && mandel.drawn().every(t => t.level === {level})"),
    )
    .await;
    wait_for(c, "document.body.dataset.missing === '0'").await;
    wait_for(c, &format!("location.hash.includes('z={level}')")).await;
    assert!(cached_tiles(cache) > before, "no new tile was rendered");
}

/// Every tile on screen, as the page placed it.
struct Placed {
    level: u32,
    /// Decimal: past zoom 53 a tile's index outgrows a double.
    x: String,
    y: String,
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
            x: t["x"].as_str().unwrap().to_string(),
            y: t["y"].as_str().unwrap().to_string(),
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
fn compare(
    shot: &RgbaImage,
    tiles: &[Placed],
    mut expected: impl FnMut(&Placed) -> RgbImage,
) -> usize {
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
    let link = format!("{url}#re=-0.7436438&im=0.1318259&z={zoom}&iter=auto");
    let tiles = open_and_draw(&browser, &link).await;
    assert!(tiles.len() >= 6, "{} tiles on screen", tiles.len());
    assert!(tiles.iter().all(|t| t.level == zoom && t.width == 256));
    let shot = canvas_shot(c).await;
    let compared = compare(&shot, &tiles, |t| {
        let params = WorldTile::new(t.level, t.x.parse().unwrap(), t.y.parse().unwrap())
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
    zoom_in_renders_the_next_level(c, &cache, zoom + 1).await;

    // The command that renders this view as a still.
    click(c, "render").await;
    let command = text(c, "command").await;
    assert!(
        command.starts_with("mandel-orchestrate --viewport -0.74")
            && command.contains("--max-iter 2450"),
        "{command}"
    );

    // Past zoom 45 the page goes on with deep tiles.
    c.goto(&format!("{url}#re=-0.7436438&im=0.1318259&z=45&iter=100"))
        .await
        .unwrap();
    c.refresh().await.unwrap();
    click(c, "zoom-in").await;
    wait_for(
        c,
        "mandel.drawn().length > 0 && mandel.drawn().every(t => t.level === 46)",
    )
    .await;
    wait_for(c, "location.hash.includes('z=46')").await;
    assert!(text(c, "where").await.contains("(deep)"));

    // At the depth limit the page says why it goes no deeper.
    c.goto(&format!(
        "{url}#re=-0.7436438&im=0.1318259&z={}&iter=100",
        explore::MAX_DEEP_ZOOM
    ))
    .await
    .unwrap();
    c.refresh().await.unwrap();
    click(c, "zoom-in").await;
    let note = text(c, "note").await;
    assert!(note.contains("Deepest zoom reached"), "{note:?}");
    wait_for(
        c,
        &format!("location.hash.includes('z={}')", explore::MAX_DEEP_ZOOM),
    )
    .await;

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
                .view(
                    t.x.parse::<u32>().unwrap() * 256,
                    t.y.parse::<u32>().unwrap() * 256,
                    256,
                    256,
                )
                .to_image()
        });
        // The whole 512² picture fits the window.
        assert_eq!(compared, 512 * 512, "{page}");
    }
    c.clone().close().await.unwrap();
}

/// `10^log10` as the page writes it: `digits` significant digits, `1.3e-523`.
fn scientific(log10: f64, digits: usize) -> String {
    let (mut e, mut m) = (log10.floor(), 10f64.powf(log10 - log10.floor()));
    if format!("{m:.*}", digits - 1).parse::<f64>().unwrap() >= 10.0 {
        m /= 10.0;
        e += 1.0;
    }
    format!("{m:.*}e{e}", digits - 1)
}

/// A permalink past zoom 1e300 (2^1100 on the path to the published e1000
/// location, its centre's full 1,000 digits in the link) draws tiles equal,
/// pixel for pixel, to direct deep renders of the same tiles; zooming in
/// fetches the next level's deep tiles; the page shows the depth as a
/// number and "Render this view" gives the deep job's command.
#[tokio::test(flavor = "multi_thread")]
async fn a_permalink_past_1e300_draws_the_deep_renders_and_dives() {
    use mandel_core::deep::Location;
    use mandel_core::explore::DeepTile;
    let kfr = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../locations/e1000.kfr"),
    )
    .unwrap();
    let location = Location::from_kfr(&kfr).unwrap();
    let (re, im) = (location.view.re(), location.view.im());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (_server, url) = start_explorer(
        Command::new(binary("mandel-explore"))
            .arg("--cache")
            .arg(&cache),
    );
    let browser = Browser::start().await;
    let c = &browser.client;
    c.set_window_size(700, 500).await.unwrap();

    let (zoom, budget) = (1100u32, 20_000u32);
    let link = format!("{url}#re={re}&im={im}&z={zoom}&iter={budget}");
    let tiles = open_and_draw(&browser, &link).await;
    assert!(tiles.len() >= 4, "{} tiles on screen", tiles.len());
    assert!(tiles.iter().all(|t| t.level == zoom && t.width == 256));
    assert!(
        tiles[0].x.len() > 300,
        "x has hundreds of digits: {}",
        tiles[0].x
    );
    let shot = canvas_shot(c).await;
    let mut orbits = std::collections::HashMap::new();
    let compared = compare(&shot, &tiles, |t| {
        let tile = DeepTile::parse(t.level, &t.x, &t.y).unwrap();
        let orbit = orbits
            .entry(tile.region())
            .or_insert_with(|| tile.region().orbit(budget));
        let (counts, _) = tile.render(budget, orbit);
        let png = explore::deep_tile_png(&counts, budget, Colormap::TwilightShifted).unwrap();
        image::load_from_memory(&png).unwrap().to_rgb8()
    });
    assert_eq!(compared, (shot.width() * shot.height()) as usize);
    let distinct: std::collections::HashSet<[u8; 4]> = shot.pixels().map(|p| p.0).collect();
    assert!(
        distinct.len() > 20,
        "a flat screen: {} colours",
        distinct.len()
    );

    // The depth as a number: the window's width in the plane,
    // clientWidth/256 · 4 · 2^-1100 (7.9e-331 for 685 pixels).
    let size = c
        .execute("return [canvas.clientWidth, canvas.clientHeight];", vec![])
        .await
        .unwrap();
    let (w, h) = (number(&size[0]), number(&size[1]));
    let log10_2 = std::f64::consts::LOG10_2;
    let width = scientific((w / 256.0 * 4.0).log10() - f64::from(zoom) * log10_2, 2);
    let status = text(c, "where").await;
    assert!(
        status.contains(&format!("width {width}")) && status.contains("20,000 iterations (deep)"),
        "{status} (width {width})"
    );
    // The permalink keeps the centre to a thousandth of a pixel: 340 digits.
    let hash = c.execute("return location.hash;", vec![]).await.unwrap();
    let hash = hash.as_str().unwrap();
    assert!(hash.contains(&re[..340]), "{hash}");

    // "Render this view": a deep job of the centre and the window's zoom.
    click(c, "render").await;
    let command = text(c, "command").await;
    assert!(
        command.starts_with(&format!("mandel-orchestrate --center {}", &re[..300]))
            && command.contains(&format!(
                " --zoom {} --max-iter 20000",
                scientific(-(w.max(h) / 256.0).log10() + f64::from(zoom) * log10_2, 4)
            )),
        "{command}"
    );

    // Zooming in fetches the next level's deep tiles and moves the permalink.
    zoom_in_renders_the_next_level(c, &cache, zoom + 1).await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    c.clone().close().await.unwrap();
}
