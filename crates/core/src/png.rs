//! PNG encoding of counts, streamed row by row: memory beyond the caller's
//! rows is one RGB row and the encoder's state, whatever the image size (a
//! 32768×32768 picture would otherwise need a 3 GiB RGB buffer).
//!
//! [`PngRows`] takes rows top (`ymax`) first and needs the image's count
//! range up front, because the colours are min–max normalised: a stitch
//! that streams tiles learns it from the ranges recorded with the tiles.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::colormap::{Colormap, Palette};
use crate::counts::{CountRange, CountsImage, NpyShape};

pub use png::EncodingError;

/// Encodes `counts` as an 8-bit RGB PNG coloured with `colormap`.
pub fn encode_png(counts: &CountsImage, colormap: Colormap) -> Result<Vec<u8>, EncodingError> {
    let mut out = Vec::new();
    write_png(counts, colormap, &mut out)?;
    Ok(out)
}

/// Writes `counts` as an 8-bit RGB PNG to `out`, one row at a time.
///
/// The picture has `ymax` at the top (the notebook's `origin="lower"`), so
/// counts row 0 becomes the bottom row of the PNG.
pub fn write_png<W: Write>(
    counts: &CountsImage,
    colormap: Colormap,
    mut out: W,
) -> Result<(), EncodingError> {
    let range = CountRange::of(counts.data());
    let mut rows = PngRows::new(counts.width(), counts.height(), colormap, range)?;
    for y in (0..counts.height()).rev() {
        rows.write_row(counts.row(y))?;
        out.write_all(&rows.take_bytes())?;
    }
    out.write_all(&rows.finish()?)?;
    Ok(())
}

/// Reads a counts `.npy` a row at a time: a first pass for the image's
/// count range, then `each(shape, range, row)` for every row, top (`ymax`)
/// first, as pictures are written.
pub fn npy_rows_top_first<R: Read + Seek>(
    mut npy: R,
    mut each: impl FnMut(&NpyShape, CountRange, &[u32]) -> Result<(), EncodingError>,
) -> Result<(), EncodingError> {
    let bad = |e: crate::counts::NpyError| io::Error::new(io::ErrorKind::InvalidData, e.0);
    let mut head = Vec::new();
    (&mut npy)
        .take(NpyShape::MAX_HEADER as u64)
        .read_to_end(&mut head)?;
    let shape = NpyShape::parse(&head).map_err(bad)?;
    let (w, h, start) = (shape.width, shape.height, shape.header_len as u64);
    let row_bytes = w * shape.count_width.bytes();
    let mut bytes = vec![0u8; row_bytes];
    let mut row = vec![0u32; w];
    let mut read_row = |npy: &mut R, y: usize, row: &mut [u32]| -> io::Result<()> {
        npy.seek(SeekFrom::Start(start + (y * row_bytes) as u64))?;
        npy.read_exact(&mut bytes)?;
        crate::blob::decode_into(&bytes, shape.count_width, row)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    let mut range = CountRange::EMPTY;
    for y in 0..h {
        read_row(&mut npy, y, &mut row)?;
        range = range.merge(CountRange::of(&row));
    }
    for y in (0..h).rev() {
        read_row(&mut npy, y, &mut row)?;
        each(&shape, range, &row)?;
    }
    Ok(())
}

/// Colours `counts` into `rgb` (3 bytes a count) with a [`Palette`], as
/// every picture of the product is coloured: a count above the palette's
/// range (only a hand-edited range can cause one) takes its last colour.
pub fn colour_row(palette: &Palette, counts: &[u32], rgb: &mut [u8]) {
    for (px, &c) in rgb.chunks_exact_mut(3).zip(counts) {
        px.copy_from_slice(&palette.colour(c));
    }
}

/// A PNG being encoded one picture row at a time, top row first: push rows
/// with [`write_row`](Self::write_row), pull the bytes encoded so far with
/// [`take_bytes`](Self::take_bytes), so the caller decides where they go
/// (a file, a multipart upload) and when.
///
/// Fast compression with the Sub filter, chosen by measurement
/// (`mandel-bench`; `docs/performance.md`): the default zlib level took
/// over 6× as long for a file at most a third smaller.
pub struct PngRows {
    stream: png::StreamWriter<'static, Shared>,
    out: Shared,
    palette: Palette,
    rgb: Vec<u8>,
}

impl PngRows {
    /// Starts a `width`×`height` picture whose counts lie in `range`,
    /// coloured with `colormap`.
    pub fn new(
        width: usize,
        height: usize,
        colormap: Colormap,
        range: CountRange,
    ) -> Result<Self, EncodingError> {
        Self::with_palette(width, height, colormap.palette(range.min, range.max))
    }

    /// Starts a `width`×`height` picture coloured with `palette`.
    pub fn with_palette(
        width: usize,
        height: usize,
        palette: Palette,
    ) -> Result<Self, EncodingError> {
        let out = Shared::default();
        let mut encoder = png::Encoder::new(out.clone(), width as u32, height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        encoder.set_filter(png::Filter::Sub);
        let stream = encoder.write_header()?.into_stream_writer()?;
        Ok(PngRows {
            stream,
            out,
            palette,
            rgb: vec![0; width * 3],
        })
    }

    /// Encodes the next picture row (counts left to right), top row first,
    /// and returns it as coloured (RGB), for whatever else is made of the
    /// picture (a pyramid).
    ///
    /// A count above the range's max (only a hand-edited range can cause
    /// one) takes the max's colour.
    ///
    /// # Panics
    /// If the row is not `width` counts long.
    pub fn write_row(&mut self, counts: &[u32]) -> Result<&[u8], EncodingError> {
        assert_eq!(
            counts.len() * 3,
            self.rgb.len(),
            "a PNG row has the wrong width"
        );
        colour_row(&self.palette, counts, &mut self.rgb);
        self.stream.write_all(&self.rgb)?;
        Ok(&self.rgb)
    }

    /// The bytes encoded since the last call.
    pub fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.out.0.lock().expect("never poisoned"))
    }

    /// Ends the picture (every row written) and returns the bytes not yet
    /// taken, the trailer included.
    pub fn finish(self) -> Result<Vec<u8>, EncodingError> {
        let PngRows { stream, out, .. } = self;
        // Finishing the stream flushes the image data; it then drops its
        // header writer, which writes the IEND trailer (into memory, which
        // cannot fail).
        stream.finish()?;
        Ok(std::mem::take(&mut *out.0.lock().expect("never poisoned")))
    }
}

/// The encoder's output buffer, shared so [`PngRows`] can drain it while
/// the encoder owns a handle.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("never poisoned")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::TileId;

    #[test]
    fn counts_row_zero_is_the_bottom_of_the_picture() {
        // 1 px wide, 2 px tall: bottom (row 0) count 0 (black), top count 9 (white).
        let mut counts = CountsImage::new(1, 2);
        counts.place_tile(1, TileId::new(1, 0), &[9]);
        let png = encode_png(&counts, Colormap::Gray).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1, 2));
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(0, 1).0, [0, 0, 0]);
    }
}
