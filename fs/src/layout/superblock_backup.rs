//! The backup superblock (compat feature `backup_sb`, docs/format.md section 4.3), as ext4's
//! backup superblocks: a byte-for-byte copy of the superblock's `size_of::<Superblock>()`
//! bytes in the last 4 KiB of the metadata region (region offset `segment_len - 4096`, which
//! the header names, so the copy is found when the primary is gone), the heap ending before it.
//!
//! Every transaction that changes a superblock byte changes the copy's in the same record
//! ([`mirror`], called by `Fs`'s transaction wrapper), so recovery keeps both equal. fsck
//! uses the copy when the primary fails its checks ([`primary_fault`]) or with `-b`.
//!
//! An old build does not know the bit (compat: it may mount the image) and leaves the copy
//! stale; fsck notices a copy that differs from a sound primary and rewrites it.

use super::features::COMPAT_BACKUP_SB;
use super::header::Header;
use super::inode::INODE_SIZE;
use super::pod;
use super::superblock::{Superblock, SB_MAGIC, SB_SIZE};
use crate::error::FsResult;
use rvm_core::Transaction;

/// Bytes of the superblock the copy holds (the whole structure, 0x2B0).
pub const LEN: usize = std::mem::size_of::<Superblock>();

/// The superblock's bytes before a transaction, to compare with after it ([`mirror`]).
pub type Snapshot = [u8; LEN];

/// Region offset of the copy in an image with header `header`; None without the feature.
pub fn offset(header: &Header) -> Option<u64> {
    let on = header.features.compat & COMPAT_BACKUP_SB != 0;
    (on && header.segment_len >= 2 * SB_SIZE).then(|| header.segment_len - SB_SIZE)
}

/// The primary superblock's bytes in region `bytes` (zeros if the region is too short).
pub fn snapshot(bytes: &[u8]) -> Snapshot {
    let mut out = [0u8; LEN];
    if let Some(b) = bytes.get(..LEN) {
        out.copy_from_slice(b);
    }
    out
}

/// Copy into the backup at region offset `at` the superblock bytes `tx` changed since
/// `before`: each run of changed bytes, runs closer than [`GAP`] bytes merged (a range costs
/// a 16-byte header in the record); nothing if the superblock did not change.
///
/// Errors: `FsError::Rvm` if a run lies outside the region.
pub fn mirror(tx: &mut Transaction<'_>, at: u64, before: &Snapshot) -> FsResult<()> {
    let now = snapshot(tx.bytes());
    for (start, end) in changed_runs(&now, before) {
        pod::put_bytes(tx, at + start as u64, &now[start..end])?;
    }
    Ok(())
}

/// Bytes of unchanged gap below which two changed runs are written as one.
pub const GAP: usize = 16;

/// The runs [start, end) where `a` and `b` differ, runs closer than [`GAP`] merged.
/// Equal chunks of 16 bytes are skipped whole (most transactions change a counter or two).
fn changed_runs(a: &Snapshot, b: &Snapshot) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for start in (0..LEN).step_by(16) {
        let end = (start + 16).min(LEN);
        if a[start..end] == b[start..end] {
            continue;
        }
        for i in (start..end).filter(|&i| a[i] != b[i]) {
            match runs.last_mut() {
                Some(last) if i <= last.1 + GAP => last.1 = i + 1,
                _ => runs.push((i, i + 1)),
            }
        }
    }
    runs
}

/// The copy in region `bytes` of an image with header `header`, if the image has one and it
/// carries the superblock's magic number.
pub fn read(bytes: &[u8], header: &Header) -> Option<Superblock> {
    let sb: Superblock = pod::get(bytes, offset(header)?).ok()?;
    (sb.magic == SB_MAGIC).then_some(sb)
}

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to).saturating_mul(to)
}

/// Why superblock `sb` cannot be the one of region `bytes` (image header `header`), or None
/// if it passes: the magic number, the areas in order (`store::check_layout`, the checksum
/// table), and for an image with a backup (made by this mkfs, `layout::geometry::plan`) the
/// layout fields as mkfs derives them from the inode count and `data_blocks_max`, so that one
/// damaged layout field shows.
pub fn primary_fault(bytes: &[u8], header: &Header, sb: &Superblock) -> Option<String> {
    if sb.magic != SB_MAGIC {
        return Some("the superblock's magic number is wrong".into());
    }
    if let Err(e) = crate::store::check_layout(bytes, sb, header.data_blocks) {
        return Some(e.to_string());
    }
    if let Err(e) = crate::store::csum::Table::of(sb) {
        return Some(format!("superblock: {e}"));
    }
    if offset(header).is_none() {
        return None;
    }
    if sb.features != header.features {
        return Some("superblock: the feature words differ from the header's".into());
    }
    let ic = sb.inode_count;
    let cap = sb.data_blocks_max;
    let inode_table = SB_SIZE + round_up(ic.div_ceil(8), 4096);
    let data_bitmap = inode_table.saturating_add(round_up(ic.saturating_mul(INODE_SIZE), 4096));
    let csum_table = data_bitmap.saturating_add(round_up(cap.div_ceil(8), 4096));
    let csum_len = crate::store::csum::table_len(cap.min(u64::MAX / 64));
    let heap_start = csum_table.saturating_add(csum_len);
    let derived = [
        ("inode bitmap", sb.inode_bitmap == SB_SIZE),
        ("inode table", sb.inode_table == inode_table),
        ("data bitmap", sb.data_bitmap == data_bitmap),
        (
            "checksum table",
            sb.csum_table == 0 || sb.csum_table == csum_table,
        ),
        // Without a checksum table (an image whose `data_csum` was turned off) the heap may
        // start where mkfs put the table.
        (
            "heap start",
            sb.heap_start == heap_start || sb.csum_table == 0,
        ),
        ("heap end", sb.heap_end == header.segment_len - SB_SIZE),
        ("data block capacity", sb.data_blocks <= cap),
    ];
    derived
        .iter()
        .find(|(_, ok)| !ok)
        .map(|(what, _)| format!("superblock: the {what} is not where mkfs put it"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::geometry::{plan, Plan};

    #[test]
    fn changed_runs_merge_close_changes_only() {
        let a = [0u8; LEN];
        let mut b = a;
        b[0x0C] = 1;
        b[0x10] = 1;
        b[0xE8] = 1;
        b[0xF7] = 1;
        assert_eq!(changed_runs(&a, &b), vec![(0x0C, 0x11), (0xE8, 0xF8)]);
        assert!(changed_runs(&a, &a).is_empty());
    }

    #[test]
    fn changed_runs_across_chunk_edges_match_a_byte_by_byte_scan() {
        let naive = |a: &Snapshot, b: &Snapshot| {
            let mut runs: Vec<(usize, usize)> = Vec::new();
            for i in (0..LEN).filter(|&i| a[i] != b[i]) {
                match runs.last_mut() {
                    Some(last) if i <= last.1 + GAP => last.1 = i + 1,
                    _ => runs.push((i, i + 1)),
                }
            }
            runs
        };
        let a = [0u8; LEN];
        for changed in [
            vec![15, 16],
            vec![0, LEN - 1],
            vec![31, 48],
            vec![31, 49],
            vec![LEN - 17, LEN - 16],
        ] {
            let mut b = a;
            for &i in &changed {
                b[i] = 0xA5;
            }
            assert_eq!(changed_runs(&a, &b), naive(&a, &b), "changed {changed:?}");
        }
    }

    #[test]
    fn a_planned_superblock_passes_and_one_bad_layout_field_shows() {
        let (header, sb) = plan(
            Plan {
                size: 64 << 20,
                inodes: Some(2048),
                log: None,
            },
            [0; 16],
            0,
        )
        .unwrap();
        assert!(offset(&header).is_some(), "mkfs makes a backup");
        let bytes = vec![0u8; header.segment_len as usize];
        assert_eq!(primary_fault(&bytes, &header, &sb), None);
        for bad in [
            Superblock {
                inode_count: 4096,
                ..sb
            },
            Superblock {
                data_bitmap: sb.data_bitmap + 4096,
                ..sb
            },
            Superblock {
                heap_end: sb.heap_end - 4096,
                ..sb
            },
            Superblock { magic: 0, ..sb },
        ] {
            assert!(primary_fault(&bytes, &header, &bad).is_some(), "{bad:?}");
        }
    }
}
