//! Little-endian fields read out of an object's bytes (segment headers, data object trailers,
//! snapshot parts), through `bytes::Buf`.

use bytes::Buf;

/// The little-endian `u32` at byte `at` of `b`. The caller has checked that `b` holds it
/// (it panics past the end, as indexing does).
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    (&b[at..at + 4]).get_u32_le()
}

/// The little-endian `u64` at byte `at` of `b`. The caller has checked that `b` holds it
/// (it panics past the end, as indexing does).
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    (&b[at..at + 8]).get_u64_le()
}
