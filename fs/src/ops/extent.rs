//! Extent maps: which data blocks hold which part of a file.
//!
//! Extent tree key `(inode, last logical block)` -> `[first logical block, first physical
//! block, flags]`. Keying by the last block lets one `seek((ino, b))` find the extent holding
//! block b, or else the next extent after the hole b is in.

use super::Op;
use crate::error::{corrupt, errno, FsResult};
use crate::layout::pod;
use crate::layout::superblock::field;
use crate::store::bitmap;
use crate::store::btree::Tree;

/// The extent tree.
pub const EXTENTS: Tree = Tree(field::EXTENT_ROOT);
/// Flag: blocks are allocated but read as zeros (fallocate).
pub const UNWRITTEN: u64 = 1;
/// Longest extent, blocks (keeps one write's allocation bounded).
pub const MAX_EXTENT: u64 = 1 << 15;

/// A run of logical blocks [first, last] stored at physical blocks [phys, phys + len).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first: u64,
    pub last: u64,
    pub phys: u64,
    pub flags: u64,
}

impl Extent {
    #[allow(clippy::len_without_is_empty)] // an extent is never empty
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
    /// Physical block of logical block `b` (which must lie inside).
    pub fn phys_of(&self, b: u64) -> u64 {
        self.phys + (b - self.first)
    }
}

/// The extent of `ino` holding block `b`, or else the first one after it.
pub fn find(bytes: &[u8], ino: u64, b: u64) -> FsResult<Option<Extent>> {
    match EXTENTS.seek(bytes, (ino, b))? {
        Some((k, v)) if k.0 == ino => {
            if v[0] > k.1 {
                return corrupt(format!(
                    "inode {ino}: extent ends at {} before it starts at {}",
                    k.1, v[0]
                ));
            }
            Ok(Some(Extent {
                first: v[0],
                last: k.1,
                phys: v[1],
                flags: v[2],
            }))
        }
        _ => Ok(None),
    }
}

/// Every extent of `ino`, in order.
pub fn all(bytes: &[u8], ino: u64) -> FsResult<Vec<Extent>> {
    let mut out = Vec::new();
    EXTENTS.scan(bytes, (ino, 0), (ino, u64::MAX), |k, v| {
        out.push(Extent {
            first: v[0],
            last: k.1,
            phys: v[1],
            flags: v[2],
        });
        Ok(true)
    })?;
    Ok(out)
}

/// Map [first, first+len) to physical blocks from `phys`, merging with the extent just before
/// it when the two are contiguous on disk too.
pub fn insert(
    op: &mut Op<'_>,
    ino: u64,
    first: u64,
    len: u64,
    phys: u64,
    flags: u64,
) -> FsResult<()> {
    let mut e = Extent {
        first,
        last: first + len - 1,
        phys,
        flags,
    };
    if first > 0 {
        if let Some(prev) = find(op.bytes(), ino, first - 1)? {
            let adjacent =
                prev.last + 1 == first && prev.phys + prev.len() == phys && prev.flags == flags;
            if adjacent && prev.len() + len <= MAX_EXTENT {
                EXTENTS.remove(&mut op.tx, (ino, prev.last))?;
                e.first = prev.first;
                e.phys = prev.phys;
            }
        }
    }
    EXTENTS.insert(&mut op.tx, (ino, e.last), [e.first, e.phys, e.flags])?;
    Ok(())
}

/// Unmap logical blocks [from, to] of `ino` and free their data blocks; returns blocks freed.
pub fn punch(op: &mut Op<'_>, ino: u64, from: u64, to: u64) -> FsResult<u64> {
    let mut freed = 0;
    let mut at = from;
    while at <= to {
        let Some(e) = find(op.bytes(), ino, at)? else {
            break;
        };
        if e.first > to {
            break;
        }
        EXTENTS.remove(&mut op.tx, (ino, e.last))?;
        let cut_first = e.first.max(from);
        let cut_last = e.last.min(to);
        free_blocks(op, e.phys_of(cut_first), cut_last - cut_first + 1)?;
        freed += cut_last - cut_first + 1;
        if e.first < cut_first {
            EXTENTS.insert(&mut op.tx, (ino, cut_first - 1), [e.first, e.phys, e.flags])?;
        }
        if e.last > cut_last {
            EXTENTS.insert(
                &mut op.tx,
                (ino, e.last),
                [cut_last + 1, e.phys_of(cut_last + 1), e.flags],
            )?;
        }
        match e.last.checked_add(1) {
            Some(next) => at = next,
            None => break,
        }
    }
    Ok(freed)
}

/// Allocate up to `want` contiguous data blocks (at least one); ENOSPC when none is free.
pub fn alloc_blocks(op: &mut Op<'_>, want: u64) -> FsResult<(u64, u64)> {
    let sb = op.superblock()?;
    let want = want.clamp(1, MAX_EXTENT);
    let run = bitmap::find_clear_run(
        op.bytes(),
        sb.data_bitmap,
        sb.data_blocks,
        op.hints.next_block,
        want,
    )?;
    let Some((start, len)) = run else {
        return errno(libc::ENOSPC);
    };
    bitmap::set_run(&mut op.tx, sb.data_bitmap, start, len, true)?;
    pod::put(&mut op.tx, field::BLOCKS_USED, &(sb.blocks_used + len))?;
    op.hints.next_block = start + len;
    Ok((start, len))
}

/// Return data blocks [start, start+len) to the free-space map.
pub fn free_blocks(op: &mut Op<'_>, start: u64, len: u64) -> FsResult<()> {
    // Wait for reads running without the lock (they may be reading these blocks); new
    // ones cannot start while this operation holds the lock.
    drop(op.geo.read_gate.write().unwrap_or_else(|e| e.into_inner()));
    let sb = op.superblock()?;
    if start
        .checked_add(len)
        .is_none_or(|end| end > sb.data_blocks)
    {
        return corrupt(format!("extent {start}+{len} outside the data area"));
    }
    bitmap::set_run(&mut op.tx, sb.data_bitmap, start, len, false)?;
    pod::put(
        &mut op.tx,
        field::BLOCKS_USED,
        &sb.blocks_used.saturating_sub(len),
    )?;
    Ok(())
}

/// Unmap [from, to] of `ino` without freeing the blocks (they are re-inserted by the caller,
/// e.g. when unwritten blocks become written).
pub fn punch_keep_blocks(op: &mut Op<'_>, ino: u64, from: u64, to: u64) -> FsResult<()> {
    let Some(e) = find(op.bytes(), ino, from)?.filter(|e| e.first <= from && e.last >= to) else {
        return corrupt(format!(
            "inode {ino}: no single extent holds blocks {from}..={to}"
        ));
    };
    EXTENTS.remove(&mut op.tx, (ino, e.last))?;
    if e.first < from {
        EXTENTS.insert(&mut op.tx, (ino, from - 1), [e.first, e.phys, e.flags])?;
    }
    if e.last > to {
        EXTENTS.insert(
            &mut op.tx,
            (ino, e.last),
            [to + 1, e.phys_of(to + 1), e.flags],
        )?;
    }
    Ok(())
}
