//! The use cases on the in-memory adapters: submit, render, stitch, and the
//! at-least-once cases (duplicates, bad messages, resume).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mandel_core::{CountsImage, RenderParams, TileId, Viewport, kernel, pyramid};
use mandel_pipeline::estimate::{Estimate, JobRequests, JobShape, S3Requests, Submission};
use mandel_pipeline::faults::Flaky;
use mandel_pipeline::{
    CANCEL_RECHECK, CancelOutcome, Delivery, Failed, JobId, MemoryQueue, MemoryStore, Metadata,
    ObjectStore, PipelineError, Ports, PutMode, Pyramid, Queue, RetryPolicy, Retrying,
    StitchMessage, StitchOutcome, Submitted, TileMessage, TileOutcome, TileWorker, WaitPolicy,
    cancel, handle_stitch_delivery,
    records::{read_failures, read_stats},
    render_embedded, submit, wait_for_result,
};

fn small() -> RenderParams {
    RenderParams {
        view: mandel_core::View::Viewport(Viewport {
            xmin: -2.0,
            xmax: 0.5,
            ymin: -1.25,
            ymax: 1.25,
        }),
        tiles_per_side: 3,
        tile_pixels: 10,
        max_iter: 200,
    }
}

struct Rig {
    store: Arc<dyn ObjectStore>,
    tiles: Arc<MemoryQueue>,
    stitches: Arc<MemoryQueue>,
    worker: TileWorker,
}

impl Rig {
    fn ports(&self) -> Ports {
        Ports {
            store: Arc::clone(&self.store),
            tiles: self.tiles.clone(),
            stitch: self.stitches.clone(),
        }
    }

    async fn submit(&self, p: &RenderParams) -> Submitted {
        submit(&self.ports(), p, None, None).await.unwrap()
    }

    /// Submits the job and renders every tile; the stitch message is left
    /// on its queue.
    async fn render_tiles(&self, p: &RenderParams) -> JobId {
        let job = self.submit(p).await.job;
        for body in drain(&self.tiles).await {
            store_one(&self.worker, &body).await;
        }
        job
    }
}

fn rig() -> Rig {
    rig_on(Arc::new(MemoryStore::new()))
}

/// A rig whose store records every call (and never fails one).
fn recording_rig() -> (Arc<Flaky<MemoryStore>>, Rig) {
    let recorder = Arc::new(Flaky::new(MemoryStore::new(), 1, 0));
    let r = rig_on(recorder.clone());
    (recorder, r)
}

fn rig_on(store: Arc<dyn ObjectStore>) -> Rig {
    let tiles = Arc::new(MemoryQueue::new(Duration::from_millis(100)));
    let stitches = Arc::new(MemoryQueue::new(Duration::from_millis(100)));
    let worker = TileWorker::new(
        Arc::clone(&store),
        stitches.clone() as Arc<dyn Queue>,
        "test-worker",
    );
    Rig {
        store,
        tiles,
        stitches,
        worker,
    }
}

/// Stitches `job` as the stitch function does, on a first delivery of its
/// message.
async fn stitch(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    pyramid: Pyramid,
) -> Result<StitchOutcome, PipelineError> {
    let body = serde_json::to_string(&StitchMessage { job: job.clone() }).unwrap();
    handle_stitch_delivery(store, &delivery("stitch", body, 1), None, pyramid, None).await
}

/// Polls often; re-sends a stitch message after 50 ms.
fn quick_wait() -> WaitPolicy {
    WaitPolicy {
        poll_every: Duration::from_millis(1),
        restitch_after: Duration::from_millis(50),
        stitch_timeout: None,
    }
}

async fn drain(q: &MemoryQueue) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let got = q.receive(10, Duration::from_millis(10)).await.unwrap();
        if got.is_empty() {
            return out;
        }
        let receipts: Vec<String> = got.iter().map(|d| d.receipt.clone()).collect();
        q.delete(&receipts).await.unwrap();
        out.extend(got.into_iter().map(|d| d.body));
    }
}

fn expected_counts(p: &RenderParams) -> CountsImage {
    let mut img = CountsImage::for_params(p);
    for t in p.tiles() {
        img.place_tile(p.tile_pixels as usize, t, &reference_counts(p, t));
    }
    img
}

/// The scalar reference kernel's counts of a tile, as u32.
fn reference_counts(p: &RenderParams, t: TileId) -> Vec<u32> {
    kernel::reference::render_tile(p, t)
        .into_iter()
        .map(u32::from)
        .collect()
}

#[tokio::test]
async fn invalid_params_write_nothing() {
    let r = rig();
    let bad = RenderParams {
        max_iter: 0,
        ..small()
    };
    let err = submit(&r.ports(), &bad, None, None).await.unwrap_err();
    assert!(matches!(err, PipelineError::InvalidParams(_)), "{err}");
    assert!(r.store.list("").await.unwrap().is_empty());
    assert!(r.tiles.is_empty() && r.stitches.is_empty());
}

#[tokio::test]
async fn a_job_runs_once_even_with_duplicate_messages() {
    let r = rig();
    let p = small();
    let submitted = r.submit(&p).await;
    assert_eq!(submitted.enqueued, 9);
    assert_eq!(submitted.job, JobId::for_params(&p));
    assert_eq!(
        &r.store.get(&submitted.job.params_key()).await.unwrap().body[..],
        p.canonical_json().as_bytes()
    );

    let messages = drain(&r.tiles).await;
    assert_eq!(messages.len(), 9);
    // Deliver every message twice: blobs are keyed and deterministic.
    let mut completions = 0;
    for body in messages.iter().chain(messages.iter()) {
        completions += usize::from(store_one(&r.worker, body).await);
    }
    // The last new tile and every duplicate after it see a complete job.
    assert!(completions >= 1);
    let stitch_msgs = drain(&r.stitches).await;
    assert_eq!(stitch_msgs.len(), completions);

    let mut published = 0;
    for body in &stitch_msgs {
        match handle_stitch_delivery(
            &r.store,
            &delivery("s", body.clone(), 1),
            None,
            Pyramid::Skip,
            None,
        )
        .await
        .unwrap()
        {
            StitchOutcome::Published(m) => {
                published += 1;
                assert_eq!(m.tiles, 9);
                let stats = read_stats(&*r.store, &m).await.unwrap();
                assert_eq!(stats.len(), 9);
                assert!(stats.iter().all(|s| s.worker == "test-worker"));
                assert!(stats.iter().all(|s| s.started_ms >= s.batch_ms
                    && s.batch_ms >= s.boot_ms
                    && s.boot_ms > 0));
            }
            StitchOutcome::AlreadyDone => {}
            StitchOutcome::Cancelled => panic!("not cancelled"),
        }
    }
    assert_eq!(published, 1, "exactly one result");
    let npy = r.store.get(&submitted.job.counts_key()).await.unwrap().body;
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), expected_counts(&p));

    // A finished job is not run again.
    let again = r.submit(&p).await;
    assert!(again.finished);
    assert!(r.tiles.is_empty());

    // Its id with other params is refused, not answered with its picture.
    let other = RenderParams { max_iter: 201, ..p };
    let before = r.store.list("").await.unwrap();
    let err = submit(&r.ports(), &other, Some(submitted.job.clone()), None)
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::ParamsConflict { .. }), "{err}");
    assert_eq!(r.store.list("").await.unwrap(), before, "nothing written");
    assert!(r.tiles.is_empty() && r.stitches.is_empty());
}

#[tokio::test]
async fn resubmitting_enqueues_only_missing_tiles() {
    let r = rig();
    let p = small();
    let job = r.submit(&p).await.job;
    let messages = drain(&r.tiles).await;
    for body in &messages[..4] {
        store_one(&r.worker, body).await;
    }
    let resumed = r.submit(&p).await;
    assert_eq!(
        (resumed.job, resumed.enqueued, resumed.already_stored),
        (job, 5, 4)
    );
    assert_eq!(drain(&r.tiles).await.len(), 5);
}

#[tokio::test]
async fn bad_messages_fail_alone_and_write_nothing() {
    let r = rig();
    let p = small();
    let job = r.submit(&p).await.job;
    let before = r.store.list("").await.unwrap();
    let cases = [
        ("not json".to_string(), "malformed message"),
        (r#"{"job":"x","row":0}"#.to_string(), "malformed message"),
        (
            r#"{"job":"../etc","row":0,"col":0}"#.to_string(),
            "malformed message",
        ),
        (
            r#"{"job":"nosuchjob","row":0,"col":0}"#.to_string(),
            "has no params.json",
        ),
        (
            format!(r#"{{"job":"{job}","row":3,"col":0}}"#),
            "outside the 3x3 grid",
        ),
        (
            format!(r#"{{"job":"{job}","row":0,"col":99999999999}}"#),
            "malformed message",
        ),
    ];
    for (body, want) in cases {
        let reason = failure_of(&r.worker, &body).await;
        assert!(reason.contains(want), "{body}: {reason}");
    }
    assert_eq!(r.store.list("").await.unwrap(), before);
    let ok = TileMessage::new(job.clone(), TileId::new(0, 0));
    store_one(&r.worker, &serde_json::to_string(&ok).unwrap()).await;
}

#[tokio::test]
async fn hand_edited_params_are_refused() {
    let r = rig();
    let job = JobId::parse("edited").unwrap();
    let bad = r#"{"viewport":[1,0,0,1],"tiles_per_side":2,"tile_pixels":4,"max_iter":10}"#;
    r.store
        .put(
            &job.params_key(),
            Bytes::from(bad),
            Metadata::new(),
            PutMode::Create,
        )
        .await
        .unwrap();
    let reason = failure_of(&r.worker, r#"{"job":"edited","row":0,"col":0}"#).await;
    assert!(reason.contains("xmin must be less than xmax"), "{reason}");
    assert_eq!(r.store.list("jobs/edited/tiles/").await.unwrap(), vec![]);
}

/// Records read whole are read bounded: a principal that may write a
/// job's records cannot make a reader fetch gigabytes. A planted
/// oversized params.json fails the tile at once (permanent), naming the
/// limit; an oversized estimate.json is ignored by the stitch (it only
/// informs the report); an oversized result or stats is refused unread.
/// Through a recording store: every such read is one ranged GET of the
/// limit and a byte, never a whole GET.
#[tokio::test]
async fn oversized_records_are_refused_unread() {
    let (recorder, r) = recording_rig();
    let plant = |key: String, bytes: u64| {
        let store = Arc::clone(&r.store);
        async move {
            let body = Bytes::from(vec![b' '; bytes as usize]);
            store
                .put(&key, body, Metadata::new(), PutMode::Overwrite)
                .await
                .unwrap();
        }
    };
    let limit = mandel_pipeline::records::RECORD_MAX_BYTES;

    // params.json, planted under an unused id: the worker refuses it.
    let planted = JobId::parse("planted").unwrap();
    plant(
        planted.params_key(),
        mandel_pipeline::records::PARAMS_MAX_BYTES + 1,
    )
    .await;
    let reason = failure_of(&r.worker, r#"{"job":"planted","row":0,"col":0}"#).await;
    assert!(
        reason.contains("larger than") && reason.contains("not read"),
        "{reason}"
    );

    // A real job, with a planted estimate.json of 1 MiB and a byte: the
    // stitch still publishes, without the estimate.
    let p = small();
    let job = r.render_tiles(&p).await;
    plant(job.estimate_key(), limit + 1).await;
    let before = recorder.calls().len();
    let StitchOutcome::Published(m) = stitch(&r.store, &job, Pyramid::Skip).await.unwrap() else {
        panic!("published")
    };
    let estimate_reads: Vec<_> = recorder.calls()[before..]
        .iter()
        .filter(|(_, k)| *k == job.estimate_key())
        .map(|(op, _)| *op)
        .collect();
    assert_eq!(estimate_reads, ["get_range"], "one bounded read");

    // stats.json: at most a kilobyte a tile beyond the record limit.
    let stats_limit = limit + m.tiles * mandel_pipeline::records::STAT_MAX_BYTES;
    plant(job.stats_key(), stats_limit + 1).await;
    let err = read_stats(&*r.store, &m).await.unwrap_err();
    assert!(
        matches!(&err, PipelineError::RecordTooLarge { limit, .. } if *limit == stats_limit),
        "{err}"
    );
    // result.json: the waiting client refuses it, permanently.
    plant(job.result_key(), limit + 1).await;
    let err = wait_for_result(&r.ports(), &job, &p, quick_wait(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, PipelineError::RecordTooLarge { .. }) && err.is_permanent(),
        "{err}"
    );
}

#[tokio::test]
async fn stitch_refuses_missing_tiles_and_renders_corrupt_ones_again() {
    let r = rig();
    let p = small();
    let job = r.submit(&p).await.job;
    let messages = drain(&r.tiles).await;
    for body in &messages[1..] {
        store_one(&r.worker, body).await;
    }
    match stitch(&r.store, &job, Pyramid::Skip).await.unwrap_err() {
        PipelineError::MissingTiles { missing, .. } => assert_eq!(missing.len(), 1),
        e => panic!("expected MissingTiles, got {e}"),
    }
    store_one(&r.worker, &messages[0]).await;
    // Flip one byte of a tile, keeping its recorded checksum; cut another short.
    let flipped = stored_key(&r.store, &job, TileId::new(1, 1)).await;
    let obj = r.store.get(&flipped).await.unwrap();
    let mut body = obj.body.to_vec();
    body[0] ^= 1;
    r.store
        .put(
            &flipped,
            Bytes::from(body),
            obj.metadata,
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    let cut = stored_key(&r.store, &job, TileId::new(2, 0)).await;
    let obj = r.store.get(&cut).await.unwrap();
    r.store
        .put(&cut, obj.body.slice(..50), obj.metadata, PutMode::Overwrite)
        .await
        .unwrap();
    // A truncated blob does not count as stored: a re-run would send it again.
    let stored = mandel_pipeline::progress::stored_tiles(&*r.store, &job, &p)
        .await
        .unwrap();
    assert_eq!(stored.len(), 8);
    assert!(!stored.contains(&TileId::new(2, 0)));

    let StitchOutcome::Published(m) = stitch(&r.store, &job, Pyramid::Skip).await.unwrap() else {
        panic!("published")
    };
    let npy = r.store.get(&job.counts_key()).await.unwrap().body;
    assert_eq!(
        CountsImage::from_npy(&npy).unwrap(),
        expected_counts(&p),
        "damaged tiles must never reach the image"
    );
    let redone: Vec<(u32, u32)> = read_stats(&*r.store, &m)
        .await
        .unwrap()
        .iter()
        .filter(|s| s.worker == "stitch")
        .map(|s| (s.row, s.col))
        .collect();
    assert_eq!(redone, [(1, 1), (2, 0)]);
    // The good bytes are back in place.
    for (key, tile) in [(flipped, TileId::new(1, 1)), (cut, TileId::new(2, 0))] {
        let blob = r.store.get(&key).await.unwrap().body;
        assert_eq!(
            blob,
            mandel_core::blob::encode(&reference_counts(&p, tile), mandel_core::CountWidth::U16)
        );
    }
}

fn delivery(id: &str, body: String, receive_count: u32) -> Delivery {
    Delivery {
        message_id: id.to_string(),
        receipt: format!("r-{id}"),
        body,
        receive_count,
    }
}

/// One message through the worker's entry point, as a batch of one: its
/// outcome, and whether it completed its job.
async fn handle_one(worker: &TileWorker, body: &str) -> (TileOutcome, bool) {
    let out = worker
        .handle_batch(&[delivery("m", body.to_string(), 1)], None)
        .await;
    let completed = !out.completed.is_empty();
    let (_, outcome) = out.messages.into_iter().next().expect("one outcome");
    (outcome, completed)
}

/// One message that must store its tile; whether it completed its job.
async fn store_one(worker: &TileWorker, body: &str) -> bool {
    let (outcome, completed) = handle_one(worker, body).await;
    assert!(matches!(outcome, TileOutcome::Stored { .. }), "{outcome:?}");
    completed
}

/// One message that must fail; why.
async fn failure_of(worker: &TileWorker, body: &str) -> String {
    match handle_one(worker, body).await.0 {
        TileOutcome::Failed { reason } => reason,
        other => panic!("{body}: expected a failure, got {other:?}"),
    }
}

fn tile_body(job: &JobId, row: u32, col: u32) -> String {
    serde_json::to_string(&TileMessage::new(job.clone(), TileId::new(row, col))).unwrap()
}

/// A cancelled job's messages are acknowledged without work, its stitch is
/// skipped, a waiting client is told, and submitting it again resumes it.
#[tokio::test]
async fn a_cancelled_job_is_skipped_and_resumes_when_submitted_again() {
    let r = rig();
    let p = small();
    let job = r.submit(&p).await.job;
    let bodies = drain(&r.tiles).await;
    let first: Vec<_> = bodies[..3]
        .iter()
        .enumerate()
        .map(|(i, b)| delivery(&i.to_string(), b.clone(), 1))
        .collect();
    assert!(
        r.worker
            .handle_batch(&first, None)
            .await
            .failed_ids()
            .is_empty()
    );

    assert_eq!(
        cancel(&*r.store, &job).await.unwrap(),
        CancelOutcome::Cancelled
    );
    // The worker saw the job uncancelled just now; it looks again after
    // CANCEL_RECHECK, which passes on tokio's clock without a wait.
    tokio::time::pause();
    tokio::time::advance(CANCEL_RECHECK).await;
    tokio::time::resume();
    let rest: Vec<_> = bodies[3..]
        .iter()
        .enumerate()
        .map(|(i, b)| delivery(&format!("rest{i}"), b.clone(), 1))
        .collect();
    assert!(
        r.worker
            .handle_batch(&rest, None)
            .await
            .failed_ids()
            .is_empty(),
        "skipped messages succeed, so they are deleted"
    );
    let stored = mandel_pipeline::progress::stored_tiles(&*r.store, &job, &p)
        .await
        .unwrap();
    assert_eq!(stored.len(), 3, "nothing rendered after the cancel");
    assert_eq!(
        stitch(&r.store, &job, Pyramid::Skip).await.unwrap(),
        StitchOutcome::Cancelled
    );
    let err = wait_for_result(&r.ports(), &job, &p, quick_wait(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::Cancelled { .. }), "{err}");
    assert!(matches!(
        cancel(&*r.store, &JobId::parse("nosuchjob").unwrap()).await,
        Err(PipelineError::UnknownJob { .. })
    ));

    let resumed = r.submit(&p).await;
    assert_eq!((resumed.enqueued, resumed.already_stored), (6, 3));
    for body in drain(&r.tiles).await {
        store_one(&r.worker, &body).await;
    }
    for body in drain(&r.stitches).await {
        handle_stitch_delivery(&r.store, &delivery("s", body, 1), None, Pyramid::Skip, None)
            .await
            .unwrap();
    }
    let m = wait_for_result(&r.ports(), &job, &p, quick_wait(), |_| {})
        .await
        .unwrap();
    assert_eq!(m.tiles, 9);
    assert_eq!(
        cancel(&*r.store, &job).await.unwrap(),
        CancelOutcome::AlreadyFinished
    );
}

/// A tile that fails on the queue's last delivery leaves a failure record;
/// earlier deliveries do not. The waiting client stops and names the tile;
/// submitting again clears the record and re-sends the tile.
#[tokio::test]
async fn a_final_failure_is_recorded_reported_and_retried_by_a_rerun() {
    let r = rig();
    let p = small();
    let job = r.submit(&p).await.job;
    drain(&r.tiles).await;
    // The first two store calls of each worker (its cancel check and its
    // params fetch) fail.
    let flaky_worker = |name: &str| {
        TileWorker::new(
            Arc::new(Flaky::new(Arc::clone(&r.store), 1, 2)),
            r.stitches.clone() as Arc<dyn Queue>,
            name,
        )
        .with_max_receive_count(Some(3))
    };
    let body = tile_body(&job, 2, 1);
    let failed = flaky_worker("w2")
        .handle_batch(&[delivery("m", body.clone(), 2)], None)
        .await
        .failed_ids();
    assert_eq!(failed, ["m"]);
    assert!(read_failures(&*r.store, &job).await.unwrap().is_empty());

    let failed = flaky_worker("w3")
        .handle_batch(&[delivery("m", body.clone(), 3)], None)
        .await
        .failed_ids();
    assert_eq!(failed, ["m"]);
    let failures = read_failures(&*r.store, &job).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].what, Failed::Tile(TileId::new(2, 1)));
    assert_eq!((failures[0].attempts, &*failures[0].worker), (3, "w3"));
    assert!(
        failures[0].reason.contains("injected fault"),
        "{failures:?}"
    );

    let err = wait_for_result(&r.ports(), &job, &p, quick_wait(), |_| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PipelineError::JobFailed { .. }), "{text}");
    assert!(
        text.contains("tile 2-1") && text.contains("attempt 3"),
        "{text}"
    );

    let again = r.submit(&p).await;
    assert_eq!(again.enqueued, 9);
    assert!(read_failures(&*r.store, &job).await.unwrap().is_empty());
}

/// A hand-edited, invalid params.json fails every tile of the job at once
/// with a job-level record that says what is wrong.
#[tokio::test]
async fn a_hand_edited_params_json_fails_the_job_with_its_reason() {
    let r = rig();
    let p = small();
    let job = r.submit(&p).await.job;
    let edited = p
        .canonical_json()
        .replace("\"max_iter\":200", "\"max_iter\":0");
    assert_ne!(edited, p.canonical_json());
    r.store
        .put(
            &job.params_key(),
            Bytes::from(edited),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    let worker = TileWorker::new(
        Arc::clone(&r.store),
        r.stitches.clone() as Arc<dyn Queue>,
        "w",
    )
    .with_max_receive_count(Some(3));
    let failed = worker
        .handle_batch(&[delivery("a", tile_body(&job, 0, 0), 1)], None)
        .await
        .failed_ids();
    assert_eq!(failed, ["a"]);
    assert!(
        r.store.list(&job.tiles_prefix()).await.unwrap().is_empty(),
        "no tile written"
    );
    let err = wait_for_result(&r.ports(), &job, &p, quick_wait(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("params.json") && err.contains("max_iter"),
        "{err}"
    );
}

/// Every store and queue call of a job fails now and then (every 3rd, as a
/// flaky network would); through [`Retrying`] the job still comes out exact.
/// Without it the same faults fail messages, which proves they are real.
#[tokio::test]
async fn transient_faults_are_retried_to_an_exact_result() {
    let p = small();
    let memory: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let fast = RetryPolicy {
        attempts: 5,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        deadline: Duration::from_secs(5),
    };
    let flaky_store = Arc::new(Flaky::new(Arc::clone(&memory), 3, u64::MAX));
    let store: Arc<dyn ObjectStore> = Arc::new(Retrying::new(Arc::clone(&flaky_store), fast));
    let tiles_mem = Arc::new(MemoryQueue::new(Duration::from_millis(100)));
    let flaky_tiles = Arc::new(Flaky::new(Arc::clone(&tiles_mem), 3, u64::MAX));
    let tiles = Arc::new(Retrying::new(Arc::clone(&flaky_tiles), fast));
    let stitches: Arc<dyn Queue> = Arc::new(Retrying::new(
        Flaky::new(MemoryQueue::new(Duration::from_millis(100)), 3, u64::MAX),
        fast,
    ));
    let ports = Ports {
        store: Arc::clone(&store),
        tiles: tiles.clone(),
        stitch: Arc::clone(&stitches),
    };
    let job = submit(&ports, &p, None, None).await.unwrap().job;
    let worker = TileWorker::new(Arc::clone(&store), Arc::clone(&stitches), "w");
    loop {
        let batch = tiles.receive(10, Duration::from_millis(10)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(
            worker
                .handle_batch(&batch, None)
                .await
                .failed_ids()
                .is_empty()
        );
        let receipts: Vec<String> = batch.into_iter().map(|d| d.receipt).collect();
        tiles.delete(&receipts).await.unwrap();
    }
    let stitch_msg = stitches
        .receive(1, Duration::from_millis(10))
        .await
        .unwrap();
    handle_stitch_delivery(&store, &stitch_msg[0], None, Pyramid::Skip, None)
        .await
        .unwrap();
    let m = wait_for_result(&ports, &job, &p, quick_wait(), |_| {})
        .await
        .unwrap();
    let npy = store.get(&m.counts_key).await.unwrap().body;
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), expected_counts(&p));
    assert!(
        flaky_store.injected() > 10 && flaky_tiles.injected() >= 2,
        "faults injected: store {}, tiles queue {}",
        flaky_store.injected(),
        flaky_tiles.injected()
    );

    // The same faults without retries fail messages.
    let bare = rig();
    let job = submit(&bare.ports(), &p, None, None).await.unwrap().job;
    let flaky = TileWorker::new(
        Arc::new(Flaky::new(Arc::clone(&bare.store), 3, u64::MAX)),
        bare.stitches.clone() as Arc<dyn Queue>,
        "w",
    );
    let batch: Vec<_> = drain(&bare.tiles)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, b)| delivery(&i.to_string(), b, 1))
        .collect();
    assert!(
        !flaky
            .handle_batch(&batch, None)
            .await
            .failed_ids()
            .is_empty()
    );
    let _ = job;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_render_equals_the_reference_kernel() {
    let p = small();
    let mut seen = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let out = render_embedded(&p, 3, dir.path(), None, None, |n| seen.push(n))
        .await
        .unwrap();
    let npy = out.counts_npy().await.unwrap();
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), expected_counts(&p));
    assert_eq!(seen.last(), Some(&9));
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {seen:?}"
    );
    assert_eq!(out.manifest.tiles, 9);
    let png = out.store().get(&out.manifest.image_key).await.unwrap().body;
    assert_eq!(image_dims(&png), (30, 30));
    // The outputs are written out as files; the scratch folder goes with
    // the render.
    let file = dir.path().join("out.png");
    out.store()
        .download(&out.manifest.image_key, &file)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), png);
    drop(out);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["out.png"]);
}

fn image_dims(png: &[u8]) -> (u32, u32) {
    // The PNG IHDR chunk holds width and height right after the signature.
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (w, h)
}

/// A batch as the SQS trigger delivers it: good messages, a malformed one
/// and an out-of-range tile. Only the two bad ones are reported failed, the
/// good tiles are stored, and the batch that stores the last tile sends
/// exactly one stitch message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_reports_only_its_bad_messages() {
    let r = rig();
    let p = small();
    let job = r.submit(&p).await.job;
    let delivery = |id: &str, body: String| mandel_pipeline::Delivery {
        message_id: id.to_string(),
        receipt: format!("r-{id}"),
        body,
        receive_count: 1,
    };
    let mut bodies = drain(&r.tiles).await;
    let last = bodies.split_off(5);
    let first: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| delivery(&format!("ok{i}"), b))
        .chain([
            delivery("garbage", "{not json".to_string()),
            delivery(
                "outside",
                serde_json::to_string(&TileMessage::new(job.clone(), TileId::new(3, 0))).unwrap(),
            ),
        ])
        .collect();
    let mut failed = r.worker.handle_batch(&first, None).await.failed_ids();
    failed.sort();
    assert_eq!(failed, ["garbage", "outside"]);
    assert!(drain(&r.stitches).await.is_empty(), "job not complete yet");

    let rest: Vec<_> = last
        .into_iter()
        .enumerate()
        .map(|(i, b)| delivery(&format!("late{i}"), b))
        .collect();
    assert!(
        r.worker
            .handle_batch(&rest, None)
            .await
            .failed_ids()
            .is_empty()
    );
    assert_eq!(drain(&r.stitches).await.len(), 1, "one stitch message");
    match stitch(&r.store, &job, Pyramid::Skip).await.unwrap() {
        StitchOutcome::Published(m) => assert_eq!(m.tiles, 9),
        other => panic!("{other:?}"),
    }
}

/// Tiles arriving in any order: no stitch message until the batch that
/// stores the last tile, which sends one. Both ways of checking: a small
/// job is listed whole; one of over 1000 tiles row by row first.
#[tokio::test]
async fn completion_is_detected_exactly_at_the_last_tile_in_any_order() {
    for (tiles_per_side, batch) in [(3, 2), (33, 10)] {
        let p = RenderParams {
            tiles_per_side,
            tile_pixels: 2,
            max_iter: 20,
            ..small()
        };
        completes_at_the_last_tile(&p, batch).await;
    }
}

async fn completes_at_the_last_tile(p: &RenderParams, batch: usize) {
    let r = rig();
    r.submit(p).await;
    let mut bodies = drain(&r.tiles).await;
    // Column-major and backwards: rows complete only near the end.
    bodies.sort_by_key(|b| {
        let m: TileMessage = serde_json::from_str(b).unwrap();
        std::cmp::Reverse((m.col, m.row))
    });
    let batches: Vec<Vec<Delivery>> = bodies
        .chunks(batch)
        .map(|c| {
            c.iter()
                .enumerate()
                .map(|(i, b)| delivery(&i.to_string(), b.clone(), 1))
                .collect()
        })
        .collect();
    let (last, before) = batches.split_last().unwrap();
    for batch in before {
        assert!(
            r.worker
                .handle_batch(batch, None)
                .await
                .failed_ids()
                .is_empty()
        );
        assert!(drain(&r.stitches).await.is_empty(), "stitch sent too early");
    }
    assert!(
        r.worker
            .handle_batch(last, None)
            .await
            .failed_ids()
            .is_empty()
    );
    assert_eq!(drain(&r.stitches).await.len(), 1);
}

/// A job whose stitch message is lost (purged, dead-lettered, or its stitch
/// killed) is not stuck: the waiting client sends it again.
#[tokio::test]
async fn a_lost_stitch_message_is_sent_again_by_the_waiting_client() {
    let r = rig();
    let p = small();
    let job = r.render_tiles(&p).await;
    // Every tile is stored; the stitch message is lost.
    assert_eq!(drain(&r.stitches).await.len(), 1);
    let stitcher = {
        let (store, stitches) = (Arc::clone(&r.store), Arc::clone(&r.stitches));
        tokio::spawn(async move {
            loop {
                for d in stitches
                    .receive(1, Duration::from_millis(10))
                    .await
                    .unwrap()
                {
                    handle_stitch_delivery(&store, &d, None, Pyramid::Skip, None)
                        .await
                        .unwrap();
                    stitches.delete(&[d.receipt]).await.unwrap();
                }
            }
        })
    };
    let m = tokio::time::timeout(
        Duration::from_secs(10),
        wait_for_result(&r.ports(), &job, &p, quick_wait(), |_| {}),
    )
    .await
    .expect("the client re-sent the stitch")
    .unwrap();
    stitcher.abort();
    let npy = r.store.get(&m.counts_key).await.unwrap().body;
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), expected_counts(&p));
}

/// A worker near its Lambda deadline leaves the tile it cannot finish (its
/// message fails and comes back; on the last delivery the client is told
/// why) and keeps the ones it finished; a redelivered tile already stored
/// whole is acknowledged without rendering it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_at_its_deadline_keeps_what_it_finished_and_fails_only_the_rest() {
    let r = rig();
    let fast = small();
    // Deep inside the period-3 bulb: every pixel runs all its iterations
    // and no shortcut applies, about 250 G iterations in one tile (16 G,
    // a 512-px tile, took under 4 s on an AMD EPYC with AVX-512).
    let slow = RenderParams {
        view: mandel_core::View::Viewport(Viewport {
            xmin: -0.1230,
            xmax: -0.1220,
            ymin: 0.7445,
            ymax: 0.7455,
        }),
        tiles_per_side: 1,
        tile_pixels: 2048,
        max_iter: 60_000,
    };
    let fast_job = r.submit(&fast).await.job;
    let slow_job = r.submit(&slow).await.job;
    drain(&r.tiles).await;
    let worker = TileWorker::new(
        Arc::clone(&r.store),
        r.stitches.clone() as Arc<dyn Queue>,
        "first",
    )
    .with_max_receive_count(Some(1));
    let batch = vec![
        delivery("slow", tile_body(&slow_job, 0, 0), 1),
        delivery("fast", tile_body(&fast_job, 1, 1), 1),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let failed = worker
        .handle_batch(&batch, Some(deadline))
        .await
        .failed_ids();
    assert!(
        std::time::Instant::now() < deadline,
        "the worker returned after its deadline"
    );
    assert_eq!(failed, ["slow"]);
    let kept = r
        .store
        .get(&stored_key(&r.store, &fast_job, TileId::new(1, 1)).await)
        .await;
    assert_eq!(kept.unwrap().metadata["worker"], "first");
    let slow_tile = slow_job.tile_prefix(TileId::new(0, 0));
    assert!(r.store.list(&slow_tile).await.unwrap().is_empty());
    let failures = read_failures(&*r.store, &slow_job).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0]
            .reason
            .contains("did not finish before the worker's deadline"),
        "{}",
        failures[0].reason
    );

    // The fast tile's message comes back (say its delete was lost): it is
    // acknowledged, and the stored blob is not rendered again.
    let again = TileWorker::new(
        Arc::clone(&r.store),
        r.stitches.clone() as Arc<dyn Queue>,
        "second",
    );
    let redelivered = [delivery("fast", tile_body(&fast_job, 1, 1), 2)];
    assert!(
        again
            .handle_batch(&redelivered, None)
            .await
            .failed_ids()
            .is_empty()
    );
    let kept = r
        .store
        .get(&stored_key(&r.store, &fast_job, TileId::new(1, 1)).await)
        .await;
    assert_eq!(kept.unwrap().metadata["worker"], "first");
}

/// An invocation past its deadline is stopped, as Lambda kills a function
/// at its timeout: every message of its batch fails and comes back.
#[tokio::test]
async fn an_invocation_past_its_deadline_is_stopped_and_its_batch_fails() {
    let batch = vec![
        delivery("a", "{}".to_string(), 1),
        delivery("b", "{}".to_string(), 1),
    ];
    let deadline = std::time::Instant::now() + Duration::from_millis(100);
    let failed = mandel_pipeline::invoke(batch, Some(deadline), |_, _| async {
        tokio::time::sleep(Duration::from_secs(600)).await;
        Vec::new()
    })
    .await;
    assert_eq!(failed, ["a", "b"]);
}

/// A stitch that started on its last delivery and outlived its timeout was
/// killed (timeout or memory): the waiting client says so instead of
/// waiting for ever; a re-run forgets that attempt and stitches again.
#[tokio::test]
async fn a_stitch_killed_on_its_last_attempt_is_reported_and_a_rerun_retries_it() {
    // The client judges a stitch dead by its own clock: 300 s pass on a
    // paused one.
    tokio::time::pause();
    let r = rig();
    let p = small();
    let job = r.render_tiles(&p).await;
    drain(&r.stitches).await;
    let killed = mandel_pipeline::StitchAttempt {
        attempt: 3,
        last: true,
        started_unix_ms: 1,
    };
    put_attempt(&r.store, &job, &killed).await;
    let policy = WaitPolicy {
        poll_every: Duration::from_secs(1),
        stitch_timeout: Some(Duration::from_secs(300)),
        ..quick_wait()
    };
    let err = wait_for_result(&r.ports(), &job, &p, policy, |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("killed by its timeout (300 s) or by its memory limit"),
        "{err}"
    );
    assert!(
        r.stitches.is_empty(),
        "no stitch is sent for a dead last attempt"
    );

    // Running the job again sends a fresh stitch and forgets the old attempt.
    let again = r.submit(&p).await;
    assert_eq!(again.enqueued, 0);
    assert!(r.store.head(&job.stitching_key()).await.unwrap().is_none());
    assert_eq!(drain(&r.stitches).await.len(), 1);
}

/// Writes a stitch attempt's marker as the stitch would.
async fn put_attempt(
    store: &Arc<dyn ObjectStore>,
    job: &JobId,
    attempt: &mandel_pipeline::StitchAttempt,
) {
    store
        .put(
            &job.stitching_key(),
            Bytes::from(serde_json::to_vec(attempt).unwrap()),
            Metadata::new(),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
}

/// A healthy stitch is never declared dead because the stitch's clock and
/// the client's disagree: a marker that by the wall clocks started 400 s
/// ago (timeout 300 s) is a running stitch until the client itself has seen
/// it run past its timeout; here it publishes after 100 s.
#[tokio::test]
async fn a_stitch_marker_from_a_skewed_clock_is_not_taken_for_a_dead_stitch() {
    tokio::time::pause();
    let r = rig();
    let p = small();
    let job = r.render_tiles(&p).await;
    let messages = drain(&r.stitches).await;
    let skewed = mandel_pipeline::StitchAttempt {
        attempt: 1,
        last: true,
        started_unix_ms: mandel_pipeline::StitchAttempt::starting(1, true).started_unix_ms
            - 400_000,
    };
    put_attempt(&r.store, &job, &skewed).await;
    let policy = WaitPolicy {
        poll_every: Duration::from_secs(1),
        restitch_after: Duration::from_secs(3600),
        stitch_timeout: Some(Duration::from_secs(300)),
    };
    let ports = r.ports();
    let waiting =
        tokio::spawn(async move { wait_for_result(&ports, &job, &p, policy, |_| {}).await });
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert!(
        !waiting.is_finished(),
        "the client waits for the running stitch"
    );
    handle_stitch_delivery(
        &r.store,
        &delivery("s", messages[0].clone(), 1),
        None,
        Pyramid::Skip,
        None,
    )
    .await
    .unwrap();
    let manifest = waiting.await.unwrap().unwrap();
    assert_eq!(manifest.tiles, 9);
}

/// A stitch whose job lost its params.json fails at once with a record the
/// client reports, not after hours of redelivery; a stitch message for a
/// job nobody submitted writes nothing.
/// A stitch keeps to its invocation's deadline: one that cannot finish
/// stops short of it (by the workers' margin: all of a 1 s invocation
/// here, so it does not start; a longer one is cut by a timeout at the
/// same point) instead of being killed silently, and on its last attempt
/// records why; an earlier attempt records nothing (a retry may make it).
/// Nothing is published by a stopped stitch; one with time publishes.
#[tokio::test]
async fn a_stitch_out_of_time_stops_before_its_deadline_and_records_why() {
    let r = rig();
    let p = small();
    let job = r.render_tiles(&p).await;
    let message = drain(&r.stitches).await.remove(0);
    for (attempt, last) in [(1, false), (2, true)] {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let err = handle_stitch_delivery(
            &r.store,
            &delivery("s", message.clone(), attempt),
            Some(2),
            Pyramid::Skip,
            Some(deadline),
        )
        .await
        .unwrap_err();
        assert!(std::time::Instant::now() < deadline, "stopped in time");
        assert!(
            matches!(err, PipelineError::StitchOutOfTime { .. }),
            "{err}"
        );
        let failures = read_failures(&*r.store, &job).await.unwrap();
        assert_eq!(failures.len(), usize::from(last), "attempt {attempt}");
        if last {
            assert_eq!(failures[0].what, Failed::Stitch);
            assert!(
                failures[0].reason.contains("stopped at its deadline")
                    && failures[0].reason.contains("stitch_timeout_seconds"),
                "{}",
                failures[0].reason
            );
        }
        assert!(r.store.head(&job.result_key()).await.unwrap().is_none());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let outcome = handle_stitch_delivery(
        &r.store,
        &delivery("s", message, 1),
        Some(2),
        Pyramid::Skip,
        Some(deadline),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, StitchOutcome::Published(_)));
}

#[tokio::test]
async fn a_stitch_whose_params_are_gone_is_recorded_at_once() {
    let r = rig();
    let p = small();
    let job = r.render_tiles(&p).await;
    let message = drain(&r.stitches).await.remove(0);
    r.store.delete(&job.params_key()).await.unwrap();
    let err = handle_stitch_delivery(
        &r.store,
        &delivery("s", message, 1),
        Some(5),
        Pyramid::Skip,
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PipelineError::UnknownJob { .. }), "{err}");
    let failures = read_failures(&*r.store, &job).await.unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].reason.contains("no params.json"),
        "{}",
        failures[0].reason
    );

    let stranger = r#"{"job":"nobody-submitted-this"}"#.to_string();
    handle_stitch_delivery(
        &r.store,
        &delivery("x", stranger, 1),
        Some(5),
        Pyramid::Skip,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        r.store
            .list("jobs/nobody-submitted-this/")
            .await
            .unwrap()
            .is_empty()
    );
}

/// The key `tile` is stored under (it names the tile's count range).
async fn stored_key(store: &Arc<dyn ObjectStore>, job: &JobId, tile: TileId) -> String {
    let listed = store.list(&job.tile_prefix(tile)).await.unwrap();
    assert_eq!(listed.len(), 1, "{tile} is stored once");
    listed[0].key.clone()
}

#[tokio::test]
async fn the_stitch_writes_a_pyramid_whose_top_level_is_the_picture() {
    let r = rig();
    let p = RenderParams {
        tile_pixels: 200,
        ..small()
    };
    let job = r.render_tiles(&p).await;
    let StitchOutcome::Published(_) = stitch(&r.store, &job, Pyramid::Write).await.unwrap() else {
        panic!("published")
    };
    // One object: the pack, as big as the result says.
    let listed = r
        .store
        .list(&format!("{}pyramid/", job.prefix()))
        .await
        .unwrap();
    let result = mandel_pipeline::records::read_result(&*r.store, &job)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].key, job.pyramid_pack_key());
    assert_eq!(listed[0].size, result.pyramid_bytes);
    // Every tile, read by range, is the tile of the stored picture's own
    // pyramid, byte for byte.
    let picture = image::load_from_memory(&r.store.get(&job.image_key()).await.unwrap().body)
        .unwrap()
        .to_rgb8();
    let mut expected = mandel_core::pyramid::Pyramid::new(600, 600);
    let mut tiles = Vec::new();
    for row in picture.rows() {
        let rgb: Vec<u8> = row.flat_map(|p| p.0).collect();
        tiles.extend(expected.push_row(&rgb).unwrap());
    }
    tiles.extend(expected.finish().unwrap());
    assert_eq!(tiles.len() as u64, pyramid::object_count(600, 600) - 2);
    let stored = mandel_pipeline::pyramid::StoredPyramid::open(&*r.store, &job)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.size(), (600, 600));
    for t in &tiles {
        let png = stored.tile(&*r.store, t.level, t.col, t.row).await.unwrap();
        assert_eq!(png.as_deref(), Some(&t.png[..]), "{}", t.path());
    }
    let top = pyramid::max_level(600, 600);
    assert_eq!(stored.tile(&*r.store, top, 3, 0).await.unwrap(), None);
    assert_eq!(stored.tile(&*r.store, top + 1, 0, 0).await.unwrap(), None);
    // A job stitched without one has none.
    let q = RenderParams {
        max_iter: 77,
        ..small()
    };
    let bare = r.render_tiles(&q).await;
    stitch(&r.store, &bare, Pyramid::Skip).await.unwrap();
    assert!(
        mandel_pipeline::pyramid::StoredPyramid::open(&*r.store, &bare)
            .await
            .unwrap()
            .is_none()
    );
}

/// The requests of a job's use cases, counted by a recording store: a job
/// of at most a thousand tiles is seen through one listing of it, so
/// submit makes two requests before its first send, each batch one
/// listing (and a cancel HEAD and the params once per worker), the stitch
/// one listing and no HEAD; no row marker is written.
#[tokio::test]
async fn a_job_listed_whole_costs_one_listing_per_batch_and_no_row_markers() {
    let (recorder, r) = recording_rig();
    let p = small();
    let count = |from: usize, op: &str| {
        recorder.calls()[from..]
            .iter()
            .filter(|(o, _)| *o == op)
            .count()
    };

    let job = submit(&r.ports(), &p, None, None).await.unwrap().job;
    assert_eq!(
        recorder.calls(),
        [("put", job.params_key()), ("list", job.prefix())],
        "submit: the params, then one listing answers the rest"
    );
    let bodies = drain(&r.tiles).await;
    let mut completed = Vec::new();
    for (b, batch) in bodies.chunks(3).enumerate() {
        let before = recorder.calls().len();
        let batch: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, body)| delivery(&format!("{b}-{i}"), body.clone(), 1))
            .collect();
        let out = r.worker.handle_batch(&batch, None).await;
        assert!(out.failed_ids().is_empty());
        completed.extend(out.completed);
        let first = b == 0;
        assert_eq!(count(before, "put"), 3, "batch {b}: its tiles");
        assert_eq!(
            count(before, "list"),
            1,
            "batch {b}: one listing of the job"
        );
        assert_eq!(
            count(before, "get_range"),
            usize::from(first),
            "batch {b}: params once"
        );
        assert_eq!(
            count(before, "head"),
            usize::from(first),
            "batch {b}: cancel checked once a second"
        );
    }
    assert_eq!(completed, std::slice::from_ref(&job));
    assert!(recorder.calls().iter().all(|(_, k)| !k.contains("/rows/")));

    let before = recorder.calls().len();
    let StitchOutcome::Published(_) = stitch(&r.store, &job, Pyramid::Skip).await.unwrap() else {
        panic!("published")
    };
    assert_eq!(count(before, "list"), 1, "the stitch lists the job once");
    assert_eq!(count(before, "head"), 0);
    assert_eq!(
        count(before, "get_range") + count(before, "get"),
        2 + p.tile_count() as usize,
        "params, the estimate (for the report) and every tile"
    );
}

/// A job of more than a thousand tiles is tracked by row markers: its
/// completion never lists the whole job, and it stitches to the
/// reference counts.
#[tokio::test]
async fn a_job_too_large_to_list_whole_is_tracked_by_row_markers() {
    let (recorder, r) = recording_rig();
    let p = RenderParams {
        tiles_per_side: 32,
        tile_pixels: 2,
        max_iter: 50,
        ..small()
    };
    assert!(p.tile_count() > mandel_pipeline::progress::ONE_LISTING);
    let job = submit(&r.ports(), &p, None, None).await.unwrap().job;
    let submitted = recorder.calls().len();
    let bodies = drain(&r.tiles).await;
    let mut completed = Vec::new();
    for (b, batch) in bodies.chunks(10).enumerate() {
        let batch: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, body)| delivery(&format!("{b}-{i}"), body.clone(), 1))
            .collect();
        completed.extend(r.worker.handle_batch(&batch, None).await.completed);
    }
    assert_eq!(
        completed,
        std::slice::from_ref(&job),
        "the last row's marker completes it"
    );
    let calls = recorder.calls();
    assert!(
        calls[submitted..]
            .iter()
            .all(|(op, k)| *op != "list" || k != &job.prefix())
    );
    let markers = r.store.list(&job.rows_prefix()).await.unwrap();
    assert_eq!(markers.len(), 32);

    let StitchOutcome::Published(_) = stitch(&r.store, &job, Pyramid::Skip).await.unwrap() else {
        panic!("published")
    };
    let npy = r.store.get(&job.counts_key()).await.unwrap().body;
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), expected_counts(&p));
}

/// The cost model's S3 requests ([`JobRequests`], behind
/// `Usage::of_job`) are the requests the use cases make, role by role,
/// counted through a recording store per role over one store: a job
/// listed whole, one tracked by row markers and a deep job (its reference
/// orbit computed by a worker while the client waits), each run as the
/// cloud runs it (submit with its estimate, one worker process, the stitch
/// with its pyramid, the client's wait, stats and downloads). The clock
/// is paused, so the worker's cancel look is once per process, as in a job
/// of under a second.
#[tokio::test]
async fn the_cost_model_counts_the_requests_the_use_cases_make() {
    tokio::time::pause();
    let rows_job = RenderParams {
        tiles_per_side: 32,
        tile_pixels: 2,
        max_iter: 50,
        ..small()
    };
    assert!(rows_job.tile_count() > mandel_pipeline::progress::ONE_LISTING);
    let deep_job = RenderParams {
        view: mandel_core::View::Deep(
            mandel_core::deep::DeepView::parse("-0.75", "0.1", "1e30").unwrap(),
        ),
        tiles_per_side: 2,
        tile_pixels: 8,
        max_iter: 3000,
    };
    for (p, batch) in [(small(), 3), (rows_job, 10), (deep_job, 3)] {
        requests_match_the_model(p, batch).await;
    }
}

/// S3's price classes of the calls a recording store saw.
fn priced(calls: &[(&'static str, String)]) -> S3Requests {
    let mut r = S3Requests::default();
    for (op, key) in calls {
        match *op {
            "put" | "list" | "list_children" | "start_upload" | "put_part" | "complete_upload" => {
                r.put += 1
            }
            "get" | "get_range" | "head" | "download" => r.get += 1,
            "delete" | "abort_upload" => {}
            other => panic!("unpriced store call {other} {key}"),
        }
    }
    r
}

async fn requests_match_the_model(p: RenderParams, batch: usize) {
    let shared = Arc::new(MemoryStore::new());
    let recorder = || Arc::new(Flaky::new(Arc::clone(&shared), 1, 0));
    let (client, workers, stitcher) = (recorder(), recorder(), recorder());
    let r = rig_on(client.clone());
    let worker = TileWorker::new(
        workers.clone(),
        r.stitches.clone() as Arc<dyn Queue>,
        "test-worker",
    );
    let label = format!("{} tiles", p.tile_count());

    let estimate = Estimate::embedded(&mandel_pipeline::estimate::profile(&p), 1);
    let submission = Submission::now(estimate, None);
    // A deep job's client waits for its orbit: a worker computes it
    // meanwhile, each reference message an invocation of its own.
    let computing = async {
        let mut segments = 0;
        while p.as_deep().is_some() {
            let got = r.tiles.receive(1, Duration::from_secs(1)).await.unwrap();
            let Some(d) = got.into_iter().next() else {
                continue;
            };
            r.tiles
                .delete(std::slice::from_ref(&d.receipt))
                .await
                .unwrap();
            worker.handle_batch(&[d], None).await;
            segments += 1;
            let whole =
                mandel_pipeline::records::read_reference_manifest(&*shared, &JobId::for_params(&p))
                    .await
                    .unwrap()
                    .is_some();
            if whole {
                break;
            }
        }
        segments
    };
    let (submitted, reference_segments) =
        futures::future::join(submit(&r.ports(), &p, None, Some(&submission)), computing).await;
    let job = submitted.unwrap().job;
    let reference_polls = client
        .calls()
        .iter()
        .filter(|(op, key)| *op == "list" && *key == job.reference_prefix())
        .count() as u64;
    assert_eq!(p.as_deep().is_some(), reference_polls > 0, "{label}");

    let bodies = drain(&r.tiles).await;
    let (mut invocations, mut rows_touched) = (0, 0);
    for (b, chunk) in bodies.chunks(batch).enumerate() {
        let batch: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| delivery(&format!("{b}-{i}"), body.clone(), 1))
            .collect();
        let rows: std::collections::BTreeSet<u32> = chunk
            .iter()
            .map(|body| serde_json::from_str::<TileMessage>(body).unwrap().row)
            .collect();
        assert!(
            worker
                .handle_batch(&batch, None)
                .await
                .failed_ids()
                .is_empty()
        );
        invocations += 1;
        rows_touched += rows.len() as u64;
    }

    let messages = drain(&r.stitches).await;
    assert_eq!(messages.len(), 1, "{label}: one stitch message");
    let stitch_store: Arc<dyn ObjectStore> = stitcher.clone();
    let outcome = handle_stitch_delivery(
        &stitch_store,
        &delivery("s", messages[0].clone(), 1),
        None,
        Pyramid::Write,
        None,
    )
    .await
    .unwrap();
    let StitchOutcome::Published(m) = outcome else {
        panic!("published")
    };

    let m2 = wait_for_result(&r.ports(), &job, &p, quick_wait(), |_| {})
        .await
        .unwrap();
    assert_eq!(*m, m2);
    read_stats(&*r.store, &m).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for key in [&m.image_key, &m.counts_key] {
        r.store
            .download(key, &dir.path().join("out"))
            .await
            .unwrap();
    }

    let side = p.image_side();
    assert!(m.pyramid_bytes > 0, "{label}: the stitch wrote a pyramid");
    let shape = JobShape {
        tiles: p.tile_count(),
        rows: u64::from(p.tiles_per_side),
        invocations,
        rows_touched,
        cold_starts: 1,
        // One poll finds the result.
        wait_seconds: 0.25,
        image_bytes: m.image_bytes,
        counts_bytes: p.count_width().bytes() as u64 * side * side,
        pyramid_bytes: m.pyramid_bytes,
        downloads: 2,
        reference_segments,
        reference_polls,
        ..JobShape::default()
    };
    let model = JobRequests::of(&shape);
    assert_eq!(
        priced(&workers.calls()),
        model.workers,
        "{label}: the workers' requests"
    );
    assert_eq!(
        priced(&stitcher.calls()),
        model.stitch,
        "{label}: the stitch's requests"
    );
    assert_eq!(
        priced(&client.calls()),
        model.client,
        "{label}: the client's requests"
    );
}
