use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mandel_core::render::TileRenderer;
use tokio::sync::OnceCell;

use crate::error::PipelineError;
use crate::job::JobId;
use crate::records::{read_params, tile_renderer};
use crate::store::ObjectStore;

/// Jobs a worker keeps ready to render: a deep job's prepared orbit can be
/// hundreds of megabytes, so only the latest few.
const KEPT_JOBS: usize = 4;

/// Per-process cache of each job's [`TileRenderer`]: its params (the
/// notebook's `send_object` analogue) and, for a deep job, its reference
/// orbit with the BLA table. Both are immutable once written, so a warm
/// worker reads them once per job, even when a batch's tiles ask for them
/// all at once.
#[derive(Debug, Default)]
pub struct JobCache {
    jobs: Mutex<VecDeque<(JobId, Slot)>>,
}

/// One job's renderer, read once by whoever asks first.
type Slot = Arc<OnceCell<Arc<TileRenderer>>>;

impl JobCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The job's renderer, from the cache or the store (params validated).
    /// Callers asking at once share one read; a failed read is not kept,
    /// so the next caller tries again.
    pub async fn get(
        &self,
        store: &dyn ObjectStore,
        job: &JobId,
    ) -> Result<Arc<TileRenderer>, PipelineError> {
        let cell = {
            let mut jobs = self.jobs.lock().unwrap();
            match jobs.iter().position(|(j, _)| j == job) {
                Some(i) => Arc::clone(&jobs[i].1),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    jobs.push_back((job.clone(), Arc::clone(&cell)));
                    if jobs.len() > KEPT_JOBS {
                        jobs.pop_front();
                    }
                    cell
                }
            }
        };
        let got = cell
            .get_or_try_init(|| async {
                let params = read_params(store, job).await?;
                Ok(Arc::new(tile_renderer(store, job, &params).await?))
            })
            .await
            .cloned();
        if got.is_err() {
            // Unknown jobs (a stranger's message) leave nothing behind.
            let mut jobs = self.jobs.lock().unwrap();
            jobs.retain(|(j, c)| j != job || c.initialized());
        }
        got
    }
}
