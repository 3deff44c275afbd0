use std::sync::Arc;

use mandel_pipeline::{
    BUCKET_ENV, Deployment, ObjectStore, PipelineError, Ports, Queue, RetryPolicy, Retrying,
};

use crate::{AwsClients, S3Store, SqsQueue};

/// The store and queues of one deployment, found from its bucket. The
/// store and queues retry transient errors ([`Retrying`]).
#[derive(Clone, Debug)]
pub struct Cloud {
    pub deployment: Deployment,
    /// The bucket and the two queues, as the use cases take them.
    pub ports: Ports,
    /// The explorer's tile queue, if the deployment has one (the workers
    /// consume it beside the tiles queue; the explorer sends to it).
    pub explore: Option<Arc<dyn Queue>>,
    tiles_sqs: SqsQueue,
    stitch_sqs: SqsQueue,
}

impl Cloud {
    /// Connects to `bucket` and reads its deployment record. The queue URLs
    /// can be overridden with `MANDEL_TILES_QUEUE_URL`,
    /// `MANDEL_STITCH_QUEUE_URL` and `MANDEL_EXPLORE_QUEUE_URL`; a tiles
    /// queue overridden without an explore queue, or an empty one, means
    /// none (a test's private lane does not consume the shared explore
    /// queue).
    pub async fn connect(clients: &AwsClients, bucket: &str) -> Result<Cloud, PipelineError> {
        let policy = RetryPolicy::default();
        let store: Arc<dyn ObjectStore> = Arc::new(Retrying::new(
            S3Store::new(clients.s3.clone(), bucket),
            policy,
        ));
        let mut deployment = Deployment::load(&*store).await?;
        if let Ok(url) = std::env::var("MANDEL_TILES_QUEUE_URL") {
            deployment.tiles_queue_url = url;
            deployment.explore_queue_url = None;
        }
        if let Ok(url) = std::env::var("MANDEL_EXPLORE_QUEUE_URL") {
            deployment.explore_queue_url = Some(url).filter(|u| !u.is_empty());
        }
        if let Ok(url) = std::env::var("MANDEL_STITCH_QUEUE_URL") {
            deployment.stitch_queue_url = url;
        }
        let tiles_sqs = SqsQueue::new(clients.sqs.clone(), &deployment.tiles_queue_url);
        let stitch_sqs = SqsQueue::new(clients.sqs.clone(), &deployment.stitch_queue_url);
        let explore = deployment.explore_queue_url.as_ref().map(|url| {
            Arc::new(Retrying::new(
                SqsQueue::new(clients.sqs.clone(), url),
                policy,
            )) as Arc<dyn Queue>
        });
        Ok(Cloud {
            explore,
            deployment,
            ports: Ports {
                store,
                tiles: Arc::new(Retrying::new(tiles_sqs.clone(), policy)),
                stitch: Arc::new(Retrying::new(stitch_sqs.clone(), policy)),
            },
            tiles_sqs,
            stitch_sqs,
        })
    }

    /// The tiles queue's `maxReceiveCount`: the delivery whose failure is
    /// final, which the worker records as a failure. Only the worker asks:
    /// its role may read the attributes of the queue it consumes, not of
    /// the other (each function asking for both failed at init on AWS).
    pub async fn tiles_max_receive_count(&self) -> Result<Option<u32>, PipelineError> {
        Ok(self.tiles_sqs.max_receive_count().await?)
    }

    /// The stitch queue's `maxReceiveCount`, for the stitch function.
    pub async fn stitch_max_receive_count(&self) -> Result<Option<u32>, PipelineError> {
        Ok(self.stitch_sqs.max_receive_count().await?)
    }
}

/// The bucket from `--bucket` or else `MANDEL_BUCKET`.
pub fn bucket_from(flag: Option<String>) -> Result<String, String> {
    flag.or_else(|| std::env::var(BUCKET_ENV).ok())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("no bucket: pass --bucket or set {BUCKET_ENV}"))
}
