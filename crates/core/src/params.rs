//! Render parameters and their validation.
//!
//! [`RenderParams`] is the one value a job is defined by. Its JSON form is the
//! notebook's `params` dict (`{"viewport": [xmin, xmax, ymin, ymax],
//! "tiles_per_side": .., "tile_pixels": .., "max_iter": ..}`), and the job id is
//! a hash of that canonical JSON, so the serialisation is part of the contract.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest accepted value of `tiles_per_side`.
pub const MAX_TILES_PER_SIDE: u32 = 1024;
/// Largest accepted value of `tile_pixels`.
pub const MAX_TILE_PIXELS: u32 = 4096;
/// Largest accepted `max_iter`: counts are stored as `u16`.
pub const MAX_ITER_LIMIT: u32 = u16::MAX as u32;
/// Largest accepted image side (`tiles_per_side * tile_pixels`), in pixels.
///
/// The stitched counts array is held in memory (2 bytes per pixel), so this
/// caps it at 2 GiB.
pub const MAX_IMAGE_SIDE: u64 = 32_768;

/// The rectangle of the complex plane to render: real axis `xmin..xmax`,
/// imaginary axis `ymin..ymax`. Serialised as `[xmin, xmax, ymin, ymax]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 4]", into = "[f64; 4]")]
pub struct Viewport {
    pub xmin: f64,
    pub xmax: f64,
    pub ymin: f64,
    pub ymax: f64,
}

impl From<[f64; 4]> for Viewport {
    fn from([xmin, xmax, ymin, ymax]: [f64; 4]) -> Self {
        Viewport {
            xmin,
            xmax,
            ymin,
            ymax,
        }
    }
}

impl From<Viewport> for [f64; 4] {
    fn from(v: Viewport) -> Self {
        [v.xmin, v.xmax, v.ymin, v.ymax]
    }
}

/// Everything that determines a render's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderParams {
    pub viewport: Viewport,
    pub tiles_per_side: u32,
    pub tile_pixels: u32,
    pub max_iter: u32,
}

impl Default for RenderParams {
    /// The notebook's default job: the seahorse-valley pocket, 16×16 tiles of
    /// 256 px, 2000 iterations.
    fn default() -> Self {
        RenderParams {
            viewport: Viewport {
                xmin: -0.745,
                xmax: -0.735,
                ymin: 0.105,
                ymax: 0.115,
            },
            tiles_per_side: 16,
            tile_pixels: 256,
            max_iter: 2000,
        }
    }
}

/// Why a [`RenderParams`] was refused. Every message names the field and the
/// allowed range, because users read it on a terminal.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParamError {
    #[error("viewport.{field} must be a finite number, got {value}")]
    NonFinite { field: &'static str, value: f64 },
    #[error("viewport: {lo_name} must be less than {hi_name}, got {lo_name}={lo}, {hi_name}={hi}")]
    Reversed {
        lo_name: &'static str,
        hi_name: &'static str,
        lo: f64,
        hi: f64,
    },
    #[error("viewport: {hi_name} - {lo_name} overflows f64 ({lo}..{hi}); use a smaller viewport")]
    TooWide {
        lo_name: &'static str,
        hi_name: &'static str,
        lo: f64,
        hi: f64,
    },
    #[error("{field} must be in {min}..={max}, got {value}")]
    OutOfRange {
        field: &'static str,
        min: u64,
        max: u64,
        value: u64,
    },
    #[error(
        "image side tiles_per_side*tile_pixels must be at most {max} pixels, got {tiles_per_side}*{tile_pixels}={side}"
    )]
    ImageTooLarge {
        tiles_per_side: u32,
        tile_pixels: u32,
        side: u64,
        max: u64,
    },
}

impl ParamError {
    /// The parameter the error is about, as the user spells it.
    pub fn field(&self) -> &'static str {
        match self {
            ParamError::NonFinite { .. }
            | ParamError::Reversed { .. }
            | ParamError::TooWide { .. } => "viewport",
            ParamError::OutOfRange { field, .. } => field,
            ParamError::ImageTooLarge { .. } => "tiles_per_side*tile_pixels",
        }
    }
}

fn in_range(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), ParamError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ParamError::OutOfRange {
            field,
            min: min.into(),
            max: max.into(),
            value: value.into(),
        })
    }
}

fn axis(lo_name: &'static str, lo: f64, hi_name: &'static str, hi: f64) -> Result<(), ParamError> {
    for (field, value) in [(lo_name, lo), (hi_name, hi)] {
        if !value.is_finite() {
            return Err(ParamError::NonFinite { field, value });
        }
    }
    if lo >= hi {
        return Err(ParamError::Reversed {
            lo_name,
            hi_name,
            lo,
            hi,
        });
    }
    if !(hi - lo).is_finite() {
        return Err(ParamError::TooWide {
            lo_name,
            hi_name,
            lo,
            hi,
        });
    }
    Ok(())
}

impl RenderParams {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        let v = &self.viewport;
        axis("xmin", v.xmin, "xmax", v.xmax)?;
        axis("ymin", v.ymin, "ymax", v.ymax)?;
        in_range("tiles_per_side", self.tiles_per_side, 1, MAX_TILES_PER_SIDE)?;
        in_range("tile_pixels", self.tile_pixels, 1, MAX_TILE_PIXELS)?;
        in_range("max_iter", self.max_iter, 1, MAX_ITER_LIMIT)?;
        let side = self.image_side();
        if side > MAX_IMAGE_SIDE {
            return Err(ParamError::ImageTooLarge {
                tiles_per_side: self.tiles_per_side,
                tile_pixels: self.tile_pixels,
                side,
                max: MAX_IMAGE_SIDE,
            });
        }
        Ok(())
    }

    /// Width (and height) of the stitched image in pixels.
    pub fn image_side(&self) -> u64 {
        u64::from(self.tiles_per_side) * u64::from(self.tile_pixels)
    }

    /// Number of tiles in the job.
    pub fn tile_count(&self) -> u64 {
        u64::from(self.tiles_per_side) * u64::from(self.tiles_per_side)
    }

    /// Pixels in one tile.
    pub fn pixels_per_tile(&self) -> usize {
        self.tile_pixels as usize * self.tile_pixels as usize
    }

    /// The canonical JSON form: the job id hashes exactly these bytes.
    pub fn canonical_json(&self) -> String {
        // Field order is the struct's declaration order and floats print in
        // shortest round-trip form, so these bytes are stable.
        serde_json::to_string(self).expect("RenderParams always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_matches_notebook() {
        let p = RenderParams::default();
        p.validate().unwrap();
        assert_eq!(p.image_side(), 4096);
        assert_eq!(p.tile_count(), 256);
    }

    #[test]
    fn canonical_json_round_trips_through_serde() {
        let p = RenderParams::default();
        let json = p.canonical_json();
        assert_eq!(
            json,
            r#"{"viewport":[-0.745,-0.735,0.105,0.115],"tiles_per_side":16,"tile_pixels":256,"max_iter":2000}"#
        );
        let back: RenderParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert_eq!(serde_json::to_string(&p).unwrap(), json);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let json =
            r#"{"viewport":[0,1,0,1],"tiles_per_side":1,"tile_pixels":1,"max_iter":1,"x":1}"#;
        assert!(serde_json::from_str::<RenderParams>(json).is_err());
    }

    fn with(f: impl FnOnce(&mut RenderParams)) -> Result<(), ParamError> {
        let mut p = RenderParams::default();
        f(&mut p);
        p.validate()
    }

    #[test]
    fn every_invalid_field_is_named_with_its_range() {
        let cases: Vec<(Result<(), ParamError>, &str, &str)> = vec![
            (
                with(|p| p.viewport.xmin = f64::NAN),
                "viewport",
                "viewport.xmin must be a finite number",
            ),
            (
                with(|p| p.viewport.ymax = f64::INFINITY),
                "viewport",
                "viewport.ymax must be a finite number",
            ),
            (
                with(|p| p.viewport.xmax = -1.0),
                "viewport",
                "xmin must be less than xmax",
            ),
            (
                with(|p| p.viewport.ymin = p.viewport.ymax),
                "viewport",
                "ymin must be less than ymax",
            ),
            (
                with(|p| {
                    p.viewport.xmin = -1e308;
                    p.viewport.xmax = 1e308
                }),
                "viewport",
                "overflows",
            ),
            (
                with(|p| p.tiles_per_side = 0),
                "tiles_per_side",
                "tiles_per_side must be in 1..=1024, got 0",
            ),
            (
                with(|p| p.tile_pixels = 0),
                "tile_pixels",
                "tile_pixels must be in 1..=4096, got 0",
            ),
            (
                with(|p| p.tile_pixels = 5000),
                "tile_pixels",
                "tile_pixels must be in 1..=4096, got 5000",
            ),
            (
                with(|p| p.max_iter = 0),
                "max_iter",
                "max_iter must be in 1..=65535, got 0",
            ),
            (
                with(|p| p.max_iter = 65536),
                "max_iter",
                "max_iter must be in 1..=65535, got 65536",
            ),
            (
                with(|p| {
                    p.tiles_per_side = 64;
                    p.tile_pixels = 1024
                }),
                "tiles_per_side*tile_pixels",
                "at most 32768 pixels, got 64*1024=65536",
            ),
        ];
        for (result, field, text) in cases {
            let err = result.expect_err(text);
            assert_eq!(err.field(), field, "{err}");
            assert!(
                err.to_string().contains(text),
                "{err:?} does not say {text:?}"
            );
        }
    }
}
