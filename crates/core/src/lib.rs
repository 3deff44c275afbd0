//! # mandel-core
//!
//! The pure compute core of mandel: no I/O, no async, no clocks. Everything
//! here is a function of [`RenderParams`], so a tile computed on a laptop, in
//! a Lambda or in a test gives the same bytes.
//!
//! How the types relate:
//!
//! - [`RenderParams`] (with its [`Viewport`]) defines a job and validates
//!   itself into a [`ParamError`] that names the field and the allowed range.
//! - A job is a grid of [`TileId`]s; [`RenderParams::tile_axes`] gives a tile's
//!   exact pixel coordinates (the notebook's `np.linspace`).
//! - [`kernel::render_tile`] turns a tile into `P*P` escape counts; the
//!   [`kernel::reference`] module is the scalar definition it must equal.
//! - [`blob`] encodes a tile's counts as the stored bytes (little-endian u16).
//! - [`CountsImage`] stitches tiles into the notebook's `image` array and
//!   writes it as `.npy`.
//! - [`Colormap`] and [`png::encode_png`] turn counts into the picture
//!   (`log1p`, min–max normalised, `origin="lower"`).
//! - [`pyramid`] cuts the picture into a Deep Zoom pyramid; [`explore`] cuts
//!   the whole plane into a quadtree of one-tile renders for the explorer;
//!   [`viewer`] is the page that pans and zooms either; [`video`] plans a
//!   zoom video as keyframe jobs and resamples its frames from them.

pub mod blob;
pub mod colormap;
pub mod counts;
pub mod deep;
pub mod explore;
pub mod geometry;
pub mod kernel;
pub mod params;
pub mod picture;
pub mod png;
pub mod pyramid;
pub mod render;
pub mod video;
pub mod viewer;

pub use colormap::{Colormap, UnknownColormap};
pub use counts::{CountRange, CountsImage};
pub use geometry::{TileAxes, TileId};
pub use params::{CountWidth, ParamError, RenderParams, View, Viewport};
