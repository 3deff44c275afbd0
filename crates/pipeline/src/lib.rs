//! # mandel-pipeline
//!
//! The job protocol and the use cases that run it, over two small ports:
//!
//! - [`ObjectStore`] (S3 and stand-ins): get, put (overwrite or create-only),
//!   head, list by prefix, delete, multipart upload, download to a file.
//!   Contract in [`store`].
//! - [`Queue`] (SQS and stand-ins): send batch, receive batch, delete, with
//!   at-least-once delivery. Contract in [`queue`].
//!
//! Adapters: [`MemoryStore`] and [`MemoryQueue`] (tests; the embedded
//! mode's queues), [`SpillStore`] (the embedded mode's store: an index in
//! memory, the bytes on disk) and [`FsStore`] (a local folder). The S3 and
//! SQS adapters live with the AWS code and satisfy the same conformance
//! suite. Wrappers over any adapter:
//! [`Retrying`] (transient errors retried with jittered exponential
//! backoff; the cloud adapters are always used through it) and
//! [`faults::Flaky`] (injects transient errors, for tests).
//!
//! Tile objects, row markers and failure records: [`tiles`]. Outputs too
//! big for memory go up part by part: [`upload`]. Log event names other
//! programs read: [`events`]. What a job will take and cost, and what it
//! took: [`estimate`]; its page for people: [`report`]; a bucket's jobs
//! listed and inspected: [`inspect`].
//!
//! The protocol ([`job`]): a [`JobId`] is a content hash of the
//! [`RenderParams`](mandel_core::RenderParams); the params are written once
//! to `jobs/<job>/params.json`; one [`TileMessage`] per tile goes on the tiles
//! queue; each tile's blob is a keyed, deterministic write; the writer that
//! completes the last row sends a [`StitchMessage`]; the stitch publishes `result.json`
//! last, create-only, so there is exactly one result. A message that fails
//! its last delivery leaves a [`Failure`] record under the job, which the
//! waiting client reports; a `cancelled` marker makes workers skip a job.
//!
//! Use cases, as plain async functions over the ports: [`submit()`],
//! [`wait_for_result`] and [`cancel()`] (the client), [`TileWorker`] (the worker),
//! [`stitch()`] (the stitch function), [`poll()`] (the event-source
//! mapping), and [`render_embedded`] which wires them all in one process.

pub mod conformance;
pub mod deployment;
pub mod embedded;
mod error;
pub mod estimate;
pub mod events;
pub mod faults;
pub mod fs;
pub mod inspect;
pub mod job;
pub mod memory;
mod params_cache;
pub mod poller;
pub mod process;
pub mod queue;
pub mod report;
pub mod retry;
pub mod spill;
pub mod stitch;
pub mod store;
pub mod submit;
pub mod tiles;
pub mod upload;
pub mod worker;

pub use deployment::{BUCKET_ENV, DEPLOYMENT_KEY, Deployment, Fleet, FunctionLimits};
pub use embedded::{EmbeddedRender, render_embedded};
pub use error::PipelineError;
pub use fs::FsStore;
pub use job::{
    Failed, Failure, JobId, ResultManifest, StitchAttempt, StitchMessage, TileMessage, TileStat,
};
pub use memory::{MemoryQueue, MemoryStore};
pub use params_cache::{ParamsCache, load_params};
pub use poller::{PollConfig, PollStats, invoke, one_at_a_time, poll};
pub use queue::{Delivery, Queue, QueueError};
pub use retry::{RetryPolicy, Retrying};
pub use spill::SpillStore;
pub use stitch::{StitchOutcome, handle_stitch_delivery, read_stats, stitch};
pub use store::{Metadata, Object, ObjectMeta, ObjectStore, PutMode, PutOutcome, StoreError};
pub use submit::{
    CancelOutcome, Submitted, WaitPolicy, cancel, read_failures, submit, submit_recorded,
    wait_for_result,
};
pub use worker::{BatchOutcome, TileOutcome, TileWorker};
