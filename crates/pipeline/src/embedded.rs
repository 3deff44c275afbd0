//! The embedded mode: the whole pipeline in one process, with the same use
//! cases the cloud path runs, on in-process queues and a [`SpillStore`]
//! (an index in memory, the bytes on disk), so its memory stays bounded
//! whatever the image size: tiles and outputs live on disk, the tiles
//! queue holds a bounded number of messages while the job is submitted,
//! and the stitch streams a row of tiles at a time.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mandel_core::RenderParams;
use tokio::sync::watch;

use crate::error::PipelineError;
use crate::estimate::ComputedOrbit;
use crate::estimate::Submission;
use crate::job::ResultManifest;
use crate::memory::MemoryQueue;
use crate::poller::{PollConfig, one_at_a_time, poll};
use crate::ports::Ports;
use crate::queue::Queue;
use crate::reference::store_computed;
use crate::spill::SpillStore;
use crate::stitch::{Pyramid, handle_stitch_delivery};
use crate::store::ObjectStore;
use crate::submit::{WaitPolicy, submit, wait_for_result};
use crate::worker::TileWorker;

/// Tile messages waiting at most (plus one submit chunk).
const QUEUE_CAPACITY: usize = 1000;

/// A finished embedded render: its manifest, and its outputs on disk until
/// written out.
#[derive(Debug)]
pub struct EmbeddedRender {
    pub manifest: ResultManifest,
    store: Arc<SpillStore>,
}

impl EmbeddedRender {
    /// The store holding the outputs.
    pub fn store(&self) -> &dyn ObjectStore {
        &*self.store
    }

    /// The job's `counts.npy`, whole.
    pub async fn counts_npy(&self) -> Result<bytes::Bytes, PipelineError> {
        Ok(self.store.get(&self.manifest.counts_key).await?.body)
    }
}

/// Renders `params` with `workers` tile workers (and one stitcher), keeping
/// tiles and outputs in a scratch folder created in `scratch` (and removed
/// with the returned render), calling `progress` with the count of stored
/// tiles as it grows. `submission`, if given, is recorded for the job's
/// report; `orbit`, a deep job's reference orbit already computed (by the
/// estimate's sample), is stored instead of computed again. Invalid params
/// are refused before anything is written.
pub async fn render_embedded(
    params: &RenderParams,
    workers: usize,
    scratch: &Path,
    submission: Option<&Submission>,
    orbit: Option<&ComputedOrbit>,
    progress: impl FnMut(u64),
) -> Result<EmbeddedRender, PipelineError> {
    params.validate()?;
    let spill = Arc::new(
        SpillStore::new_in(scratch).map_err(|e| PipelineError::Scratch {
            dir: scratch.to_path_buf(),
            reason: e.to_string(),
        })?,
    );
    let store: Arc<dyn ObjectStore> = spill.clone();
    // The in-process queues never lose a worker, so the visibility timeout
    // only matters for failed messages: retry them soon.
    let visibility = Duration::from_secs(2);
    let tiles: Arc<dyn Queue> = Arc::new(MemoryQueue::bounded(visibility, QUEUE_CAPACITY));
    let stitches: Arc<dyn Queue> = Arc::new(MemoryQueue::new(visibility));

    // One tile at a time balances the cores best; tiny tiles come in
    // batches, so per-batch work (a cancel check, a row listing) is spread
    // over many tiles.
    let batches = PollConfig {
        batch: (params.tile_count() / 4096).clamp(1, 256) as usize,
        ..PollConfig::default()
    };
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
            poll(&*tiles, batches, shutdown, |batch, _| {
                let worker = Arc::clone(&worker);
                async move { worker.handle_batch(&batch, None).await.failed_ids() }
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
                    async move { handle_stitch_delivery(&store, &d, None, Pyramid::Skip, None).await }
                })
            })
            .await
        });
    }

    // Submitting waits for room in the queue as the workers drain it, so
    // it runs beside the wait for the result.
    let job = crate::job::JobId::for_params(params);
    if let Some(orbit) = orbit {
        store_computed(&*store, &job, orbit).await?;
    }
    let policy = WaitPolicy::polling(Duration::from_millis(20));
    let ports = Ports {
        store,
        tiles,
        stitch: stitches,
    };
    let render = async {
        let (_, manifest) = tokio::try_join!(
            submit(&ports, params, Some(job.clone()), submission),
            wait_for_result(&ports, &job, params, policy, progress),
        )?;
        Ok(manifest)
    };
    let waited = tokio::select! {
        r = render => r,
        // A poller only returns early on a queue error; surface it.
        Some(joined) = tasks.join_next() => match joined.expect("poller panicked") {
            Err(e) => Err(e),
            Ok(_) => unreachable!("pollers run until shutdown"),
        },
    };
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(EmbeddedRender {
        manifest: waited?,
        store: spill,
    })
}
