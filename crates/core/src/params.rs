//! Render parameters and their validation.
//!
//! [`RenderParams`] is the one value a job is defined by. It has two forms,
//! told apart by their JSON keys: the notebook's `params` dict for a
//! [`Viewport`] (`{"viewport": [xmin, xmax, ymin, ymax], "tiles_per_side":
//! .., "tile_pixels": .., "max_iter": ..}`, rendered in f64, bit-exact to
//! numpy) and a deep view (`{"center": [re, im], "zoom": z, ...}` with
//! decimal strings, rendered by perturbation, [`crate::deep`]). The job id
//! is a hash of the canonical JSON, so the serialisation is part of the
//! contract: a viewport job's bytes are the notebook's, unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::deep::{DeepView, ViewError};

/// Largest accepted value of `tiles_per_side`.
pub const MAX_TILES_PER_SIDE: u32 = 1024;
/// Largest accepted value of `tile_pixels`.
pub const MAX_TILE_PIXELS: u32 = 4096;
/// Largest accepted `max_iter` of a viewport job: counts are stored as `u16`.
pub const MAX_ITER_LIMIT: u32 = u16::MAX as u32;
/// Largest accepted `max_iter` of a deep job (counts are `u32`; the
/// reference orbit holds up to this many points).
pub const MAX_DEEP_ITER: u32 = 100_000_000;
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

/// Which part of the plane a job renders.
#[derive(Clone, Debug, PartialEq)]
pub enum View {
    /// A rectangle in f64 coordinates: the notebook's form.
    Viewport(Viewport),
    /// A centre of any precision and a zoom.
    Deep(DeepView),
}

impl std::fmt::Display for View {
    /// For people: `viewport x [xmin, xmax], y [ymin, ymax]` or `centre
    /// re, im (first 30 digits), zoom z`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            View::Viewport(v) => write!(
                f,
                "viewport x [{}, {}], y [{}, {}]",
                v.xmin, v.xmax, v.ymin, v.ymax
            ),
            View::Deep(d) => {
                let short = |s: &str| {
                    if s.len() > 32 {
                        format!("{}…", &s[..32])
                    } else {
                        s.to_string()
                    }
                };
                write!(
                    f,
                    "centre {}, {}, zoom {}",
                    short(d.re()),
                    short(d.im()),
                    d.zoom()
                )
            }
        }
    }
}

/// How wide a job's stored counts are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountWidth {
    /// `u16`: viewport jobs (`max_iter` ≤ 65535).
    U16,
    /// `u32`: deep jobs.
    U32,
}

impl CountWidth {
    pub fn bytes(self) -> usize {
        match self {
            CountWidth::U16 => 2,
            CountWidth::U32 => 4,
        }
    }

    /// The file suffix of a tile blob of this width (`u16`, `u32`).
    pub fn suffix(self) -> &'static str {
        match self {
            CountWidth::U16 => "u16",
            CountWidth::U32 => "u32",
        }
    }
}

/// Everything that determines a render's bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderParams {
    pub view: View,
    pub tiles_per_side: u32,
    pub tile_pixels: u32,
    pub max_iter: u32,
}

/// The JSON forms. A viewport job serialises exactly as it always has
/// (field order is declaration order).
#[derive(Serialize)]
struct ViewportJson<'a> {
    viewport: &'a Viewport,
    tiles_per_side: u32,
    tile_pixels: u32,
    max_iter: u32,
}

#[derive(Serialize)]
struct DeepJson<'a> {
    center: [&'a str; 2],
    zoom: &'a str,
    tiles_per_side: u32,
    tile_pixels: u32,
    max_iter: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnyJson {
    viewport: Option<Viewport>,
    center: Option<[String; 2]>,
    zoom: Option<String>,
    tiles_per_side: u32,
    tile_pixels: u32,
    max_iter: u32,
}

impl Serialize for RenderParams {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (tiles_per_side, tile_pixels, max_iter) =
            (self.tiles_per_side, self.tile_pixels, self.max_iter);
        match &self.view {
            View::Viewport(viewport) => ViewportJson {
                viewport,
                tiles_per_side,
                tile_pixels,
                max_iter,
            }
            .serialize(s),
            View::Deep(d) => DeepJson {
                center: [d.re(), d.im()],
                zoom: d.zoom(),
                tiles_per_side,
                tile_pixels,
                max_iter,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RenderParams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let j = AnyJson::deserialize(d)?;
        let view = match (j.viewport, j.center, j.zoom) {
            (Some(v), None, None) => View::Viewport(v),
            (None, Some([re, im]), Some(zoom)) => {
                View::Deep(DeepView::parse(&re, &im, &zoom).map_err(D::Error::custom)?)
            }
            _ => {
                return Err(D::Error::custom(
                    "params need either `viewport` or both `center` and `zoom`",
                ));
            }
        };
        Ok(RenderParams {
            view,
            tiles_per_side: j.tiles_per_side,
            tile_pixels: j.tile_pixels,
            max_iter: j.max_iter,
        })
    }
}

impl Default for RenderParams {
    /// The notebook's default job: the seahorse-valley pocket, 16×16 tiles of
    /// 256 px, 2000 iterations.
    fn default() -> Self {
        RenderParams {
            view: View::Viewport(Viewport {
                xmin: -0.745,
                xmax: -0.735,
                ymin: 0.105,
                ymax: 0.115,
            }),
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
    #[error(transparent)]
    View(#[from] ViewError),
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
            ParamError::View(e) => e.field(),
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
        let max_iter = match &self.view {
            View::Viewport(v) => {
                axis("xmin", v.xmin, "xmax", v.xmax)?;
                axis("ymin", v.ymin, "ymax", v.ymax)?;
                MAX_ITER_LIMIT
            }
            // A DeepView is valid by construction (DeepView::parse).
            View::Deep(_) => MAX_DEEP_ITER,
        };
        in_range("tiles_per_side", self.tiles_per_side, 1, MAX_TILES_PER_SIDE)?;
        in_range("tile_pixels", self.tile_pixels, 1, MAX_TILE_PIXELS)?;
        in_range("max_iter", self.max_iter, 1, max_iter)?;
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

    /// A viewport job of the notebook's form.
    pub fn viewport(
        viewport: Viewport,
        tiles_per_side: u32,
        tile_pixels: u32,
        max_iter: u32,
    ) -> RenderParams {
        RenderParams {
            view: View::Viewport(viewport),
            tiles_per_side,
            tile_pixels,
            max_iter,
        }
    }

    /// The viewport, for a viewport job.
    pub fn as_viewport(&self) -> Option<&Viewport> {
        match &self.view {
            View::Viewport(v) => Some(v),
            View::Deep(_) => None,
        }
    }

    /// The deep view, for a deep job.
    pub fn as_deep(&self) -> Option<&DeepView> {
        match &self.view {
            View::Deep(d) => Some(d),
            View::Viewport(_) => None,
        }
    }

    /// How wide the job's stored counts are.
    pub fn count_width(&self) -> CountWidth {
        match self.view {
            View::Viewport(_) => CountWidth::U16,
            View::Deep(_) => CountWidth::U32,
        }
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
        let both = r#"{"viewport":[0,1,0,1],"center":["0","0"],"zoom":"1","tiles_per_side":1,"tile_pixels":1,"max_iter":1}"#;
        assert!(serde_json::from_str::<RenderParams>(both).is_err());
        let half = r#"{"center":["0","0"],"tiles_per_side":1,"tile_pixels":1,"max_iter":1}"#;
        assert!(serde_json::from_str::<RenderParams>(half).is_err());
    }

    #[test]
    fn a_deep_job_has_a_canonical_json_form() {
        let json = r#"{"center":["-1.50","+2e-3"],"zoom":"5.00E113","tiles_per_side":4,"tile_pixels":64,"max_iter":35494}"#;
        let p: RenderParams = serde_json::from_str(json).unwrap();
        p.validate().unwrap();
        assert_eq!(p.count_width(), CountWidth::U32);
        assert_eq!(
            p.canonical_json(),
            r#"{"center":["-1.5","0.002"],"zoom":"5e113","tiles_per_side":4,"tile_pixels":64,"max_iter":35494}"#
        );
        let back: RenderParams = serde_json::from_str(&p.canonical_json()).unwrap();
        assert_eq!(back, p);
        let bad =
            r#"{"center":["x","0"],"zoom":"1","tiles_per_side":1,"tile_pixels":1,"max_iter":1}"#;
        let err = serde_json::from_str::<RenderParams>(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("center.re must be a decimal number"), "{err}");
    }

    #[test]
    fn a_deep_job_takes_up_to_a_hundred_million_iterations() {
        let view = View::Deep(DeepView::parse("-0.75", "0.1", "1e20").unwrap());
        let mut p = RenderParams {
            view,
            tiles_per_side: 2,
            tile_pixels: 16,
            max_iter: MAX_DEEP_ITER,
        };
        p.validate().unwrap();
        p.max_iter = MAX_DEEP_ITER + 1;
        let err = p.validate().unwrap_err();
        assert_eq!(err.field(), "max_iter");
        assert_eq!(
            err.to_string(),
            "max_iter must be in 1..=100000000, got 100000001"
        );
    }

    fn with(f: impl FnOnce(&mut RenderParams, &mut Viewport)) -> Result<(), ParamError> {
        let mut p = RenderParams::default();
        let mut v = *p.as_viewport().unwrap();
        f(&mut p, &mut v);
        p.view = View::Viewport(v);
        p.validate()
    }

    #[test]
    fn every_invalid_field_is_named_with_its_range() {
        let cases: Vec<(Result<(), ParamError>, &str, &str)> = vec![
            (
                with(|_, v| v.xmin = f64::NAN),
                "viewport",
                "viewport.xmin must be a finite number",
            ),
            (
                with(|_, v| v.ymax = f64::INFINITY),
                "viewport",
                "viewport.ymax must be a finite number",
            ),
            (
                with(|_, v| v.xmax = -1.0),
                "viewport",
                "xmin must be less than xmax",
            ),
            (
                with(|_, v| v.ymin = v.ymax),
                "viewport",
                "ymin must be less than ymax",
            ),
            (
                with(|_, v| {
                    v.xmin = -1e308;
                    v.xmax = 1e308
                }),
                "viewport",
                "overflows",
            ),
            (
                with(|p, _| p.tiles_per_side = 0),
                "tiles_per_side",
                "tiles_per_side must be in 1..=1024, got 0",
            ),
            (
                with(|p, _| p.tile_pixels = 0),
                "tile_pixels",
                "tile_pixels must be in 1..=4096, got 0",
            ),
            (
                with(|p, _| p.tile_pixels = 5000),
                "tile_pixels",
                "tile_pixels must be in 1..=4096, got 5000",
            ),
            (
                with(|p, _| p.max_iter = 0),
                "max_iter",
                "max_iter must be in 1..=65535, got 0",
            ),
            (
                with(|p, _| p.max_iter = 65536),
                "max_iter",
                "max_iter must be in 1..=65535, got 65536",
            ),
            (
                with(|p, _| {
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
