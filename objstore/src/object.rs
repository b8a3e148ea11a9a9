//! The bytes of one data object (docs/format.md section 11.4): its blocks of 4096 bytes, in
//! the order they were packed, then a CRC32C per block (u32 each), then a 24-byte trailer:
//!
//! | offset from the trailer | size | field |
//! |---|---|---|
//! | 0x00 | 4 | `count`: blocks in the object |
//! | 0x04 | 4 | `epoch` |
//! | 0x08 | 4 | `seq` |
//! | 0x0C | 8 | magic `RVMFSOB1` |
//! | 0x14 | 4 | CRC32C of the CRC array and the trailer's first 0x14 bytes |
//!
//! Little-endian throughout. An object of `n` blocks is `n * 4100 + 24` bytes; block `i` is
//! at bytes `i * 4096 .. (i + 1) * 4096`, its CRC at `n * 4096 + 4 * i`.

use crate::le::get_u32;
use crate::object_id::ObjectId;
use bytes::{BufMut, Bytes, BytesMut};

/// Bytes in a block.
pub const BLOCK: usize = 4096;
/// Bytes in the trailer.
pub const TRAILER: usize = 24;
/// The trailer's magic.
pub const MAGIC: &[u8; 8] = b"RVMFSOB1";

/// Why an object's bytes are not a valid object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    #[error("{len} bytes: too short for a data object's trailer")]
    Short { len: usize },
    #[error("bad magic in the trailer")]
    Magic,
    #[error("trailer CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    TrailerCrc { stored: u32, computed: u32 },
    #[error("trailer names {count} blocks but the object holds {len} bytes")]
    Size { count: u32, len: usize },
    #[error("block {index} of {count}: no such block")]
    NoBlock { index: u32, count: u32 },
    #[error("block {index}: CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BlockCrc {
        index: u32,
        stored: u32,
        computed: u32,
    },
    #[error("the object says it is {found:?}, its key says {want:?}")]
    Identity { found: ObjectId, want: ObjectId },
    #[error("a ranged read of {what} returned {len} bytes, not {want}")]
    ShortRange {
        what: &'static str,
        len: usize,
        want: usize,
    },
}

/// Pack `blocks` (each exactly [`BLOCK`] bytes) into object `id`'s bytes.
pub fn pack(id: ObjectId, blocks: &[&[u8; BLOCK]]) -> Bytes {
    let n = blocks.len();
    let mut out = BytesMut::with_capacity(n * (BLOCK + 4) + TRAILER);
    for b in blocks {
        out.put_slice(&b[..]);
    }
    let footer_start = out.len();
    for b in blocks {
        out.put_u32_le(crc32c::crc32c(&b[..]));
    }
    out.put_u32_le(n as u32);
    out.put_u32_le(id.epoch);
    out.put_u32_le(id.seq);
    out.put_slice(MAGIC);
    let crc = crc32c::crc32c(&out[footer_start..]);
    out.put_u32_le(crc);
    out.freeze()
}

/// The decoded trailer: how many blocks, and the object's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub count: u32,
    pub id: ObjectId,
}

/// The block count a trailer (the last [`TRAILER`] bytes of an object) gives, once its
/// magic is checked.
pub fn trailer_count(tail: &[u8]) -> Result<u32, ObjectError> {
    if tail.len() < TRAILER {
        return Err(ObjectError::Short { len: tail.len() });
    }
    let t = &tail[tail.len() - TRAILER..];
    if &t[12..20] != MAGIC {
        return Err(ObjectError::Magic);
    }
    Ok(get_u32(t, 0))
}

/// Check an object's footer (its CRC array and trailer: the last `count * 4 + 24` bytes of an
/// object of `object_len` bytes): magic, sizes, the trailer's CRC, and that it is `want`.
pub fn check_footer(
    footer: &[u8],
    object_len: usize,
    want: ObjectId,
) -> Result<Trailer, ObjectError> {
    let count = trailer_count(footer)?;
    let size = ObjectError::Size {
        count,
        len: object_len,
    };
    let n = count as usize;
    let expect = n
        .checked_mul(BLOCK + 4)
        .and_then(|v| v.checked_add(TRAILER));
    if expect != Some(object_len) || footer.len() != n * 4 + TRAILER {
        return Err(size);
    }
    let t = &footer[footer.len() - TRAILER..];
    let stored = get_u32(t, 20);
    let computed = crc32c::crc32c(&footer[..footer.len() - 4]);
    if stored != computed {
        return Err(ObjectError::TrailerCrc { stored, computed });
    }
    let found = ObjectId {
        epoch: get_u32(t, 4),
        seq: get_u32(t, 8),
    };
    if found != want {
        return Err(ObjectError::Identity { found, want });
    }
    Ok(Trailer { count, id: found })
}

/// Check a whole object's bytes: its footer ([`check_footer`]) and every block's CRC32C.
/// Returns the trailer.
pub fn verify(bytes: &[u8], want: ObjectId) -> Result<Trailer, ObjectError> {
    let count = trailer_count(bytes)? as usize;
    let blocks_end = count.checked_mul(BLOCK).filter(|&e| e <= bytes.len());
    let Some(blocks_end) = blocks_end else {
        return Err(ObjectError::Size {
            count: count as u32,
            len: bytes.len(),
        });
    };
    let t = check_footer(&bytes[blocks_end..], bytes.len(), want)?;
    for i in 0..count {
        let b = &bytes[i * BLOCK..(i + 1) * BLOCK];
        check_block(b, i as u32, get_u32(bytes, blocks_end + 4 * i))?;
    }
    Ok(t)
}

/// Check one block's bytes against the CRC32C the object stores for it.
pub fn check_block(block: &[u8], index: u32, stored: u32) -> Result<(), ObjectError> {
    let computed = crc32c::crc32c(block);
    if computed != stored {
        return Err(ObjectError::BlockCrc {
            index,
            stored,
            computed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(n: usize) -> Vec<[u8; BLOCK]> {
        (0..n).map(|i| [(i * 31 + 7) as u8; BLOCK]).collect()
    }

    #[test]
    fn packs_and_verifies_and_catches_each_damage() {
        let id = ObjectId { epoch: 3, seq: 9 };
        let bs = blocks(5);
        let refs: Vec<&[u8; BLOCK]> = bs.iter().collect();
        let obj = pack(id, &refs);
        assert_eq!(obj.len(), 5 * 4100 + 24);
        assert_eq!(verify(&obj, id), Ok(Trailer { count: 5, id }));
        let other = ObjectId { epoch: 3, seq: 10 };
        assert!(matches!(
            verify(&obj, other),
            Err(ObjectError::Identity { .. })
        ));
        let mut flipped = obj.to_vec();
        flipped[2 * BLOCK + 100] ^= 1;
        assert!(matches!(
            verify(&flipped, id),
            Err(ObjectError::BlockCrc { index: 2, .. })
        ));
        let mut bad_trailer = obj.to_vec();
        let n = bad_trailer.len();
        bad_trailer[n - TRAILER] ^= 1;
        assert!(verify(&bad_trailer, id).is_err());
        assert!(matches!(
            verify(&obj[..obj.len() - 1], id),
            Err(ObjectError::Magic)
        ));
        assert!(matches!(
            verify(&obj[BLOCK..], id),
            Err(ObjectError::Size { .. })
        ));
        assert_eq!(verify(&obj[..3], id), Err(ObjectError::Short { len: 3 }));
    }
}
