//! Tile blobs: the bytes a worker stores for one tile.
//!
//! A blob is `P*P` little-endian counts, row-major, row 0 = lowest
//! imaginary part: `u16` for viewport jobs (the notebook's `out.tobytes()`
//! on a little-endian machine), `u32` for deep jobs ([`CountWidth`]).
//! In memory, counts are `u32` whatever their stored width.

use thiserror::Error;

use crate::params::CountWidth;

/// A blob whose size does not fit the job's tile size.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("tile blob has {actual} bytes, expected {expected} (tile_pixels² × count bytes)")]
pub struct BlobSizeError {
    pub expected: usize,
    pub actual: usize,
}

/// Encodes counts as a blob of `width`. A count too large for `u16` cannot
/// occur in a viewport job (`max_iter` ≤ 65535).
pub fn encode(counts: &[u32], width: CountWidth) -> Vec<u8> {
    let mut out = Vec::with_capacity(counts.len() * width.bytes());
    encode_into(counts, width, &mut out);
    out
}

/// Appends the encoding of `counts` to `out`.
pub fn encode_into(counts: &[u32], width: CountWidth, out: &mut Vec<u8>) {
    match width {
        CountWidth::U16 => out.extend(counts.iter().flat_map(|&c| (c as u16).to_le_bytes())),
        CountWidth::U32 => out.extend(counts.iter().flat_map(|c| c.to_le_bytes())),
    }
}

/// Decodes a blob that must hold exactly `pixels` counts.
pub fn decode(bytes: &[u8], width: CountWidth, pixels: usize) -> Result<Vec<u32>, BlobSizeError> {
    let mut out = vec![0u32; pixels];
    decode_into(bytes, width, &mut out)?;
    Ok(out)
}

/// Decodes a blob into `out`, which fixes the expected size.
pub fn decode_into(bytes: &[u8], width: CountWidth, out: &mut [u32]) -> Result<(), BlobSizeError> {
    if bytes.len() != out.len() * width.bytes() {
        return Err(BlobSizeError {
            expected: out.len() * width.bytes(),
            actual: bytes.len(),
        });
    }
    match width {
        CountWidth::U16 => {
            for (c, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *c = u32::from(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        CountWidth::U32 => {
            for (c, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *c = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_little_endian() {
        let counts = [0u32, 1, 0x1234, u32::from(u16::MAX)];
        let bytes = encode(&counts, CountWidth::U16);
        assert_eq!(bytes, [0, 0, 1, 0, 0x34, 0x12, 0xff, 0xff]);
        assert_eq!(decode(&bytes, CountWidth::U16, 4).unwrap(), counts);
        let deep = [0u32, 0x0102_0304];
        let bytes = encode(&deep, CountWidth::U32);
        assert_eq!(bytes, [0, 0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(decode(&bytes, CountWidth::U32, 2).unwrap(), deep);
    }

    #[test]
    fn wrong_size_is_refused() {
        let err = decode(&[0; 7], CountWidth::U16, 4).unwrap_err();
        assert_eq!(
            err,
            BlobSizeError {
                expected: 8,
                actual: 7
            }
        );
        assert!(decode(&[0; 10], CountWidth::U16, 4).is_err());
        assert!(decode(&[0; 8], CountWidth::U32, 4).is_err());
    }
}
