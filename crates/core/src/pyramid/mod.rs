//! A Deep Zoom pyramid (`.dzi` descriptor, 256-pixel PNG tiles at every
//! level) built as the picture streams past, top row first, so a
//! gigapixel render yields one on bounded memory: each level holds at most
//! one band of 256 of its own rows, and one row waiting for its pair.
//!
//! Level `max` is the picture at full resolution, coloured exactly as the
//! PNG; each level below is the one above halved (ceiling), each pixel the
//! mean of the 2×2 (or 2×1, 1×2, 1×1 at an odd edge) pixels above it,
//! down to level 0, one pixel. Tiles have no overlap, as OpenSeadragon
//! and the Deep Zoom format allow: `<level>/<col>_<row>.png`.

pub mod pack;

use crate::png::EncodingError;

/// A tile's side, in pixels.
pub const TILE: usize = 256;

/// The pyramid's descriptor, its viewer and its tiles' folder, relative to
/// the pyramid's own folder (or prefix).
pub const DESCRIPTOR: &str = "image.dzi";
pub const VIEWER: &str = "index.html";
pub const FILES: &str = "image_files/";

/// Where a tile lives in the pyramid: `image_files/<level>/<col>_<row>.png`
/// (the viewer fills in `{z}`, `{x}` and `{y}`).
pub fn tile_path(
    level: impl std::fmt::Display,
    col: impl std::fmt::Display,
    row: impl std::fmt::Display,
) -> String {
    format!("{FILES}{level}/{col}_{row}.png")
}

/// The tile at `path` ([`tile_path`]): its level, column and row.
pub fn parse_tile_path(path: &str) -> Option<(u32, usize, usize)> {
    let rest = path.strip_prefix(FILES)?.strip_suffix(".png")?;
    let (level, place) = rest.split_once('/')?;
    let (col, row) = place.split_once('_')?;
    fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    }
    Some((number(level)?, number(col)?, number(row)?))
}

/// How many objects a `width`×`height` pyramid has: every level's tiles,
/// the descriptor and the viewer.
pub fn object_count(width: usize, height: usize) -> u64 {
    let (mut w, mut h, mut tiles) = (width.max(1), height.max(1), 0);
    for _ in 0..=max_level(width, height) {
        tiles += (w.div_ceil(TILE) * h.div_ceil(TILE)) as u64;
        (w, h) = (w.div_ceil(2).max(1), h.div_ceil(2).max(1));
    }
    tiles + 2
}

/// The `.dzi` descriptor of a `width`×`height` picture in PNG tiles.
pub fn descriptor(width: usize, height: usize) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" \
         Format=\"png\" Overlap=\"0\" TileSize=\"{TILE}\">\n  <Size Width=\"{width}\" Height=\"{height}\"/>\n</Image>\n"
    )
}

/// The highest level of a picture: the one at full resolution.
pub fn max_level(width: usize, height: usize) -> u32 {
    let side = width.max(height).max(1);
    usize::BITS - (side - 1).leading_zeros()
}

/// One encoded tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    pub level: u32,
    pub col: usize,
    pub row: usize,
    pub png: Vec<u8>,
}

impl Tile {
    /// Its path in the pyramid ([`tile_path`]).
    pub fn path(&self) -> String {
        tile_path(self.level, self.col, self.row)
    }
}

/// One level being filled: its band of rows (RGB) and the row waiting
/// for its pair.
struct Level {
    level: u32,
    width: usize,
    height: usize,
    band: Vec<u8>,
    band_rows: usize,
    /// Rows received so far.
    rows: usize,
    pending: Option<Vec<u8>>,
}

/// A pyramid being built from the picture's RGB rows, top row first.
pub struct Pyramid {
    levels: Vec<Level>,
}

impl Pyramid {
    pub fn new(width: usize, height: usize) -> Self {
        let top = max_level(width, height);
        let mut levels = Vec::new();
        let (mut w, mut h) = (width, height);
        for level in (0..=top).rev() {
            levels.push(Level {
                level,
                width: w,
                height: h,
                band: Vec::with_capacity(TILE * w * 3),
                band_rows: 0,
                rows: 0,
                pending: None,
            });
            (w, h) = (w.div_ceil(2).max(1), h.div_ceil(2).max(1));
        }
        Pyramid { levels }
    }

    /// Takes the next picture row (`width` RGB pixels) and returns the
    /// tiles it completed, at any level.
    pub fn push_row(&mut self, rgb: &[u8]) -> Result<Vec<Tile>, EncodingError> {
        let mut done = Vec::new();
        push(&mut self.levels, 0, rgb.to_vec(), &mut done)?;
        Ok(done)
    }

    /// Every row pushed: the remaining tiles (odd last rows halved alone,
    /// partial bands), down to level 0.
    pub fn finish(mut self) -> Result<Vec<Tile>, EncodingError> {
        let mut done = Vec::new();
        for i in 0..self.levels.len() {
            if let Some(row) = self.levels[i].pending.take()
                && i + 1 < self.levels.len()
            {
                let half = halve(&row, None, self.levels[i].width);
                push(&mut self.levels, i + 1, half, &mut done)?;
            }
            let l = &mut self.levels[i];
            if l.band_rows > 0 {
                emit(l, &mut done)?;
            }
        }
        Ok(done)
    }
}

/// Adds a row to level `i`, emitting its band when full and passing
/// halved row pairs down.
fn push(
    levels: &mut [Level],
    i: usize,
    row: Vec<u8>,
    done: &mut Vec<Tile>,
) -> Result<(), EncodingError> {
    let l = &mut levels[i];
    assert_eq!(row.len(), l.width * 3, "a pyramid row has the wrong width");
    assert!(l.rows < l.height, "more rows than the picture has");
    l.band.extend_from_slice(&row);
    l.band_rows += 1;
    l.rows += 1;
    if l.band_rows == TILE || l.rows == l.height {
        emit(l, done)?;
    }
    if i + 1 == levels.len() {
        return Ok(());
    }
    let l = &mut levels[i];
    match l.pending.take() {
        None => {
            l.pending = Some(row);
            Ok(())
        }
        Some(above) => {
            let half = halve(&above, Some(&row), l.width);
            push(levels, i + 1, half, done)
        }
    }
}

/// A row of the level below: each pixel the mean of the pixels above it.
fn halve(a: &[u8], b: Option<&[u8]>, width: usize) -> Vec<u8> {
    let half = width.div_ceil(2);
    let mut out = Vec::with_capacity(half * 3);
    for x in 0..half {
        for c in 0..3 {
            let mut sum = 0u32;
            let mut n = 0u32;
            for row in [Some(a), b].into_iter().flatten() {
                for dx in 0..2 {
                    let px = 2 * x + dx;
                    if px < width {
                        sum += u32::from(row[px * 3 + c]);
                        n += 1;
                    }
                }
            }
            out.push(((sum + n / 2) / n) as u8);
        }
    }
    out
}

/// Encodes level `l`'s band as a row of tiles and empties it.
fn emit(l: &mut Level, done: &mut Vec<Tile>) -> Result<(), EncodingError> {
    let row = (l.rows - 1) / TILE;
    let rows = l.band_rows;
    for col in 0..l.width.div_ceil(TILE) {
        let x0 = col * TILE;
        let w = TILE.min(l.width - x0);
        let mut png = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut png, w as u32, rows as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder.write_header()?;
            let mut data = Vec::with_capacity(w * rows * 3);
            for y in 0..rows {
                let start = (y * l.width + x0) * 3;
                data.extend_from_slice(&l.band[start..start + w * 3]);
            }
            writer.write_image_data(&data)?;
        }
        done.push(Tile {
            level: l.level,
            col,
            row,
            png,
        });
    }
    l.band.clear();
    l.band_rows = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png: &[u8]) -> (usize, usize, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, buf)
    }

    #[test]
    fn object_count_is_every_tile_built_plus_the_descriptor_and_viewer() {
        let (w, h) = (600, 300);
        let mut p = Pyramid::new(w, h);
        let mut tiles = 0;
        for _ in 0..h {
            tiles += p.push_row(&vec![7; w * 3]).unwrap().len();
        }
        tiles += p.finish().unwrap().len();
        assert_eq!(object_count(w, h), tiles as u64 + 2);
        assert_eq!(object_count(4096, 4096), 351);
        assert_eq!(tile_path(12, 3, 4), "image_files/12/3_4.png");
        assert_eq!(parse_tile_path("image_files/12/3_4.png"), Some((12, 3, 4)));
        for bad in [
            "image_files/12/3_4",
            "image_files/12/+3_4.png",
            "x/12/3_4.png",
            "image_files/12/3.png",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn levels_halve_down_to_one_pixel() {
        assert_eq!(max_level(1, 1), 0);
        assert_eq!(max_level(256, 256), 8);
        assert_eq!(max_level(257, 3), 9);
        assert_eq!(max_level(4096, 4096), 12);
    }

    #[test]
    fn tiles_crop_the_picture_and_lower_levels_average_it() {
        // 600×300: level 10 is 3×2 tiles; level 9 (300×150) 2×1; ... 0.
        let (w, h) = (600, 300);
        let pixel = |x: usize, y: usize| [(x % 251) as u8, (y % 241) as u8, ((x + y) % 7) as u8];
        let mut p = Pyramid::new(w, h);
        let mut tiles = Vec::new();
        for y in 0..h {
            let row: Vec<u8> = (0..w).flat_map(|x| pixel(x, y)).collect();
            tiles.extend(p.push_row(&row).unwrap());
        }
        tiles.extend(p.finish().unwrap());
        let at = |level, col, row| {
            let t = tiles
                .iter()
                .find(|t| (t.level, t.col, t.row) == (level, col, row))
                .unwrap_or_else(|| panic!("no tile {level}/{col}_{row}"));
            decode(&t.png)
        };
        // Every tile of every level, once.
        let mut expected = 0;
        let (mut lw, mut lh) = (w, h);
        for _ in (0..=10).rev() {
            expected += lw.div_ceil(TILE) * lh.div_ceil(TILE);
            (lw, lh) = (lw.div_ceil(2), lh.div_ceil(2));
        }
        assert_eq!(tiles.len(), expected);
        // Full resolution: crops of the picture.
        let (tw, th, data) = at(10, 2, 1);
        assert_eq!((tw, th), (600 - 512, 300 - 256));
        assert_eq!(&data[..3], &pixel(512, 256));
        let (_, _, data) = at(10, 1, 0);
        assert_eq!(&data[(5 * 256 + 7) * 3..][..3], &pixel(256 + 7, 5));
        // One level down: 2×2 means.
        let (tw, th, data) = at(9, 1, 0);
        assert_eq!((tw, th), (300 - 256, 150));
        let (x, y) = (256 + 3, 10);
        for c in 0..3 {
            let sum: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .iter()
                .map(|&(dx, dy)| u32::from(pixel(2 * x + dx, 2 * y + dy)[c]))
                .sum();
            assert_eq!(data[(y * tw + 3) * 3 + c], ((sum + 2) / 4) as u8);
        }
        assert_eq!(at(0, 0, 0).0, 1);
        assert!(descriptor(w, h).contains("<Size Width=\"600\" Height=\"300\"/>"));
    }
}
