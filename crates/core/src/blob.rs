//! Tile blobs: the bytes a worker stores for one tile.
//!
//! A blob is `P*P` little-endian `u16` counts, row-major, row 0 = lowest
//! imaginary part: the notebook's `out.tobytes()` on a little-endian machine.

use thiserror::Error;

/// A blob whose size does not fit the job's tile size.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("tile blob has {actual} bytes, expected {expected} (tile_pixels² × 2)")]
pub struct BlobSizeError {
    pub expected: usize,
    pub actual: usize,
}

/// Encodes counts as a blob.
pub fn encode(counts: &[u16]) -> Vec<u8> {
    counts.iter().flat_map(|c| c.to_le_bytes()).collect()
}

/// Decodes a blob that must hold exactly `pixels` counts.
pub fn decode(bytes: &[u8], pixels: usize) -> Result<Vec<u16>, BlobSizeError> {
    let mut out = vec![0u16; pixels];
    decode_into(bytes, &mut out)?;
    Ok(out)
}

/// Decodes a blob into `out`, which fixes the expected size.
pub fn decode_into(bytes: &[u8], out: &mut [u16]) -> Result<(), BlobSizeError> {
    if bytes.len() != out.len() * 2 {
        return Err(BlobSizeError {
            expected: out.len() * 2,
            actual: bytes.len(),
        });
    }
    for (c, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *c = u16::from_le_bytes([b[0], b[1]]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_little_endian() {
        let counts = [0u16, 1, 0x1234, u16::MAX];
        let bytes = encode(&counts);
        assert_eq!(bytes, [0, 0, 1, 0, 0x34, 0x12, 0xff, 0xff]);
        assert_eq!(decode(&bytes, 4).unwrap(), counts);
    }

    #[test]
    fn wrong_size_is_refused() {
        let err = decode(&[0; 7], 4).unwrap_err();
        assert_eq!(
            err,
            BlobSizeError {
                expected: 8,
                actual: 7
            }
        );
        assert!(decode(&[0; 10], 4).is_err());
    }
}
