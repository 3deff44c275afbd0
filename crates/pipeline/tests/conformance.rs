//! Every in-process adapter against the port contracts.

use std::sync::Arc;
use std::time::Duration;

use mandel_pipeline::{FsStore, MemoryQueue, MemoryStore, SpillStore, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_meets_the_contract() {
    conformance::object_store(Arc::new(MemoryStore::new()), "conformance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance::object_store(Arc::new(FsStore::new(dir.path()).unwrap()), "conformance").await;
    // Nothing is left behind in the temporary folder.
    assert_eq!(
        std::fs::read_dir(dir.path().join(".tmp")).unwrap().count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SpillStore::new_in(dir.path()).unwrap());
    conformance::object_store(store.clone(), "conformance").await;
    // Its folder goes with it.
    drop(store);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_queue_meets_the_contract() {
    let visibility = Duration::from_millis(400);
    conformance::queue(Arc::new(MemoryQueue::new(visibility)), visibility).await;
}
