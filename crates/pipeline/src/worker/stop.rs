//! Stopping a batch's kernels in time: shortly before the invocation's
//! deadline ([`stop_margin`](crate::deployment::stop_margin)), or when the
//! batch's future is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A batch being handled: when it started, and its stop signal.
pub(super) struct Batch {
    pub(super) stop: StopSignal,
    pub(super) started_ms: u64,
}

/// Tells the kernels of a batch to stop: set at a time (shortly before the
/// deadline) or when the batch's future is dropped (the invocation killed).
pub(super) struct StopSignal {
    flag: Arc<AtomicBool>,
    timer: Option<tokio::task::JoinHandle<()>>,
}

impl StopSignal {
    pub(super) fn new(at: Option<Instant>) -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let timer = at.map(|at| {
            let flag = Arc::clone(&flag);
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                flag.store(true, Ordering::Relaxed);
            })
        });
        StopSignal { flag, timer }
    }

    pub(super) fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }

    pub(super) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

impl Drop for StopSignal {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::Relaxed);
        if let Some(timer) = &self.timer {
            timer.abort();
        }
    }
}
