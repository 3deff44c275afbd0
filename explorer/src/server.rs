//! The HTTP side: the viewer page, the world's tiles, and a pyramid's
//! files. Every rule about tiles lives in `mandel_pipeline::explore`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use mandel_core::Colormap;
use mandel_core::explore::{WorldTile, max_iter_for};
use mandel_core::viewer::{Source, page};
use mandel_pipeline::explore::{Renderer, TileService, TileServiceError};
use mandel_pipeline::{FsStore, JobId, ObjectStore, StoreError};
use serde::Deserialize;
use tracing::info;

/// What the server needs, decided by `main`.
pub struct Config {
    pub port: u16,
    pub cache: PathBuf,
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
    page: String,
    pyramid: Option<PathBuf>,
    bucket: Option<Arc<dyn ObjectStore>>,
}

/// Serves until Ctrl-C.
pub async fn run(config: Config) -> Result<()> {
    let store = FsStore::new(&config.cache)
        .with_context(|| format!("making the tile cache {}", config.cache.display()))?;
    let app = Arc::new(App {
        tiles: TileService::new(Arc::new(store), config.colormap, config.renderer),
        page: page(&Source::live("/tiles/{z}/{x}/{y}.png")),
        pyramid: config.pyramid,
        bucket: config.bucket,
    });
    let router = Router::new()
        .route("/", get(index))
        .route("/tiles/{z}/{x}/{file}", get(tile))
        .route("/pyramid/", get(pyramid_index))
        .route("/pyramid/{*path}", get(pyramid_file))
        .route("/jobs/{job}/pyramid/", get(bucket_pyramid_index))
        .route("/jobs/{job}/pyramid/{*path}", get(bucket_pyramid_file))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .with_context(|| {
            format!(
                "listening on 127.0.0.1:{} (another program may hold it; --port 0 picks a free one)",
                config.port
            )
        })?;
    let url = format!("http://{}/", listener.local_addr()?);
    println!("{url}");
    eprintln!(
        "mandel-explore: open {url} (tiles cached in {}, rendered {}){}",
        config.cache.display(),
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

async fn index(State(app): State<Arc<App>>) -> Html<String> {
    Html(app.page.clone())
}

#[derive(Deserialize)]
struct TileQuery {
    iter: Option<u32>,
}

fn refuse(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// `GET /tiles/{z}/{x}/{y}.png[?iter=N]`: one tile of the world; without
/// `iter`, the budget of its zoom.
async fn tile(
    State(app): State<Arc<App>>,
    UrlPath((z, x, file)): UrlPath<(u32, u64, String)>,
    Query(query): Query<TileQuery>,
) -> Response {
    let Some(y) = file
        .strip_suffix(".png")
        .and_then(|y| y.parse::<u64>().ok())
    else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("no tile {file}; tiles are <y>.png"),
        );
    };
    let tile = match WorldTile::new(z, x, y) {
        Ok(tile) => tile,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let max_iter = query.iter.unwrap_or_else(|| max_iter_for(tile.zoom()));
    let started = Instant::now();
    match app.tiles.tile(tile, max_iter).await {
        Ok((png, source)) => {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            if source != mandel_pipeline::explore::Source::Cached {
                info!(z, x, y, max_iter, ms, source = source.name(), "tile served");
            }
            (
                [
                    (header::CONTENT_TYPE, "image/png".to_string()),
                    // The bytes are a function of the URL: keep them.
                    (
                        header::CACHE_CONTROL,
                        "public, max-age=31536000, immutable".to_string(),
                    ),
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
    serve_object(app.bucket.as_deref(), &job, "index.html").await
}

async fn bucket_pyramid_file(
    State(app): State<Arc<App>>,
    UrlPath((job, path)): UrlPath<(String, String)>,
) -> Response {
    serve_object(app.bucket.as_deref(), &job, &path).await
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

/// An object of a job's pyramid in the bucket.
async fn serve_object(store: Option<&dyn ObjectStore>, job: &str, path: &str) -> Response {
    let Some(store) = store else {
        return refuse(StatusCode::NOT_FOUND, "no --bucket was given".into());
    };
    let Ok(job) = JobId::parse(job) else {
        return refuse(StatusCode::NOT_FOUND, format!("no job {job}"));
    };
    if !plain(path) {
        return refuse(StatusCode::NOT_FOUND, format!("no file {path}"));
    }
    match store.get(&job.pyramid_key(path)).await {
        Ok(object) => file_response(path, object.body),
        Err(StoreError::NotFound { key }) => {
            refuse(StatusCode::NOT_FOUND, format!("no object {key}"))
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
