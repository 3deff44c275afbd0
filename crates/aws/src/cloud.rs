use std::sync::Arc;

use mandel_pipeline::{BUCKET_ENV, Deployment, ObjectStore, PipelineError, Queue};

use crate::{AwsClients, S3Store, SqsQueue};

/// The store and queues of one deployment, found from its bucket.
#[derive(Clone, Debug)]
pub struct Cloud {
    pub deployment: Deployment,
    pub store: Arc<dyn ObjectStore>,
    pub tiles: Arc<dyn Queue>,
    pub stitch: Arc<dyn Queue>,
}

impl Cloud {
    /// Connects to `bucket` and reads its deployment record. The queue URLs
    /// can be overridden with `MANDEL_TILES_QUEUE_URL` and
    /// `MANDEL_STITCH_QUEUE_URL`.
    pub async fn connect(clients: &AwsClients, bucket: &str) -> Result<Cloud, PipelineError> {
        let store: Arc<dyn ObjectStore> = Arc::new(S3Store::new(clients.s3.clone(), bucket));
        let mut deployment = Deployment::load(&*store).await?;
        if let Ok(url) = std::env::var("MANDEL_TILES_QUEUE_URL") {
            deployment.tiles_queue_url = url;
        }
        if let Ok(url) = std::env::var("MANDEL_STITCH_QUEUE_URL") {
            deployment.stitch_queue_url = url;
        }
        let tiles = Arc::new(SqsQueue::new(
            clients.sqs.clone(),
            &deployment.tiles_queue_url,
        ));
        let stitch = Arc::new(SqsQueue::new(
            clients.sqs.clone(),
            &deployment.stitch_queue_url,
        ));
        Ok(Cloud {
            deployment,
            store,
            tiles,
            stitch,
        })
    }
}

/// The bucket from `--bucket` or else `MANDEL_BUCKET`.
pub fn bucket_from(flag: Option<String>) -> Result<String, String> {
    flag.or_else(|| std::env::var(BUCKET_ENV).ok())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("no bucket: pass --bucket or set {BUCKET_ENV}"))
}
