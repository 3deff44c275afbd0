//! The embedded mode: the whole pipeline in one process, on in-memory
//! adapters, with the same use cases the cloud path runs.

use std::sync::Arc;
use std::time::Duration;

use mandel_core::RenderParams;
use tokio::sync::watch;

use crate::error::PipelineError;
use crate::job::ResultManifest;
use crate::memory::{MemoryQueue, MemoryStore};
use crate::poller::{PollConfig, one_at_a_time, poll};
use crate::queue::Queue;
use crate::stitch::handle_stitch_message;
use crate::store::ObjectStore;
use crate::submit::{WaitPolicy, submit, wait_for_result};
use crate::worker::TileWorker;

/// The outputs of an embedded render.
#[derive(Debug)]
pub struct EmbeddedRender {
    pub manifest: ResultManifest,
    /// The PNG in [`STORED_COLORMAP`](crate::stitch::STORED_COLORMAP).
    pub png: Vec<u8>,
    /// The counts as `.npy`.
    pub npy: Vec<u8>,
}

/// Renders `params` with `workers` tile workers (and one stitcher) on
/// in-memory store and queues, calling `progress` with the count of stored
/// tiles as it grows.
pub async fn render_embedded(
    params: &RenderParams,
    workers: usize,
    progress: impl FnMut(u64),
) -> Result<EmbeddedRender, PipelineError> {
    // The in-process queues never lose a worker, so the visibility timeout
    // only matters for failed messages: retry them soon.
    let visibility = Duration::from_secs(2);
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let tiles: Arc<dyn Queue> = Arc::new(MemoryQueue::new(visibility));
    let stitches: Arc<dyn Queue> = Arc::new(MemoryQueue::new(visibility));

    // Validation happens here, before any worker starts or anything is stored.
    let submitted = submit(&*store, &*tiles, &*stitches, params, None).await?;
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..workers.max(1) {
        let worker = Arc::new(TileWorker::new(
            Arc::clone(&store),
            Arc::clone(&stitches),
            format!("embedded-{n}"),
        ));
        let (tiles, shutdown) = (Arc::clone(&tiles), shutdown.clone());
        tasks.spawn(async move {
            poll(&*tiles, PollConfig::default(), shutdown, |batch, _| {
                let worker = Arc::clone(&worker);
                async move { worker.handle_batch(&batch, None).await }
            })
            .await
        });
    }
    {
        let (store, stitches) = (Arc::clone(&store), Arc::clone(&stitches));
        tasks.spawn(async move {
            poll(&*stitches, PollConfig::default(), shutdown, |batch, _| {
                one_at_a_time(batch, |d| {
                    let store = Arc::clone(&store);
                    async move { handle_stitch_message(&store, &d.body).await }
                })
            })
            .await
        });
    }

    let policy = WaitPolicy::polling(Duration::from_millis(20));
    let waited = tokio::select! {
        r = wait_for_result(&*store, &*stitches, &submitted.job, params, policy, progress) => r,
        // A poller only returns early on a queue error; surface it.
        Some(joined) = tasks.join_next() => match joined.expect("poller panicked") {
            Err(e) => Err(e),
            Ok(_) => unreachable!("pollers run until shutdown"),
        },
    };
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    let manifest = waited?;
    let png = store.get(&manifest.image_key).await?.body.to_vec();
    let npy = store.get(&manifest.counts_key).await?.body.to_vec();
    Ok(EmbeddedRender { manifest, png, npy })
}
