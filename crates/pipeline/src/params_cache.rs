use std::collections::HashMap;
use std::sync::Mutex;

use mandel_core::RenderParams;

use crate::error::PipelineError;
use crate::job::JobId;
use crate::store::{ObjectStore, StoreError};

/// Per-process cache of each job's params: the notebook's `send_object`
/// analogue. Params are immutable once written, so a warm worker fetches
/// them once per job.
#[derive(Debug, Default)]
pub struct ParamsCache {
    params: Mutex<HashMap<JobId, RenderParams>>,
}

impl ParamsCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The job's params, from the cache or the store (validated).
    pub async fn get(
        &self,
        store: &dyn ObjectStore,
        job: &JobId,
    ) -> Result<RenderParams, PipelineError> {
        if let Some(p) = self.params.lock().unwrap().get(job) {
            return Ok(*p);
        }
        let params = load_params(store, job).await?;
        self.params.lock().unwrap().insert(job.clone(), params);
        Ok(params)
    }
}

/// Reads and validates `jobs/<job>/params.json`.
pub async fn load_params(
    store: &dyn ObjectStore,
    job: &JobId,
) -> Result<RenderParams, PipelineError> {
    let object = match store.get(&job.params_key()).await {
        Ok(o) => o,
        Err(StoreError::NotFound { .. }) => {
            return Err(PipelineError::UnknownJob { job: job.clone() });
        }
        Err(e) => return Err(e.into()),
    };
    let bad = |reason: String| PipelineError::BadStoredParams {
        job: job.clone(),
        reason,
    };
    let params: RenderParams =
        serde_json::from_slice(&object.body).map_err(|e| bad(e.to_string()))?;
    params.validate().map_err(|e| bad(e.to_string()))?;
    Ok(params)
}
