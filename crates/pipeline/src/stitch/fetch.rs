//! Fetching a row of tiles for the stitch: bounded parallel GETs, each
//! blob checked, a damaged one rendered again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use mandel_core::{RenderParams, TileId};
use tracing::warn;

use crate::error::PipelineError;
use crate::job::{JobId, TileStat};
use crate::records;
use crate::store::{ObjectStore, StoreError};
use crate::tiles::{self, StoredTile, put_tile, tile_stat};

/// One row of tiles, fetched: `P` rows of counts across the whole image.
pub(super) struct Band {
    pub(super) counts: Vec<u32>,
    pub(super) stats: Vec<TileStat>,
}

/// Fetches one row of tiles with bounded parallelism into a band, checking
/// each blob's size, recorded checksum and named range. The row is known
/// whole ([`Progress::into_stitch_rows`]), so a tile that fails a check, or is no longer
/// listed whole, was damaged since: it is rendered again (and its good
/// bytes put back), never stitched as it is. The row's tiles are `listed`
/// already, or listed now.
pub(super) async fn fetch_band(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
    row: u32,
    listed: Option<BTreeMap<u32, StoredTile>>,
) -> Result<Band, PipelineError> {
    let mut stored = match listed {
        Some(tiles) => tiles,
        None => tiles::row_tiles(&**store, job, params, row).await?,
    };
    let (p, side) = (params.tile_pixels as usize, params.image_side() as usize);
    let mut band = vec![0u32; p * side];
    let mut stats = Vec::with_capacity(params.tiles_per_side as usize);
    let mut gets = futures::stream::iter((0..params.tiles_per_side).map(|col| {
        let store = Arc::clone(store);
        let stored = stored.remove(&col);
        async move {
            let got = match &stored {
                Some(t) => Some(store.get(&t.key).await),
                None => None,
            };
            (TileId::new(row, col), stored, got)
        }
    }))
    .buffer_unordered(tiles::PARALLEL_GETS);
    let mut counts = vec![0u32; p * p];
    while let Some((tile, stored, got)) = gets.next().await {
        let object = match got {
            Some(Ok(o)) => Some(o),
            None | Some(Err(StoreError::NotFound { .. })) => None,
            Some(Err(e)) => return Err(e.into()),
        };
        let problem = match (&object, &stored) {
            (Some(object), Some(stored)) => {
                tiles::check_blob(object, stored.range, params.count_width(), &mut counts)
            }
            _ => Some("not stored whole".to_string()),
        };
        let stat = if let Some(reason) = problem {
            warn!(%job, %tile, %reason, "damaged tile; rendering it again");
            let (again, stat) = rerender(store, job, params, tile).await?;
            counts = again;
            stat
        } else {
            tile_stat(tile, &object.as_ref().expect("checked").metadata)
        };
        let x0 = tile.col as usize * p;
        for (y, src) in counts.chunks_exact(p).enumerate() {
            band[y * side + x0..y * side + x0 + p].copy_from_slice(src);
        }
        stats.push(stat);
    }
    Ok(Band {
        counts: band,
        stats,
    })
}

/// Renders `tile` again and puts its blob back.
async fn rerender(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    params: &RenderParams,
    tile: TileId,
) -> Result<(Vec<u32>, TileStat), PipelineError> {
    let renderer = records::tile_renderer(&**store, job, params).await?;
    let started_ms = crate::job::unix_ms();
    let (counts, compute_us) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let counts = renderer.render_tile(tile);
        (counts, started.elapsed().as_micros() as u64)
    })
    .await
    .expect("tile kernel panicked");
    let stat = TileStat {
        row: tile.row,
        col: tile.col,
        compute_us,
        worker: "stitch".to_string(),
        started_ms,
        batch_ms: started_ms,
        boot_ms: started_ms,
    };
    put_tile(&**store, job, params, &counts, &stat).await?;
    Ok((counts, stat))
}
