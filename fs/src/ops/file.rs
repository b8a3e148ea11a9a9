//! File contents: write, truncate (reads are `super::read`'s, re-exported here). Data goes to
//! data-area extents; a write puts the bytes into blocks no committed state shows (new
//! blocks: holes are filled and overwrites are copied on write) before the transaction that
//! makes the inode point at them commits (design-notes §2, ordered data): no inode ever
//! points at unwritten blocks, and a write the daemon never answered is all or nothing.

use super::datasum::WriteSums;
use super::{extent, inode, logged_overwrite, xattr, Geo, Op};
use crate::error::{errno, FsResult};
use crate::layout::inode::Inode;
use crate::layout::BLOCK_SIZE;
use crate::store::extent_map::{self, Extent, UNWRITTEN};

/// Largest file size, bytes (16 TiB; block numbers stay far from overflow).
pub const MAX_FILE_SIZE: u64 = 1 << 44;

pub(crate) fn data_pos(geo: &Geo, phys_block: u64, within: u64) -> u64 {
    geo.data_offset + phys_block * BLOCK_SIZE + within
}

pub use super::read::{old_block, plan_read, read, read_planned, ReadPlan};

/// Write `data` at `offset` of file `ino`; returns the updated inode. `kill_setid`: the writer
/// lacks CAP_FSETID, so set-user-ID (and set-group-ID with group execute) are cleared; a
/// file capability (`security.capability`) is always removed, as Linux does.
pub fn write(
    op: &mut Op<'_>,
    ino: u64,
    offset: u64,
    data: &[u8],
    kill_setid: bool,
) -> FsResult<Inode> {
    write_summed(op, ino, offset, data, kill_setid, &WriteSums::default())
}

/// [`write`] with the checksums of the request's whole blocks computed beforehand, outside
/// the filesystem lock (`WriteSums::of`).
pub fn write_summed(
    op: &mut Op<'_>,
    ino: u64,
    offset: u64,
    data: &[u8],
    kill_setid: bool,
    sums: &WriteSums,
) -> FsResult<Inode> {
    let mut node = op.inode(ino)?;
    if !node.is_reg() {
        return errno(if node.is_dir() {
            libc::EISDIR
        } else {
            libc::EINVAL
        });
    }
    let end = offset
        .checked_add(data.len() as u64)
        .filter(|&e| e <= MAX_FILE_SIZE);
    let Some(end) = end else {
        return errno(libc::EFBIG);
    };
    xattr::drop_capability(op, ino)?;
    if offset > node.size {
        zero_past_eof(op, ino, node.size, offset)?;
    }
    op.note_data_write(&mut node);
    let w = Request {
        ino,
        offset,
        end,
        data,
        small: data.len() <= super::DATA_LOG_MAX_WRITE,
        new_size: node.size.max(end),
        sums,
    };
    let mut pos = offset;
    while pos < end {
        pos = write_segment(op, &w, &mut node, pos)?;
    }
    node.size = node.size.max(end);
    inode::touch(&mut node, true);
    if kill_setid {
        clear_setid(&mut node);
    }
    op.put_inode(ino, &node)?;
    Ok(node)
}

/// One write request as its segments see it.
struct Request<'a> {
    ino: u64,
    offset: u64,
    end: u64,
    data: &'a [u8],
    /// A small request (its new blocks' data may be logged, see `DataLog`).
    small: bool,
    /// The file's size once the write is done (what the checksums cover).
    new_size: u64,
    sums: &'a WriteSums,
}

impl Request<'_> {
    /// The request's bytes for file bytes [from, to).
    fn src(&self, from: u64, to: u64) -> &[u8] {
        &self.data[(from - self.offset) as usize..(to - self.offset) as usize]
    }
    /// What a logged overwrite needs of it.
    fn as_piece(&self) -> logged_overwrite::Piece<'_> {
        logged_overwrite::Piece {
            offset: self.offset,
            end: self.end,
            data: self.data,
            new_size: self.new_size,
            sums: self.sums,
        }
    }
}

/// Write the segment of `w` that starts at byte `pos` (up to the end of the extent or hole
/// holding it); returns where the next segment starts.
fn write_segment(op: &mut Op<'_>, w: &Request<'_>, node: &mut Inode, pos: u64) -> FsResult<u64> {
    let b = pos / BLOCK_SIZE;
    match extent_map::find(op.bytes(), w.ino, b)? {
        Some(e) if e.first <= b && e.flags & UNWRITTEN == 0 => {
            if e.is_remote() {
                // In the bucket: objects are never rewritten, so always a copy on write.
                overwrite(op, w, node, &e, pos)
            } else if pos >= node.size && appends_in_place(op, w.ino, node) {
                append_in_place(op, w, node, &e, pos)
            } else if logged_overwrite::applies(op, &w.as_piece(), &e, pos) {
                logged_overwrite::overwrite(op, &w.as_piece(), node, &e, pos)
            } else {
                overwrite(op, w, node, &e, pos)
            }
        }
        Some(e) if e.first <= b => {
            // Unwritten (preallocated) blocks: write whole blocks, zero-filled, then mark
            // this part written.
            let last = e.last.min((w.end - 1) / BLOCK_SIZE);
            let seg_end = w.end.min((last + 1) * BLOCK_SIZE);
            write_blocks(op, w, node, e.phys_of(b), pos, seg_end)?;
            extent::punch_keep_blocks(op, w.ino, b, last)?;
            extent::insert(op, w.ino, b, last - b + 1, e.phys_of(b), 0)?;
            Ok(seg_end)
        }
        next => {
            // A hole: new blocks.
            let hole_end = next.map_or(u64::MAX, |e| e.first); // first mapped block after
            let last = ((w.end - 1) / BLOCK_SIZE).min(hole_end - 1);
            let (phys, n) = extent::alloc_blocks(op, last - b + 1)?;
            let seg_end = w.end.min((b + n) * BLOCK_SIZE);
            write_blocks(op, w, node, phys, pos, seg_end)?;
            extent::insert(op, w.ino, b, n, phys, 0)?;
            node.blocks += n;
            Ok(seg_end)
        }
    }
}

/// Whether an append to file `ino` past its end in its last block may write in place: never
/// on an `object_data` image (the uploader may be sending that block's old bytes, and
/// repoints every extent still mapping it: only a copy on write tells it the block changed);
/// otherwise always without checksums, and with them once no state recovery can reach has
/// the file longer than now (`shrinks`). Else the block is copied on write ([`overwrite`]).
fn appends_in_place(op: &Op<'_>, ino: u64, node: &Inode) -> bool {
    op.geo.remote.is_none()
        && (op.geo.sums_for(node).is_none()
            || !op.shrunk.contains(&ino) && op.shrinks.settled(ino, || op.rvm.durable_lsn()))
}

/// Past the end of the file in its last block (an append): no state recovery can reach shows
/// these bytes ([`appends_in_place`]), so they go in place, ordered before the commit like
/// new blocks (logged when small, else the next flush syncs data first). With checksums, the
/// sums of the blocks written are computed again over the bytes up to the new size.
fn append_in_place(
    op: &mut Op<'_>,
    w: &Request<'_>,
    node: &Inode,
    e: &Extent,
    pos: u64,
) -> FsResult<u64> {
    let seg_end = w.end.min((e.last + 1) * BLOCK_SIZE);
    let at = data_pos(op.geo, e.phys_of(pos / BLOCK_SIZE), pos % BLOCK_SIZE);
    op.write_data(at, w.src(pos, seg_end), true, w.small)?;
    if op.geo.sums_for(node).is_some() {
        for k in pos / BLOCK_SIZE..=(seg_end - 1) / BLOCK_SIZE {
            let (from, to) = (pos.max(k * BLOCK_SIZE), seg_end.min((k + 1) * BLOCK_SIZE));
            let (piece, off) = (w.src(from, to), (from - k * BLOCK_SIZE) as usize);
            // The block as this transaction leaves it: its own write may be deferred.
            op.resum_block(node, e.phys_of(k), k, w.new_size, |blk| {
                blk[off..off + piece.len()].copy_from_slice(piece)
            })?;
        }
    }
    Ok(seg_end)
}

/// The blocks (first, last) of a write ending at byte `end` that extent `e` holds, from the
/// one holding byte `pos`.
pub(super) fn in_extent(e: &Extent, pos: u64, end: u64) -> (u64, u64) {
    (pos / BLOCK_SIZE, e.last.min((end - 1) / BLOCK_SIZE))
}

/// Overwrite of written blocks: copy on write. Visible bytes never change before the commit,
/// so a crash before it leaves the old contents whole (an unanswered write is all or
/// nothing). New blocks get the merged contents; the old ones are freed in the same
/// transaction.
fn overwrite(
    op: &mut Op<'_>,
    w: &Request<'_>,
    node: &Inode,
    e: &Extent,
    pos: u64,
) -> FsResult<u64> {
    let (b, last) = in_extent(e, pos, w.end);
    let (phys, n) = extent::alloc_blocks(op, last - b + 1)?;
    let last = b + n - 1;
    let seg_end = w.end.min((last + 1) * BLOCK_SIZE);
    let mut buf = vec![0u8; (n * BLOCK_SIZE) as usize];
    if !pos.is_multiple_of(BLOCK_SIZE) {
        old_block(op.geo, w.ino, e, b, &mut buf[..BLOCK_SIZE as usize])?;
    }
    if !seg_end.is_multiple_of(BLOCK_SIZE) && (last > b || pos.is_multiple_of(BLOCK_SIZE)) {
        let tail = ((n - 1) * BLOCK_SIZE) as usize;
        old_block(op.geo, w.ino, e, last, &mut buf[tail..])?;
    }
    let lead = (pos - b * BLOCK_SIZE) as usize;
    buf[lead..lead + (seg_end - pos) as usize].copy_from_slice(w.src(pos, seg_end));
    op.put_sums_with(node, phys, b, &buf, w.new_size, w.sums)?;
    op.write_data(data_pos(op.geo, phys, 0), &buf, true, w.small)?;
    extent::punch(op, w.ino, b, last)?;
    extent::insert(op, w.ino, b, n, phys, 0)?;
    Ok(seg_end)
}

/// A file grows from `old_size` to at least `upto` without data for the gap: the bytes after the
/// old end in its last block must read as zeros. They are zero unless an append whose
/// transaction was lost in a crash wrote them (data reaches the disk before the commit), so
/// zero them again before the size moves past them.
fn zero_past_eof(op: &mut Op<'_>, ino: u64, old_size: u64, upto: u64) -> FsResult<()> {
    if old_size.is_multiple_of(BLOCK_SIZE) {
        return Ok(());
    }
    let b = old_size / BLOCK_SIZE;
    let Some(e) =
        extent_map::find(op.bytes(), ino, b)?.filter(|e| e.first <= b && e.flags & UNWRITTEN == 0)
    else {
        return Ok(());
    };
    let node = op.inode(ino)?;
    if op.geo.sums_for(&node).is_some() || e.is_remote() {
        // Checksummed or in the bucket: copy the block on write (see the append arm of
        // `write`).
        let (phys, _) = extent::alloc_blocks(op, 1)?;
        let mut blk = vec![0u8; BLOCK_SIZE as usize];
        old_block(op.geo, ino, &e, b, &mut blk)?;
        blk[(old_size % BLOCK_SIZE) as usize..].fill(0);
        op.put_sums(&node, phys, b, &blk, old_size)?;
        op.write_data(data_pos(op.geo, phys, 0), &blk, true, false)?;
        extent::punch(op, ino, b, b)?;
        return extent::insert(op, ino, b, 1, phys, 0);
    }
    let n = (BLOCK_SIZE - old_size % BLOCK_SIZE).min(upto - old_size);
    let at = data_pos(op.geo, e.phys_of(b), old_size % BLOCK_SIZE);
    op.write_data(at, &vec![0u8; n as usize], false, false)?;
    Ok(())
}

/// Write the request's bytes [pos, seg_end) into freshly allocated or unwritten blocks from
/// `phys` on (the first holding byte `pos`): whole blocks, zero outside the request.
fn write_blocks(
    op: &mut Op<'_>,
    w: &Request<'_>,
    node: &Inode,
    phys: u64,
    pos: u64,
    seg_end: u64,
) -> FsResult<()> {
    let (b, chunk) = (pos / BLOCK_SIZE, w.src(pos, seg_end));
    let lead = pos - b * BLOCK_SIZE;
    let at = data_pos(op.geo, phys, 0);
    if lead == 0 && (chunk.len() as u64).is_multiple_of(BLOCK_SIZE) {
        // Whole blocks (large sequential writes): no zero padding, no copy.
        op.put_sums_with(node, phys, b, chunk, w.new_size, w.sums)?;
        return op.write_data(at, chunk, true, w.small);
    }
    let total = (lead + chunk.len() as u64).div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
    let mut buf = vec![0u8; total as usize];
    buf[lead as usize..lead as usize + chunk.len()].copy_from_slice(chunk);
    op.put_sums_with(node, phys, b, &buf, w.new_size, w.sums)?;
    op.write_data(at, &buf, true, w.small)
}

/// After truncating file `node` to `size` in the middle of a block: that block's checksum
/// covers fewer bytes now. A file left without blocks is checksummed again from its next write.
fn resum_last_block(op: &mut Op<'_>, ino: u64, node: &Inode, size: u64) -> FsResult<()> {
    if size.is_multiple_of(BLOCK_SIZE) || op.geo.sums_for(node).is_none() {
        return Ok(());
    }
    let b = size / BLOCK_SIZE;
    // A `REMOTE` block has no local checksum: its object's CRC covers the whole block.
    let written = extent_map::find(op.bytes(), ino, b)?
        .filter(|e| e.first <= b && e.flags & UNWRITTEN == 0 && !e.is_remote());
    match written {
        Some(e) => op.resum_block(node, e.phys_of(b), b, size, |_| {}),
        None => Ok(()),
    }
}

/// Writing by an unprivileged process clears set-user-ID, and set-group-ID when
/// group-executable (as the kernel does for local filesystems).
/// Returns whether the mode changed.
pub fn clear_setid(node: &mut Inode) -> bool {
    let before = node.mode;
    node.mode &= !libc::S_ISUID;
    if node.mode & libc::S_IXGRP != 0 {
        node.mode &= !libc::S_ISGID;
    }
    node.mode != before
}

/// Set the size of file `ino` to `size`, freeing blocks past it; returns the updated inode.
/// A file capability (`security.capability`) is removed, as Linux does on truncate.
pub fn truncate(op: &mut Op<'_>, ino: u64, size: u64) -> FsResult<Inode> {
    let mut node = op.inode(ino)?;
    if node.is_dir() {
        return errno(libc::EISDIR);
    }
    if !node.is_reg() {
        return errno(libc::EINVAL);
    }
    if size > MAX_FILE_SIZE {
        return errno(libc::EFBIG);
    }
    xattr::drop_capability(op, ino)?;
    if size > node.size {
        zero_past_eof(op, ino, node.size, size)?;
    }
    if size < node.size {
        // Bytes past the new end stay as they are on disk: they are invisible, and are zeroed
        // by `zero_past_eof` before the file grows over them again. (Zeroing them here would
        // change data in place before the commit: a crash could then show a file of the old
        // size with zeros in it.)
        let keep = size.div_ceil(BLOCK_SIZE);
        op.shrunk.push(ino);
        node.blocks -= extent::punch(op, ino, keep, u64::MAX)?.min(node.blocks);
        resum_last_block(op, ino, &node, size)?;
    }
    node.size = size;
    inode::touch(&mut node, true);
    op.put_inode(ino, &node)?;
    Ok(node)
}
