//! A deep job's reference orbit: computed once, in segments, before its
//! tiles.
//!
//! The client sends `ReferenceMessage { reference: 0 }` on the tiles queue
//! ([`await_reference`]); a worker computes the orbit until it is whole or
//! its invocation's deadline nears ([`compute_segment`]), and writes the
//! segment's points and the full-precision state it stopped in. If the orbit
//! is not whole, the client, seeing segment `k`'s state, sends segment
//! `k + 1`, which resumes from it; the worker that finishes the orbit
//! publishes `reference.json`. Only then does the client send the tile
//! messages: every tile reads the orbit once per warm worker
//! ([`records::tile_renderer`]).
//!
//! Every write is keyed and deterministic, so a segment computed twice (a
//! redelivery, or the client resending after a crash) writes the same
//! bytes; the manifest is create-only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mandel_core::RenderParams;
use mandel_core::deep::OrbitState;

use crate::error::PipelineError;
use crate::estimate::ComputedOrbit;
use crate::job::{Failed, JobId, ReferenceManifest, ReferenceMessage};
use crate::queue::Queue;
use crate::records::{self, read_reference_manifest, read_reference_state};
use crate::store::ObjectStore;

/// What [`compute_segment`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentOutcome {
    /// The segment is written; `whole` if it finished the orbit (and the
    /// manifest is published).
    Written { whole: bool, points: u64 },
    /// The orbit was already whole: nothing to do.
    AlreadyWhole,
}

/// Computes segment `k` of `job`'s reference orbit until the orbit is whole
/// or `stop` is set, and writes it. Segment `k > 0` resumes from segment
/// `k − 1`'s state. A segment stopped before it computed a point fails
/// ([`PipelineError::ReferenceUnfinished`]) and is retried.
pub async fn compute_segment(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
    k: u32,
    stop: Arc<AtomicBool>,
) -> Result<SegmentOutcome, PipelineError> {
    let Some(view) = params.as_deep() else {
        return Err(PipelineError::BadMessage {
            reason: format!("job {job} is not a deep job: it has no reference orbit"),
        });
    };
    if read_reference_manifest(store, job).await?.is_some() {
        return Ok(SegmentOutcome::AlreadyWhole);
    }
    // Segment k resumes from k − 1's state; the earlier segments' times
    // go into the manifest.
    let mut segment_us = Vec::new();
    let mut first_started_ms = None;
    let mut state = OrbitState::new(view, view.precision_bits(params.image_side()));
    for j in 0..k {
        let Some((resumed, us, started_ms)) = read_reference_state(store, job, j).await? else {
            return Err(PipelineError::BadMessage {
                reason: format!("job {job}: reference segment {k} asked for before segment {j}"),
            });
        };
        segment_us.push(us);
        first_started_ms.get_or_insert(started_ms);
        state = resumed;
    }
    compute_from(
        store,
        job,
        params,
        k,
        state,
        stop,
        segment_us,
        first_started_ms,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn compute_from(
    store: &dyn ObjectStore,
    job: &JobId,
    params: &RenderParams,
    k: u32,
    mut state: OrbitState,
    stop: Arc<AtomicBool>,
    mut segment_us: Vec<u64>,
    first_started_ms: Option<u64>,
) -> Result<SegmentOutcome, PipelineError> {
    let max_iter = u64::from(params.max_iter);
    let started_ms = crate::job::unix_ms();
    let (state, points, whole, us) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut points = Vec::new();
        let whole = state.run(max_iter, &mut points, || !stop.load(Ordering::Relaxed));
        (state, points, whole, started.elapsed().as_micros() as u64)
    })
    .await
    .expect("the reference orbit panicked");
    if points.is_empty() && !whole {
        return Err(PipelineError::ReferenceUnfinished {
            job: job.clone(),
            segment: k,
        });
    }
    records::write_reference_segment(store, job, k, &points, &state, us, started_ms).await?;
    if whole {
        segment_us.push(us);
        publish(
            store,
            job,
            &state,
            segment_us,
            first_started_ms.unwrap_or(started_ms),
        )
        .await?;
    }
    Ok(SegmentOutcome::Written {
        whole,
        points: points.len() as u64,
    })
}

/// Publishes the manifest of `job`'s orbit, whole in `segment_us.len()`
/// segments ending in `state`.
async fn publish(
    store: &dyn ObjectStore,
    job: &JobId,
    state: &OrbitState,
    segment_us: Vec<u64>,
    started_ms: u64,
) -> Result<(), PipelineError> {
    let manifest = ReferenceManifest {
        segments: segment_us.len() as u32,
        points: state.index() + 1,
        precision_bits: state.precision_bits(),
        segment_us,
        started_ms,
        finished_ms: crate::job::unix_ms(),
    };
    records::publish_reference(store, job, &manifest).await
}

/// Stores `orbit` as `job`'s whole reference (one segment and the
/// manifest), the objects a worker computing it would write; a job whose
/// orbit is already whole is left alone.
pub async fn store_computed(
    store: &dyn ObjectStore,
    job: &JobId,
    orbit: &ComputedOrbit,
) -> Result<(), PipelineError> {
    if read_reference_manifest(store, job).await?.is_some() {
        return Ok(());
    }
    let ComputedOrbit {
        points,
        state,
        compute_us,
        started_ms,
    } = orbit;
    records::write_reference_segment(store, job, 0, points, state, *compute_us, *started_ms)
        .await?;
    publish(store, job, state, vec![*compute_us], *started_ms).await
}

/// The client's side: sends the segments of `job`'s reference orbit one
/// after another until the orbit is whole, and returns its manifest. Stops
/// if the job is cancelled or a worker records that it failed.
pub async fn await_reference(
    store: &dyn ObjectStore,
    tiles: &dyn Queue,
    job: &JobId,
) -> Result<ReferenceManifest, PipelineError> {
    let mut sent: Option<u32> = None;
    let mut delays = crate::progress::reference_poll_delays();
    loop {
        if let Some(manifest) = read_reference_manifest(store, job).await? {
            return Ok(manifest);
        }
        if store.head(&job.cancelled_key()).await?.is_some() {
            return Err(PipelineError::Cancelled { job: job.clone() });
        }
        let failures = records::read_failures(store, job).await?;
        if failures.iter().any(|f| f.what == Failed::Job) {
            return Err(PipelineError::JobFailed {
                job: job.clone(),
                failures,
            });
        }
        let done = store
            .list(&job.reference_prefix())
            .await?
            .iter()
            .filter_map(|m| job.reference_state_of_key(&m.key))
            .max();
        let next = done.map_or(0, |k| k + 1);
        if sent.is_none_or(|s| s < next) {
            let message = ReferenceMessage {
                job: job.clone(),
                reference: next,
            };
            let body = serde_json::to_string(&message).expect("serialises");
            tiles.send_batch(&[body]).await?;
            sent = Some(next);
        }
        tokio::time::sleep(delays.next().expect("endless")).await;
    }
}
