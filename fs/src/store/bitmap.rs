//! Allocation bitmaps (inodes, data blocks): bit i set = item i in use.

use crate::error::{corrupt, FsResult};
use crate::layout::pod;
use rvm_core::Transaction;

/// Is bit `i` of the bitmap at region offset `at` set?
pub fn test(bytes: &[u8], at: u64, i: u64) -> FsResult<bool> {
    let byte = pod::slice(bytes, at + i / 8, 1)?[0];
    Ok(byte & (1 << (i % 8)) != 0)
}

/// Find a run of clear bits: the first clear bit at or after `goal` (wrapping around), then as
/// many following clear bits as possible, up to `want`. Returns (start, length) or None if full.
pub fn find_clear_run(
    bytes: &[u8],
    at: u64,
    nbits: u64,
    goal: u64,
    want: u64,
) -> FsResult<Option<(u64, u64)>> {
    let words = pod::slice(bytes, at, nbits.div_ceil(64) * 8)?;
    let word = |w: u64| -> u64 {
        let i = (w * 8) as usize;
        u64::from_le_bytes(words[i..i + 8].try_into().unwrap_or([0xff; 8]))
    };
    let is_set = |i: u64| word(i / 64) & (1 << (i % 64)) != 0;
    let nwords = nbits.div_ceil(64);
    let goal = if goal >= nbits { 0 } else { goal };
    // Scan word by word from the goal's word, wrapping once.
    let mut first = None;
    for k in 0..=nwords {
        let w = (goal / 64 + k) % nwords;
        let mut free = !word(w);
        if k == 0 {
            free &= u64::MAX << (goal % 64);
        }
        if free != 0 {
            let bit = w * 64 + free.trailing_zeros() as u64;
            if bit < nbits {
                first = Some(bit);
                break;
            }
        }
    }
    let Some(start) = first else { return Ok(None) };
    let mut len = 1;
    while len < want && start + len < nbits && !is_set(start + len) {
        len += 1;
    }
    Ok(Some((start, len)))
}

/// Set (`value` true) or clear the bits [start, start+len) of the bitmap at `at`.
/// Setting a set bit or clearing a clear one is corruption (a double allocation or free).
pub fn set_run(
    tx: &mut Transaction<'_>,
    at: u64,
    start: u64,
    len: u64,
    value: bool,
) -> FsResult<()> {
    if len == 0 {
        return Ok(());
    }
    let first = start / 8;
    let last = (start + len - 1) / 8;
    let bytes = tx.set_range((at + first) as usize, (last - first + 1) as usize)?;
    for i in start..start + len {
        let (b, m) = ((i / 8 - first) as usize, 1u8 << (i % 8));
        if (bytes[b] & m != 0) == value {
            let what = if value {
                "allocated twice"
            } else {
                "freed twice"
            };
            return corrupt(format!("bitmap at {at}: item {i} {what}"));
        }
        if value {
            bytes[b] |= m;
        } else {
            bytes[b] &= !m;
        }
    }
    Ok(())
}
