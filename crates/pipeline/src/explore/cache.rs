//! The explorer's tile cache: PNGs in a store, at most `max_bytes` of them,
//! the least recently served evicted first.
//!
//! The recency order lives in this process (an [`LruCache`] of keys and
//! sizes), seeded from a listing of the store when the cache opens: tiles
//! from earlier runs come first, in key order, since the store keeps no
//! access times. Explorers sharing a folder each keep their own order and
//! limit; a tile another one evicted is simply rendered again.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;

use crate::store::{Metadata, ObjectStore, PutMode, StoreError};

/// The cache's default limit: about ten thousand 256-px tiles.
pub const DEFAULT_CACHE_MAX: u64 = 1 << 30;

/// Where the cached tiles live under the store's root.
const PREFIX: &str = "tiles/";

pub(super) struct TileCache {
    store: Arc<dyn ObjectStore>,
    max_bytes: u64,
    state: Mutex<State>,
}

struct State {
    /// Keys and their sizes, most recently served first.
    entries: LruCache<String, u64>,
    bytes: u64,
}

impl State {
    /// Records `key` as just served, with its size.
    fn touch(&mut self, key: &str, size: u64) {
        match self.entries.get_mut(key) {
            Some(known) => {
                self.bytes = self.bytes - *known + size;
                *known = size;
            }
            None => {
                self.entries.put(key.to_string(), size);
                self.bytes += size;
            }
        }
    }

    fn forget(&mut self, key: &str) {
        if let Some(size) = self.entries.pop(key) {
            self.bytes -= size;
        }
    }

    /// The least recently served keys to drop to fit `max_bytes`; the most
    /// recent one stays whatever its size.
    fn over(&mut self, max_bytes: u64) -> Vec<String> {
        let mut victims = Vec::new();
        while self.bytes > max_bytes && self.entries.len() > 1 {
            let (key, size) = self.entries.pop_lru().expect("more than one entry");
            self.bytes -= size;
            victims.push(key);
        }
        victims
    }
}

impl TileCache {
    /// A cache without a limit, its order empty (see [`TileCache::open`]).
    pub(super) fn unbounded(store: Arc<dyn ObjectStore>) -> TileCache {
        TileCache {
            store,
            max_bytes: u64::MAX,
            state: Mutex::new(State {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// The cache in `store` held to `max_bytes`: what is there already is
    /// listed (and evicted down to the limit).
    pub(super) async fn open(
        store: Arc<dyn ObjectStore>,
        max_bytes: u64,
    ) -> Result<TileCache, StoreError> {
        let listed = store.list(PREFIX).await?;
        let cache = TileCache {
            max_bytes,
            ..TileCache::unbounded(store)
        };
        let victims = {
            let mut state = cache.state.lock().expect("never poisoned");
            for m in &listed {
                state.touch(&m.key, m.size);
            }
            state.over(max_bytes)
        };
        cache.evict(victims).await?;
        Ok(cache)
    }

    /// The cached tile at `key`, if any, now the most recently served.
    pub(super) async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.store.get(key).await {
            Ok(object) => {
                let size = object.body.len() as u64;
                self.state.lock().expect("never poisoned").touch(key, size);
                Ok(Some(object.body))
            }
            Err(StoreError::NotFound { .. }) => {
                // Evicted by another explorer sharing the folder.
                self.state.lock().expect("never poisoned").forget(key);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Caches `png` at `key`, then evicts the least recently served tiles
    /// beyond the limit.
    pub(super) async fn put(&self, key: &str, png: Bytes) -> Result<(), StoreError> {
        let size = png.len() as u64;
        // Explorers sharing a cache folder write the same bytes.
        self.store
            .put(key, png, Metadata::new(), PutMode::Overwrite)
            .await?;
        let victims = {
            let mut state = self.state.lock().expect("never poisoned");
            state.touch(key, size);
            state.over(self.max_bytes)
        };
        self.evict(victims).await
    }

    async fn evict(&self, victims: Vec<String>) -> Result<(), StoreError> {
        for key in victims {
            self.store.delete(&key).await?;
        }
        Ok(())
    }

    /// The bytes of the tiles this cache knows of.
    pub(super) fn bytes(&self) -> u64 {
        self.state.lock().expect("never poisoned").bytes
    }
}
