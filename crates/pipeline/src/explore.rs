//! The explorer's use case: the picture of one tile of the world
//! ([`mandel_core::explore`]), from the cache when it is there, otherwise
//! rendered on this machine's cores and cached for good. A tile's bytes are
//! a function of its params, the contract's version and the colormap, so
//! the cache key names exactly those and an entry never goes stale.

use std::sync::Arc;

use bytes::Bytes;
use mandel_core::explore::{self, TileError, WorldTile};
use mandel_core::{Colormap, RenderParams, kernel};
use tokio::sync::Semaphore;

use crate::JobId;
use crate::store::{Metadata, ObjectStore, PutMode, StoreError};

/// Where a served tile came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The cache had it.
    Cached,
    /// Rendered for this request (and now cached).
    Rendered,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Cached => "hit",
            Source::Rendered => "miss",
        }
    }
}

/// Why a tile could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TileServiceError {
    /// The address or budget is not a tile of the world.
    #[error(transparent)]
    Tile(#[from] TileError),
    #[error("the tile cache failed: {0}")]
    Cache(#[from] StoreError),
    #[error("encoding the tile failed: {0}")]
    Encode(String),
}

/// Serves world tiles' pictures: cache, else render.
#[derive(Debug)]
pub struct TileService {
    cache: Arc<dyn ObjectStore>,
    colormap: Colormap,
    /// One render per core at a time: a burst of requests queues here
    /// rather than sharing the cores, so the first tiles arrive first.
    cores: Arc<Semaphore>,
}

/// The cache key of a tile's picture: the contract's version, the
/// colormap and the params' content hash (the job id a one-tile job of
/// these params would have).
pub fn cache_key(params: &RenderParams, colormap: Colormap) -> String {
    format!(
        "tiles/v{}/{}/{}.png",
        kernel::CONTRACT_VERSION,
        colormap.name(),
        JobId::for_params(params)
    )
}

impl TileService {
    /// Tiles coloured with `colormap`, cached in `cache`, rendered on up to
    /// `workers` cores at once.
    pub fn new(cache: Arc<dyn ObjectStore>, colormap: Colormap, workers: usize) -> Self {
        TileService {
            cache,
            colormap,
            cores: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    /// The PNG of `tile` at `max_iter` iterations, and where it came from.
    pub async fn tile(
        &self,
        tile: WorldTile,
        max_iter: u32,
    ) -> Result<(Bytes, Source), TileServiceError> {
        let params = tile.params(max_iter)?;
        let key = cache_key(&params, self.colormap);
        match self.cache.get(&key).await {
            Ok(object) => return Ok((object.body, Source::Cached)),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let colormap = self.colormap;
        let permit = self.cores.clone().acquire_owned().await;
        let png = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let counts = explore::render(&params);
            explore::tile_png(&counts, max_iter, colormap)
        })
        .await
        .expect("rendering a tile panicked")
        .map_err(|e| TileServiceError::Encode(e.to_string()))?;
        let png = Bytes::from(png);
        // Concurrent requests for one tile write the same bytes.
        self.cache
            .put(&key, png.clone(), Metadata::new(), PutMode::Overwrite)
            .await?;
        Ok((png, Source::Rendered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn a_tile_is_rendered_once_then_served_from_the_cache() {
        let cache = Arc::new(MemoryStore::new());
        let service = TileService::new(cache.clone(), Colormap::TwilightShifted, 2);
        let tile = WorldTile::new(3, 2, 3).unwrap();
        let (first, source) = service.tile(tile, 200).await.unwrap();
        assert_eq!(source, Source::Rendered);
        let (again, source) = service.tile(tile, 200).await.unwrap();
        assert_eq!((again.clone(), source), (first.clone(), Source::Cached));
        // The picture is the kernel's counts on the stable scale.
        let params = tile.params(200).unwrap();
        let direct = explore::tile_png(&explore::render(&params), 200, Colormap::TwilightShifted);
        assert_eq!(first, Bytes::from(direct.unwrap()));
        // Another budget or colormap is another entry.
        let (other, source) = service.tile(tile, 201).await.unwrap();
        assert_eq!(source, Source::Rendered);
        assert_ne!(other, first);
        assert_ne!(
            cache_key(&params, Colormap::TwilightShifted),
            cache_key(&params, Colormap::Viridis)
        );
        assert_eq!(cache.list("tiles/").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_bad_budget_is_refused_with_its_reason() {
        let service = TileService::new(Arc::new(MemoryStore::new()), Colormap::Gray, 1);
        let tile = WorldTile::new(0, 0, 0).unwrap();
        let err = service.tile(tile, 0).await.unwrap_err();
        assert!(err.to_string().contains("max_iter"), "{err}");
    }
}
