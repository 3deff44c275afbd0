//! The names of the log events that other programs read: the end-to-end
//! tests and the benchmarks find these in the functions' JSON logs
//! (`fields.message`), with the fields listed here. One home, so renaming
//! an event cannot silently break what reads it.

/// A worker finished a batch. Fields: `tiles` (stored), `skipped` (of
/// cancelled jobs), `failed`, `stopped` (the deadline came), `ms`.
pub const TILE_BATCH_DONE: &str = "tile batch done";

/// A stitch published a result. Fields: `job`, `total` (its duration),
/// `peak_rss_mib`.
pub const STITCHED: &str = "stitched";
