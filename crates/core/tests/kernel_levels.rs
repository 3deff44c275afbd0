//! Every kernel level and every shortcut gives the scalar reference's bytes.

use mandel_core::kernel::{self, Level, Tuning, reference};
use mandel_core::{CountWidth, RenderParams, TileId, Viewport, blob};
use proptest::prelude::*;

const TUNINGS: [Tuning; 2] = [
    Tuning {
        interior_shortcut: false,
    },
    Tuning {
        interior_shortcut: true,
    },
];

fn check_all_levels(params: &RenderParams, tile: TileId) {
    let expected = reference::render_tile(params, tile);
    let mut got = vec![0u16; params.pixels_per_tile()];
    for &level in Level::available() {
        for tuning in TUNINGS {
            got.fill(u16::MAX);
            kernel::render_tile_with(level, tuning, params, tile, &mut got);
            if got != expected {
                let first = got.iter().zip(&expected).position(|(a, b)| a != b).unwrap();
                panic!(
                    "{level:?} {tuning:?} differs from the reference on {params:?} tile {tile}: \
                     pixel {first} got {} expected {}",
                    got[first], expected[first]
                );
            }
        }
    }
}

fn params(
    xmin: f64,
    width: f64,
    ymin: f64,
    height: f64,
    tiles: u32,
    pixels: u32,
    max_iter: u32,
) -> RenderParams {
    RenderParams {
        view: mandel_core::View::Viewport(Viewport {
            xmin,
            xmax: xmin + width,
            ymin,
            ymax: ymin + height,
        }),
        tiles_per_side: tiles,
        tile_pixels: pixels,
        max_iter,
    }
}

fn tile_pixels() -> impl Strategy<Value = u32> {
    prop_oneof![Just(1u32), Just(3), Just(7), Just(16), Just(33), Just(100)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn whole_set(pixels in tile_pixels(), max_iter in 1u32..1500, row in 0u32..4, col in 0u32..4) {
        let p = params(-2.5, 3.5, -1.5, 3.0, 4, pixels, max_iter);
        check_all_levels(&p, TileId::new(row, col));
    }

    #[test]
    fn deep_zoom(
        t in 0.0f64..std::f64::consts::TAU,
        inset in 0.0f64..1e-3,
        pixels in tile_pixels(),
        max_iter in 500u32..3000,
    ) {
        // Centred just inside the cardioid's boundary, 1e-12 wide.
        let (lr, li) = ((1.0 - inset) * t.cos(), (1.0 - inset) * t.sin());
        let cr = lr / 2.0 - (lr * lr - li * li) / 4.0;
        let ci = li / 2.0 - lr * li / 2.0;
        let p = params(cr - 5e-13, 1e-12, ci - 5e-13, 1e-12, 1, pixels, max_iter);
        check_all_levels(&p, TileId::new(0, 0));
    }

    #[test]
    fn near_the_cusp(dx in -1e-4f64..1e-4, dy in -1e-4f64..1e-4, pixels in tile_pixels(), max_iter in 1u32..4000) {
        let p = params(0.25 + dx - 1e-4, 2e-4, dy - 1e-4, 2e-4, 1, pixels, max_iter);
        check_all_levels(&p, TileId::new(0, 0));
    }

    #[test]
    fn period2_bulb_edge(t in 0.0f64..std::f64::consts::TAU, size in 1e-9f64..1e-3, pixels in tile_pixels(), max_iter in 1u32..3000) {
        let (cr, ci) = (-1.0 + 0.25 * t.cos(), 0.25 * t.sin());
        let p = params(cr - size / 2.0, size, ci - size / 2.0, size, 1, pixels, max_iter);
        check_all_levels(&p, TileId::new(0, 0));
    }
}

/// Single points just inside the shortcut's margin, with the largest
/// iteration budget: the shortcut must agree with iterating.
#[test]
fn shortcut_agrees_with_iteration_at_the_margin() {
    let mut claimed = 0;
    for i in 0..4000 {
        let t = f64::from(i) * std::f64::consts::TAU / 4000.0;
        for inset in [1.01e-6, 2e-6, 1e-5, 1e-4] {
            // Main cardioid, |λ| = 1 - inset.
            let (lr, li) = ((1.0 - inset) * t.cos(), (1.0 - inset) * t.sin());
            let cr = lr / 2.0 - (lr * lr - li * li) / 4.0;
            let ci = li / 2.0 - lr * li / 2.0;
            // Period-2 bulb, |4(c + 1)| = 1 - inset.
            let (br, bi) = (
                -1.0 + (1.0 - inset) / 4.0 * t.cos(),
                (1.0 - inset) / 4.0 * t.sin(),
            );
            for (x, y) in [(cr, ci), (br, bi)] {
                if kernel::surely_interior(x, y) {
                    claimed += 1;
                    assert_eq!(
                        reference::escape_count(x, y, 65535),
                        65535,
                        "c = {x} + {y}i escapes"
                    );
                }
            }
        }
    }
    assert!(
        claimed > 20_000,
        "the shortcut should claim most of these points, claimed {claimed}"
    );
}

/// Each level, forced, on the notebook's six raw reference tiles.
#[test]
fn every_level_matches_the_raw_reference_tiles() {
    let p = RenderParams::default();
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/default-job/tiles");
    for (row, col) in [(0, 0), (3, 7), (5, 11), (8, 8), (12, 4), (15, 15)] {
        let bytes = std::fs::read(dir.join(format!("r{row:02}-c{col:02}.u16"))).unwrap();
        let expected: Vec<u16> = blob::decode(&bytes, CountWidth::U16, p.pixels_per_tile())
            .unwrap()
            .into_iter()
            .map(|c| c as u16)
            .collect();
        let mut got = vec![0u16; p.pixels_per_tile()];
        for &level in Level::available() {
            for tuning in TUNINGS {
                kernel::render_tile_with(level, tuning, &p, TileId::new(row, col), &mut got);
                assert!(
                    got == expected,
                    "{level:?} {tuning:?} differs on tile r{row}-c{col}"
                );
            }
        }
    }
}

#[test]
fn this_machine_has_a_vector_level() {
    // On x86-64 CI machines (AVX-512) and aarch64 (NEON) the fast path must
    // actually be exercised, not just the scalar fallback.
    let levels = Level::available();
    assert_eq!(levels.last(), Some(&Level::Scalar));
    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        assert!(levels.len() >= 2, "no SIMD level detected: {levels:?}");
    }
    if std::env::var_os("MANDEL_KERNEL").is_none() {
        assert_eq!(Level::selected(), levels[0]);
    }
}

/// A tile rendered band by band (stoppable) has the reference's bytes,
/// whatever the band boundaries; a stop request abandons it.
#[test]
fn band_by_band_rendering_is_exact_and_stoppable() {
    use std::sync::atomic::AtomicBool;
    for tile_pixels in [1, 7, 129, 300] {
        let params = RenderParams {
            view: mandel_core::View::Viewport(Viewport {
                xmin: -0.745,
                xmax: -0.735,
                ymin: 0.105,
                ymax: 0.115,
            }),
            tiles_per_side: 2,
            tile_pixels,
            max_iter: 500,
        };
        let tile = TileId::new(1, 0);
        assert_eq!(
            kernel::render_tile_until(&params, tile, &AtomicBool::new(false)),
            Some(
                reference::render_tile(&params, tile)
                    .into_iter()
                    .map(u32::from)
                    .collect()
            ),
            "tile_pixels {tile_pixels}"
        );
        assert_eq!(
            kernel::render_tile_until(&params, tile, &AtomicBool::new(true)),
            None
        );
    }
}
