//! # mandel-video
//!
//! A zoom video's last step: frames resampled from keyframes
//! ([`mandel_core::video`] plans them and draws each frame) and encoded as
//! H.264 in an MP4 file, which browsers play.
//!
//! - [`Assembler`] takes the keyframes in order, `0, 1, …`, and as soon as
//!   it holds two neighbours writes every frame between them, so it keeps
//!   two keyframes in memory however long the video.
//! - [`Mp4Writer`] is the encoder: OpenH264, built from source by the
//!   `openh264` crate (no system library at run time), its Annex-B output
//!   turned into MP4 samples by the `mp4` crate.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use mandel_core::video::{Plan, resample_rows};
use openh264::encoder::{
    Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode, VuiConfig,
};
use openh264::formats::{RgbSliceU8, YUVBuffer};

/// Why a video could not be written.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("writing the video: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding H.264: {0}")]
    Encode(String),
    #[error("writing MP4: {0}")]
    Mux(String),
    #[error("keyframe {got} came when keyframe {want} was due")]
    OutOfOrder { want: u32, got: u32 },
}

/// An H.264 MP4 file being written, one RGB frame at a time.
pub struct Mp4Writer {
    encoder: Encoder,
    mp4: mp4::Mp4Writer<BufWriter<File>>,
    width: u32,
    height: u32,
    fps: u32,
    frames: u64,
}

impl Mp4Writer {
    /// A video of `width`×`height` (even) at `fps`, written to `path`.
    pub fn create(path: &Path, width: u32, height: u32, fps: u32) -> Result<Self, VideoError> {
        // No rate control: OpenH264's would skip frames to keep a bit rate
        // (the duration is the frame count), and warns on stderr when told
        // not to. Without it the quantiser is OpenH264's fixed default
        // (and a QP range is ignored): the file's bit rate is the
        // benchmark's to report.
        let config = EncoderConfig::new()
            .rate_control_mode(RateControlMode::Off)
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(2 * fps))
            // The RGB→YUV conversion below is BT.601's, limited range.
            .vui(VuiConfig::bt601());
        let encoder = Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
            .map_err(|e| VideoError::Encode(e.to_string()))?;
        let file = BufWriter::new(File::create(path)?);
        let brands = ["isom", "iso2", "avc1", "mp41"];
        let config = mp4::Mp4Config {
            major_brand: four("isom"),
            minor_version: 512,
            compatible_brands: brands.iter().map(|b| four(b)).collect(),
            timescale: 1000,
        };
        let mp4 = mp4::Mp4Writer::write_start(file, &config)
            .map_err(|e| VideoError::Mux(e.to_string()))?;
        Ok(Mp4Writer {
            encoder,
            mp4,
            width,
            height,
            fps,
            frames: 0,
        })
    }

    /// Encodes one frame: `width·height` RGB pixels, top row first.
    pub fn frame(&mut self, rgb: &[u8]) -> Result<(), VideoError> {
        let (w, h) = (self.width as usize, self.height as usize);
        let yuv = YUVBuffer::from_rgb_source(RgbSliceU8::new(rgb, (w, h)));
        let stream = self
            .encoder
            .encode(&yuv)
            .map_err(|e| VideoError::Encode(e.to_string()))?;
        let sync = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        let annex_b = stream.to_vec();
        let mut sample = Vec::with_capacity(annex_b.len());
        let (mut sps, mut pps) = (None, None);
        for nal in nal_units(&annex_b) {
            match nal.first().map(|b| b & 0x1f) {
                Some(7) => sps = Some(nal.to_vec()),
                Some(8) => pps = Some(nal.to_vec()),
                // MP4 samples are length-prefixed NAL units.
                Some(_) => {
                    sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    sample.extend_from_slice(nal);
                }
                None => {}
            }
        }
        // The first frame is an IDR frame with the stream's parameter
        // sets, which make the track.
        if self.frames == 0 {
            let (Some(sps), Some(pps)) = (sps, pps) else {
                return Err(VideoError::Encode(
                    "the first frame has no SPS and PPS".to_string(),
                ));
            };
            let track = mp4::TrackConfig {
                track_type: mp4::TrackType::Video,
                timescale: self.fps,
                language: "und".to_string(),
                media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                    width: self.width as u16,
                    height: self.height as u16,
                    seq_param_set: sps,
                    pic_param_set: pps,
                }),
            };
            self.mp4
                .add_track(&track)
                .map_err(|e| VideoError::Mux(e.to_string()))?;
        }
        let sample = mp4::Mp4Sample {
            start_time: self.frames,
            duration: 1,
            rendering_offset: 0,
            is_sync: sync,
            bytes: sample.into(),
        };
        self.mp4
            .write_sample(1, &sample)
            .map_err(|e| VideoError::Mux(e.to_string()))?;
        self.frames += 1;
        Ok(())
    }

    /// Writes the index; the file is complete.
    pub fn finish(self) -> Result<u64, VideoError> {
        let mut mp4 = self.mp4;
        mp4.write_end()
            .map_err(|e| VideoError::Mux(e.to_string()))?;
        use std::io::Write;
        mp4.into_writer().flush()?;
        Ok(self.frames)
    }
}

fn four(s: &str) -> mp4::FourCC {
    let b = s.as_bytes();
    mp4::FourCC::from([b[0], b[1], b[2], b[3]])
}

/// The NAL units of an Annex-B stream, without their start codes.
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut units = Vec::new();
    let mut start = None;
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            if let Some(s) = start {
                units.push(trim_zero(&stream[s..i]));
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        units.push(&stream[s..]);
    }
    units
}

/// A NAL unit before a four-byte start code keeps that code's first zero.
fn trim_zero(nal: &[u8]) -> &[u8] {
    nal.strip_suffix(&[0]).unwrap_or(nal)
}

/// What assembling took, for the benchmark and the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct AssemblyTime {
    pub resampling: Duration,
    pub encoding: Duration,
    pub frames: u64,
}

/// The frames of `plan`, written as its keyframes arrive (in order).
pub struct Assembler {
    plan: Plan,
    writer: Mp4Writer,
    outer: Option<(u32, Vec<u8>)>,
    frame: Vec<u8>,
    time: AssemblyTime,
    threads: usize,
}

impl Assembler {
    /// Frames resampled on `threads` threads, into the MP4 at `path`.
    pub fn create(plan: Plan, path: &Path, threads: usize) -> Result<Self, VideoError> {
        let writer = Mp4Writer::create(path, plan.width, plan.height, plan.fps)?;
        let frame = vec![0; plan.width as usize * plan.height as usize * 3];
        Ok(Assembler {
            plan,
            writer,
            outer: None,
            frame,
            time: AssemblyTime::default(),
            threads: threads.max(1),
        })
    }

    /// The keyframe expected next.
    pub fn next_keyframe(&self) -> u32 {
        self.outer.as_ref().map_or(0, |(k, _)| k + 1)
    }

    /// Keyframe `k`'s RGB (`side`², top row first, as
    /// [`mandel_core::video::keyframe_rgb`] makes it); writes the frames
    /// between it and the one before.
    pub fn keyframe(&mut self, k: u32, rgb: Vec<u8>) -> Result<(), VideoError> {
        let want = self.next_keyframe();
        if k != want {
            return Err(VideoError::OutOfOrder { want, got: k });
        }
        if let Some((before, outer)) = self.outer.take() {
            for i in self.plan.frames_of(before) {
                let started = Instant::now();
                self.draw(&outer, &rgb, i);
                self.time.resampling += started.elapsed();
                let started = Instant::now();
                self.writer.frame(&self.frame)?;
                self.time.encoding += started.elapsed();
                self.time.frames += 1;
            }
        }
        self.outer = Some((k, rgb));
        Ok(())
    }

    /// Frame `i` into `self.frame`, in bands of rows on every thread.
    fn draw(&mut self, outer: &[u8], inner: &[u8], i: u32) {
        let (w, h) = (self.plan.width, self.plan.height);
        let side = self.plan.keyframe_side();
        let at = self.plan.position(i);
        let rows = (h as usize).div_ceil(self.threads);
        std::thread::scope(|s| {
            for (band, out) in self.frame.chunks_mut(rows * w as usize * 3).enumerate() {
                s.spawn(move || {
                    resample_rows(outer, inner, side, at, (w, h), (band * rows) as u32, out)
                });
            }
        });
    }

    /// Every keyframe given: the file is complete.
    pub fn finish(self) -> Result<AssemblyTime, VideoError> {
        let due = self.plan.keyframes();
        if self.next_keyframe() != due {
            return Err(VideoError::OutOfOrder {
                want: self.next_keyframe(),
                got: due,
            });
        }
        let started = Instant::now();
        self.writer.finish()?;
        let mut time = self.time;
        time.encoding += started.elapsed();
        Ok(time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_is_cut_at_its_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units = nal_units(&stream);
        assert_eq!(units, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
    }

    /// A short video: as many samples as frames, each a sync sample every
    /// two seconds, in an MP4 whose track has the frame size and rate.
    #[test]
    fn frames_become_an_mp4_track() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.mp4");
        let (w, h, fps) = (64u32, 48u32, 10u32);
        let mut writer = Mp4Writer::create(&path, w, h, fps).unwrap();
        for i in 0..25u32 {
            let rgb: Vec<u8> = (0..w * h * 3).map(|p| (p + i * 8) as u8).collect();
            writer.frame(&rgb).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), 25);
        let bytes = std::fs::read(&path).unwrap();
        let size = bytes.len() as u64;
        let reader = mp4::Mp4Reader::read_header(std::io::Cursor::new(bytes), size).unwrap();
        let track = reader.tracks().get(&1).unwrap();
        assert_eq!((track.width(), track.height()), (64, 48));
        assert_eq!(track.sample_count(), 25);
        assert_eq!(reader.duration().as_secs_f64(), 2.5);
    }
}
