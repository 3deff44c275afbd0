//! The report in a real browser (Chromium, headless, through WebDriver):
//! the page loads with no console error, the picture decodes, and its
//! screenshot shows the timeline and the heat map.

use image::GenericImageView;
use mandel_e2e::chrome::{Browser, number};
use mandel_e2e::orchestrate;

#[tokio::test(flavor = "multi_thread")]
async fn report_loads_cleanly_and_shows_the_timeline_and_the_heat_map() {
    let dir = tempfile::tempdir().unwrap();
    let out = orchestrate(
        dir.path(),
        &[
            "--tiles-per-side",
            "8",
            "--tile-pixels",
            "64",
            "--max-iter",
            "500",
            "--report",
            "report.html",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let browser = Browser::start().await;
    let c = &browser.client;

    // The check for console errors is real: a page with a broken script
    // shows one.
    c.goto("data:text/html,<script>no_such_function()</script>")
        .await
        .unwrap();
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().any(|e| e.contains("no_such_function")),
        "{errors:?}"
    );

    let page = format!("file://{}", dir.path().join("report.html").display());
    c.goto(&page).await.unwrap();
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    let facts = c
        .execute(
            "const t = document.getElementById('timeline').getBoundingClientRect();
             const h = document.getElementById('heatmap').getBoundingClientRect();
             return [document.getElementById('picture').naturalWidth,
                     document.querySelectorAll('#timeline rect.tile').length,
                     document.querySelectorAll('#heatmap rect').length,
                     t.width, t.height, h.width, h.height];",
            vec![],
        )
        .await
        .unwrap();
    let f: Vec<f64> = facts.as_array().unwrap().iter().map(number).collect();
    assert!(f[0] > 0.0, "the picture did not decode: {f:?}");
    assert!(f[1] >= 1.0, "no tile on the timeline: {f:?}");
    assert_eq!(f[2], 64.0, "a heat-map cell per tile: {f:?}");
    assert!(
        f[3] > 500.0 && f[4] > 20.0,
        "timeline drawn too small: {f:?}"
    );
    assert!(
        f[5] >= 256.0 && f[6] >= 256.0,
        "heat map drawn too small: {f:?}"
    );

    // The screenshots show them: the tiles' blue on the timeline, many
    // colours on the heat map.
    use fantoccini::Locator;
    let timeline = c.find(Locator::Id("timeline")).await.unwrap();
    let shot = image::load_from_memory(&timeline.screenshot().await.unwrap()).unwrap();
    let blue = shot
        .pixels()
        .filter(|(_, _, p)| p.0[..3] == [0x3b, 0x6f, 0xb6])
        .count();
    assert!(blue > 100, "{blue} pixels of tile blue on the timeline");
    let heat = c.find(Locator::Id("heatmap")).await.unwrap();
    let shot = image::load_from_memory(&heat.screenshot().await.unwrap()).unwrap();
    let colours: std::collections::BTreeSet<[u8; 3]> = shot
        .pixels()
        .map(|(_, _, p)| [p.0[0], p.0[1], p.0[2]])
        .collect();
    assert!(
        colours.len() > 8,
        "{} colours on the heat map",
        colours.len()
    );

    // The whole page, for a person to look at (docs/report.png is one).
    let page_shot = c.screenshot().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    std::fs::write(&path, page_shot).unwrap();
    eprintln!("screenshot: {}", path.display());
    c.clone().close().await.unwrap();
}
