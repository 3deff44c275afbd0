use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mandel_core::RenderParams;
use tokio::sync::OnceCell;

use crate::error::PipelineError;
use crate::job::JobId;
use crate::records::read_params;
use crate::store::ObjectStore;

/// Per-process cache of each job's params: the notebook's `send_object`
/// analogue. Params are immutable once written, so a warm worker fetches
/// them once per job, even when a batch's tiles ask for them all at once.
#[derive(Debug, Default)]
pub struct ParamsCache {
    params: Mutex<HashMap<JobId, Arc<OnceCell<RenderParams>>>>,
}

impl ParamsCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The job's params, from the cache or the store (validated). Callers
    /// asking at once share one read; a failed read is not kept, so the
    /// next caller tries again.
    pub async fn get(
        &self,
        store: &dyn ObjectStore,
        job: &JobId,
    ) -> Result<RenderParams, PipelineError> {
        let cell = Arc::clone(self.params.lock().unwrap().entry(job.clone()).or_default());
        let got = cell
            .get_or_try_init(|| read_params(store, job))
            .await
            .copied();
        if got.is_err() {
            // Unknown jobs (a stranger's message) leave nothing behind.
            let mut params = self.params.lock().unwrap();
            if params.get(job).is_some_and(|c| !c.initialized()) {
                params.remove(job);
            }
        }
        got
    }
}
