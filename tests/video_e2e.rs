//! `mandel-orchestrate --video`: a short dive made embedded, played in a
//! real browser (Chromium, headless): the duration and frame size it
//! reports, and its last frame, decoded, matching the keyframe it came
//! from (luma within 4 of 255 on average, where the keyframe before is
//! many times further); a deeper dive reuses the shorter one's keyframes; bad flags are
//! refused, naming them, with nothing written.

use std::path::Path;

use base64::Engine;
use mandel_core::deep::DeepView;
use mandel_core::video::{Plan, keyframe_rgb};
use mandel_core::{Colormap, CountsImage};
use mandel_e2e::chrome::{Browser, number};
use mandel_e2e::orchestrate;
use mandel_pipeline::JobId;
use serde_json::Value;

const CENTER: &str = "-0.743643887037158704752191506114774,0.131825904205311970493132056385139";

fn dive(dir: &Path, zoom: &str, seconds: &str) -> Value {
    let out = orchestrate(
        dir,
        &[
            "--video",
            "dive.mp4",
            "--center",
            CENTER,
            "--zoom",
            zoom,
            "--seconds",
            seconds,
            "--fps",
            "12",
            "--size",
            "128x72",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["video"].clone()
}

/// Plays `video` in the browser and returns its duration, size and the
/// RGBA pixels of the frame shown at `at` seconds.
async fn play(browser: &Browser, video: &[u8], at: f64) -> (f64, u32, u32, Vec<u8>) {
    let c = &browser.client;
    c.goto("about:blank").await.unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(video);
    let script = r#"
        const [b64, at, done] = arguments;
        const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        const v = document.createElement("video");
        v.muted = true;
        v.onerror = () => done({ error: String(v.error && v.error.message) });
        v.onloadedmetadata = () => { v.currentTime = at; };
        v.onseeked = () => {
            const canvas = document.createElement("canvas");
            canvas.width = v.videoWidth;
            canvas.height = v.videoHeight;
            const ctx = canvas.getContext("2d");
            ctx.drawImage(v, 0, 0);
            const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            done({ duration: v.duration, width: v.videoWidth, height: v.videoHeight,
                   pixels: Array.from(px) });
        };
        v.src = URL.createObjectURL(new Blob([bytes], { type: "video/mp4" }));
    "#;
    let r = c
        .execute_async(script, vec![Value::from(b64), Value::from(at)])
        .await
        .unwrap();
    assert!(r.get("error").is_none(), "Chromium could not play it: {r}");
    let pixels = r["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    (
        number(&r["duration"]),
        number(&r["width"]) as u32,
        number(&r["height"]) as u32,
        pixels,
    )
}

fn luma(r: u8, g: u8, b: u8) -> f64 {
    0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dive_plays_in_the_browser_and_its_last_frame_is_its_last_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    // 2^10: keyframes at zoom 1 ..= 1024, 24 frames.
    let made = dive(dir.path(), "1024", "2");
    assert_eq!(made["keyframes"], 11, "{made}");
    assert_eq!(made["keyframes_reused"], 0);
    assert_eq!(made["frames"], 24);
    let video = std::fs::read(dir.path().join("dive.mp4")).unwrap();

    let browser = Browser::start().await;
    let (duration, w, h, pixels) = play(&browser, &video, 2.0 - 0.5 / 12.0).await;
    assert_eq!((w, h), (128, 72));
    assert!((duration - 2.0).abs() < 1e-6, "duration {duration}");

    // The last frame is at the last keyframe's zoom: its central 128×72.
    let (re, im) = CENTER.split_once(',').unwrap();
    let plan = Plan::new(
        DeepView::parse(re, im, "1024").unwrap(),
        (128, 72),
        2,
        12,
        None,
    )
    .unwrap();
    // Luma compared (full resolution in H.264; its colours are 4:2:0, a
    // quarter of it, and fractal colour edges lose most there).
    let keyframe_crop = |k: u32| {
        let params = plan.keyframe(k);
        let npy = dir
            .path()
            .join("dive.mp4.keyframes")
            .join(format!("{}.npy", JobId::for_params(&params).as_str()));
        let counts = CountsImage::from_npy(&std::fs::read(npy).unwrap()).unwrap();
        let n = plan.keyframe_side() as usize;
        let rgb = keyframe_rgb(counts.data(), n, params.max_iter, Colormap::TwilightShifted);
        let (x0, y0) = ((n - 128) / 2, (n - 72) / 2);
        (0..72 * 128)
            .map(|i| {
                let at = ((y0 + i / 128) * n + x0 + i % 128) * 3;
                luma(rgb[at], rgb[at + 1], rgb[at + 2])
            })
            .collect::<Vec<f64>>()
    };
    let frame: Vec<f64> = pixels
        .chunks_exact(4)
        .map(|p| luma(p[0], p[1], p[2]))
        .collect();
    let error = |want: &[f64]| {
        want.iter()
            .zip(&frame)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / frame.len() as f64
    };
    let (own, before) = (error(&keyframe_crop(10)), error(&keyframe_crop(9)));
    eprintln!("last frame's luma against keyframe 10: {own:.2}, against keyframe 9: {before:.2}");
    assert!(own < 4.0, "mean luma error {own:.2} of 255");
    assert!(before > 4.0 * own, "keyframe 9 is as close: {before:.2}");

    // A deeper, longer dive of the same centre and size reuses all 11 and
    // renders one more.
    let deeper = dive(dir.path(), "2048", "3");
    assert_eq!(deeper["keyframes"], 12, "{deeper}");
    assert_eq!(deeper["keyframes_reused"], 11);
    assert_eq!(deeper["frames"], 36);
    let video = std::fs::read(dir.path().join("dive.mp4")).unwrap();
    let (duration, ..) = play(&browser, &video, 1.0).await;
    assert!((duration - 3.0).abs() < 1e-6, "duration {duration}");
    browser.client.clone().close().await.unwrap();
}

#[test]
fn bad_video_flags_are_refused_naming_them_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (
            vec!["--size", "127x72", "--center", CENTER, "--zoom", "1e10"],
            "--size",
        ),
        (
            vec!["--fps", "0", "--center", CENTER, "--zoom", "1e10"],
            "--fps",
        ),
        (
            vec!["--seconds", "601", "--center", CENTER, "--zoom", "1e10"],
            "--seconds",
        ),
        (vec!["--center", CENTER, "--zoom", "1"], "--zoom"),
        (vec![], "--video"),
    ] {
        let mut all = vec!["--video", "v.mp4"];
        all.extend(args);
        let out = orchestrate(dir.path(), &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(stderr.contains(flag), "{all:?}: {stderr}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{all:?}");
    }
}
