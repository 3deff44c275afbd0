//! `report.html`: one self-contained page about a finished job, for a
//! person. It shows the picture, a timeline of every tile on every worker
//! (one lane per core a worker used, cold starts marked), a heat map of
//! each tile's compute time over the picture, the cost against the
//! estimate, and throughput. Charts are inline SVG written here; the
//! picture is a data URL; the page loads nothing else and runs no script.
//!
//! The stitch writes it beside `result.json` ([`JobId::report_key`](crate::JobId::report_key)); the
//! embedded mode copies it to `--report`.

use std::collections::BTreeMap;
use std::fmt::Write;

use base64::Engine;
use mandel_core::Colormap;

use crate::estimate::{Actual, Cost, Submission};
use crate::job::{ResultManifest, TileStat};

/// Most heat-map cells a side: a bigger grid is averaged down.
const HEAT_CELLS: u32 = 128;
/// The timeline's width in SVG units, and a lane's height.
const WIDTH: f64 = 1000.0;
const LANE: f64 = 14.0;

/// The page for `manifest`, with the picture (a PNG, `picture`) and, if
/// the client recorded one, its estimate.
pub fn render(
    manifest: &ResultManifest,
    stats: &[TileStat],
    picture: &[u8],
    submission: Option<&Submission>,
) -> String {
    let m = manifest;
    let actual = submission.map(|s| s.actual(m, stats));
    let mut page = String::with_capacity(picture.len() * 4 / 3 + 64 * 1024);
    let title = format!("mandel job {}", m.job);
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px; text-align: right; border-bottom: 1px solid #ddd; }}
th:first-child, td:first-child {{ text-align: left; }}
.overlay {{ position: relative; display: inline-block; }}
.overlay img, .overlay svg {{ display: block; width: 512px; height: 512px; image-rendering: pixelated; }}
.overlay svg {{ position: absolute; top: 0; left: 0; }}
.pair {{ display: flex; gap: 2em; flex-wrap: wrap; }} figure {{ margin: 0; }}
#timeline {{ width: 100%; height: auto; }}
small {{ color: #666; }}
</style></head><body>
<h1>{title}</h1>
<p>{w}×{h} pixels in {tiles} tiles of {p}², max_iter {mi}, {view}.</p>
{reference}"#,
        w = m.width,
        h = m.height,
        tiles = m.tiles,
        p = m.params.tile_pixels,
        mi = m.params.max_iter,
        view = m.params.view,
        reference = reference_phase(m),
    );
    let data = base64::engine::general_purpose::STANDARD.encode(picture);
    let heat = heat_map(m, stats);
    let _ = write!(
        page,
        r#"<div class="pair"><figure><div class="overlay"><img id="picture" alt="the picture" src="data:image/png;base64,{data}"></div><figcaption>The picture</figcaption></figure>
<figure><div class="overlay"><img alt="" src="data:image/png;base64,{data}">{heat}</div><figcaption>Kernel time per tile over the picture: dark {lo:.1} ms, bright {hi:.1} ms</figcaption></figure></div>
"#,
        heat = heat.svg,
        lo = heat.min_ms,
        hi = heat.max_ms,
    );
    page.push_str("<h2>Timeline</h2>\n");
    page.push_str(&timeline(m, stats));
    page.push_str("<h2>Throughput</h2>\n");
    page.push_str(&throughput(m, actual.as_ref()));
    page.push_str("<h2>Cost and time against the estimate</h2>\n");
    page.push_str(&costs(submission, actual.as_ref()));
    page.push_str("</body></html>\n");
    page
}

/// The heat map's SVG and the range of its scale.
struct HeatMap {
    svg: String,
    min_ms: f64,
    max_ms: f64,
}

/// The heat map: an SVG grid of kernel time, row 0 (lowest imaginary
/// part) at the bottom as in the picture, scaled from the fastest cell
/// (dark) to the slowest (bright).
fn heat_map(m: &ResultManifest, stats: &[TileStat]) -> HeatMap {
    let tiles = m.params.tiles_per_side;
    let cells = tiles.min(HEAT_CELLS);
    let mut sum = vec![0.0f64; (cells * cells) as usize];
    let mut n = vec![0u32; sum.len()];
    for s in stats {
        let at = |i: u32| (u64::from(i) * u64::from(cells) / u64::from(tiles)) as u32;
        let i = (at(s.row) * cells + at(s.col)) as usize;
        sum[i] += s.compute_us as f64;
        n[i] += 1;
    }
    let mean: Vec<f64> = sum
        .iter()
        .zip(&n)
        .map(|(s, &n)| if n == 0 { 0.0 } else { s / f64::from(n) })
        .collect();
    let top = mean.iter().copied().fold(0.0, f64::max).max(1.0);
    let bottom = mean.iter().copied().fold(f64::INFINITY, f64::min).min(top);
    let lut = Colormap::Magma.lut();
    let mut svg = format!(
        r#"<svg id="heatmap" viewBox="0 0 {cells} {cells}" preserveAspectRatio="none" shape-rendering="crispEdges" opacity="0.75">"#
    );
    for row in 0..cells {
        for col in 0..cells {
            let v = mean[(row * cells + col) as usize];
            let level = (v - bottom) / (top - bottom).max(1.0);
            let [r, g, b] = lut[(level * 255.0).round() as usize];
            let y = cells - 1 - row;
            let _ = write!(
                svg,
                r##"<rect x="{col}" y="{y}" width="1" height="1" fill="#{r:02x}{g:02x}{b:02x}"><title>{ms:.1} ms</title></rect>"##,
                ms = v / 1e3,
            );
        }
    }
    svg.push_str("</svg>");
    HeatMap {
        svg,
        min_ms: bottom / 1e3,
        max_ms: top / 1e3,
    }
}

/// One bar of the timeline: a run of tiles back to back on one core, or a
/// cold start.
struct Bar {
    start_ms: f64,
    end_ms: f64,
    tiles: u32,
}

/// The timeline: a lane per core of each worker, a bar per tile (tiles
/// closer together than a unit of the chart drawn as one bar), a grey
/// bar before a worker's first batch for its cold start.
fn timeline(m: &ResultManifest, stats: &[TileStat]) -> String {
    let stats: Vec<&TileStat> = stats.iter().filter(|s| s.started_ms > 0).collect();
    if stats.is_empty() {
        return "<p>No tile recorded when it ran.</p>\n".to_string();
    }
    let start_of = |s: &TileStat| s.started_ms as f64;
    let end_of = |s: &TileStat| s.started_ms as f64 + s.compute_us as f64 / 1e3;
    // The earliest time recorded (0 is unknown: a tile written before
    // boot and batch times were recorded).
    let t0 = stats
        .iter()
        .flat_map(|s| [s.boot_ms, s.batch_ms, s.started_ms])
        .filter(|&t| t > 0)
        .min()
        .unwrap_or(0) as f64;
    let stitch_end = m.finished_ms() as f64;
    let t1 = stats.iter().map(|s| end_of(s)).fold(stitch_end, f64::max);
    let span = (t1 - t0).max(1.0);
    let unit = span / WIDTH;
    // Each worker's tiles by start; each to its first free core.
    let mut workers: BTreeMap<&str, Vec<&TileStat>> = BTreeMap::new();
    for s in &stats {
        workers.entry(&s.worker).or_default().push(s);
    }
    let mut lanes: Vec<(String, Vec<Bar>, Option<Bar>)> = Vec::new();
    let mut by_first: Vec<_> = workers.into_iter().collect();
    by_first.sort_by(|a, b| start_of(a.1[0]).total_cmp(&start_of(b.1[0])));
    for (worker, mut tiles) in by_first {
        tiles.sort_by(|a, b| start_of(a).total_cmp(&start_of(b)));
        let first = tiles[0];
        let cold = (first.boot_ms > 0 && first.boot_ms < first.started_ms).then(|| Bar {
            start_ms: first.boot_ms as f64,
            end_ms: first.batch_ms.max(first.boot_ms) as f64,
            tiles: 0,
        });
        let mut cores: Vec<Vec<Bar>> = Vec::new();
        for s in tiles {
            let free = cores
                .iter()
                .position(|c| c.last().is_none_or(|b| b.end_ms <= start_of(s) + 0.5));
            let core = match free {
                Some(i) => &mut cores[i],
                None => {
                    cores.push(Vec::new());
                    cores.last_mut().expect("pushed")
                }
            };
            match core.last_mut() {
                Some(b) if start_of(s) - b.end_ms < unit => {
                    b.end_ms = b.end_ms.max(end_of(s));
                    b.tiles += 1;
                }
                _ => core.push(Bar {
                    start_ms: start_of(s),
                    end_ms: end_of(s),
                    tiles: 1,
                }),
            }
        }
        let mut cold = cold;
        for (i, bars) in cores.into_iter().enumerate() {
            lanes.push((format!("{worker} #{i}"), bars, cold.take()));
        }
    }
    let label_w = 180.0;
    let height = LANE * (lanes.len() as f64 + 2.0);
    let x = |t: f64| label_w + (t - t0) / span * WIDTH;
    let mut svg = format!(
        r#"<svg id="timeline" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-size="10">
"#,
        w = label_w + WIDTH + 10.0
    );
    for (i, (name, bars, cold)) in lanes.iter().enumerate() {
        let y = LANE * i as f64;
        let _ = writeln!(
            svg,
            r#"<text x="0" y="{ty}">{name}</text>"#,
            ty = y + LANE - 4.0,
            name = escape(name)
        );
        if let Some(c) = cold {
            let _ = writeln!(
                svg,
                r##"<rect class="cold" x="{x0:.1}" y="{y}" width="{w:.1}" height="{h}" fill="#999"><title>cold start {ms:.0} ms</title></rect>"##,
                x0 = x(c.start_ms),
                w = ((c.end_ms - c.start_ms) / span * WIDTH).max(1.0),
                h = LANE - 3.0,
                ms = c.end_ms - c.start_ms,
            );
        }
        for b in bars {
            let _ = writeln!(
                svg,
                r##"<rect class="tile" x="{x0:.1}" y="{y}" width="{w:.1}" height="{h}" fill="#3b6fb6"><title>{n} tile(s), {ms:.1} ms</title></rect>"##,
                x0 = x(b.start_ms),
                w = ((b.end_ms - b.start_ms) / span * WIDTH).max(0.5),
                h = LANE - 3.0,
                n = b.tiles,
                ms = b.end_ms - b.start_ms,
            );
        }
    }
    // The stitch, and the time axis.
    let y = LANE * lanes.len() as f64;
    if m.stitch_started_ms > 0 {
        let _ = writeln!(
            svg,
            r##"<text x="0" y="{ty}">stitch</text><rect class="stitch" x="{x0:.1}" y="{y}" width="{w:.1}" height="{h}" fill="#c2702b"><title>stitch {ms:.0} ms</title></rect>"##,
            ty = y + LANE - 4.0,
            x0 = x(m.stitch_started_ms as f64),
            w = (m.stitch_us as f64 / 1e3 / span * WIDTH).max(1.0),
            h = LANE - 3.0,
            ms = m.stitch_us as f64 / 1e3,
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{label_w}" y="{ty}">0 s</text><text x="{end}" y="{ty}" text-anchor="end">{secs:.2} s</text></svg>"#,
        ty = y + 2.0 * LANE - 2.0,
        end = label_w + WIDTH,
        secs = span / 1e3,
    );
    svg.push_str(
        "<p><small>Blue: a tile's kernel (runs closer together than a pixel drawn as one bar). \
         Grey: a worker's cold start, from its process starting to its first batch. \
         Orange: the stitch.</small></p>\n",
    );
    svg
}

fn throughput(m: &ResultManifest, actual: Option<&Actual>) -> String {
    let compute_s = m.compute_us_total as f64 / 1e6;
    let mut rows = vec![
        ("tiles".to_string(), m.tiles.to_string()),
        (
            "iterations (brute force)".to_string(),
            format!("{:.3} G", m.iterations as f64 / 1e9),
        ),
        (
            "kernel time, all tiles".to_string(),
            format!("{compute_s:.2} s"),
        ),
        (
            "brute-force iterations per kernel second".to_string(),
            format!(
                "{:.2} G iterations/s",
                m.iterations as f64 / compute_s.max(1e-9) / 1e9
            ),
        ),
        (
            "stitch".to_string(),
            format!("{:.2} s", m.stitch_us as f64 / 1e6),
        ),
    ];
    if let Some(a) = actual {
        rows.push((
            "wall time, submit to result".to_string(),
            format!("{:.2} s", a.seconds),
        ));
        let px = (m.width * m.height) as f64;
        rows.push((
            "throughput".to_string(),
            format!(
                "{:.1} Mpixel/s, {:.2} G iterations/s",
                px / a.seconds / 1e6,
                m.iterations as f64 / a.seconds / 1e9
            ),
        ));
    }
    table(&["", ""], rows.into_iter().map(|(a, b)| vec![a, b]))
}

fn costs(submission: Option<&Submission>, actual: Option<&Actual>) -> String {
    let (Some(s), Some(a)) = (submission, actual) else {
        return "<p>No estimate was recorded for this job.</p>\n".to_string();
    };
    let e = &s.estimate;
    let mut rows = vec![
        vec![
            "wall time".to_string(),
            format!("{:.2} s", e.seconds),
            format!("{:.2} s", a.seconds),
        ],
        vec![
            "iterations".to_string(),
            format!("{:.3} G", e.iterations as f64 / 1e9),
            format!("{:.3} G", a.iterations as f64 / 1e9),
        ],
    ];
    if let (Some(ec), Some(ac)) = (&e.cost, &a.cost) {
        let item = |name: &str, f: fn(&Cost) -> f64| vec![name.to_string(), usd(f(ec)), usd(f(ac))];
        rows.push(item("Lambda compute", |c| c.lambda_compute));
        rows.push(item("Lambda requests", |c| c.lambda_requests));
        rows.push(item("S3 requests", |c| c.s3_requests));
        rows.push(item("SQS requests", |c| c.sqs_requests));
        rows.push(item("data out", |c| c.transfer_out));
        rows.push(item("storage for the retention period", |c| c.storage));
        rows.push(item("total", |c| c.total));
    } else {
        rows.push(vec![
            "AWS cost".to_string(),
            usd(0.0),
            usd(0.0) + " (embedded)",
        ]);
    }
    let mut html = table(&["", "estimate", "actual"], rows.into_iter());
    html.push_str(
        "<p><small>AWS list prices, us-east-1, no free tier (docs/cost.md). \
         The actual Lambda time is the recorded batches' spans plus their last requests; \
         requests are counted from the protocol for the recorded batches.</small></p>\n",
    );
    html
}

fn usd(v: f64) -> String {
    format!("${v:.6}")
}

fn table(head: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut t = String::from("<table><tr>");
    for h in head {
        let _ = write!(t, "<th>{}</th>", escape(h));
    }
    t.push_str("</tr>\n");
    for row in rows {
        t.push_str("<tr>");
        for cell in row {
            let _ = write!(t, "<td>{}</td>", escape(&cell));
        }
        t.push_str("</tr>\n");
    }
    t.push_str("</table>\n");
    t
}

/// Text made safe inside HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A deep job's reference phase: the orbit every tile was rendered from.
fn reference_phase(m: &ResultManifest) -> String {
    let Some(r) = &m.reference else {
        return String::new();
    };
    let compute: u64 = r.segment_us.iter().sum();
    format!(
        "<p id=\"reference\">Reference orbit: {} points at {} bits, computed in {} segment{} \
         ({:.2} s of compute, {:.2} s from the first segment's start to the last's end) \
         before the tiles.</p>\n",
        r.points,
        r.precision_bits,
        r.segments,
        if r.segments == 1 { "" } else { "s" },
        compute as f64 / 1e6,
        r.finished_ms.saturating_sub(r.started_ms) as f64 / 1e3,
    )
}
