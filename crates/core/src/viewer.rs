//! The viewer: one self-contained HTML page (no script or style fetched
//! from anywhere) that pans and zooms a tile pyramid, either the live
//! world of [`crate::explore`] served by `mandel-explore`, or a Deep Zoom
//! pyramid from `--pyramid`, opened from its directory (even as a file)
//! or through `mandel-explore`.

use serde::Serialize;

use crate::explore::{
    ITER_BASE, ITER_PER_ZOOM, MAX_DEEP_ZOOM, MAX_TILE_BUDGET, MAX_ZOOM, TILE_PIXELS, WORLD_LEFT,
    WORLD_SIDE, WORLD_TOP,
};
use crate::pyramid;

const TEMPLATE: &str = include_str!("../viewer/viewer.html");

/// What the page shows; it reads this as JSON from the page itself.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// The live world: `tiles` is a URL template with `{z}`, `{x}`, `{y}`
    /// (the page adds `iter=N` to its query). Levels up to `f64_max_level`
    /// are f64 tiles (budgets up to `f64_iter_max`), deeper ones deep tiles
    /// (up to `iter_max`), down to `max_level`.
    Live {
        tiles: String,
        tile_size: u32,
        max_level: u32,
        f64_max_level: u32,
        iter_base: u32,
        iter_per_zoom: u32,
        iter_max: u32,
        f64_iter_max: u32,
        world_left: f64,
        world_top: f64,
        world_side: f64,
    },
    /// A Deep Zoom pyramid of a `width`×`height` picture: `tiles` is a
    /// URL template with `{z}` (the level), `{x}` (column), `{y}` (row).
    Dzi {
        tiles: String,
        tile_size: u32,
        max_level: u32,
        width: usize,
        height: usize,
    },
}

impl Source {
    /// The live world, its tiles at `tiles` (e.g. `/tiles/{z}/{x}/{y}.png`).
    pub fn live(tiles: &str) -> Self {
        Source::Live {
            tiles: tiles.to_string(),
            tile_size: TILE_PIXELS,
            max_level: MAX_DEEP_ZOOM,
            f64_max_level: MAX_ZOOM,
            iter_base: ITER_BASE,
            iter_per_zoom: ITER_PER_ZOOM,
            iter_max: MAX_TILE_BUDGET,
            f64_iter_max: crate::params::MAX_ITER_LIMIT,
            world_left: WORLD_LEFT,
            world_top: WORLD_TOP,
            world_side: WORLD_SIDE,
        }
    }

    /// The pyramid of a `width`×`height` picture, the page beside its
    /// descriptor ([`pyramid::VIEWER`]), so its tiles' URLs are relative.
    pub fn dzi(width: usize, height: usize) -> Self {
        Source::Dzi {
            tiles: pyramid::tile_path("{z}", "{x}", "{y}"),
            tile_size: pyramid::TILE as u32,
            max_level: pyramid::max_level(width, height),
            width,
            height,
        }
    }
}

/// The files a `width`×`height` pyramid has beside its tiles, by their
/// paths in it: the descriptor and the viewer page. Every writer of a
/// pyramid writes these, last.
pub fn pyramid_files(width: usize, height: usize) -> [(&'static str, String); 2] {
    [
        (pyramid::DESCRIPTOR, pyramid::descriptor(width, height)),
        (pyramid::VIEWER, page(&Source::dzi(width, height))),
    ]
}

/// The viewer page for `source`.
pub fn page(source: &Source) -> String {
    // Inside a <script> element only "</" could end it early; JSON never
    // needs it, so escape the slash.
    let config = serde_json::to_string(source)
        .expect("a source always serialises")
        .replace("</", "<\\/");
    TEMPLATE.replacen("/*CONFIG*/", &config, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_its_source_and_fetches_nothing_else() {
        let page = page(&Source::dzi(4096, 4096));
        assert!(page.contains(r#""kind":"dzi""#));
        assert!(page.contains(r#""tiles":"image_files/{z}/{x}_{y}.png""#));
        assert!(page.contains(r#""max_level":12"#));
        assert!(!page.contains("/*CONFIG*/"));
        for fetched in [
            "src=\"http",
            "href=\"http",
            "<link rel=\"stylesheet",
            "@import",
        ] {
            assert!(!page.contains(fetched), "{fetched}");
        }
        let live = super::page(&Source::live("/tiles/{z}/{x}/{y}.png"));
        assert!(live.contains(r#""kind":"live""#) && live.contains(r#""max_level":12000"#));
        assert!(live.contains(r#""f64_max_level":45"#));
    }
}
