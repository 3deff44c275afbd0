//! The stitched counts array and its NumPy `.npy` encoding.

use std::io::{self, Write};

use crate::geometry::TileId;
use crate::params::{CountWidth, RenderParams};

/// The whole image's escape counts, row-major, row 0 = `ymin`: the notebook's
/// stitched `image`, `image[row*P:(row+1)*P, col*P:(col+1)*P] = tile(row, col)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountsImage {
    width: usize,
    height: usize,
    data: Vec<u32>,
    /// How the counts are stored (`.npy` dtype): `u16` for viewport jobs.
    count_width: CountWidth,
}

impl CountsImage {
    /// A zeroed image sized for `params`.
    pub fn for_params(params: &RenderParams) -> Self {
        let side = params.image_side() as usize;
        CountsImage::with_count_width(side, side, params.count_width())
    }

    /// A zeroed image of u16 counts.
    pub fn new(width: usize, height: usize) -> Self {
        CountsImage::with_count_width(width, height, CountWidth::U16)
    }

    pub fn with_count_width(width: usize, height: usize, count_width: CountWidth) -> Self {
        CountsImage {
            width,
            height,
            data: vec![0; width * height],
            count_width,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Row-major counts, row 0 = lowest imaginary part.
    pub fn data(&self) -> &[u32] {
        &self.data
    }

    /// One row of counts; row 0 = lowest imaginary part.
    pub fn row(&self, y: usize) -> &[u32] {
        &self.data[y * self.width..(y + 1) * self.width]
    }

    /// Copies one tile's counts (`P*P`, row-major) into place.
    ///
    /// # Panics
    /// If the tile does not fit the image.
    pub fn place_tile(&mut self, tile_pixels: usize, tile: TileId, counts: &[u32]) {
        let p = tile_pixels;
        assert_eq!(counts.len(), p * p, "tile has the wrong number of counts");
        let (y0, x0) = (tile.row as usize * p, tile.col as usize * p);
        assert!(
            y0 + p <= self.height && x0 + p <= self.width,
            "tile {tile} is outside the image"
        );
        for (r, src) in counts.chunks_exact(p).enumerate() {
            let start = (y0 + r) * self.width + x0;
            self.data[start..start + p].copy_from_slice(src);
        }
    }

    /// Writes the array as NumPy `.npy` (format 1.0, `<u2` or `<u4`, C
    /// order, shape `(height, width)`), loadable with `np.load`.
    pub fn write_npy<W: Write>(&self, mut w: W) -> io::Result<()> {
        w.write_all(&npy_header(self.height, self.width, self.count_width))?;
        // Write in row chunks so a large image is not copied whole.
        let mut buf = Vec::with_capacity(self.width * self.count_width.bytes());
        for y in 0..self.height {
            buf.clear();
            crate::blob::encode_into(self.row(y), self.count_width, &mut buf);
            w.write_all(&buf)?;
        }
        Ok(())
    }

    /// The `.npy` encoding as bytes.
    pub fn to_npy(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.data.len() * self.count_width.bytes());
        self.write_npy(&mut out)
            .expect("writing to a Vec cannot fail");
        out
    }
}

/// The smallest and largest count of some counts: what the colour
/// normalisation needs. Recorded per tile when it is stored, so a stitch
/// knows the image's range before it reads a tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CountRange {
    pub min: u32,
    pub max: u32,
}

impl CountRange {
    /// The range of no counts: merging it changes nothing.
    pub const EMPTY: CountRange = CountRange {
        min: u32::MAX,
        max: u32::MIN,
    };

    pub fn of(counts: &[u32]) -> CountRange {
        counts.iter().fold(CountRange::EMPTY, |r, &c| CountRange {
            min: r.min.min(c),
            max: r.max.max(c),
        })
    }

    /// The range covering both.
    pub fn merge(self, other: CountRange) -> CountRange {
        CountRange {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }
}

/// A `.npy` file that is not what [`CountsImage::write_npy`] writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a mandel counts .npy: {0}")]
pub struct NpyError(pub String);

impl CountsImage {
    /// Reads back what [`write_npy`](Self::write_npy) wrote (format 1.0,
    /// `<u2` or `<u4`, C order, 2-D); anything else is refused.
    pub fn from_npy(bytes: &[u8]) -> Result<Self, NpyError> {
        let shape = NpyShape::parse(bytes)?;
        let data = &bytes[shape.header_len..];
        let mut image = CountsImage::with_count_width(shape.width, shape.height, shape.count_width);
        crate::blob::decode_into(data, shape.count_width, &mut image.data)
            .map_err(|_| NpyError("data size does not match the shape".to_string()))?;
        Ok(image)
    }
}

/// The shape of a counts `.npy` and where its data starts, from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NpyShape {
    pub height: usize,
    pub width: usize,
    pub count_width: CountWidth,
    /// Bytes before the data.
    pub header_len: usize,
}

impl NpyShape {
    /// The most header bytes [`parse`](Self::parse) needs to see.
    pub const MAX_HEADER: usize = 10 + u16::MAX as usize;

    /// Reads the header at the start of `bytes` (the data may follow or
    /// not): format 1.0, `<u2` or `<u4`, C order, 2-D; anything else is
    /// refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, NpyError> {
        let err = |m: &str| NpyError(m.to_string());
        if bytes.len() < 10 || &bytes[..8] != b"\x93NUMPY\x01\x00" {
            return Err(err("missing the NPY 1.0 magic"));
        }
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let header = bytes
            .get(10..10 + hlen)
            .ok_or_else(|| err("truncated header"))?;
        let header = std::str::from_utf8(header).map_err(|_| err("header is not text"))?;
        let count_width = if header.contains("'descr': '<u2'") {
            CountWidth::U16
        } else if header.contains("'descr': '<u4'") {
            CountWidth::U32
        } else {
            return Err(err("only little-endian u16 or u32 in C order is supported"));
        };
        if !header.contains("'fortran_order': False") {
            return Err(err("only little-endian u16 or u32 in C order is supported"));
        }
        let shape = header
            .split_once("'shape': (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .ok_or_else(|| err("no shape"))?
            .0;
        let dims: Vec<usize> = shape
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().map_err(|_| err("bad shape")))
            .collect::<Result<_, _>>()?;
        let [height, width] = dims[..] else {
            return Err(err("shape is not 2-D"));
        };
        Ok(NpyShape {
            height,
            width,
            count_width,
            header_len: 10 + hlen,
        })
    }
}

/// The `.npy` 1.0 header for a little-endian u16 or u32 C-order 2-D array,
/// padded with spaces and a newline so the data starts on a 64-byte
/// boundary, as NumPy itself writes it.
pub fn npy_header(rows: usize, cols: usize, count_width: CountWidth) -> Vec<u8> {
    let descr = match count_width {
        CountWidth::U16 => "<u2",
        CountWidth::U32 => "<u4",
    };
    let dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut header = Vec::with_capacity(total);
    header.extend_from_slice(b"\x93NUMPY\x01\x00");
    header.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header.resize(total - 1, b' ');
    header.push(b'\n');
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_where_the_notebook_puts_them() {
        let mut img = CountsImage::new(4, 4);
        img.place_tile(2, TileId::new(0, 1), &[1, 2, 3, 4]);
        img.place_tile(2, TileId::new(1, 0), &[5, 6, 7, 8]);
        assert_eq!(
            img.data(),
            &[0, 0, 1, 2, 0, 0, 3, 4, 5, 6, 0, 0, 7, 8, 0, 0]
        );
        assert_eq!(img.row(2), &[5, 6, 0, 0]);
    }

    #[test]
    #[should_panic(expected = "outside the image")]
    fn out_of_range_tile_panics() {
        CountsImage::new(2, 2).place_tile(2, TileId::new(1, 0), &[0; 4]);
    }

    #[test]
    fn npy_layout() {
        let mut img = CountsImage::new(3, 2);
        img.place_tile(1, TileId::new(1, 2), &[0x0102]);
        let npy = img.to_npy();
        assert_eq!(&npy[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&npy[10..10 + hlen]).unwrap();
        assert_eq!(
            header.trim_end(),
            "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3), }"
        );
        assert!(header.ends_with('\n'));
        let data = &npy[10 + hlen..];
        assert_eq!(data.len(), 12);
        // Row 1, column 2 is the last element, little-endian.
        assert_eq!(&data[10..], &[0x02, 0x01]);
        assert!(data[..10].iter().all(|&b| b == 0));
        assert_eq!(CountsImage::from_npy(&npy).unwrap(), img);
        assert!(CountsImage::from_npy(&npy[..npy.len() - 1]).is_err());
        assert!(CountsImage::from_npy(b"not an npy").is_err());
    }

    #[test]
    fn deep_counts_are_u32_in_the_npy() {
        let mut img = CountsImage::with_count_width(2, 1, CountWidth::U32);
        img.place_tile(1, TileId::new(0, 1), &[70_000]);
        let npy = img.to_npy();
        let shape = NpyShape::parse(&npy).unwrap();
        assert_eq!(shape.count_width, CountWidth::U32);
        assert_eq!(
            &npy[shape.header_len..],
            &[0, 0, 0, 0, 0x70, 0x11, 0x01, 0x00]
        );
        assert_eq!(CountsImage::from_npy(&npy).unwrap(), img);
    }
}
