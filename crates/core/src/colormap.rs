//! Colour mapping, as the notebook's `imshow(np.log1p(image), cmap=...)`.
//!
//! Counts are scaled with `log1p`, normalised min–max over the whole image
//! (matplotlib's default `Normalize`), and looked up in a matplotlib colormap
//! table the way `Colormap.__call__(x, bytes=True)` does: index
//! `floor(x * N)` (with `x == 1` mapped to `N - 1`) and channel bytes
//! `floor(v * 255)`. The tables were exported from matplotlib and live in
//! `colormaps/*.csv`.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use thiserror::Error;

/// A named matplotlib colormap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Colormap {
    /// The notebook's choice, and the default.
    #[default]
    TwilightShifted,
    Viridis,
    Magma,
    Gray,
}

/// An unknown colormap name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("colormap must be one of {}, got {name:?}", Colormap::names().join(", "))]
pub struct UnknownColormap {
    pub name: String,
}

impl Colormap {
    pub const ALL: [Colormap; 4] = [
        Colormap::TwilightShifted,
        Colormap::Viridis,
        Colormap::Magma,
        Colormap::Gray,
    ];

    /// matplotlib's name for the colormap.
    pub fn name(self) -> &'static str {
        match self {
            Colormap::TwilightShifted => "twilight_shifted",
            Colormap::Viridis => "viridis",
            Colormap::Magma => "magma",
            Colormap::Gray => "gray",
        }
    }

    /// Whether the table ends where it starts (twilight's do), so a scale
    /// may wrap around it without a seam.
    pub fn is_cyclic(self) -> bool {
        self == Colormap::TwilightShifted
    }

    pub fn names() -> Vec<&'static str> {
        Colormap::ALL.iter().map(|c| c.name()).collect()
    }

    /// The table as 8-bit RGB, `floor(v * 255)` like matplotlib's `bytes=True`.
    pub fn lut(self) -> &'static [[u8; 3]] {
        static TABLES: [OnceLock<Vec<[u8; 3]>>; 4] = [const { OnceLock::new() }; 4];
        let (slot, csv) = match self {
            Colormap::TwilightShifted => (
                &TABLES[0],
                include_str!("../colormaps/twilight_shifted.csv"),
            ),
            Colormap::Viridis => (&TABLES[1], include_str!("../colormaps/viridis.csv")),
            Colormap::Magma => (&TABLES[2], include_str!("../colormaps/magma.csv")),
            Colormap::Gray => (&TABLES[3], include_str!("../colormaps/gray.csv")),
        };
        slot.get_or_init(|| parse_lut(csv))
    }

    /// The colours of an image whose counts span `min..=max`.
    pub fn palette(self, min: u32, max: u32) -> Palette {
        Palette::normalised(self, min, max)
    }
}

/// Colours by count. Built for an image's count range (`log1p`, min–max
/// normalised, [`Colormap::palette`]) or given as a table from count 0
/// ([`Palette::from_table`]). A count below the range takes the min's
/// colour, one above it the max's.
#[derive(Clone, Debug)]
pub struct Palette {
    min: u32,
    max: u32,
    /// The colour of each count `min..=max`; empty when the range is too
    /// wide to tabulate, and colours are computed per count.
    table: Vec<[u8; 3]>,
    lut: &'static [[u8; 3]],
    vmin: f64,
    vmax: f64,
}

/// The widest count range a palette tabulates (48 MiB of colours); deep
/// images with a wider one compute each colour.
const MAX_TABLE: u32 = 1 << 24;

impl Palette {
    fn normalised(colormap: Colormap, min: u32, max: u32) -> Palette {
        let lut = colormap.lut();
        let (vmin, vmax) = (f64::from(min).ln_1p(), f64::from(max).ln_1p());
        let mut palette = Palette {
            min,
            max,
            table: Vec::new(),
            lut,
            vmin,
            vmax,
        };
        if max >= min && max - min < MAX_TABLE {
            palette.table = (min..=max).map(|c| palette.compute(c)).collect();
        }
        palette
    }

    /// A palette that is a table of colours for counts `0..table.len()`.
    ///
    /// # Panics
    /// If `table` is empty.
    pub fn from_table(table: Vec<[u8; 3]>) -> Palette {
        Palette::from_table_at(0, table)
    }

    /// A palette of the counts `min..min + table.len()`, in order; counts
    /// outside take the nearest end's colour.
    pub fn from_table_at(min: u32, table: Vec<[u8; 3]>) -> Palette {
        assert!(!table.is_empty(), "a palette has at least one colour");
        Palette {
            min,
            max: min + (table.len() as u32 - 1),
            table,
            lut: Colormap::Gray.lut(),
            vmin: 0.0,
            vmax: 0.0,
        }
    }

    fn compute(&self, count: u32) -> [u8; 3] {
        let n = self.lut.len();
        let index = if self.vmax > self.vmin {
            let x = (f64::from(count.max(self.min)).ln_1p() - self.vmin) / (self.vmax - self.vmin);
            ((x * n as f64) as usize).min(n - 1)
        } else {
            // matplotlib's Normalize maps a constant image to 0.
            0
        };
        self.lut[index]
    }

    /// The colour of `count`.
    #[inline]
    pub fn colour(&self, count: u32) -> [u8; 3] {
        let c = count.clamp(self.min, self.max.max(self.min));
        match self.table.get((c - self.min) as usize) {
            Some(colour) => *colour,
            None => self.compute(c),
        }
    }
}

fn parse_lut(csv: &str) -> Vec<[u8; 3]> {
    csv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut rgb = [0u8; 3];
            let mut parts = l.split(',');
            for c in &mut rgb {
                let v: f64 = parts
                    .next()
                    .and_then(|s| s.trim().parse().ok())
                    .expect("colormap table row");
                *c = (v * 255.0) as u8;
            }
            rgb
        })
        .collect()
}

impl FromStr for Colormap {
    type Err = UnknownColormap;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Colormap::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownColormap {
                name: s.to_string(),
            })
    }
}

impl fmt::Display for Colormap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_matplotlib_sizes_and_ends() {
        assert_eq!(Colormap::TwilightShifted.lut().len(), 510);
        assert_eq!(Colormap::Viridis.lut().len(), 256);
        assert_eq!(Colormap::Magma.lut().len(), 256);
        assert_eq!(Colormap::Gray.lut()[0], [0, 0, 0]);
        assert_eq!(Colormap::Gray.lut()[255], [255, 255, 255]);
        // viridis starts dark purple and ends yellow.
        assert_eq!(Colormap::Viridis.lut()[0], [68, 1, 84]);
        assert_eq!(Colormap::Viridis.lut()[255], [253, 231, 36]);
    }

    #[test]
    fn names_round_trip_and_unknown_is_explained() {
        for c in Colormap::ALL {
            assert_eq!(c.name().parse::<Colormap>().unwrap(), c);
        }
        let err = "jet".parse::<Colormap>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "colormap must be one of twilight_shifted, viridis, magma, gray, got \"jet\""
        );
    }

    #[test]
    fn palette_spans_the_table_with_log_scaling() {
        let p = Colormap::Gray.palette(0, 255);
        assert_eq!(p.colour(0), [0, 0, 0]);
        assert_eq!(p.colour(255), [255, 255, 255]);
        // log1p: count 15 is half way between log1p(0) and log1p(255).
        assert_eq!(p.colour(15), Colormap::Gray.lut()[128]);
        // Above the range: the max's colour.
        assert_eq!(p.colour(300), [255, 255, 255]);
        let flat = Colormap::Gray.palette(7, 7);
        assert_eq!(flat.colour(7), [0, 0, 0]);
    }

    #[test]
    fn a_range_too_wide_to_tabulate_colours_alike() {
        // Deep images' counts can span 10^8: computed, not tabulated.
        let (lo, hi) = (20_000u32, 20_000 + (1 << 24) + 5);
        let wide = Colormap::Viridis.palette(lo, hi);
        assert!(wide.table.is_empty());
        for c in [0, lo, lo + 1, lo + 77_777, hi - 1, hi, hi + 9] {
            assert_eq!(wide.colour(c), wide.compute(c.clamp(lo, hi)), "count {c}");
        }
        let narrow = Colormap::Viridis.palette(lo, lo + 1000);
        assert_eq!(narrow.table.len(), 1001);
        for c in [0, lo, lo + 500, lo + 1000, lo + 2000] {
            assert_eq!(narrow.colour(c), narrow.compute(c.clamp(lo, lo + 1000)));
        }
        assert_eq!(narrow.colour(lo), Colormap::Viridis.lut()[0]);
        assert_eq!(
            narrow.colour(lo + 1000),
            *Colormap::Viridis.lut().last().unwrap()
        );
    }
}
