//! A whole pyramid in one object, read by byte range: what a cloud job
//! stores, so its pyramid costs the few requests of one multipart upload
//! instead of a PUT per tile (351 at 4096²).
//!
//! The layout, written front to back as the picture streams:
//!
//! ```text
//! tiles   every tile's PNG, back to back, in the order the picture made them
//! index   12 bytes a tile: its PNG's offset (u64) and length (u32), level 0
//!         first, then rows top first, columns left first, so a tile's
//!         entry lies at a place computed from its level, column and row
//! footer  32 bytes: MAGIC, width (u64), height (u64), the index's offset (u64)
//! ```
//!
//! All integers little-endian. A reader needs three ranged reads, the
//! first of which (the footer) it can keep: the footer, the tile's entry,
//! the tile.

use std::ops::Range;

use super::{Tile, max_level};

/// The pack's name in the pyramid's folder (or prefix), beside where
/// [`super::DESCRIPTOR`] would be.
pub const FILE: &str = "image.pack";

/// The footer's first bytes: the format and its version.
pub const MAGIC: &[u8; 8] = b"MDZPACK1";

/// An index entry's size.
pub const ENTRY: u64 = 12;

/// Why bytes are not a pack (or not this pack's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("not a pyramid pack: {0}")]
    Malformed(&'static str),
}

/// The pack's last [`Footer::LEN`] bytes: the picture's size and where
/// the index starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub width: u64,
    pub height: u64,
    pub index: u64,
}

impl Footer {
    pub const LEN: u64 = 32;

    pub fn encode(&self) -> [u8; Self::LEN as usize] {
        let mut out = [0; Self::LEN as usize];
        out[..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.width.to_le_bytes());
        out[16..24].copy_from_slice(&self.height.to_le_bytes());
        out[24..].copy_from_slice(&self.index.to_le_bytes());
        out
    }

    /// The footer of a pack of `size` bytes whose last bytes are `bytes`.
    pub fn parse(bytes: &[u8], size: u64) -> Result<Footer, PackError> {
        let bytes: &[u8; Self::LEN as usize] = bytes
            .try_into()
            .map_err(|_| PackError::Malformed("its footer is not 32 bytes"))?;
        if &bytes[..8] != MAGIC {
            return Err(PackError::Malformed("its footer has no magic"));
        }
        let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let footer = Footer {
            width: word(8),
            height: word(16),
            index: word(24),
        };
        let tiles = Grid::new(footer.width as usize, footer.height as usize).tiles();
        if footer.width == 0
            || footer.height == 0
            || footer.index.checked_add(tiles * ENTRY + Self::LEN) != Some(size)
        {
            return Err(PackError::Malformed("its index does not fit its size"));
        }
        Ok(footer)
    }

    /// Where the entry of tile `col`, `row` of `level` lies, or `None` if
    /// the pyramid has no such tile.
    pub fn entry(&self, level: u32, col: usize, row: usize) -> Option<Range<u64>> {
        let grid = Grid::new(self.width as usize, self.height as usize);
        let at = self.index + grid.position(level, col, row)? * ENTRY;
        Some(at..at + ENTRY)
    }

    /// Where a tile's PNG lies, from its entry's bytes; checked against
    /// the tiles' part of the pack.
    pub fn tile(&self, entry: &[u8]) -> Result<Range<u64>, PackError> {
        let entry: &[u8; ENTRY as usize] = entry
            .try_into()
            .map_err(|_| PackError::Malformed("an index entry is not 12 bytes"))?;
        let offset = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        let len = u64::from(u32::from_le_bytes(entry[8..].try_into().expect("4 bytes")));
        match offset.checked_add(len) {
            Some(end) if len > 0 && end <= self.index => Ok(offset..end),
            _ => Err(PackError::Malformed(
                "an index entry points outside the tiles",
            )),
        }
    }
}

/// Every level's tiles, as columns × rows, level 0 first.
struct Grid {
    levels: Vec<(usize, usize)>,
}

impl Grid {
    fn new(width: usize, height: usize) -> Self {
        let top = max_level(width, height);
        let (mut w, mut h) = (width.max(1), height.max(1));
        let mut levels = Vec::with_capacity(top as usize + 1);
        for _ in 0..=top {
            levels.push((w.div_ceil(super::TILE), h.div_ceil(super::TILE)));
            (w, h) = (w.div_ceil(2).max(1), h.div_ceil(2).max(1));
        }
        levels.reverse();
        Grid { levels }
    }

    fn tiles(&self) -> u64 {
        self.levels.iter().map(|&(c, r)| (c * r) as u64).sum()
    }

    /// A tile's place in the index.
    fn position(&self, level: u32, col: usize, row: usize) -> Option<u64> {
        let &(cols, rows) = self.levels.get(level as usize)?;
        if col >= cols || row >= rows {
            return None;
        }
        let before: usize = self.levels[..level as usize]
            .iter()
            .map(|&(c, r)| c * r)
            .sum();
        Some((before + row * cols + col) as u64)
    }
}

/// A pack being written: the caller appends each tile's PNG as it places
/// it, then the bytes [`finish`](Self::finish) returns.
pub struct PackWriter {
    width: usize,
    height: usize,
    grid: Grid,
    index: Vec<u8>,
    placed: u64,
    written: u64,
}

impl PackWriter {
    pub fn new(width: usize, height: usize) -> Self {
        let grid = Grid::new(width, height);
        PackWriter {
            width,
            height,
            index: vec![0; (grid.tiles() * ENTRY) as usize],
            grid,
            placed: 0,
            written: 0,
        }
    }

    /// Records `tile` at the pack's end; append its PNG next.
    pub fn place(&mut self, tile: &Tile) {
        let at = self
            .grid
            .position(tile.level, tile.col, tile.row)
            .expect("a tile of this pyramid") as usize
            * ENTRY as usize;
        let entry = &mut self.index[at..at + ENTRY as usize];
        assert!(entry.iter().all(|&b| b == 0), "a tile placed twice");
        entry[..8].copy_from_slice(&self.written.to_le_bytes());
        let len = u32::try_from(tile.png.len()).expect("a tile's PNG is under 4 GiB");
        entry[8..].copy_from_slice(&len.to_le_bytes());
        self.written += tile.png.len() as u64;
        self.placed += 1;
    }

    /// Every tile placed: the index and the footer, the pack's last bytes.
    pub fn finish(self) -> Vec<u8> {
        assert_eq!(self.placed, self.grid.tiles(), "a pack is missing tiles");
        let footer = Footer {
            width: self.width as u64,
            height: self.height as u64,
            index: self.written,
        };
        let mut tail = self.index;
        tail.extend_from_slice(&footer.encode());
        tail
    }

    /// The size of the pack of tiles whose PNGs have `tiles_bytes` bytes
    /// in all.
    pub fn size(width: usize, height: usize, tiles_bytes: u64) -> u64 {
        tiles_bytes + Grid::new(width, height).tiles() * ENTRY + Footer::LEN
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Pyramid, tile_path};
    use super::*;

    /// A 600×300 picture's pyramid as a pack, and its tiles.
    fn packed() -> (Vec<u8>, Vec<Tile>) {
        let (w, h) = (600, 300);
        let mut p = Pyramid::new(w, h);
        let mut tiles = Vec::new();
        for y in 0..h {
            let row: Vec<u8> = (0..w * 3).map(|i| ((i * 7 + y * 13) % 256) as u8).collect();
            tiles.extend(p.push_row(&row).unwrap());
        }
        tiles.extend(p.finish().unwrap());
        let mut writer = PackWriter::new(w, h);
        let mut pack = Vec::new();
        for t in &tiles {
            writer.place(t);
            pack.extend_from_slice(&t.png);
        }
        let tiles_bytes = pack.len() as u64;
        pack.extend(writer.finish());
        assert_eq!(pack.len() as u64, PackWriter::size(w, h, tiles_bytes));
        (pack, tiles)
    }

    #[test]
    fn every_tile_reads_back_by_three_ranges() {
        let (pack, tiles) = packed();
        let size = pack.len() as u64;
        let range = |r: Range<u64>| &pack[r.start as usize..r.end as usize];
        let footer = Footer::parse(range(size - Footer::LEN..size), size).unwrap();
        assert_eq!((footer.width, footer.height), (600, 300));
        for t in &tiles {
            let entry = footer.entry(t.level, t.col, t.row).unwrap();
            let png = range(footer.tile(range(entry)).unwrap());
            assert_eq!(png, t.png, "{}", tile_path(t.level, t.col, t.row));
        }
        // Tiles past a level's edge, or levels past the top, are none.
        assert_eq!(footer.entry(10, 3, 0), None);
        assert_eq!(footer.entry(10, 0, 2), None);
        assert_eq!(footer.entry(11, 0, 0), None);
        assert!(footer.entry(0, 0, 0).is_some());
    }

    #[test]
    fn bytes_that_are_not_a_pack_are_refused() {
        let (pack, _) = packed();
        let size = pack.len() as u64;
        let tail = &pack[pack.len() - 32..];
        // Another size: the index would not fit.
        assert!(Footer::parse(tail, size + 1).is_err());
        let mut bad = tail.to_vec();
        bad[0] = b'X';
        assert!(Footer::parse(&bad, size).is_err());
        assert!(Footer::parse(&tail[1..], size).is_err());
        let footer = Footer::parse(tail, size).unwrap();
        // An entry pointing past the tiles, or empty.
        let mut entry = [0u8; 12];
        entry[..8].copy_from_slice(&footer.index.to_le_bytes());
        entry[8..].copy_from_slice(&1u32.to_le_bytes());
        assert!(footer.tile(&entry).is_err());
        assert!(footer.tile(&[0; 12]).is_err());
    }
}
