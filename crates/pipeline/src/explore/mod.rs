//! The explorer's use case: the picture of one tile of the world
//! ([`mandel_core::explore`]), from the cache when it is there, otherwise
//! rendered and cached for good. A tile's bytes are a function of its
//! params, the contract's version and the colormap, so the cache key names
//! exactly those and an entry never goes stale.
//!
//! Tiles the cache lacks are rendered by a [`Renderer`]: this machine's
//! cores, or the deployed fleet. For the fleet a tile is a one-tile job of
//! the ordinary protocol (its id the params' hash, `params.json` written
//! once, one message on the tiles queue) marked `explore`, so the worker
//! stores the blob and stops there: no row marker, no stitch. The blob
//! stays in the bucket, where every explorer of the deployment finds it.
//!
//! The local cache is bounded, least recently served first out
//! ([`cache`]).

mod cache;
mod spending;

pub use cache::DEFAULT_CACHE_MAX;
use cache::TileCache;
pub use spending::{OverLimit, SpendingLimit};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, WeakShared};
use mandel_core::explore::{self, DeepTile, Region, RegionOrbit, TileError, WorldTile};
use mandel_core::png::EncodingError;
use mandel_core::{Colormap, RenderParams, TileId, kernel};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;
use tracing::warn;

use crate::error::PipelineError;
use crate::job::{JobId, TileMessage};
use crate::queue::Queue;
use crate::records::write_params;
use crate::store::{ObjectStore, StoreError};
use crate::tiles;

/// Where a served tile came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The local cache had it.
    Cached,
    /// Rendered on this machine for this request.
    Rendered,
    /// The fleet's bucket had its blob already.
    Bucket,
    /// Rendered by the fleet for this request.
    Fleet,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Cached => "cached",
            Source::Rendered => "rendered",
            Source::Bucket => "bucket",
            Source::Fleet => "fleet",
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
    #[error("asking the fleet for job {job}: {source}")]
    Fleet {
        job: JobId,
        #[source]
        source: PipelineError,
    },
    #[error(
        "no worker stored tile job {job} within {} s; are the worker functions deployed and running?",
        waited.as_secs()
    )]
    Timeout { job: JobId, waited: Duration },
    /// The fleet's tiles of the last hour cost as much as the explorer may
    /// spend: ask again after `retry_after`.
    #[error(
        "the fleet's tiles of the last hour cost ${spent:.4}, and this one would pass this \
         explorer's limit of ${per_hour:.4} an hour (--max-cost-per-hour); ask again in {} s",
        retry_after.as_secs()
    )]
    OverLimit {
        per_hour: f64,
        spent: f64,
        retry_after: Duration,
    },
    /// As many renders are pending as the server takes: ask again soon.
    #[error("{pending} tile renders are pending, as many as this explorer takes; ask again soon")]
    Busy { pending: usize },
    #[error("encoding the tile failed: {0}")]
    Encode(String),
    /// The error of a render several requests waited for.
    #[error(transparent)]
    Shared(Arc<TileServiceError>),
}

/// Where the tiles the cache lacks are rendered.
#[derive(Debug)]
pub enum Renderer {
    /// On this machine, one tile per core at a time: a burst of requests
    /// queues here rather than sharing the cores, so the first tiles
    /// arrive first.
    Local { cores: Semaphore },
    /// By the deployed workers through `tiles_queue`; blobs land in
    /// `store`. A tile not stored within `timeout` is an error; one that
    /// would pass the spending `limit` is refused.
    Fleet {
        store: Arc<dyn ObjectStore>,
        tiles_queue: Arc<dyn Queue>,
        timeout: Duration,
        limit: Arc<SpendingLimit>,
    },
}

impl Renderer {
    /// This machine's cores, `workers` tiles at once.
    pub fn local(workers: usize) -> Self {
        Renderer::Local {
            cores: Semaphore::new(workers.max(1)),
        }
    }
}

/// Serves world tiles' pictures: cache, else render.
///
/// Concurrent requests for one tile share one render; a render whose every
/// request has been dropped (the browser panned on) stops between two
/// bands, so the core limit holds for renders, not just for requests.
pub struct TileService {
    inner: Arc<Inner>,
    /// Renders under way, by cache key. Weak: a render nobody waits for
    /// any more is dropped, and so stopped.
    inflight: Mutex<HashMap<String, WeakShared<Pending>>>,
    /// The most renders pending at once; more are refused (`Busy`).
    max_pending: usize,
}

/// Renders pending at once by default: a screenful of tiles and the next
/// zoom step's, several times over; a flood beyond it is refused rather
/// than queued without end.
pub const MAX_PENDING: usize = 256;

/// A render several requests may wait for.
type Pending = BoxFuture<'static, Result<(Bytes, Source), Arc<TileServiceError>>>;

struct Inner {
    cache: TileCache,
    colormap: Colormap,
    renderer: Renderer,
    renders: Arc<RenderCounts>,
    /// Deep tiles' region orbits, by region and budget, the most recently
    /// used kept: each computed once however many tiles ask at once.
    regions: Mutex<lru::LruCache<(Region, u32), OrbitCell>>,
}

/// A region orbit being computed, or computed.
type OrbitCell = Arc<OnceCell<Arc<RegionOrbit>>>;

/// Region orbits kept: a screenful of deep tiles needs one to four.
const REGIONS_KEPT: usize = 64;

/// What the local renders did, for tests and logs.
#[derive(Debug, Default)]
pub struct RenderCounts {
    /// Renders started on this machine.
    pub started: AtomicUsize,
    /// Renders still running on a core.
    pub running: AtomicUsize,
    /// Renders stopped because no request waited for them any more.
    pub stopped: AtomicUsize,
}

/// Sets its flag when dropped: the render's request went away.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The cache key of a tile's picture: the contract's version, the
/// colormap and the params' content hash (its one-tile job's id).
pub fn cache_key(params: &RenderParams, colormap: Colormap) -> String {
    format!(
        "tiles/v{}/{}/{}.png",
        kernel::CONTRACT_VERSION,
        colormap.name(),
        JobId::for_params(params)
    )
}

/// The URL template of the world's tiles as `colormap` draws them: the
/// page fills in `{z}`, `{x}`, `{y}` and adds `&iter=N`. It names all a
/// tile's bytes depend on, as [`cache_key`] does (the contract's version,
/// the colormap, the tile and its budget), so a browser may keep a tile
/// for good: another colormap or contract is another URL.
pub fn tile_url_template(colormap: Colormap) -> String {
    format!(
        "/tiles/{{z}}/{{x}}/{{y}}.png?cm={}&v={}",
        colormap.name(),
        kernel::CONTRACT_VERSION
    )
}

/// The only tile of a world tile's one-tile job.
const ONLY: TileId = TileId { row: 0, col: 0 };

impl TileService {
    /// Tiles coloured with `colormap`, cached in `cache`, rendered by
    /// `renderer`.
    /// The cache has no size limit ([`TileService::open`] sets one).
    pub fn new(cache: Arc<dyn ObjectStore>, colormap: Colormap, renderer: Renderer) -> Self {
        TileService::with_cache(TileCache::unbounded(cache), colormap, renderer)
    }

    /// Tiles cached in `cache` up to `cache_max` bytes, the least recently
    /// served evicted first (what the cache holds already counts).
    pub async fn open(
        cache: Arc<dyn ObjectStore>,
        cache_max: u64,
        colormap: Colormap,
        renderer: Renderer,
    ) -> Result<Self, StoreError> {
        let cache = TileCache::open(cache, cache_max).await?;
        Ok(TileService::with_cache(cache, colormap, renderer))
    }

    fn with_cache(cache: TileCache, colormap: Colormap, renderer: Renderer) -> Self {
        TileService {
            inner: Arc::new(Inner {
                cache,
                colormap,
                renderer,
                renders: Arc::default(),
                regions: Mutex::new(lru::LruCache::new(
                    std::num::NonZeroUsize::new(REGIONS_KEPT).expect("not zero"),
                )),
            }),
            inflight: Mutex::default(),
            max_pending: MAX_PENDING,
        }
    }

    /// At most `n` renders pending at once (at least one).
    pub fn with_max_pending(self, n: usize) -> Self {
        TileService {
            max_pending: n.max(1),
            ..self
        }
    }

    /// What the local renders did so far.
    pub fn renders(&self) -> &RenderCounts {
        &self.inner.renders
    }

    /// The bytes of the cached tiles this service knows of.
    pub fn cache_bytes(&self) -> u64 {
        self.inner.cache.bytes()
    }

    /// The PNG of `tile` at `max_iter` iterations, and where it came from.
    /// A request for a tile being rendered for another waits for that
    /// render.
    pub async fn tile(
        &self,
        tile: WorldTile,
        max_iter: u32,
    ) -> Result<(Bytes, Source), TileServiceError> {
        let params = tile.params(max_iter)?;
        let key = cache_key(&params, self.inner.colormap);
        self.serve(key, move |inner, key| {
            async move { inner.render(Wanted::Flat(params), max_iter, key).await }.boxed()
        })
        .await
    }

    /// The PNG of a deep tile at `max_iter` iterations (in
    /// 1..=[`MAX_TILE_BUDGET`](explore::MAX_TILE_BUDGET)),
    /// rendered by perturbation from its region's orbit, which is computed
    /// once for all the region's tiles; as [`TileService::tile`] otherwise.
    pub async fn deep_tile(
        &self,
        tile: DeepTile,
        max_iter: u32,
    ) -> Result<(Bytes, Source), TileServiceError> {
        if !(1..=explore::MAX_TILE_BUDGET).contains(&max_iter) {
            return Err(TileError::DeepMaxIter(max_iter).into());
        }
        let fleet = matches!(self.inner.renderer, Renderer::Fleet { .. });
        let key = deep_cache_key(&tile, max_iter, self.inner.colormap, fleet);
        self.serve(key, move |inner, key| {
            async move { inner.render(Wanted::Deep(tile), max_iter, key).await }.boxed()
        })
        .await
    }

    /// The cached PNG at `key`, else the one `render` makes (and caches),
    /// shared by every request for `key` while it runs.
    async fn serve(
        &self,
        key: String,
        render: impl FnOnce(
            Arc<Inner>,
            String,
        ) -> BoxFuture<'static, Result<(Bytes, Source), TileServiceError>>,
    ) -> Result<(Bytes, Source), TileServiceError> {
        if let Some(png) = self.inner.cache.get(&key).await? {
            return Ok((png, Source::Cached));
        }
        let pending = {
            let mut inflight = self.inflight.lock().expect("never poisoned");
            inflight.retain(|_, render| render.upgrade().is_some());
            match inflight.get(&key).and_then(WeakShared::upgrade) {
                Some(render) => render,
                None if inflight.len() >= self.max_pending => {
                    return Err(TileServiceError::Busy {
                        pending: inflight.len(),
                    });
                }
                None => {
                    let rendering = render(Arc::clone(&self.inner), key.clone());
                    let render = async move { rendering.await.map_err(Arc::new) }
                        .boxed()
                        .shared();
                    let weak = render.downgrade().expect("not polled yet");
                    inflight.insert(key, weak);
                    render
                }
            }
        };
        // The one waiter gets the error itself; several share it.
        pending
            .await
            .map_err(|e| Arc::try_unwrap(e).unwrap_or_else(TileServiceError::Shared))
    }
}

/// The cache key of a deep tile's picture: the deep tiles' version, the
/// contract's, the colormap, the zoom and a hash of the address and budget;
/// `fleet` tiles (one-tile jobs, each from its own centre's orbit:
/// [`DeepTile::job`]) apart from those rendered here (from their region's
/// orbit), as their counts may differ in a pixel or two.
pub fn deep_cache_key(tile: &DeepTile, max_iter: u32, colormap: Colormap, fleet: bool) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{tile}@{max_iter}").as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "tiles/deep{}-v{}-c{}/{}/{}-{hex}.png",
        if fleet { "-job" } else { "" },
        explore::DEEP_TILES_VERSION,
        kernel::CONTRACT_VERSION,
        colormap.name(),
        tile.zoom()
    )
}

/// A tile to render: an f64 one-tile job, or a deep tile.
enum Wanted {
    Flat(RenderParams),
    Deep(DeepTile),
}

impl Inner {
    /// Renders the tile (here or on the fleet), encodes it and caches it.
    /// Here, a deep tile renders from its region's orbit; on the fleet,
    /// every tile is a one-tile job (a deep one: [`DeepTile::job`]).
    async fn render(
        &self,
        wanted: Wanted,
        max_iter: u32,
        key: String,
    ) -> Result<(Bytes, Source), TileServiceError> {
        let deep = matches!(wanted, Wanted::Deep(_));
        let (counts, source) = match &self.renderer {
            Renderer::Local { cores } => {
                let _permit = cores.acquire().await.expect("never closed");
                let counts = match wanted {
                    Wanted::Flat(params) => {
                        self.render_here(move |stop| kernel::render_tile_until(&params, ONLY, stop))
                            .await
                    }
                    Wanted::Deep(tile) => {
                        let orbit = self.region_orbit(tile.region(), max_iter).await;
                        self.render_here(move |stop| {
                            let (counts, _) = tile.render_until(max_iter, &orbit, stop)?;
                            Some(counts)
                        })
                        .await
                    }
                };
                (counts, Source::Rendered)
            }
            Renderer::Fleet {
                store,
                tiles_queue,
                timeout,
                limit,
            } => {
                let params = match wanted {
                    Wanted::Flat(params) => params,
                    Wanted::Deep(tile) => tile.job(max_iter),
                };
                from_fleet(&**store, &**tiles_queue, *timeout, limit, &params).await?
            }
        };
        let png = self
            .encode_and_cache(&key, move |colormap| {
                if deep {
                    explore::deep_tile_png(&counts, max_iter, colormap)
                } else {
                    explore::tile_png(&counts, max_iter, colormap)
                }
            })
            .await?;
        Ok((png, source))
    }

    /// Runs `render` on a blocking thread with a stop flag set once
    /// nobody waits for it (this future dropped: every request gone), so
    /// it stops between two bands and frees its core; counted in
    /// `renders`.
    async fn render_here<T: Send + 'static>(
        &self,
        render: impl FnOnce(&AtomicBool) -> Option<T> + Send + 'static,
    ) -> T {
        let stop = Arc::new(AtomicBool::new(false));
        let _stop = StopOnDrop(Arc::clone(&stop));
        let renders = Arc::clone(&self.renders);
        renders.started.fetch_add(1, Ordering::Relaxed);
        renders.running.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let out = render(&stop);
            if out.is_none() {
                renders.stopped.fetch_add(1, Ordering::Relaxed);
            }
            renders.running.fetch_sub(1, Ordering::Relaxed);
            out
        })
        .await
        .expect("rendering a tile panicked")
        .expect("a render stops only once nobody waits for it")
    }

    /// The tile's PNG, `encode`d in this service's colormap, cached at
    /// `key`.
    async fn encode_and_cache(
        &self,
        key: &str,
        encode: impl FnOnce(Colormap) -> Result<Vec<u8>, EncodingError> + Send + 'static,
    ) -> Result<Bytes, TileServiceError> {
        let colormap = self.colormap;
        let png = tokio::task::spawn_blocking(move || encode(colormap))
            .await
            .expect("encoding a tile panicked")
            .map_err(|e| TileServiceError::Encode(e.to_string()))?;
        let png = Bytes::from(png);
        self.cache.put(key, png.clone()).await?;
        Ok(png)
    }

    /// `region`'s orbit to `max_iter`, computed once (on a blocking
    /// thread) for every tile that asks, the last [`REGIONS_KEPT`] kept.
    async fn region_orbit(&self, region: Region, max_iter: u32) -> Arc<RegionOrbit> {
        let cell = {
            let mut regions = self.regions.lock().expect("never poisoned");
            Arc::clone(regions.get_or_insert((region.clone(), max_iter), Default::default))
        };
        Arc::clone(
            cell.get_or_init(|| async move {
                tokio::task::spawn_blocking(move || Arc::new(region.orbit(max_iter)))
                    .await
                    .expect("a region orbit panicked")
            })
            .await,
        )
    }
}

/// The tile's counts from the fleet: its blob if the bucket has it,
/// otherwise its one-tile job submitted and the blob awaited.
async fn from_fleet(
    store: &dyn ObjectStore,
    tiles_queue: &dyn Queue,
    timeout: Duration,
    limit: &Arc<SpendingLimit>,
    params: &RenderParams,
) -> Result<(Vec<u32>, Source), TileServiceError> {
    let job = JobId::for_params(params);
    let fleet = |source| TileServiceError::Fleet {
        job: job.clone(),
        source,
    };
    if let Some(counts) = stored_counts(store, &job, params).await.map_err(fleet)? {
        return Ok((counts, Source::Bucket));
    }
    // Priced (at its worst case: no rendering here) and charged before it
    // is sent; a stored tile above cost nothing.
    if limit.is_limited() {
        limit
            .charge(limit.price(params))
            .map_err(|o| TileServiceError::OverLimit {
                per_hour: o.per_hour,
                spent: o.spent,
                retry_after: o.retry_after,
            })?;
    }
    write_params(store, &job, params).await.map_err(fleet)?;
    let started = Instant::now();
    // A deep tile's job computes its reference orbit first, on a worker,
    // and stores it once for the tile, as every deep job does.
    if params.as_deep().is_some() {
        let reference = crate::reference::await_reference(store, tiles_queue, &job);
        match tokio::time::timeout(timeout, reference).await {
            Ok(done) => done.map_err(fleet)?,
            Err(_) => {
                return Err(TileServiceError::Timeout {
                    job,
                    waited: started.elapsed(),
                });
            }
        };
    }
    let message = TileMessage {
        explore: true,
        ..TileMessage::new(job.clone(), ONLY)
    };
    let body = serde_json::to_string(&message).expect("a message serialises");
    tiles_queue
        .send_batch(&[body])
        .await
        .map_err(|e| fleet(e.into()))?;
    // A Lambda worker takes tens of milliseconds for a tile once it has
    // the message; poll often at first, then every 200 ms.
    let mut delay = Duration::from_millis(20);
    loop {
        tokio::time::sleep(delay).await;
        if let Some(counts) = stored_counts(store, &job, params).await.map_err(fleet)? {
            return Ok((counts, Source::Fleet));
        }
        if started.elapsed() >= timeout {
            return Err(TileServiceError::Timeout {
                job,
                waited: started.elapsed(),
            });
        }
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// The tile's counts if its blob is stored whole and sound (one listing,
/// one GET); a damaged blob reads as missing, so it is rendered again.
async fn stored_counts(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
) -> Result<Option<Vec<u32>>, PipelineError> {
    let listed = store.list(&job.tile_prefix(ONLY)).await?;
    let Some(stored) = tiles::whole_tiles(&listed, job, params).next() else {
        return Ok(None);
    };
    let object = match store.get(&stored.key).await {
        Ok(object) => object,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut counts = vec![0; params.pixels_per_tile()];
    let width = params.count_width();
    if let Some(problem) = tiles::check_blob(&object, stored.range, width, &mut counts) {
        warn!(%job, problem, "stored tile is damaged; asking for it again");
        return Ok(None);
    }
    Ok(Some(counts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Metadata, PutMode};
    use crate::{MemoryQueue, MemoryStore, TileWorker};

    fn direct(tile: WorldTile, max_iter: u32) -> Bytes {
        let counts = explore::render(&tile.params(max_iter).unwrap());
        Bytes::from(explore::tile_png(&counts, max_iter, Colormap::TwilightShifted).unwrap())
    }

    /// A deep tile (past f64) is rendered here from its region's orbit,
    /// cached under its own key, then served from the cache: the same
    /// bytes as the tile rendered directly.
    #[tokio::test]
    async fn a_deep_tile_is_rendered_from_its_regions_orbit_then_cached() {
        let cache = Arc::new(MemoryStore::new());
        let service =
            TileService::new(cache.clone(), Colormap::TwilightShifted, Renderer::local(2));
        let tile = seahorse_deep_tile();
        let (png, source) = service.deep_tile(tile.clone(), 3000).await.unwrap();
        assert_eq!(source, Source::Rendered);
        let orbit = tile.region().orbit(3000);
        let (counts, _) = tile.render(3000, &orbit);
        let direct = explore::deep_tile_png(&counts, 3000, Colormap::TwilightShifted).unwrap();
        assert_eq!(png, direct);
        let (again, source) = service.deep_tile(tile.clone(), 3000).await.unwrap();
        assert_eq!((again, source), (png, Source::Cached));
        let keys = cache.list("tiles/").await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys[0].key,
            deep_cache_key(&tile, 3000, Colormap::TwilightShifted, false)
        );
        assert!(matches!(
            service.deep_tile(tile.clone(), 0).await,
            Err(TileServiceError::Tile(TileError::DeepMaxIter(0)))
        ));
    }

    /// With the fleet, a deep tile is a deep job of one tile: its reference
    /// orbit computed and stored by a worker, then its tile rendered from
    /// it; the explorer's bytes are those of that job's counts, cached
    /// apart from tiles rendered here (whose orbit is their region's).
    #[tokio::test(flavor = "multi_thread")]
    async fn the_fleet_renders_a_deep_tile_as_a_one_tile_deep_job() {
        let (store, tiles, _stitch) = fleet();
        let cache = Arc::new(MemoryStore::new());
        let service = TileService::new(
            cache.clone(),
            Colormap::TwilightShifted,
            fleet_renderer(&store, &tiles),
        );
        let tile = seahorse_deep_tile();
        let (png, source) = service.deep_tile(tile.clone(), 3000).await.unwrap();
        assert_eq!(source, Source::Fleet);
        let params = tile.job(3000);
        let job = JobId::for_params(&params);
        assert!(
            crate::records::read_reference_manifest(&*store, &job)
                .await
                .unwrap()
                .is_some(),
            "the tile's orbit is stored in the bucket"
        );
        let scratch = tempfile::tempdir().unwrap();
        let embedded = crate::render_embedded(&params, 1, scratch.path(), None, None, |_| {})
            .await
            .unwrap();
        let npy = embedded.counts_npy().await.unwrap();
        let counts = mandel_core::CountsImage::from_npy(&npy).unwrap();
        let direct =
            explore::deep_tile_png(counts.data(), 3000, Colormap::TwilightShifted).unwrap();
        assert_eq!(png, direct, "the one-tile deep job's counts");
        let keys = cache.list("tiles/").await.unwrap();
        assert_eq!(
            keys[0].key,
            deep_cache_key(&tile, 3000, Colormap::TwilightShifted, true)
        );
        assert!(keys[0].key.starts_with("tiles/deep-job-v"));
    }

    /// The cache keeps to its limit, the least recently served tile out
    /// first; an evicted tile is rendered again; a cache opened over a
    /// fuller folder evicts down to its limit at once.
    #[tokio::test]
    async fn the_cache_keeps_to_its_limit_evicting_the_least_recently_served() {
        let tiles: Vec<WorldTile> = [(0, 0), (1, 0), (2, 1), (3, 2)]
            .iter()
            .map(|&(x, y)| WorldTile::new(2, x, y).unwrap())
            .collect();
        let size = |t: WorldTile| direct(t, 200).len() as u64;
        let (a, b, c, d) = (tiles[0], tiles[1], tiles[2], tiles[3]);
        let max = size(a) + size(b) + size(c);
        let store = Arc::new(MemoryStore::new());
        let service = TileService::open(
            store.clone(),
            max,
            Colormap::TwilightShifted,
            Renderer::local(1),
        )
        .await
        .unwrap();
        for t in [a, b, c] {
            assert_eq!(service.tile(t, 200).await.unwrap().1, Source::Rendered);
        }
        assert_eq!(service.cache_bytes(), max, "three tiles fit");
        // a is served again: b is now the least recently served.
        assert_eq!(service.tile(a, 200).await.unwrap().1, Source::Cached);
        assert_eq!(service.tile(d, 200).await.unwrap().1, Source::Rendered);
        let key = |t: WorldTile| cache_key(&t.params(200).unwrap(), Colormap::TwilightShifted);
        let held: Vec<String> = store
            .list("tiles/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert!(!held.contains(&key(b)), "b went first");
        assert!(held.contains(&key(a)) && held.contains(&key(d)));
        let stored: u64 = store
            .list("tiles/")
            .await
            .unwrap()
            .iter()
            .map(|m| m.size)
            .sum();
        assert!(stored <= max, "{stored} bytes held, limit {max}");
        assert_eq!(stored, service.cache_bytes());
        // An evicted tile is rendered again, the same bytes.
        let (again, source) = service.tile(b, 200).await.unwrap();
        assert_eq!((again, source), (direct(b, 200), Source::Rendered));

        // Opened again with room for one tile: evicted down at once.
        let small = TileService::open(
            store.clone(),
            size(b),
            Colormap::TwilightShifted,
            Renderer::local(1),
        )
        .await
        .unwrap();
        let left = store.list("tiles/").await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(small.cache_bytes(), left[0].size);
    }

    #[tokio::test]
    async fn a_tile_is_rendered_once_then_served_from_the_cache() {
        let cache = Arc::new(MemoryStore::new());
        let service =
            TileService::new(cache.clone(), Colormap::TwilightShifted, Renderer::local(2));
        let tile = WorldTile::new(3, 2, 3).unwrap();
        let (first, source) = service.tile(tile, 200).await.unwrap();
        assert_eq!(source, Source::Rendered);
        let (again, source) = service.tile(tile, 200).await.unwrap();
        assert_eq!((again.clone(), source), (first.clone(), Source::Cached));
        // The picture is the kernel's counts on the stable scale.
        assert_eq!(first, direct(tile, 200));
        // Another budget or colormap is another entry.
        let (other, source) = service.tile(tile, 201).await.unwrap();
        assert_eq!(source, Source::Rendered);
        assert_ne!(other, first);
        let params = tile.params(200).unwrap();
        assert_ne!(
            cache_key(&params, Colormap::TwilightShifted),
            cache_key(&params, Colormap::Viridis)
        );
        assert_eq!(cache.list("tiles/").await.unwrap().len(), 2);
    }

    /// Inside the period-3 bulb at zoom 6: every pixel iterates its whole
    /// budget (no shortcut proves it inside), 4.3 G iterations at 65535,
    /// about a second on a core here.
    fn slow_tile() -> WorldTile {
        WorldTile::new(6, 38, 20).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_one_tile_share_one_render() {
        let service = TileService::new(
            Arc::new(MemoryStore::new()),
            Colormap::TwilightShifted,
            Renderer::local(4),
        );
        let tile = WorldTile::new(10, 450, 483).unwrap();
        let (a, b, c) = tokio::join!(
            service.tile(tile, 2000),
            service.tile(tile, 2000),
            service.tile(tile, 2000)
        );
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert_eq!(service.renders().started.load(Ordering::Relaxed), 1);
        assert_eq!(a, (direct(tile, 2000), Source::Rendered));
        assert_eq!((b, c), (a.clone(), a));
        // Another budget is another render.
        service.tile(tile, 2001).await.unwrap();
        assert_eq!(service.renders().started.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_render_stops_when_its_request_is_dropped() {
        let cache = Arc::new(MemoryStore::new());
        let service = TileService::new(cache.clone(), Colormap::Gray, Renderer::local(1));
        let renders = || {
            let r = service.renders();
            let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
            (n(&r.started), n(&r.running), n(&r.stopped))
        };
        // The request goes away while its tile is rendering.
        let request =
            tokio::time::timeout(Duration::from_millis(100), service.tile(slow_tile(), 65535));
        assert!(request.await.is_err(), "the slow tile finished in 100 ms");
        // The render stops at its next band instead of running on.
        let mut waited = 0;
        while renders().1 > 0 && waited < 1000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert_eq!(renders(), (1, 0, 1), "(started, running, stopped)");
        assert!(cache.list("").await.unwrap().is_empty());
        // Asked again, it is rendered afresh (nothing half-done is kept).
        let tile = WorldTile::new(6, 38, 20).unwrap();
        let (png, source) = service.tile(tile, 300).await.unwrap();
        assert_eq!(source, Source::Rendered);
        let counts = explore::render(&tile.params(300).unwrap());
        assert_eq!(
            png,
            explore::tile_png(&counts, 300, Colormap::Gray).unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn renders_beyond_the_pending_limit_are_refused_as_busy() {
        let service = Arc::new(
            TileService::new(
                Arc::new(MemoryStore::new()),
                Colormap::Gray,
                Renderer::local(1),
            )
            .with_max_pending(2),
        );
        // Two slow renders pending (one on the core, one waiting for it).
        let pending: Vec<_> = [65535, 65534]
            .into_iter()
            .map(|max_iter| {
                let service = Arc::clone(&service);
                tokio::spawn(async move { service.tile(slow_tile(), max_iter).await })
            })
            .collect();
        while service.renders().started.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A third tile is refused at once; a request for a pending tile
        // still joins its render.
        let third = service.tile(WorldTile::new(0, 0, 0).unwrap(), 100).await;
        assert!(
            matches!(third, Err(TileServiceError::Busy { pending: 2 })),
            "{third:?}"
        );
        let joined =
            tokio::time::timeout(Duration::from_millis(10), service.tile(slow_tile(), 65535)).await;
        assert!(joined.is_err(), "joining waits for the render");
        // Once the pending renders are gone, tiles are taken again.
        for p in pending {
            p.abort();
            let _ = p.await;
        }
        let (_, source) = service
            .tile(WorldTile::new(0, 0, 0).unwrap(), 100)
            .await
            .unwrap();
        assert_eq!(source, Source::Rendered);
    }

    #[tokio::test]
    async fn a_bad_budget_is_refused_with_its_reason() {
        let service = TileService::new(
            Arc::new(MemoryStore::new()),
            Colormap::Gray,
            Renderer::local(1),
        );
        let tile = WorldTile::new(0, 0, 0).unwrap();
        let err = service.tile(tile, 0).await.unwrap_err();
        assert!(err.to_string().contains("max_iter"), "{err}");
    }

    /// The fleet of [`fleet`], without a spending limit, 30 s a tile.
    fn fleet_renderer(store: &Arc<MemoryStore>, tiles: &Arc<MemoryQueue>) -> Renderer {
        Renderer::Fleet {
            store: store.clone(),
            tiles_queue: tiles.clone(),
            timeout: Duration::from_secs(30),
            limit: Arc::new(SpendingLimit::unlimited()),
        }
    }

    /// Zoom 2^60 on the path to the seahorse valley's spiral.
    fn seahorse_deep_tile() -> DeepTile {
        let view = mandel_core::deep::DeepView::parse(
            "-0.743643887037158704752191506114774",
            "0.131825904205311970493132056385139",
            "1",
        )
        .unwrap();
        DeepTile::at(&view, 60).unwrap()
    }

    /// A fleet of one worker on in-memory queues, as the poller runs it.
    fn fleet() -> (Arc<MemoryStore>, Arc<MemoryQueue>, Arc<MemoryQueue>) {
        let store = Arc::new(MemoryStore::new());
        let tiles = Arc::new(MemoryQueue::new(Duration::from_secs(30)));
        let stitch = Arc::new(MemoryQueue::new(Duration::from_secs(30)));
        let worker = TileWorker::new(store.clone(), stitch.clone(), "w");
        let queue = tiles.clone();
        tokio::spawn(async move {
            loop {
                let batch = queue.receive(10, Duration::from_millis(50)).await.unwrap();
                let outcome = worker.handle_batch(&batch, None).await;
                let failed = outcome.failed_ids();
                let done: Vec<String> = batch
                    .iter()
                    .filter(|d| !failed.contains(&d.message_id))
                    .map(|d| d.receipt.clone())
                    .collect();
                queue.delete(&done).await.unwrap();
            }
        });
        (store, tiles, stitch)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_fleet_renders_a_missing_tile_once_and_stores_only_the_tile() {
        let (store, tiles, stitch) = fleet();
        let renderer = || fleet_renderer(&store, &tiles);
        let service = TileService::new(
            Arc::new(MemoryStore::new()),
            Colormap::TwilightShifted,
            renderer(),
        );
        let tile = WorldTile::new(10, 450, 483).unwrap();
        let (png, source) = service.tile(tile, 2000).await.unwrap();
        assert_eq!(source, Source::Fleet);
        assert_eq!(png, direct(tile, 2000));
        // The one-tile job holds its params and its blob, and nothing
        // else: no row marker, no stitch message.
        let job = JobId::for_params(&tile.params(2000).unwrap());
        let keys: Vec<String> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(keys.contains(&job.params_key()));
        assert!(keys.iter().any(|k| k.starts_with(&job.tile_prefix(ONLY))));
        assert!(stitch.receive(10, Duration::ZERO).await.unwrap().is_empty());
        // Another explorer, with an empty cache of its own, finds the blob.
        let other = TileService::new(
            Arc::new(MemoryStore::new()),
            Colormap::TwilightShifted,
            renderer(),
        );
        assert_eq!(other.tile(tile, 2000).await.unwrap(), (png, Source::Bucket));
    }

    /// A holder of the client policy plants another tile's params under a
    /// popular tile's job id and sends its message: the worker refuses to
    /// render them, and the explorer refuses to serve the job, so no
    /// explorer of the deployment ever caches the wrong tile.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_poisoned_params_json_is_refused_and_never_served() {
        let (store, tiles, stitch) = fleet();
        let tile = WorldTile::new(10, 450, 483).unwrap();
        let job = JobId::for_params(&tile.params(2000).unwrap());
        let planted = WorldTile::new(10, 0, 0).unwrap().params(2000).unwrap();
        store
            .put(
                &job.params_key(),
                Bytes::from(planted.canonical_json()),
                Metadata::new(),
                PutMode::Create,
            )
            .await
            .unwrap();
        let worker = TileWorker::new(store.clone(), stitch.clone(), "poisoned");
        let message = serde_json::to_string(&TileMessage::new(job.clone(), ONLY)).unwrap();
        let delivery = crate::Delivery {
            message_id: "m".into(),
            receipt: "r".into(),
            body: message,
            receive_count: 1,
        };
        let outcome = worker.handle_batch(&[delivery], None).await;
        let crate::TileOutcome::Failed { reason } = &outcome.messages[0].1 else {
            panic!("the planted params were rendered: {outcome:?}");
        };
        let hashed = JobId::for_params(&planted);
        assert!(
            reason.contains(&format!("holds the params of job {hashed}")),
            "{reason}"
        );
        assert!(store.list(&job.tile_prefix(ONLY)).await.unwrap().is_empty());

        let cache = Arc::new(MemoryStore::new());
        let service = TileService::new(
            cache.clone(),
            Colormap::TwilightShifted,
            fleet_renderer(&store, &tiles),
        );
        assert!(service.tile(tile, 2000).await.is_err());
        assert!(store.list(&job.tile_prefix(ONLY)).await.unwrap().is_empty());
        assert!(
            cache.list("").await.unwrap().is_empty(),
            "a wrong tile was cached"
        );
    }

    /// With a spending limit, each tile the bucket lacks is priced by the
    /// cost model and charged before its job is sent; one that would pass
    /// the limit is refused (nothing sent, nothing written), while tiles
    /// the bucket has cost nothing and are still served.
    #[tokio::test(flavor = "multi_thread")]
    async fn fleet_tiles_past_the_spending_limit_are_refused_unsent() {
        let (store, tiles, _stitch) = fleet();
        let (a, b) = (
            WorldTile::new(10, 450, 483).unwrap(),
            WorldTile::new(10, 451, 483).unwrap(),
        );
        let deployment = crate::Deployment::defaults("us-east-1");
        let probe = SpendingLimit::per_hour(1.0, deployment.clone());
        let price = |t: WorldTile| probe.price(&t.params(2000).unwrap());
        assert!(price(a) > 0.0 && price(b) > 0.0);
        let limit = Arc::new(SpendingLimit::per_hour(
            price(a) + price(b) / 2.0,
            deployment,
        ));
        let service = |limit: &Arc<SpendingLimit>| {
            TileService::new(
                Arc::new(MemoryStore::new()),
                Colormap::TwilightShifted,
                Renderer::Fleet {
                    store: store.clone(),
                    tiles_queue: tiles.clone(),
                    timeout: Duration::from_secs(30),
                    limit: Arc::clone(limit),
                },
            )
        };
        let first = service(&limit);
        assert_eq!(first.tile(a, 2000).await.unwrap().1, Source::Fleet);
        let err = first.tile(b, 2000).await.unwrap_err();
        let TileServiceError::OverLimit { retry_after, .. } = &err else {
            panic!("{err}")
        };
        assert!(*retry_after <= Duration::from_secs(3600));
        assert!(err.to_string().contains("--max-cost-per-hour"), "{err}");
        let job_b = JobId::for_params(&b.params(2000).unwrap());
        assert!(
            store.list(&job_b.prefix()).await.unwrap().is_empty(),
            "b sent"
        );
        // Another explorer on the same limit: the stored tile is free.
        assert_eq!(
            service(&limit).tile(a, 2000).await.unwrap().1,
            Source::Bucket
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_workers_a_tile_request_times_out_saying_so() {
        let service = TileService::new(
            Arc::new(MemoryStore::new()),
            Colormap::Gray,
            Renderer::Fleet {
                store: Arc::new(MemoryStore::new()),
                tiles_queue: Arc::new(MemoryQueue::new(Duration::from_secs(30))),
                timeout: Duration::from_secs(5),
                limit: Arc::new(SpendingLimit::unlimited()),
            },
        );
        let err = service
            .tile(WorldTile::new(1, 0, 1).unwrap(), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, TileServiceError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("within 5 s"), "{err}");
    }
}
