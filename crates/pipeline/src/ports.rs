//! The ports a job runs on, as one value: the use cases that touch more
//! than the store (submit, the client's wait, the embedded mode) take it,
//! and each deployment (the AWS adapters, the embedded mode, a test's
//! in-memory rig) builds it once.

use std::sync::Arc;

use crate::queue::Queue;
use crate::store::ObjectStore;

/// Where a job's objects live, and its two queues.
#[derive(Clone, Debug)]
pub struct Ports {
    pub store: Arc<dyn ObjectStore>,
    /// One message per tile ([`TileMessage`](crate::TileMessage)).
    pub tiles: Arc<dyn Queue>,
    /// One message per finished job ([`StitchMessage`](crate::StitchMessage)).
    pub stitch: Arc<dyn Queue>,
}
