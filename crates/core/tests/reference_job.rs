//! The product's exactness contract: the notebook's default job, tile by tile.
//!
//! Fixtures in `tests/fixtures/default-job` are copied from the notebook's own
//! output (numpy 2.4, x86-64 with FMA): SHA-256 of all 256 tile blobs and of
//! the stitched image, plus six raw tiles.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use mandel_core::{CountWidth, CountsImage, RenderParams, TileId, blob, kernel};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/default-job")
}

struct Reference {
    params: RenderParams,
    tiles: BTreeMap<TileId, String>,
    image_sha256: String,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let params: RenderParams = serde_json::from_value(json["params"].clone()).unwrap();
    let tiles = json["tiles"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let (r, c) = k.split_once(',').unwrap();
            (
                TileId::new(r.parse().unwrap(), c.parse().unwrap()),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect();
    Reference {
        params,
        tiles,
        image_sha256: json["image_sha256"].as_str().unwrap().to_string(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Renders every tile of `params` on all cores with `render`.
fn render_all(
    params: &RenderParams,
    render: fn(&RenderParams, TileId) -> Vec<u32>,
) -> BTreeMap<TileId, Vec<u32>> {
    let todo = Mutex::new(params.tiles().collect::<Vec<_>>());
    let done = Mutex::new(BTreeMap::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(tile) = todo.lock().unwrap().pop() {
                    let counts = render(params, tile);
                    done.lock().unwrap().insert(tile, counts);
                }
            });
        }
    });
    done.into_inner().unwrap()
}

#[test]
fn default_job_matches_the_notebook_bit_for_bit() {
    let reference = reference();
    assert_eq!(reference.params, RenderParams::default());
    assert_eq!(reference.tiles.len(), 256);
    let rendered = render_all(&reference.params, kernel::render_tile);

    let mismatched: Vec<String> = reference
        .tiles
        .iter()
        .filter(|(tile, sha)| sha256_hex(&blob::encode(&rendered[tile], CountWidth::U16)) != **sha)
        .map(|(tile, _)| tile.to_string())
        .collect();
    assert!(
        mismatched.is_empty(),
        "tiles differing from the notebook: {mismatched:?}"
    );

    let mut image = CountsImage::for_params(&reference.params);
    for (tile, counts) in &rendered {
        image.place_tile(256, *tile, counts);
    }
    let raw: Vec<u8> = blob::encode(image.data(), CountWidth::U16);
    assert_eq!(
        sha256_hex(&raw),
        reference.image_sha256,
        "stitched image differs"
    );
}

#[test]
fn raw_reference_tiles_match_and_decode() {
    let params = RenderParams::default();
    for entry in std::fs::read_dir(fixtures().join("tiles")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        // rRR-cCC
        let (r, c) = name.split_once('-').unwrap();
        let tile = TileId::new(r[1..].parse().unwrap(), c[1..].parse().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let expected = blob::decode(&bytes, CountWidth::U16, params.pixels_per_tile()).unwrap();
        let got: Vec<u32> = kernel::reference::render_tile(&params, tile)
            .into_iter()
            .map(u32::from)
            .collect();
        assert_eq!(got, expected, "reference kernel differs on tile {name}");
        assert_eq!(
            kernel::render_tile(&params, tile),
            expected,
            "kernel differs on tile {name}"
        );
    }
}
