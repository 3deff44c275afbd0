//! Deep jobs through the use cases: the reference orbit computed once by
//! workers, in segments when an invocation cannot finish it, and the tiles
//! rendered by perturbation from it, embedded and message by message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mandel_core::deep::{self, DeepView};
use mandel_core::render::TileRenderer;
use mandel_core::{CountWidth, CountsImage, RenderParams, View};
use mandel_pipeline::{
    Delivery, EmbeddedRender, JobId, MemoryQueue, MemoryStore, ObjectStore, Ports, Queue,
    ReferenceManifest, TileOutcome, TileWorker, records, reference, render_embedded, submit,
};

fn deep_params(
    re: &str,
    im: &str,
    zoom: &str,
    tiles: u32,
    pixels: u32,
    max_iter: u32,
) -> RenderParams {
    RenderParams {
        view: View::Deep(DeepView::parse(re, im, zoom).unwrap()),
        tiles_per_side: tiles,
        tile_pixels: pixels,
        max_iter,
    }
}

/// The image a deep job must produce: every tile rendered directly from an
/// orbit computed in one go.
fn direct(params: &RenderParams) -> CountsImage {
    let view = params.as_deep().unwrap();
    let orbit = deep::reference_orbit(view, params.image_side(), params.max_iter);
    TileRenderer::deep(params.clone(), &orbit).render_image()
}

/// The job's reference manifest, which must exist.
async fn reference_manifest(out: &EmbeddedRender, job: &JobId) -> ReferenceManifest {
    records::read_reference_manifest(out.store(), job)
        .await
        .unwrap()
        .expect("reference.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_job_renders_embedded_to_u32_counts_equal_to_a_direct_render() {
    // A 5e113 view (the published "5e113" benchmark location, shortened),
    // 3×3 tiles of 24 px.
    let params = deep_params(
        "-1.4798157761324732607229845259787785469224072577404536968987851013986492074100229382025051732928201122736331305315920391464078341560960816866070512308244635717949190970540338120",
        "-0.0006391119326136172715213963225567157295730391894398473604739493647122095196181332192857306703646615114719543638848616881931834120802322952260901546154358159980751071568122960",
        "5e113",
        3,
        24,
        35494,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = render_embedded(&params, 2, dir.path(), None, None, |_| {})
        .await
        .unwrap();
    let npy = out.counts_npy().await.unwrap();
    let shape = mandel_core::counts::NpyShape::parse(&npy).unwrap();
    assert_eq!(shape.count_width, CountWidth::U32);
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), direct(&params));
    // The orbit is stored once, whole.
    let job = JobId::for_params(&params);
    let manifest = reference_manifest(&out, &job).await;
    assert_eq!(manifest.segments, 1);
    // The report shows the reference phase.
    let report = out.store().get(&job.report_key()).await.unwrap().body;
    let report = String::from_utf8_lossy(&report);
    let line = format!(
        "Reference orbit: {} points at {} bits",
        manifest.points, manifest.precision_bits
    );
    assert!(report.contains(&line), "the report lacks {line:?}");
    assert_eq!(out.manifest.reference.as_ref(), Some(&manifest));
    let png = out.store().get(&out.manifest.image_key).await.unwrap().body;
    let picture = image::load_from_memory(&png).unwrap();
    assert_eq!((picture.width(), picture.height()), (72, 72));
}

/// The embedded CLI samples a deep job with its orbit before rendering it
/// (the estimate); the render stores that orbit rather than computing it
/// again, and the job's counts are those of an orbit computed by a worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_job_stores_the_orbit_its_estimate_computed() {
    let params = deep_params("-0.75", "0.1", "1e30", 2, 16, 5000);
    let orbit = mandel_pipeline::estimate::ComputedOrbit::compute(&params)
        .expect("a deep job has an orbit");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let dir = tempfile::tempdir().unwrap();
    let out = render_embedded(&params, 2, dir.path(), None, Some(&orbit), |_| {})
        .await
        .unwrap();
    let job = JobId::for_params(&params);
    let manifest = reference_manifest(&out, &job).await;
    // The orbit given, computed before the render started, is the one
    // stored: one segment, its compute time.
    assert_eq!(manifest.segments, 1);
    assert!(
        manifest.started_ms <= before,
        "the orbit was computed again"
    );
    assert_eq!(manifest.segment_us[0] as f64 / 1e6, orbit.seconds());
    let stored = records::read_reference(out.store(), &job).await.unwrap();
    assert_eq!(stored, orbit.points);
    let npy = out.counts_npy().await.unwrap();
    assert_eq!(CountsImage::from_npy(&npy).unwrap(), direct(&params));
}

fn delivery(id: usize, body: String, receive_count: u32) -> Delivery {
    Delivery {
        message_id: format!("m{id}"),
        receipt: format!("r{id}"),
        body,
        receive_count,
    }
}

/// An orbit longer than one invocation: each reference message is handled
/// by a worker whose invocation ends 1.3 s after it starts (it stops
/// computing 1 s before, its margin), so the orbit takes several segments,
/// each resuming from the state the last one wrote; the orbit is the one
/// computed in one go, and the tiles rendered from it are too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orbit_too_long_for_one_invocation_is_computed_in_segments() {
    // Inside the main cardioid at zoom 1e1000: the orbit never escapes, so
    // it has max_iter + 1 points at about 3,400 bits.
    let params = deep_params("-0.1", "0.1", "1e1000", 2, 8, 250_000);
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let tiles = Arc::new(MemoryQueue::new(Duration::from_secs(60)));
    let stitches = Arc::new(MemoryQueue::new(Duration::from_secs(60)));
    let ports = Ports {
        store: Arc::clone(&store),
        tiles: tiles.clone(),
        stitch: stitches.clone(),
    };
    let worker = TileWorker::new(Arc::clone(&store), stitches.clone(), "short-lived");
    let submitted = tokio::spawn({
        let (ports, params) = (ports.clone(), params.clone());
        async move { submit(&ports, &params, None, None).await }
    });
    let job = JobId::for_params(&params);
    let mut segments = Vec::new();
    let mut n = 0;
    // The worker's side: one short invocation per reference message.
    while !submitted.is_finished() {
        let got = tiles.receive(1, Duration::from_millis(50)).await.unwrap();
        for d in got {
            n += 1;
            if !d.body.contains("\"reference\"") {
                continue; // a tile message: submit is done with the orbit
            }
            let deadline = Instant::now() + Duration::from_millis(1300);
            let out = worker
                .handle_batch(&[delivery(n, d.body.clone(), 1)], Some(deadline))
                .await;
            match &out.messages[0].1 {
                TileOutcome::Reference { segment, .. } => segments.push(*segment),
                other => panic!("reference segment: {other:?}"),
            }
            tiles.delete(&[d.receipt]).await.unwrap();
        }
    }
    submitted.await.unwrap().unwrap();
    let manifest = records::read_reference_manifest(&*store, &job)
        .await
        .unwrap()
        .expect("reference.json");
    assert!(manifest.segments >= 3, "{} segments", manifest.segments);
    assert_eq!(segments, (0..manifest.segments).collect::<Vec<_>>());
    assert_eq!(manifest.segment_us.len(), manifest.segments as usize);
    let stored = records::read_reference(&*store, &job).await.unwrap();
    let whole = deep::reference_orbit(
        params.as_deep().unwrap(),
        params.image_side(),
        params.max_iter,
    );
    assert_eq!(stored.len(), 250_001);
    assert_eq!(stored, whole);
    // A segment handled again (a redelivery) changes nothing.
    let again = reference::compute_segment(
        &*store,
        &job,
        &params,
        0,
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .await
    .unwrap();
    assert_eq!(again, reference::SegmentOutcome::AlreadyWhole);
}
