//! A job's picture made from its counts, streamed top row first: its PNG,
//! its Deep Zoom pyramid, or both, coloured alike. The one home for how a
//! picture is made: the stitch makes the stored picture and pyramid while
//! the tiles stream past, and the client makes them again from
//! `counts.npy` in another colormap ([`from_npy`]).

use std::io::{Read, Seek};

use crate::colormap::{Colormap, Palette};
use crate::counts::CountRange;
use crate::png::{self, EncodingError, PngRows};
use crate::pyramid::{Pyramid, Tile};

/// What to make of a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outputs {
    pub png: bool,
    pub pyramid: bool,
}

/// A picture being made one row at a time, top (`ymax`) row first. Needs
/// the image's count range up front: the colours are min–max normalised.
pub struct PictureRows {
    colours: Colours,
    pyramid: Option<Pyramid>,
}

/// Where a row is coloured: the PNG encoder colours it (and hands back the
/// RGB row), or, without a PNG, a palette and a row of our own.
enum Colours {
    Png(Box<PngRows>),
    Only { palette: Palette, rgb: Vec<u8> },
}

impl PictureRows {
    pub fn new(
        width: usize,
        height: usize,
        colormap: Colormap,
        range: CountRange,
        outputs: Outputs,
    ) -> Result<Self, EncodingError> {
        let colours = if outputs.png {
            Colours::Png(Box::new(PngRows::new(width, height, colormap, range)?))
        } else {
            Colours::Only {
                palette: colormap.palette(range.min, range.max),
                rgb: vec![0; width * 3],
            }
        };
        Ok(PictureRows {
            colours,
            pyramid: outputs.pyramid.then(|| Pyramid::new(width, height)),
        })
    }

    /// Takes the next row of counts (left to right) and returns the
    /// pyramid tiles it completed, at any level.
    pub fn write_row(&mut self, counts: &[u32]) -> Result<Vec<Tile>, EncodingError> {
        let rgb = match &mut self.colours {
            Colours::Png(png) => png.write_row(counts)?,
            Colours::Only { palette, rgb } => {
                png::colour_row(palette, counts, rgb);
                rgb
            }
        };
        match &mut self.pyramid {
            Some(p) => p.push_row(rgb),
            None => Ok(Vec::new()),
        }
    }

    /// The PNG bytes encoded since the last call (none without a PNG).
    pub fn take_png_bytes(&mut self) -> Vec<u8> {
        match &mut self.colours {
            Colours::Png(png) => png.take_bytes(),
            Colours::Only { .. } => Vec::new(),
        }
    }

    /// Every row written: the PNG's last bytes and the pyramid's last
    /// tiles.
    pub fn finish(self) -> Result<(Vec<u8>, Vec<Tile>), EncodingError> {
        let png = match self.colours {
            Colours::Png(png) => png.finish()?,
            Colours::Only { .. } => Vec::new(),
        };
        let tiles = match self.pyramid {
            Some(p) => p.finish()?,
            None => Vec::new(),
        };
        Ok((png, tiles))
    }
}

/// Makes the picture of a counts `.npy` in `colormap`, reading it a row at
/// a time (one pass for the range, one for the rows): `png` receives the
/// PNG's bytes as they are encoded, `tiles` the pyramid's tiles. Returns
/// the picture's width and height.
pub fn from_npy<R: Read + Seek>(
    npy: R,
    colormap: Colormap,
    outputs: Outputs,
    mut png: impl FnMut(&[u8]) -> std::io::Result<()>,
    mut tiles: impl FnMut(Vec<Tile>) -> std::io::Result<()>,
) -> Result<(usize, usize), EncodingError> {
    let mut picture: Option<(PictureRows, usize, usize)> = None;
    png::npy_rows_top_first(npy, |shape, range, row| {
        let (rows, ..) = match &mut picture {
            Some(p) => p,
            None => picture.insert((
                PictureRows::new(shape.width, shape.height, colormap, range, outputs)?,
                shape.width,
                shape.height,
            )),
        };
        let done = rows.write_row(row)?;
        png(&rows.take_png_bytes())?;
        tiles(done)?;
        Ok(())
    })?;
    let (rows, width, height) = picture.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "the counts have no rows")
    })?;
    let (last, done) = rows.finish()?;
    png(&last)?;
    tiles(done)?;
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::CountsImage;

    /// The PNG alone, as `--colormap` recolours: `out`, or an error.
    fn recolour(npy: &[u8], colormap: Colormap) -> Result<Vec<u8>, EncodingError> {
        let mut out = Vec::new();
        let only_png = Outputs {
            png: true,
            pyramid: false,
        };
        let png = |b: &[u8]| {
            out.extend_from_slice(b);
            Ok(())
        };
        from_npy(std::io::Cursor::new(npy), colormap, only_png, png, |_| {
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn a_recoloured_npy_is_the_png_of_its_counts() {
        let mut counts = CountsImage::new(3, 2);
        counts.place_tile(1, crate::TileId::new(0, 1), &[7]);
        counts.place_tile(1, crate::TileId::new(1, 2), &[300]);
        counts.place_tile(1, crate::TileId::new(1, 0), &[2]);
        let npy = counts.to_npy();
        for colormap in [Colormap::Viridis, Colormap::Gray] {
            let out = recolour(&npy, colormap).unwrap();
            assert_eq!(out, png::encode_png(&counts, colormap).unwrap());
        }
        assert!(recolour(&npy[..npy.len() - 1], Colormap::Gray).is_err());
    }

    #[test]
    fn the_picture_from_npy_is_the_png_and_pyramid_of_the_counts() {
        // 3×3 tiles of 100 px: a picture over one pyramid tile a side.
        let (w, h) = (300, 300);
        let mut counts = CountsImage::new(w, h);
        for t in (0..3).flat_map(|r| (0..3).map(move |c| crate::TileId::new(r, c))) {
            let tile: Vec<u32> = (0..100 * 100)
                .map(|i| ((i * 7 + (t.row * 3 + t.col) as usize * 11) % 500) as u32)
                .collect();
            counts.place_tile(100, t, &tile);
        }
        let mut npy = Vec::new();
        counts.write_npy(&mut npy).unwrap();
        let expected = png::encode_png(&counts, Colormap::Viridis).unwrap();
        let (mut out, mut tiles) = (Vec::new(), Vec::new());
        let size = from_npy(
            std::io::Cursor::new(&npy),
            Colormap::Viridis,
            Outputs {
                png: true,
                pyramid: true,
            },
            |b| {
                out.extend_from_slice(b);
                Ok(())
            },
            |t| {
                tiles.extend(t);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(size, (w, h));
        assert_eq!(out, expected);
        assert_eq!(
            tiles.len() as u64,
            crate::pyramid::object_count(w, h) - 2,
            "every tile (not the descriptor and the viewer)"
        );
        // The pyramid alone: the same tiles, no PNG.
        let mut alone = Vec::new();
        from_npy(
            std::io::Cursor::new(&npy),
            Colormap::Viridis,
            Outputs {
                png: false,
                pyramid: true,
            },
            |b| {
                assert!(b.is_empty());
                Ok(())
            },
            |t| {
                alone.extend(t);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(alone.len(), tiles.len());
        assert!(alone.iter().zip(&tiles).all(|(a, b)| a.png == b.png));
    }
}
