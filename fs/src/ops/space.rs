//! Space management of regular files: fallocate (preallocate, KEEP_SIZE, PUNCH_HOLE,
//! ZERO_RANGE), SEEK_DATA / SEEK_HOLE, and copy_file_range.
//!
//! Preallocated blocks are mapped as UNWRITTEN extents: they are owned by the file (counted in
//! `blocks`) but read as zeros until written, so no stale data-area bytes can ever be read.

use super::{extent, file, inode, Geo, Op};
use crate::error::{errno, FsResult};
use crate::layout::inode::Inode;
use crate::layout::BLOCK_SIZE;
use crate::store::extent_map::{self, UNWRITTEN};

/// fallocate(2) mode bits.
pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
pub const FALLOC_FL_ZERO_RANGE: i32 = 0x10;
/// Most bytes one copy_file_range request copies (the caller loops on a short count).
pub const COPY_CHUNK: u64 = 16 << 20;

fn regular(op: &Op<'_>, ino: u64) -> FsResult<Inode> {
    let node = op.inode(ino)?;
    if node.is_dir() {
        return errno(libc::EISDIR);
    }
    if !node.is_reg() {
        return errno(libc::ENODEV);
    }
    Ok(node)
}

/// fallocate(2) on file `ino`: [offset, offset + len) per `mode`; returns the updated inode.
pub fn fallocate(op: &mut Op<'_>, ino: u64, offset: u64, len: u64, mode: i32) -> FsResult<Inode> {
    let supported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
    if mode & !supported != 0 {
        return errno(libc::EOPNOTSUPP);
    }
    let punch = mode & FALLOC_FL_PUNCH_HOLE != 0;
    if punch && (mode & FALLOC_FL_KEEP_SIZE == 0 || mode & FALLOC_FL_ZERO_RANGE != 0) {
        return errno(libc::EOPNOTSUPP);
    }
    if len == 0 {
        return errno(libc::EINVAL);
    }
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= file::MAX_FILE_SIZE);
    let Some(end) = end else {
        return errno(libc::EFBIG);
    };
    let mut node = regular(op, ino)?;
    if punch || mode & FALLOC_FL_ZERO_RANGE != 0 {
        punch_range(op, ino, &mut node, offset, end)?;
    }
    if !punch {
        preallocate(op, ino, &mut node, offset, end)?;
    }
    inode::touch(&mut node, true);
    op.put_inode(ino, &node)?;
    if !punch && mode & FALLOC_FL_KEEP_SIZE == 0 && end > node.size {
        // Grow the way truncate does, so the old last block's tail reads as zeros.
        node = file::truncate(op, ino, end)?;
    }
    Ok(node)
}

/// Map every hole of blocks covering [offset, end) to new unwritten blocks.
fn preallocate(op: &mut Op<'_>, ino: u64, node: &mut Inode, offset: u64, end: u64) -> FsResult<()> {
    let last = (end - 1) / BLOCK_SIZE;
    let mut b = offset / BLOCK_SIZE;
    while b <= last {
        match extent_map::find(op.bytes(), ino, b)? {
            Some(e) if e.first <= b => b = e.last + 1,
            next => {
                let hole_last = next.map_or(last, |e| last.min(e.first - 1));
                let (phys, n) = extent::alloc_blocks(op, hole_last - b + 1)?;
                extent::insert(op, ino, b, n, phys, UNWRITTEN)?;
                node.blocks += n;
                b += n;
            }
        }
    }
    Ok(())
}

/// Make [offset, end) read as zeros: unmap the whole blocks inside, zero the partial ones by
/// copy on write ([`zero_partial`]).
fn punch_range(op: &mut Op<'_>, ino: u64, node: &mut Inode, offset: u64, end: u64) -> FsResult<()> {
    let first_whole = offset.div_ceil(BLOCK_SIZE);
    let end_whole = end / BLOCK_SIZE; // exclusive
    if first_whole < end_whole {
        let freed = extent::punch(op, ino, first_whole, end_whole - 1)?;
        node.blocks = node.blocks.saturating_sub(freed);
    }
    let mut partial = Vec::new();
    if !offset.is_multiple_of(BLOCK_SIZE) {
        partial.push((offset, end.min((offset / BLOCK_SIZE + 1) * BLOCK_SIZE)));
    }
    if !end.is_multiple_of(BLOCK_SIZE) && end / BLOCK_SIZE >= first_whole {
        let from = (end / BLOCK_SIZE * BLOCK_SIZE).max(offset);
        if !partial.contains(&(from, end)) {
            partial.push((from, end));
        }
    }
    for (from, to) in partial {
        zero_partial(op, ino, node, from, to)?;
    }
    Ok(())
}

/// Zero [from, to), inside one block of file `ino`, by copy on write as overwrites are
/// (`file::write`): the block's new contents go to a newly allocated block, which this
/// transaction maps in place of the old one (freed in the same transaction). The visible
/// block never changes before the commit, so a punch the daemon dies in before answering
/// is all or nothing. A hole or an unwritten block already reads as zeros.
fn zero_partial(op: &mut Op<'_>, ino: u64, node: &Inode, from: u64, to: u64) -> FsResult<()> {
    let b = from / BLOCK_SIZE;
    let written =
        extent_map::find(op.bytes(), ino, b)?.filter(|e| e.first <= b && e.flags & UNWRITTEN == 0);
    let Some(e) = written else {
        return Ok(());
    };
    let (phys, _) = extent::alloc_blocks(op, 1)?;
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    file::old_block(op.geo, ino, &e, b, &mut block)?;
    let lead = (from - b * BLOCK_SIZE) as usize;
    block[lead..lead + (to - from) as usize].fill(0);
    // A punch is a small request: its new block may be logged like a small write's.
    op.write_data(file::data_pos(op.geo, phys, 0), &block, true, true)?;
    op.put_sums(node, phys, b, &block, node.size)?;
    extent::punch(op, ino, b, b)?;
    extent::insert(op, ino, b, 1, phys, 0)?;
    Ok(())
}

/// Is block `b` of `ino` written data (not a hole, not unwritten)? Returns the answer and the
/// last block of the run (of the same answer) that `b` begins, as far as the map tells.
fn run_at(bytes: &[u8], ino: u64, b: u64) -> FsResult<(bool, u64)> {
    match extent_map::find(bytes, ino, b)? {
        Some(e) if e.first <= b => Ok((e.flags & UNWRITTEN == 0, e.last)),
        Some(e) => Ok((false, e.first - 1)),
        None => Ok((false, u64::MAX)),
    }
}

/// SEEK_DATA (`data`) or SEEK_HOLE from `offset` in file `ino`; ENXIO at or past the end of
/// file, or (SEEK_DATA) when only holes follow. Unwritten extents count as holes.
pub fn seek(geo: &Geo, bytes: &[u8], ino: u64, offset: u64, data: bool) -> FsResult<u64> {
    let node = geo.inode(bytes, ino)?;
    if offset >= node.size {
        return errno(libc::ENXIO);
    }
    let mut b = offset / BLOCK_SIZE;
    loop {
        let pos = (b * BLOCK_SIZE).max(offset);
        if pos >= node.size {
            return if data {
                errno(libc::ENXIO)
            } else {
                Ok(node.size)
            };
        }
        let (is_data, last) = run_at(bytes, ino, b)?;
        if is_data == data {
            return Ok(pos);
        }
        match last.checked_add(1) {
            Some(next) => b = next,
            None => {
                return if data {
                    errno(libc::ENXIO)
                } else {
                    Ok(node.size)
                }
            }
        }
    }
}

/// Copy up to `len` bytes (at most COPY_CHUNK) from `src` at `off_in` to `dst` at `off_out`;
/// returns the count copied (0 at the source's end of file). Whole-block holes of the source
/// stay holes in the destination where it has none either.
pub fn copy_range(
    op: &mut Op<'_>,
    src: u64,
    off_in: u64,
    dst: u64,
    off_out: u64,
    len: u64,
) -> FsResult<u64> {
    let from = regular(op, src)?;
    regular(op, dst)?;
    let len = len.min(COPY_CHUNK).min(from.size.saturating_sub(off_in));
    if len == 0 {
        return Ok(0);
    }
    if off_out
        .checked_add(len)
        .is_none_or(|e| e > file::MAX_FILE_SIZE)
    {
        return errno(libc::EFBIG);
    }
    let data = file::read(op.geo, op.bytes(), src, off_in, len)?;
    let len = data.len() as u64;
    // Write the data in runs, skipping block-aligned zero blocks that land on holes of the
    // destination (they already read as zeros).
    let mut start = 0u64;
    let mut pos = 0u64;
    while pos < len {
        let chunk_end = len.min((off_out + pos) / BLOCK_SIZE * BLOCK_SIZE + BLOCK_SIZE - off_out);
        let whole = (off_out + pos).is_multiple_of(BLOCK_SIZE) && chunk_end - pos == BLOCK_SIZE;
        let skip = whole
            && data[pos as usize..chunk_end as usize]
                .iter()
                .all(|&x| x == 0)
            && extent_map::find(op.bytes(), dst, (off_out + pos) / BLOCK_SIZE)?
                .is_none_or(|e| e.first > (off_out + pos) / BLOCK_SIZE);
        if skip {
            if start < pos {
                file::write(
                    op,
                    dst,
                    off_out + start,
                    &data[start as usize..pos as usize],
                    false,
                )?;
            }
            start = chunk_end;
        }
        pos = chunk_end;
    }
    if start < len {
        file::write(op, dst, off_out + start, &data[start as usize..], false)?;
    }
    // The size covers the whole copy even when it ends in a skipped hole.
    let mut node = op.inode(dst)?;
    if node.size < off_out + len {
        file::truncate(op, dst, off_out + len)?;
    } else {
        inode::touch(&mut node, true);
        op.put_inode(dst, &node)?;
    }
    Ok(len)
}
