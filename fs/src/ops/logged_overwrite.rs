//! A small overwrite of written blocks, logged instead of copied on write (`ops::pending`):
//! the blocks keep their place, their new bytes go into the record as a deferred range, and
//! their checksums change in the same transaction. A crash before the record is durable
//! leaves the old bytes and the old checksums; after it, recovery writes the new bytes.

use super::datasum::WriteSums;
use super::file::{data_pos, in_extent};
use super::Op;
use crate::error::FsResult;
use crate::layout::inode::Inode;
use crate::layout::BLOCK_SIZE;
use crate::store::extent_map::Extent;

/// Requests writing at most this many bytes into written blocks are logged (when the data
/// log's budget allows), larger ones copied on write. Measured with `rvmfs-bench`'s random
/// overwrite + fsync row (README "Performance").
pub const LOGGED_OVERWRITE_MAX: usize = 64 << 10;

/// The part of a write request a logged overwrite reads: its file range [offset, end), its
/// bytes, the file's size once written (what checksums cover) and the sums computed before
/// the lock.
pub struct Piece<'a> {
    pub offset: u64,
    pub end: u64,
    pub data: &'a [u8],
    pub new_size: u64,
    pub sums: &'a WriteSums,
}

/// Whether the segment from byte `pos` into written extent `e` of request `w` is logged: a
/// request of at most [`LOGGED_OVERWRITE_MAX`] bytes, blocks this transaction did not
/// allocate (they hold host space, and no other path writes them before the commit), room
/// in the data log's budget, and an image with the incompat feature `deferred_ranges` that
/// is not an `object_data` image (its uploader may be sending the blocks' old bytes and
/// repoints every extent still mapping them: only a copy on write tells it they changed).
pub fn applies(op: &mut Op<'_>, w: &Piece<'_>, e: &Extent, pos: u64) -> bool {
    let remote = op.geo.remote.is_some();
    if w.data.len() > LOGGED_OVERWRITE_MAX || op.planning() || !op.geo.deferred_ranges || remote {
        return false;
    }
    let (b, last) = in_extent(e, pos, w.end);
    let (phys, n) = (e.phys_of(b), last - b + 1);
    !op.allocated_here(phys, n) && op.log_budget(n * BLOCK_SIZE)
}

/// Overwrite the segment of `w` from byte `pos` (in extent `e` of file `node`) in place,
/// logged; returns where the next segment starts.
pub fn overwrite(
    op: &mut Op<'_>,
    w: &Piece<'_>,
    node: &Inode,
    e: &Extent,
    pos: u64,
) -> FsResult<u64> {
    let (b, last) = in_extent(e, pos, w.end);
    let seg_end = w.end.min((last + 1) * BLOCK_SIZE);
    let at = data_pos(op.geo, e.phys_of(b), 0);
    let mut buf = vec![0u8; ((last - b + 1) * BLOCK_SIZE) as usize];
    let lead = (pos - b * BLOCK_SIZE) as usize;
    let len = (seg_end - pos) as usize;
    if lead != 0 || !len.is_multiple_of(BLOCK_SIZE as usize) {
        // Edge blocks keep their other bytes (`write_deferred` would merge them too; the
        // checksums need them now).
        op.geo.image.read_at(&mut buf, at)?;
    }
    let from = (pos - w.offset) as usize;
    buf[lead..lead + len].copy_from_slice(&w.data[from..from + len]);
    op.put_sums_with(node, e.phys_of(b), b, &buf, w.new_size, w.sums)?;
    op.write_deferred(at, &buf)?;
    Ok(seg_end)
}

impl Op<'_> {
    /// Whether this transaction allocated some of blocks [phys, phys+n).
    pub(super) fn allocated_here(&self, phys: u64, n: u64) -> bool {
        self.runs.iter().any(|ev| match *ev {
            super::discard::RunEvent::Allocated(s, l) => s < phys + n && phys < s + l,
            super::discard::RunEvent::Freed(..) => false,
        })
    }
}
