//! The S3 and SQS adapters against the port contracts, on LocalStack.
//!
//! Needs the environment from `localstack/up.sh` (the README's test command
//! provides it). Without it these tests fail: they are never skipped.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mandel_aws::{AwsClients, S3Store, SqsQueue};
use mandel_pipeline::conformance;

fn require_localstack() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL is not set: these tests need LocalStack; run them with bash scripts/test.sh \
         (or eval \"$(localstack/up.sh)\" first)"
    );
    endpoint
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_meets_the_contract() {
    require_localstack();
    let clients = AwsClients::from_env().await;
    let bucket = unique("conformance");
    clients
        .s3
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("LocalStack must be running (create bucket)");
    conformance::object_store(
        Arc::new(S3Store::new(clients.s3.clone(), &bucket)),
        "conformance",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_meets_the_contract() {
    require_localstack();
    let clients = AwsClients::from_env().await;
    let visibility = Duration::from_secs(1);
    let url = clients
        .sqs
        .create_queue()
        .queue_name(unique("conformance"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .expect("LocalStack must be running (create queue)")
        .queue_url()
        .unwrap()
        .to_string();
    conformance::queue(
        Arc::new(SqsQueue::new(clients.sqs.clone(), url)),
        visibility,
    )
    .await;
}
