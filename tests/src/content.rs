//! File contents: deterministic pseudo-random bytes ([`pattern`]) and comparisons that say
//! where two byte strings differ without printing megabytes.

use std::fs;
use std::path::Path;

/// Deterministic pseudo-random bytes (xorshift), for file contents.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Describe how two byte strings differ (lengths, first differing offset, a short excerpt)
/// without printing megabytes; `None` if they are equal.
pub fn bytes_diff(got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let excerpt = |v: &[u8]| {
        let end = (first + 16).min(v.len());
        format!("{:02x?}", &v[first.min(v.len())..end])
    };
    Some(format!(
        "got {} bytes, want {}; first difference at offset {first}: got {} want {}",
        got.len(),
        want.len(),
        excerpt(got),
        excerpt(want)
    ))
}

/// Assert a file's content, reporting only where it differs.
#[track_caller]
pub fn assert_file(path: impl AsRef<Path>, want: impl AsRef<[u8]>) {
    let path = path.as_ref();
    let got = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    if let Some(d) = bytes_diff(&got, want.as_ref()) {
        panic!("{}: {d}", path.display());
    }
}
