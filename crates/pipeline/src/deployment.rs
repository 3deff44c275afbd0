//! The deployment record: how a client or worker finds the queues of a
//! bucket. Written by the infrastructure (LocalStack's `up.sh` now,
//! Terraform on AWS) at [`DEPLOYMENT_KEY`] in the bucket, so a user only
//! names the bucket.

use serde::{Deserialize, Serialize};

use crate::error::PipelineError;
use crate::store::{ObjectStore, StoreError};

/// Where the record lives in the bucket.
pub const DEPLOYMENT_KEY: &str = ".mandel/deployment.json";

/// The environment variable that names the bucket, in the functions (set by
/// Terraform) and for the pollers and the CLI.
pub const BUCKET_ENV: &str = "MANDEL_BUCKET";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub version: u32,
    pub bucket: String,
    pub region: String,
    pub tiles_queue_url: String,
    pub tiles_dlq_url: String,
    pub stitch_queue_url: String,
    pub stitch_dlq_url: String,
}

impl Deployment {
    /// Reads the record from `store`.
    pub async fn load(store: &dyn ObjectStore) -> Result<Deployment, PipelineError> {
        let object = match store.get(DEPLOYMENT_KEY).await {
            Ok(o) => o,
            Err(StoreError::NotFound { .. }) => {
                return Err(PipelineError::BadMessage {
                    reason: format!(
                        "no deployment record at {DEPLOYMENT_KEY} in the bucket: deploy with Terraform \
                         (infra/) or start LocalStack with localstack/up.sh"
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&object.body).map_err(|e| PipelineError::BadMessage {
            reason: format!("deployment record {DEPLOYMENT_KEY} is invalid: {e}"),
        })
    }
}
