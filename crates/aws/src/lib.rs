//! # mandel-aws
//!
//! The AWS adapters for the ports of `mandel-pipeline`:
//!
//! - [`S3Store`]: [`ObjectStore`](mandel_pipeline::ObjectStore) on one S3
//!   bucket. Create-only puts use `If-None-Match: *`; metadata is S3 user
//!   metadata (`x-amz-meta-*`).
//! - [`SqsQueue`]: [`Queue`](mandel_pipeline::Queue) on one SQS queue,
//!   sending in batches of 10 with several calls in flight.
//! - [`AwsClients`]: the SDK clients from the environment. When an endpoint
//!   override is set (`AWS_ENDPOINT_URL`, as for LocalStack) S3 uses
//!   path-style addressing and checksums only where required.
//! - [`Cloud`]: a deployment's store and queues, found from the bucket's
//!   deployment record.
//! - [`lambda`]: a batch handler (messages in, failed ids out) served to
//!   Lambda's SQS trigger ([`lambda::run_function`], [`lambda::handle_event`]), or fed from a queue on
//!   this machine ([`lambda::poll_until_signal`]); [`lambda::sqs_event`]
//!   builds the event Lambda would deliver, for `mandel-trigger`.
//!
//! Both adapters pass the same conformance suite as the in-memory and
//! filesystem ones (`tests/conformance_localstack.rs`).

mod cloud;
mod config;
mod errors;
pub mod lambda;
mod s3;
mod sqs;

pub use cloud::{Cloud, bucket_from};
pub use config::AwsClients;
pub use s3::S3Store;
pub use sqs::SqsQueue;
