//! A zoom video's plan: the dive from the whole set down to a deep view,
//! made of **keyframes**, not frames.
//!
//! - Keyframe `k` (`0..=K`, `K = ⌈log2 zoom⌉`) is an ordinary square deep
//!   job centred on the target at zoom `2^k`: content-addressed like every
//!   job, so a rerun finds the keyframes it has and a deeper or longer
//!   video of the same centre and size reuses a shorter one's.
//! - Frames zoom at a constant rate: frame `i` of `n` is at
//!   `log2 ζ = log2(zoom)·i/(n−1)`. It shows the central `width×height`
//!   of what a keyframe of side `N` would show at `ζ`, resampled
//!   ([`resample`]) from keyframe `k+1` (sharper: it is shrunk) wherever
//!   that covers the frame, and from keyframe `k` around it (magnified at
//!   most 2×), `k = ⌊log2 ζ⌋`.
//! - Colours come from each pixel's count alone ([`keyframe_rgb`], the
//!   deep tiles' cycling palette), so keyframes rendered with different
//!   budgets and ranges still join without a seam or a flicker.

use crate::colormap::Colormap;
use crate::deep::DeepView;
use crate::explore::{self, TILE_PIXELS};
use crate::params::{RenderParams, View};

/// The limits of a video's flags.
pub const MAX_SECONDS: u32 = 600;
pub const MAX_FPS: u32 = 60;
/// A frame's sides: even (the encoder's 4:2:0 chroma halves them) and at
/// most 4K.
pub const MIN_SIDE: u32 = 16;
pub const MAX_SIDE: u32 = 3840;
/// Pixels on a keyframe tile's side.
pub const KEYFRAME_TILE_PIXELS: u32 = 128;

/// Why a video's flags were refused; names the flag and its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoError {
    #[error("seconds must be in 1..={MAX_SECONDS}, got {0}")]
    Seconds(u32),
    #[error("fps must be in 1..={MAX_FPS}, got {0}")]
    Fps(u32),
    #[error("size must be WIDTHxHEIGHT, each even and in {MIN_SIDE}..={MAX_SIDE}, got {0}")]
    Size(String),
    #[error("zoom must be at least 2 for a dive, got {0}")]
    Zoom(String),
}

impl VideoError {
    /// The flag the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            VideoError::Seconds(_) => "seconds",
            VideoError::Fps(_) => "fps",
            VideoError::Size(_) => "size",
            VideoError::Zoom(_) => "zoom",
        }
    }
}

/// `WIDTHxHEIGHT`, checked.
pub fn parse_size(s: &str) -> Result<(u32, u32), VideoError> {
    let bad = || VideoError::Size(s.to_string());
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let side = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| side_ok(n))
            .ok_or_else(bad)
    };
    Ok((side(w)?, side(h)?))
}

/// A frame side the encoder takes.
fn side_ok(n: u32) -> bool {
    (MIN_SIDE..=MAX_SIDE).contains(&n) && n.is_multiple_of(2)
}

/// Where a frame is: between keyframes `k` and `k + 1`, `t` (0..=1) of
/// the way in zoom's logarithm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FramePosition {
    pub k: u32,
    pub t: f64,
}

/// A video: its target, frame size, rate and length, and the keyframes
/// that make it.
#[derive(Clone, Debug)]
pub struct Plan {
    target: DeepView,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub seconds: u32,
    max_iter: Option<u32>,
    tiles_per_side: u32,
}

impl Plan {
    /// Checks the flags; `max_iter` (if given) is every keyframe's budget,
    /// else each keyframe's follows the explorer's rule for its depth.
    pub fn new(
        target: DeepView,
        (width, height): (u32, u32),
        seconds: u32,
        fps: u32,
        max_iter: Option<u32>,
    ) -> Result<Plan, VideoError> {
        if !(1..=MAX_SECONDS).contains(&seconds) {
            return Err(VideoError::Seconds(seconds));
        }
        if !(1..=MAX_FPS).contains(&fps) {
            return Err(VideoError::Fps(fps));
        }
        if !side_ok(width) || !side_ok(height) {
            return Err(VideoError::Size(format!("{width}x{height}")));
        }
        if target.zoom_log2() < 1.0 {
            return Err(VideoError::Zoom(target.zoom().to_string()));
        }
        let tiles_per_side = width.max(height).div_ceil(KEYFRAME_TILE_PIXELS);
        Ok(Plan {
            target,
            width,
            height,
            fps,
            seconds,
            max_iter,
            tiles_per_side,
        })
    }

    /// Frames in the video.
    pub fn frames(&self) -> u32 {
        self.seconds * self.fps
    }

    /// Keyframes: `0..=K`, keyframe `K` at or past the target's zoom.
    pub fn keyframes(&self) -> u32 {
        (self.target.zoom_log2() - 1e-9).ceil() as u32 + 1
    }

    /// A keyframe's side in pixels (`N`): the frame's longer side, rounded
    /// up to whole tiles.
    pub fn keyframe_side(&self) -> u32 {
        self.tiles_per_side * KEYFRAME_TILE_PIXELS
    }

    /// Keyframe `k`'s budget: the given one, or the explorer's rule at the
    /// tile zoom whose pixels are this keyframe's.
    pub fn keyframe_budget(&self, k: u32) -> u32 {
        self.max_iter.unwrap_or_else(|| {
            let level = k + (self.keyframe_side() / TILE_PIXELS).max(1).ilog2();
            explore::max_iter_for(level)
        })
    }

    /// Keyframe `k`: the target's centre at zoom `2^k`, an ordinary deep job.
    pub fn keyframe(&self, k: u32) -> RenderParams {
        let zoom = (dashu_int::UBig::ONE << k as usize).to_string();
        let view = DeepView::parse(self.target.re(), self.target.im(), &zoom)
            .expect("the target's centre with a power of two for zoom is a valid view");
        RenderParams {
            view: View::Deep(view),
            tiles_per_side: self.tiles_per_side,
            tile_pixels: KEYFRAME_TILE_PIXELS,
            max_iter: self.keyframe_budget(k),
        }
    }

    /// Frame `i`'s place between two keyframes.
    pub fn position(&self, i: u32) -> FramePosition {
        let n = self.frames();
        let last = self.keyframes() - 1;
        let l = if n <= 1 {
            0.0
        } else {
            self.target.zoom_log2() * f64::from(i) / f64::from(n - 1)
        };
        let k = (l.floor() as u32).min(last.saturating_sub(1));
        FramePosition {
            k,
            t: (l - f64::from(k)).clamp(0.0, 1.0),
        }
    }

    /// The frames between keyframes `k` and `k + 1` (those whose position
    /// has this `k`), in order.
    pub fn frames_of(&self, k: u32) -> std::ops::Range<u32> {
        let first = (0..self.frames()).find(|&i| self.position(i).k >= k);
        let end = (0..self.frames()).find(|&i| self.position(i).k > k);
        let end = end.unwrap_or(self.frames());
        first.map_or(end..end, |f| f.min(end)..end)
    }
}

/// A keyframe's counts (`side`², row 0 the lowest imaginary part) as RGB,
/// top row first, coloured by count alone: the explorer's deep palette
/// (once round `colormap` every [`explore::DEEP_PERIOD`] counts), the
/// budget's colour for points that never escape.
pub fn keyframe_rgb(counts: &[u32], side: usize, max_iter: u32, colormap: Colormap) -> Vec<u8> {
    assert_eq!(counts.len(), side * side);
    let min = counts.iter().copied().min().unwrap_or(0).min(max_iter);
    let max = counts.iter().copied().max().unwrap_or(0).min(max_iter);
    let palette = explore::deep_palette(min, max, max_iter, colormap);
    let mut rgb = Vec::with_capacity(counts.len() * 3);
    for row in counts.chunks_exact(side).rev() {
        for &c in row {
            rgb.extend_from_slice(&palette.colour(c.min(max_iter)));
        }
    }
    rgb
}

/// Frame `at` (`width`×`height` RGB, top row first, into `out`) from
/// keyframe `k` (`outer`) and keyframe `k + 1` (`inner`), both `side`²
/// RGB: each frame pixel's centre mapped into the inner keyframe, and
/// sampled there (bilinear) if it falls inside it, else in the outer one.
pub fn resample(
    outer: &[u8],
    inner: &[u8],
    side: u32,
    at: FramePosition,
    size: (u32, u32),
    out: &mut [u8],
) {
    assert_eq!(out.len(), size.0 as usize * size.1 as usize * 3);
    resample_rows(outer, inner, side, at, size, 0, out);
}

/// [`resample`]'s rows from `first_row` on, as many as `out` holds (so
/// bands of a frame can be made in parallel).
pub fn resample_rows(
    outer: &[u8],
    inner: &[u8],
    side: u32,
    at: FramePosition,
    (width, height): (u32, u32),
    first_row: u32,
    out: &mut [u8],
) {
    let n = side as usize;
    assert_eq!(outer.len(), n * n * 3);
    assert_eq!(inner.len(), n * n * 3);
    assert_eq!(out.len() % (width as usize * 3), 0);
    // A frame pixel is 2^(j − ℓ) pixels of keyframe j: ℓ = k + t.
    let to_inner = (1.0 - at.t).exp2() as f32;
    let to_outer = (-at.t).exp2() as f32;
    let half = side as f32 / 2.0;
    let (cw, ch) = (width as f32 / 2.0, height as f32 / 2.0);
    let limit = side as f32 - 0.5;
    for (y, row) in out.chunks_exact_mut(width as usize * 3).enumerate() {
        let dy = (y as u32 + first_row) as f32 + 0.5 - ch;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let dx = x as f32 + 0.5 - cw;
            let (u, v) = (half + dx * to_inner, half + dy * to_inner);
            let rgb = if (0.5..=limit).contains(&u) && (0.5..=limit).contains(&v) {
                bilinear(inner, n, u, v)
            } else {
                bilinear(outer, n, half + dx * to_outer, half + dy * to_outer)
            };
            px.copy_from_slice(&rgb);
        }
    }
}

/// `image` (`n`², RGB) at the continuous point `(u, v)`, pixel centres at
/// half-integers, clamped to its edge.
fn bilinear(image: &[u8], n: usize, u: f32, v: f32) -> [u8; 3] {
    let top = (n - 1) as f32;
    let (fu, fv) = ((u - 0.5).clamp(0.0, top), (v - 0.5).clamp(0.0, top));
    let (x0, y0) = (fu.floor() as usize, fv.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(n - 1), (y0 + 1).min(n - 1));
    let (ax, ay) = (fu - x0 as f32, fv - y0 as f32);
    let at = |x: usize, y: usize, c: usize| f32::from(image[(y * n + x) * 3 + c]);
    let mut rgb = [0u8; 3];
    for (c, out) in rgb.iter_mut().enumerate() {
        let top = at(x0, y0, c) * (1.0 - ax) + at(x1, y0, c) * ax;
        let bottom = at(x0, y1, c) * (1.0 - ax) + at(x1, y1, c) * ax;
        *out = (top * (1.0 - ay) + bottom * ay).round() as u8;
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(zoom: &str, size: (u32, u32), seconds: u32, fps: u32) -> Plan {
        let target = DeepView::parse("-0.75", "0.1", zoom).unwrap();
        Plan::new(target, size, seconds, fps, None).unwrap()
    }

    #[test]
    fn a_dive_to_1e100_has_333_keyframes_of_ordinary_jobs() {
        let p = plan("1e100", (1920, 1080), 30, 30);
        assert_eq!(p.frames(), 900);
        assert_eq!(p.keyframes(), 334); // 2^0 ..= 2^333 ≥ 1e100
        assert_eq!(p.keyframe_side(), 1920);
        let last = p.keyframe(333);
        last.validate().unwrap();
        assert_eq!(last.image_side(), 1920);
        assert!((last.as_deep().unwrap().zoom_log2() - 333.0).abs() < 1e-9);
        assert_eq!(p.keyframe(0).as_deep().unwrap().zoom(), "1e0");
        // Budgets grow with depth by the explorer's rule (1920 px ≈ 2^2.9
        // tiles: three levels down).
        assert_eq!(p.keyframe_budget(0), 500 + 150 * 2);
        // The same keyframe for another length or rate: the same job.
        let longer = plan("1e100", (1920, 1080), 60, 24);
        assert_eq!(longer.keyframe(200), p.keyframe(200));
    }

    #[test]
    fn frames_zoom_at_a_constant_rate_from_the_whole_set_to_the_target() {
        let p = plan("1024", (64, 36), 2, 10); // 2^10, 20 frames
        assert_eq!(p.keyframes(), 11);
        assert_eq!(p.position(0), FramePosition { k: 0, t: 0.0 });
        let last = p.position(19);
        assert_eq!(last.k, 9);
        assert!((last.t - 1.0).abs() < 1e-12, "{last:?}");
        // Every frame is in exactly one keyframe's range, in order.
        let all: Vec<u32> = (0..p.keyframes()).flat_map(|k| p.frames_of(k)).collect();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        assert!(p.frames_of(10).is_empty());
    }

    #[test]
    fn bad_flags_are_refused_naming_the_flag() {
        let target = DeepView::parse("-0.75", "0.1", "1e10").unwrap();
        let e = Plan::new(target.clone(), (64, 36), 0, 30, None).unwrap_err();
        assert_eq!(e.field(), "seconds");
        let e = Plan::new(target.clone(), (64, 36), 2, 61, None).unwrap_err();
        assert_eq!(e.field(), "fps");
        assert_eq!(parse_size("63x36").unwrap_err().field(), "size");
        assert_eq!(parse_size("640").unwrap_err().field(), "size");
        assert_eq!(parse_size("640x360").unwrap(), (640, 360));
        let shallow = DeepView::parse("-0.75", "0.1", "1").unwrap();
        assert_eq!(
            Plan::new(shallow, (64, 36), 2, 30, None)
                .unwrap_err()
                .field(),
            "zoom"
        );
    }

    /// At a keyframe's own zoom (t = 1 from the one before) a frame is that
    /// keyframe's central crop, pixel for pixel; half way, the inner
    /// keyframe fills the middle, shrunk, and the outer one the rest.
    #[test]
    fn a_frame_at_a_keyframes_zoom_is_its_central_crop() {
        let n = 8u32;
        let outer: Vec<u8> = (0..n * n * 3).map(|i| (i % 251) as u8).collect();
        let inner: Vec<u8> = (0..n * n * 3).map(|i| (i * 7 % 253) as u8).collect();
        let (w, h) = (6u32, 4u32);
        let mut frame = vec![0u8; (w * h * 3) as usize];
        resample(
            &outer,
            &inner,
            n,
            FramePosition { k: 3, t: 1.0 },
            (w, h),
            &mut frame,
        );
        for y in 0..h {
            for x in 0..w {
                let (kx, ky) = (x + 1, y + 2);
                let f = ((y * w + x) * 3) as usize;
                let k = ((ky * n + kx) * 3) as usize;
                assert_eq!(frame[f..f + 3], inner[k..k + 3], "pixel {x},{y}");
            }
        }
        // t = 0: the outer keyframe's crop, the inner one covers the
        // middle half only (shrunk 2×, averaging four pixels).
        resample(
            &outer,
            &inner,
            n,
            FramePosition { k: 3, t: 0.0 },
            (w, h),
            &mut frame,
        );
        let corner = &frame[0..3];
        let k = ((2 * n + 1) * 3) as usize;
        assert_eq!(corner, &outer[k..k + 3]);
    }
}
