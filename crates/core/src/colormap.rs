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

    /// A lookup table from count to colour for an image whose counts span
    /// `min..=max`; index it with the count itself.
    pub fn palette(self, min: u16, max: u16) -> Vec<[u8; 3]> {
        let lut = self.lut();
        let n = lut.len();
        let (vmin, vmax) = (f64::from(min).ln_1p(), f64::from(max).ln_1p());
        (0..=max)
            .map(|count| {
                let index = if vmax > vmin {
                    let x = (f64::from(count.max(min)).ln_1p() - vmin) / (vmax - vmin);
                    ((x * n as f64) as usize).min(n - 1)
                } else {
                    // matplotlib's Normalize maps a constant image to 0.
                    0
                };
                lut[index]
            })
            .collect()
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
        assert_eq!(p[0], [0, 0, 0]);
        assert_eq!(p[255], [255, 255, 255]);
        // log1p: count 15 is half way between log1p(0) and log1p(255).
        assert_eq!(p[15], Colormap::Gray.lut()[128]);
        let flat = Colormap::Gray.palette(7, 7);
        assert_eq!(flat[7], [0, 0, 0]);
    }
}
