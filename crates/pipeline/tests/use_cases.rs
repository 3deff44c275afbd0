//! The use cases on the in-memory adapters: submit, render, stitch, and the
//! at-least-once cases (duplicates, bad messages, resume).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mandel_core::{CountsImage, RenderParams, TileId, Viewport, kernel};
use mandel_pipeline::{
    JobId, MemoryQueue, MemoryStore, Metadata, ObjectStore, PipelineError, PutMode, Queue,
    StitchOutcome, TileMessage, TileWorker, render_embedded, stitch, submit,
};

fn small() -> RenderParams {
    RenderParams {
        viewport: Viewport {
            xmin: -2.0,
            xmax: 0.5,
            ymin: -1.25,
            ymax: 1.25,
        },
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

fn rig() -> Rig {
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
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
        img.place_tile(
            p.tile_pixels as usize,
            t,
            &kernel::reference::render_tile(p, t),
        );
    }
    img
}

#[tokio::test]
async fn invalid_params_write_nothing() {
    let r = rig();
    let bad = RenderParams {
        max_iter: 0,
        ..small()
    };
    let err = submit(&*r.store, &*r.tiles, &*r.stitches, &bad, None)
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::InvalidParams(_)), "{err}");
    assert!(r.store.list("").await.unwrap().is_empty());
    assert!(r.tiles.is_empty() && r.stitches.is_empty());
}

#[tokio::test]
async fn a_job_runs_once_even_with_duplicate_messages() {
    let r = rig();
    let p = small();
    let submitted = submit(&*r.store, &*r.tiles, &*r.stitches, &p, None)
        .await
        .unwrap();
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
        let out = r.worker.handle_message(body).await.unwrap();
        completions += usize::from(out.completed_job);
    }
    // The last new tile and every duplicate after it see a complete job.
    assert!(completions >= 1);
    let stitch_msgs = drain(&r.stitches).await;
    assert_eq!(stitch_msgs.len(), completions);

    let mut published = 0;
    for body in &stitch_msgs {
        match mandel_pipeline::stitch::handle_stitch_message(&r.store, body)
            .await
            .unwrap()
        {
            StitchOutcome::Published(m) => {
                published += 1;
                assert_eq!(m.tiles, 9);
                assert_eq!(m.tile_stats.len(), 9);
                assert!(m.tile_stats.iter().all(|s| s.worker == "test-worker"));
            }
            StitchOutcome::AlreadyDone => {}
        }
    }
    assert_eq!(published, 1, "exactly one result");
    let npy = r.store.get(&submitted.job.counts_key()).await.unwrap().body;
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), expected_counts(&p));

    // A finished job is not run again.
    let again = submit(&*r.store, &*r.tiles, &*r.stitches, &p, None)
        .await
        .unwrap();
    assert!(again.finished);
    assert!(r.tiles.is_empty());
}

#[tokio::test]
async fn resubmitting_enqueues_only_missing_tiles() {
    let r = rig();
    let p = small();
    let job = submit(&*r.store, &*r.tiles, &*r.stitches, &p, None)
        .await
        .unwrap()
        .job;
    let messages = drain(&r.tiles).await;
    for body in &messages[..4] {
        r.worker.handle_message(body).await.unwrap();
    }
    let resumed = submit(&*r.store, &*r.tiles, &*r.stitches, &p, None)
        .await
        .unwrap();
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
    let job = submit(&*r.store, &*r.tiles, &*r.stitches, &p, None)
        .await
        .unwrap()
        .job;
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
        let err = r.worker.handle_message(&body).await.unwrap_err();
        assert!(err.to_string().contains(want), "{body}: {err}");
    }
    assert_eq!(r.store.list("").await.unwrap(), before);
    let ok = TileMessage {
        job: job.clone(),
        row: 0,
        col: 0,
    };
    r.worker
        .handle_message(&serde_json::to_string(&ok).unwrap())
        .await
        .unwrap();
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
    let err = r
        .worker
        .handle_message(r#"{"job":"edited","row":0,"col":0}"#)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("xmin must be less than xmax"),
        "{err}"
    );
    assert_eq!(r.store.list("jobs/edited/tiles/").await.unwrap(), vec![]);
}

#[tokio::test]
async fn stitch_refuses_missing_and_corrupt_tiles() {
    let r = rig();
    let p = small();
    let job = submit(&*r.store, &*r.tiles, &*r.stitches, &p, None)
        .await
        .unwrap()
        .job;
    let messages = drain(&r.tiles).await;
    for body in &messages[1..] {
        r.worker.handle_message(body).await.unwrap();
    }
    match stitch(&r.store, &job).await.unwrap_err() {
        PipelineError::MissingTiles { missing, .. } => assert_eq!(missing.len(), 1),
        e => panic!("expected MissingTiles, got {e}"),
    }
    r.worker.handle_message(&messages[0]).await.unwrap();
    // Flip one byte of a stored tile, keeping its recorded checksum.
    let key = job.tile_key(TileId::new(1, 1));
    let obj = r.store.get(&key).await.unwrap();
    let mut body = obj.body.to_vec();
    body[0] ^= 1;
    r.store
        .put(&key, Bytes::from(body), obj.metadata, PutMode::Overwrite)
        .await
        .unwrap();
    let err = stitch(&r.store, &job).await.unwrap_err();
    assert!(
        matches!(err, PipelineError::CorruptTile { tile, .. } if tile == TileId::new(1, 1)),
        "{err}"
    );
    assert!(
        r.store.head(&job.result_key()).await.unwrap().is_none(),
        "nothing published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_render_equals_the_reference_kernel() {
    let p = small();
    let mut seen = Vec::new();
    let out = render_embedded(&p, 3, |n| seen.push(n)).await.unwrap();
    assert_eq!(
        CountsImage::from_npy(&out.npy).unwrap(),
        expected_counts(&p)
    );
    assert_eq!(seen.last(), Some(&9));
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {seen:?}"
    );
    assert_eq!(out.manifest.tiles, 9);
    let img = image_dims(&out.png);
    assert_eq!(img, (30, 30));
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
    let job = submit(&*r.store, &*r.tiles, &*r.stitches, &p, None)
        .await
        .unwrap()
        .job;
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
                serde_json::to_string(&TileMessage {
                    job: job.clone(),
                    row: 3,
                    col: 0,
                })
                .unwrap(),
            ),
        ])
        .collect();
    let mut failed = r.worker.handle_batch(&first).await;
    failed.sort();
    assert_eq!(failed, ["garbage", "outside"]);
    assert!(drain(&r.stitches).await.is_empty(), "job not complete yet");

    let rest: Vec<_> = last
        .into_iter()
        .enumerate()
        .map(|(i, b)| delivery(&format!("late{i}"), b))
        .collect();
    assert!(r.worker.handle_batch(&rest).await.is_empty());
    assert_eq!(drain(&r.stitches).await.len(), 1, "one stitch message");
    match stitch(&r.store, &job).await.unwrap() {
        StitchOutcome::Published(m) => assert_eq!(m.tiles, 9),
        other => panic!("{other:?}"),
    }
}
