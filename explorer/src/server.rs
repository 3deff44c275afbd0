//! The HTTP side: the viewer page, the world's tiles, and a pyramid's
//! files. Every rule about tiles lives in `mandel_pipeline::explore`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use mandel_core::Colormap;
use mandel_core::explore::{DeepTile, MAX_ZOOM, WorldTile, max_iter_for};
use mandel_core::kernel::CONTRACT_VERSION;
use mandel_core::pyramid;
use mandel_core::viewer::{Source, page, pyramid_files};
use mandel_pipeline::explore::{Renderer, TileService, TileServiceError, tile_url_template};
use mandel_pipeline::pyramid::StoredPyramid;
use mandel_pipeline::{FsStore, JobId, ObjectStore, PipelineError};
use serde::Deserialize;
use tracing::info;

/// What the server needs, decided by `main`.
pub struct Config {
    pub port: u16,
    pub cache: PathBuf,
    /// The cache's limit in bytes.
    pub cache_max: u64,
    pub colormap: Colormap,
    pub renderer: Renderer,
    /// Who renders, for people: "on 2 cores here".
    pub rendered_by: String,
    pub pyramid: Option<PathBuf>,
    /// With `--bucket`: the deployment's store, for its jobs' pyramids.
    pub bucket: Option<Arc<dyn ObjectStore>>,
}

struct App {
    tiles: TileService,
    colormap: Colormap,
    page: String,
    pyramid: Option<PathBuf>,
    bucket: Option<Arc<dyn ObjectStore>>,
    /// Jobs' pyramids opened so far (a pack never changes once written).
    opened: std::sync::Mutex<HashMap<JobId, StoredPyramid>>,
}

impl App {
    /// `job`'s pyramid in the bucket, its footer read once.
    async fn stored_pyramid(
        &self,
        store: &dyn ObjectStore,
        job: &JobId,
    ) -> Result<Option<StoredPyramid>, PipelineError> {
        if let Some(p) = self.opened.lock().expect("unpoisoned").get(job) {
            return Ok(Some(p.clone()));
        }
        let opened = StoredPyramid::open(store, job).await?;
        if let Some(p) = &opened {
            self.opened
                .lock()
                .expect("unpoisoned")
                .insert(job.clone(), p.clone());
        }
        Ok(opened)
    }
}

/// Serves until Ctrl-C.
pub async fn run(config: Config) -> Result<()> {
    let store = FsStore::new(&config.cache)
        .with_context(|| format!("making the tile cache {}", config.cache.display()))?;
    let app = Arc::new(App {
        tiles: TileService::open(
            Arc::new(store),
            config.cache_max,
            config.colormap,
            config.renderer,
        )
        .await
        .with_context(|| format!("reading the tile cache {}", config.cache.display()))?,
        page: page(&Source::live(&tile_url_template(config.colormap))),
        colormap: config.colormap,
        pyramid: config.pyramid,
        bucket: config.bucket,
        opened: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .with_context(|| {
            format!(
                "listening on 127.0.0.1:{} (another program may hold it; --port 0 picks a free one)",
                config.port
            )
        })?;
    let guard = Arc::new(Guard::for_port(listener.local_addr()?.port()));
    let router = Router::new()
        .route("/", get(index))
        .route("/tiles/{z}/{x}/{file}", get(tile))
        .route("/pyramid/", get(pyramid_index))
        .route("/pyramid/{*path}", get(pyramid_file))
        .route("/jobs/{job}/pyramid/", get(bucket_pyramid_index))
        .route("/jobs/{job}/pyramid/{*path}", get(bucket_pyramid_file))
        .with_state(app.clone())
        .layer(middleware::from_fn_with_state(guard, only_our_page));
    let url = format!("http://{}/", listener.local_addr()?);
    println!("{url}");
    eprintln!(
        "mandel-explore: open {url} (tiles cached in {}, at most {}, rendered {}){}",
        config.cache.display(),
        bytesize::ByteSize(config.cache_max).display().iec(),
        config.rendered_by,
        match &app.pyramid {
            Some(dir) => format!("; the pyramid in {} at {url}pyramid/", dir.display()),
            None => String::new(),
        }
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
}

/// Who may talk to the explorer: requests addressed to it (Host is its
/// own address) and, when a page made them (Origin), made by its own page.
///
/// Why: every tile is a render on this machine, or with `--bucket` Lambda
/// money, so any site the user visits could spend both by pointing an
/// `<img>` at `http://127.0.0.1:8000/tiles/…`, and read the answers by DNS
/// rebinding. A rebound name still arrives with its own Host, and a
/// cross-site request with its own Origin.
struct Guard {
    /// `127.0.0.1:<port>` and `localhost:<port>`.
    hosts: [String; 2],
}

impl Guard {
    fn for_port(port: u16) -> Guard {
        Guard {
            hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
        }
    }

    fn is_ours(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Why `req` is refused, if it is.
    fn refusal(&self, req: &Request) -> Option<String> {
        let header = |name| req.headers().get(name).map(|v| v.to_str().unwrap_or("?"));
        let host = header(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
        if !host.is_some_and(|h| self.is_ours(h)) {
            return Some(format!(
                "this explorer answers requests for http://{}/ only, not Host {}",
                self.hosts[0],
                host.unwrap_or("(none)")
            ));
        }
        match header(header::ORIGIN) {
            Some(origin)
                if !origin
                    .strip_prefix("http://")
                    .is_some_and(|h| self.is_ours(h)) =>
            {
                Some(format!(
                    "this explorer answers its own page (http://{}) only, not Origin {origin}",
                    self.hosts[0]
                ))
            }
            _ => None,
        }
    }
}

/// Refuses, with 403 and the reason, what [`Guard`] does not let through.
async fn only_our_page(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    match guard.refusal(&req) {
        Some(why) => refuse(StatusCode::FORBIDDEN, why),
        None => next.run(req).await,
    }
}

async fn index(State(app): State<Arc<App>>) -> Html<String> {
    Html(app.page.clone())
}

/// A tile's query: its budget, and what the page's URL template names
/// besides ([`tile_url_template`]): the colormap and the contract version.
#[derive(Deserialize)]
struct TileQuery {
    iter: Option<u32>,
    cm: Option<String>,
    v: Option<u32>,
}

fn refuse(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// A tile address, its kind decided once: f64 down to `MAX_ZOOM`, deep
/// (perturbation, big-integer `x` and `y`) past it.
enum AnyTile {
    World(WorldTile),
    Deep(DeepTile),
}

impl AnyTile {
    fn parse(z: u32, x: &str, y: &str) -> Result<AnyTile, String> {
        if z > MAX_ZOOM {
            return DeepTile::parse(z, x, y)
                .map(AnyTile::Deep)
                .map_err(|e| e.to_string());
        }
        let number = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("tile x and y must be whole numbers, got {s:?}"))
        };
        WorldTile::new(z, number(x)?, number(y)?)
            .map(AnyTile::World)
            .map_err(|e| e.to_string())
    }
}

/// `GET /tiles/{z}/{x}/{y}.png[?cm=C&v=V&iter=N]`: one tile of the world;
/// without `iter`, the budget of its zoom. Past zoom 45 the tile is deep:
/// `x` and `y` may have any number of digits. A URL naming another
/// colormap or contract than this server's is not here (404); one that
/// names both is kept by browsers for good, one that does not is
/// revalidated.
async fn tile(
    State(app): State<Arc<App>>,
    UrlPath((z, x, file)): UrlPath<(u32, String, String)>,
    Query(query): Query<TileQuery>,
) -> Response {
    let Some(y) = file.strip_suffix(".png") else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("no tile {file}; tiles are <y>.png"),
        );
    };
    let tile = match AnyTile::parse(z, &x, y) {
        Ok(tile) => tile,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let colormap = app.colormap.name();
    if query.cm.as_deref().is_some_and(|cm| cm != colormap) {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "this explorer draws cm={colormap}, not cm={}",
                query.cm.unwrap()
            ),
        );
    }
    if query.v.is_some_and(|v| v != CONTRACT_VERSION) {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "this explorer draws contract v={CONTRACT_VERSION}, not v={}",
                query.v.unwrap()
            ),
        );
    }
    // The bytes are a function of the URL only if it names the colormap
    // and the contract: then keep them.
    let cache_control = if query.cm.is_some() && query.v.is_some() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let max_iter = query.iter.unwrap_or_else(|| max_iter_for(z));
    let started = Instant::now();
    let served = match tile {
        AnyTile::World(tile) => app.tiles.tile(tile, max_iter).await,
        AnyTile::Deep(tile) => app.tiles.deep_tile(tile, max_iter).await,
    };
    match served {
        Ok((png, source)) => {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            if source != mandel_pipeline::explore::Source::Cached {
                info!(z, x, y, max_iter, ms, source = source.name(), "tile served");
            }
            (
                [
                    (header::CONTENT_TYPE, "image/png".to_string()),
                    (header::CACHE_CONTROL, cache_control.to_string()),
                    (
                        header::HeaderName::from_static("x-mandel-tile"),
                        source.name().to_string(),
                    ),
                    (
                        header::HeaderName::from_static("server-timing"),
                        format!("tile;dur={ms:.2}"),
                    ),
                ],
                png,
            )
                .into_response()
        }
        Err(TileServiceError::Tile(e)) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ TileServiceError::Busy { .. }) => {
            let mut response = refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
        Err(e @ TileServiceError::OverLimit { retry_after, .. }) => {
            let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, e.to_string());
            let secs = retry_after.as_secs().max(1).to_string();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_str(&secs).expect("digits"),
            );
            response
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn pyramid_index(State(app): State<Arc<App>>) -> Response {
    serve_file(app.pyramid.as_deref(), "index.html").await
}

async fn pyramid_file(State(app): State<Arc<App>>, UrlPath(path): UrlPath<String>) -> Response {
    serve_file(app.pyramid.as_deref(), &path).await
}

async fn bucket_pyramid_index(
    State(app): State<Arc<App>>,
    UrlPath(job): UrlPath<String>,
) -> Response {
    serve_object(&app, &job, pyramid::VIEWER).await
}

async fn bucket_pyramid_file(
    State(app): State<Arc<App>>,
    UrlPath((job, path)): UrlPath<(String, String)>,
) -> Response {
    serve_object(&app, &job, &path).await
}

/// Whether `path` is plain names (no `..`, nothing hidden), so it stays
/// inside the folder or prefix it is served from.
fn plain(path: &str) -> bool {
    path.split('/').all(|part| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    })
}

fn file_response(path: &str, bytes: impl IntoResponse) -> Response {
    let kind = match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("png") => "image/png",
        Some("dzi") => "application/xml",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, kind)], bytes).into_response()
}

/// A file of the `--pyramid` folder.
async fn serve_file(dir: Option<&Path>, path: &str) -> Response {
    let Some(dir) = dir else {
        return refuse(StatusCode::NOT_FOUND, "no --pyramid was given".into());
    };
    if !plain(path) {
        return refuse(StatusCode::NOT_FOUND, format!("no file {path}"));
    }
    match tokio::fs::read(dir.join(path)).await {
        Ok(bytes) => file_response(path, bytes),
        Err(_) => refuse(StatusCode::NOT_FOUND, format!("no file {path}")),
    }
}

/// A file of a job's pyramid in the bucket: its descriptor and viewer
/// page, made from the picture's size, or a tile read from its pack.
async fn serve_object(app: &App, job: &str, path: &str) -> Response {
    let Some(store) = app.bucket.as_deref() else {
        return refuse(StatusCode::NOT_FOUND, "no --bucket was given".into());
    };
    let Ok(job) = JobId::parse(job) else {
        return refuse(StatusCode::NOT_FOUND, format!("no job {job}"));
    };
    let gone = |e: PipelineError| refuse(StatusCode::BAD_GATEWAY, e.to_string());
    let stored = match app.stored_pyramid(store, &job).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("job {job} has no pyramid (not finished, or not stitched in the cloud)"),
            );
        }
        Err(e) => return gone(e),
    };
    let (width, height) = stored.size();
    if let Some((_, body)) = pyramid_files(width, height)
        .into_iter()
        .find(|(file, _)| *file == path)
    {
        return file_response(path, body);
    }
    let no_file = || refuse(StatusCode::NOT_FOUND, format!("no file {path}"));
    let Some((level, col, row)) = pyramid::parse_tile_path(path) else {
        return no_file();
    };
    match stored.tile(store, level, col, row).await {
        Ok(Some(png)) => file_response(path, png),
        Ok(None) => no_file(),
        Err(e) => gone(e),
    }
}
