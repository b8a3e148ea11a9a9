//! The slotted leaf (node kind 3, incompat feature `slotted_leaves`; docs/format.md section
//! 6): a B+tree leaf whose entries stay where they were written. An insert appends the new
//! entry after the others and shifts only a sorted array of 2-byte slots, so it logs the new
//! 40-byte entry, the slots after the insert point and the count (about 150 bytes on average
//! in a full leaf, against about 2 KB for the shifted tail of a sorted leaf). The idea is the
//! slotted page of database storage managers (e.g. the "slotted page" of System R and
//! PostgreSQL's line pointers), cut down to fixed-size entries.
//!
//! ```text
//! kind=3 u16 | count u16 | zero 12 | slot[0..count] u16 | unused | entry[0..CAP] 40 bytes
//! ```
//! `slot[i]` is the byte offset in the node of the entry with the i-th smallest key. Entries
//! are dense: the slots of a sound leaf are the offsets of entries `0..count` in some order, so
//! a new entry goes to entry `count` and a remove moves the last entry into the hole (one
//! entry and one slot more), and the leaf never needs compacting. Every slot is checked
//! ([`check`]) before a reader follows one.

use super::btree::{Key, Value};
use crate::error::{corrupt, FsResult};
use crate::layout::features::{Features, INCOMPAT_SLOTTED_LEAVES};
use crate::layout::pod;
use crate::layout::superblock::field;
use rvm_core::Transaction;

/// Node kind of a slotted leaf.
pub(super) const KIND: u16 = 3;
/// Bytes of one entry (key.hi, key.lo, value[0..3], little-endian u64s).
const ENTRY: usize = 40;
/// Node offset of the slot array.
const SLOTS: usize = 16;
/// Most entries a slotted leaf holds: a 2-byte slot and a 40-byte entry each after the
/// 16-byte header, `(4096 - 16) / 42`.
pub(super) const CAP: usize = (4096 - SLOTS) / (2 + ENTRY);
/// Node offset of entry 0; entry j is at `CELLS + 40 * j`, the last ends at the node's end.
const CELLS: usize = 4096 - CAP * ENTRY;

/// Whether the image whose region is `bytes` writes new leaves slotted (its superblock's
/// `slotted_leaves` feature bit).
///
/// Errors: `FsError::Corrupt` if the region is too short to hold a superblock.
pub(super) fn wanted(bytes: &[u8]) -> FsResult<bool> {
    let features: Features = pod::get(bytes, field::FEATURES)?;
    Ok(features.has_incompat(INCOMPAT_SLOTTED_LEAVES))
}

/// Slot `i` of the 4096-byte node `b` (`i < CAP`): an entry's node offset.
pub(super) fn slot(b: &[u8], i: usize) -> usize {
    let o = SLOTS + 2 * i;
    u16::from_le_bytes([b[o], b[o + 1]]) as usize
}

/// The slots of a leaf holding `count` entries, as stored.
pub(super) fn slots(b: &[u8], count: usize) -> Vec<u16> {
    (0..count).map(|i| slot(b, i) as u16).collect()
}

/// Check the `count` slots of node `b` (`count <= CAP`): each the offset of one of entries
/// `0..count`, no two the same. Returns what is wrong (key order is the caller's check).
pub(super) fn check(b: &[u8], count: usize) -> Result<(), String> {
    let mut seen = [false; CAP];
    for i in 0..count {
        let off = slot(b, i);
        let j = off.wrapping_sub(CELLS) / ENTRY;
        if off < CELLS || !(off - CELLS).is_multiple_of(ENTRY) || j >= count {
            return Err(format!(
                "slot {i} holds {off}, not the offset of one of its {count} entries"
            ));
        }
        if std::mem::replace(&mut seen[j], true) {
            return Err(format!("slot {i} names entry {j}, as an earlier slot does"));
        }
    }
    Ok(())
}

/// The entries of a slotted leaf read where they lie, ignoring its slots: what a leaf whose
/// slots are damaged still holds (fsck's salvage). None unless `b` is a slotted leaf with a
/// count within capacity.
pub(super) fn cells(b: &[u8]) -> Option<Vec<(Key, Value)>> {
    let kind = u16::from_le_bytes([b[0], b[1]]);
    let count = u16::from_le_bytes([b[2], b[3]]) as usize;
    if kind != KIND || count > CAP {
        return None;
    }
    Some((0..count).map(|j| decode(b, CELLS + j * ENTRY)).collect())
}

/// The entry at node offset `o` of `b` (`o + 40 <= 4096`).
fn decode(b: &[u8], o: usize) -> (Key, Value) {
    let w = |k: usize| {
        let at = o + 8 * k;
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
    };
    ((w(0), w(1)), [w(2), w(3), w(4)])
}

fn encode(key: Key, value: Value) -> [u8; ENTRY] {
    let mut out = [0u8; ENTRY];
    for (i, w) in [key.0, key.1, value[0], value[1], value[2]]
        .iter()
        .enumerate()
    {
        out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    out
}

fn slot_bytes(slots: &[u16]) -> Vec<u8> {
    slots.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Write the header of the leaf at region offset `at`: kind 3 and `count`.
fn put_header(tx: &mut Transaction<'_>, at: u64, count: usize) -> FsResult<()> {
    let mut header = [0u8; 4];
    header[..2].copy_from_slice(&KIND.to_le_bytes());
    header[2..].copy_from_slice(&(count as u16).to_le_bytes());
    pod::put_bytes(tx, at, &header)
}

/// Write a whole slotted leaf at region offset `at` holding `entries` (sorted by key, at most
/// [`CAP`]): entry i in slot i. One range from the header to the last entry.
pub(super) fn write(tx: &mut Transaction<'_>, at: u64, entries: &[(Key, Value)]) -> FsResult<()> {
    if entries.len() > CAP {
        return corrupt(format!("a slotted leaf of {} entries", entries.len()));
    }
    let mut buf = vec![0u8; CELLS + entries.len() * ENTRY];
    buf[..2].copy_from_slice(&KIND.to_le_bytes());
    buf[2..4].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    for (i, (k, v)) in entries.iter().enumerate() {
        let cell = CELLS + i * ENTRY;
        buf[SLOTS + 2 * i..SLOTS + 2 * i + 2].copy_from_slice(&(cell as u16).to_le_bytes());
        buf[cell..cell + ENTRY].copy_from_slice(&encode(*k, *v));
    }
    pod::put_bytes(tx, at, &buf)
}

/// Insert `(key, value)` as the `i`-th smallest key of the leaf at `at`, whose checked slots
/// are `slots` (fewer than [`CAP`]): the entry goes after the others, the slots from `i` on
/// move up by one. Logs the entry, `2 * (count - i + 1)` bytes of slots and the header.
pub(super) fn insert(
    tx: &mut Transaction<'_>,
    at: u64,
    slots: &[u16],
    i: usize,
    key: Key,
    value: Value,
) -> FsResult<()> {
    let n = slots.len();
    if n >= CAP || i > n {
        return corrupt(format!("slotted leaf at {at}: insert at {i} of {n}"));
    }
    let cell = CELLS + n * ENTRY;
    pod::put_bytes(tx, at + cell as u64, &encode(key, value))?;
    let mut moved = Vec::with_capacity(n - i + 1);
    moved.push(cell as u16);
    moved.extend_from_slice(&slots[i..]);
    pod::put_bytes(tx, at + (SLOTS + 2 * i) as u64, &slot_bytes(&moved))?;
    put_header(tx, at, n + 1)
}

/// Replace the value of the entry at node offset `off` (a checked slot) of the leaf at `at`.
pub(super) fn replace(tx: &mut Transaction<'_>, at: u64, off: usize, value: Value) -> FsResult<()> {
    let bytes = encode((0, 0), value);
    pod::put_bytes(tx, at + off as u64 + 16, &bytes[16..])
}

/// Remove the `i`-th smallest entry of the leaf at `at` whose checked slots are `slots` (at
/// least two): the slots after `i` move down by one, and the last entry moves into the hole
/// (its slot follows it), so entries stay dense.
pub(super) fn remove(tx: &mut Transaction<'_>, at: u64, slots: &[u16], i: usize) -> FsResult<()> {
    let n = slots.len();
    if n < 2 || i >= n {
        return corrupt(format!("slotted leaf at {at}: remove {i} of {n}"));
    }
    let mut left = slots.to_vec();
    let hole = left.remove(i);
    let last = (CELLS + (n - 1) * ENTRY) as u16;
    if hole != last {
        let Some(j) = left.iter().position(|&s| s == last) else {
            return corrupt(format!(
                "slotted leaf at {at}: no slot names its last entry"
            ));
        };
        left[j] = hole;
        let moved = pod::slice(tx.bytes(), at + last as u64, ENTRY as u64)?.to_vec();
        pod::put_bytes(tx, at + hole as u64, &moved)?;
        if j < i {
            pod::put_bytes(tx, at + (SLOTS + 2 * j) as u64, &hole.to_le_bytes())?;
        }
    }
    if i < left.len() {
        pod::put_bytes(tx, at + (SLOTS + 2 * i) as u64, &slot_bytes(&left[i..]))?;
    }
    put_header(tx, at, n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_fits_a_node() {
        assert_eq!(CAP, 97);
        assert_eq!(CELLS, 216);
        assert!(SLOTS + 2 * CAP <= CELLS);
        assert!(CELLS + CAP * ENTRY == 4096);
        assert!(CELLS + CAP * ENTRY <= u16::MAX as usize);
    }

    #[test]
    fn bad_slots_are_named() {
        let mut b = vec![0u8; 4096];
        let put = |b: &mut Vec<u8>, i: usize, v: usize| {
            b[SLOTS + 2 * i..SLOTS + 2 * i + 2].copy_from_slice(&(v as u16).to_le_bytes())
        };
        put(&mut b, 0, CELLS + ENTRY);
        put(&mut b, 1, CELLS);
        assert_eq!(check(&b, 2), Ok(()));
        put(&mut b, 1, CELLS + ENTRY);
        assert!(check(&b, 2).unwrap_err().contains("as an earlier slot"));
        for bad in [0, CELLS - 1, CELLS + 1, CELLS + 2 * ENTRY, 4095, 65535] {
            put(&mut b, 1, bad);
            assert!(
                check(&b, 2).unwrap_err().contains("not the offset"),
                "{bad}"
            );
        }
    }
}
