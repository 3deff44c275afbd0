//! # mandel-pipeline
//!
//! The job protocol and the use cases that run it, over two small ports:
//!
//! - [`ObjectStore`] (S3 and stand-ins): get, put (overwrite or create-only),
//!   head, list by prefix, delete, multipart upload, download to a file.
//!   Its contract is on the trait.
//! - [`Queue`] (SQS and stand-ins): send batch, receive batch, delete, with
//!   at-least-once delivery. Its contract is on the trait.
//!
//! Adapters: [`MemoryStore`] and [`MemoryQueue`] (tests; the embedded
//! mode's queues), [`SpillStore`] (the embedded mode's store: an index in
//! memory, the bytes on disk) and [`FsStore`] (a local folder). The S3 and
//! SQS adapters live with the AWS code and satisfy the same conformance
//! suite (`conformance`, with the `test-support` feature, as object_store
//! gates its integration suite). Wrappers over any adapter: [`Retrying`]
//! (transient errors retried with jittered exponential backoff within a
//! total deadline; the cloud adapters are always used through it) and,
//! with `test-support`, `faults::Flaky` (injects transient errors).
//!
//! The parts, lowest first (each imports only from those above it; no
//! module imports a use case):
//!
//! - **The protocol** (`job`): [`JobId`], the bucket layout, the
//!   messages ([`TileMessage`], [`StitchMessage`]) and the record types.
//! - **Tile objects** (`tiles`, private): a tile's key, blob, metadata
//!   and checks.
//! - **A job's progress** ([`progress`]): one [`Progress`](progress::Progress)
//!   built from one listing of the job (up to a thousand tiles) or of its
//!   row markers (larger jobs) answers what is stored, missing, failed,
//!   cancelled, finished. The rule of which applies lives there alone.
//! - **A job's records** ([`records`]): typed reads and writes of
//!   `params.json`, `estimate.json`, `stitching.json`, `stats.json`,
//!   `report.html`, `result.json`, `failed/*.json` and `cancelled`.
//! - **Views**: what a job will take and cost, and what it took
//!   ([`estimate`], pure apart from its kernel sample); its page for people
//!   (`report`, a pure renderer); a bucket's jobs listed and inspected
//!   ([`inspect`]).
//! - **Use cases**, as plain async functions over the ports ([`Ports`]:
//!   the store and the two queues): [`submit()`], [`wait_for_result`] and
//!   [`cancel()`] (the client), [`TileWorker::handle_batch`] (the worker
//!   function), [`handle_stitch_delivery`] (the stitch function),
//!   [`poll()`] and [`invoke`] (the event-source mapping and a Lambda
//!   invocation's deadline), [`explore`] (the explorer's tiles, cached and
//!   rendered on request), and [`render_embedded`], which wires them all
//!   in one process.
//!
//! Log event names other programs read: [`events`].
//!
//! The protocol in one paragraph: a [`JobId`] is a content hash of the
//! [`RenderParams`](mandel_core::RenderParams); the params are written once
//! to `jobs/<job>/params.json`; one [`TileMessage`] per tile goes on the
//! tiles queue; each tile's blob is a keyed, deterministic write; the
//! worker that sees the job complete after storing its tiles (one listing
//! of the job, or, above a thousand tiles, the row markers) sends a
//! [`StitchMessage`]; the stitch publishes `result.json` last, create-only,
//! so there is exactly one result. A message that fails its last delivery
//! leaves a [`Failure`] record under the job, which the waiting client
//! reports; a `cancelled` marker makes workers skip a job.

// The public API: the items re-exported here, each at one path, and the
// modules below that are namespaces of their own. Everything else is
// private.
#[cfg(feature = "test-support")]
pub mod conformance;
mod deployment;
mod embedded;
mod error;
pub mod estimate;
pub mod events;
pub mod explore;
#[cfg(feature = "test-support")]
pub mod faults;
mod fs;
pub mod inspect;
mod job;
mod job_cache;
mod memory;
mod poller;
mod ports;
pub mod process;
pub mod progress;
pub mod pyramid;
mod queue;
pub mod records;
pub mod reference;
mod report;
mod retry;
mod spill;
mod stitch;
mod store;
mod submit;
mod tiles;
mod upload;
mod worker;

pub use deployment::{BUCKET_ENV, DEPLOYMENT_KEY, Deployment, Fleet, FunctionLimits};
pub use embedded::{EmbeddedRender, render_embedded};
pub use error::PipelineError;
pub use fs::FsStore;
pub use job::{
    Failed, Failure, InvalidJobId, JobId, ReferenceManifest, ReferenceMessage, ResultManifest,
    StitchAttempt, StitchMessage, TileMessage, TileStat, WorkMessage,
};
pub use memory::{MemoryQueue, MemoryStore};
pub use poller::{PollConfig, PollStats, invoke, one_at_a_time, poll};
pub use ports::Ports;
pub use queue::{Delivery, Queue, QueueError};
pub use retry::{RetryPolicy, Retrying};
pub use spill::SpillStore;
pub use stitch::{Pyramid, STORED_COLORMAP, StitchOutcome, handle_stitch_delivery};
pub use store::{
    MAX_PARTS, MIN_PART_SIZE, Metadata, Object, ObjectMeta, ObjectStore, PartTag, PutMode,
    PutOutcome, StoreError, UploadId, slice_range, validate_completion, validate_key,
    validate_metadata, validate_part,
};
pub use submit::{CancelOutcome, Submitted, WaitPolicy, cancel, submit, wait_for_result};
pub use worker::{BatchOutcome, CANCEL_RECHECK, TileOutcome, TileWorker};
