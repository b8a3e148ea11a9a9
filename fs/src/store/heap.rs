//! The recoverable heap: variable-size chunks inside the region (names, B+tree nodes,
//! symlink targets, xattr values), after Coda's RDS. Its own metadata (bump pointer,
//! free-list heads and links) changes inside the caller's transaction, so an allocation and
//! the structure that points at it commit or vanish together.
//!
//! Segregated fits: 12 power-of-two classes from 32 B to 64 KiB. A free chunk's first 8 bytes
//! link to the next free chunk of its class. Chunks carry no header: the caller knows the size.

use super::superblock;
use crate::error::{corrupt, errno, FsResult};
use crate::layout::pod;
use crate::layout::superblock::{field, Superblock, HEAP_CLASSES};
use rvm_core::Transaction;

/// Smallest chunk, bytes.
pub const MIN_CHUNK: u64 = 32;
/// Largest chunk, bytes.
pub const MAX_CHUNK: u64 = MIN_CHUNK << (HEAP_CLASSES - 1);

/// Class index and chunk size for a request of `size` bytes; None when above 64 KiB.
pub fn class_of(size: u64) -> Option<(usize, u64)> {
    let chunk = size.max(MIN_CHUNK).next_power_of_two();
    if chunk > MAX_CHUNK {
        return None;
    }
    Some(((chunk / MIN_CHUNK).trailing_zeros() as usize, chunk))
}

/// Could a `chunk`-byte chunk start at `offset`: inside the allocated heap and aligned as
/// `alloc` aligns it (to its size, at most 4 KiB)? A damaged pointer fails this.
fn chunk_inside(sb: &Superblock, offset: u64, chunk: u64) -> bool {
    offset >= sb.heap_start
        && offset.is_multiple_of(chunk.min(4096))
        && offset
            .checked_add(chunk)
            .is_some_and(|end| end <= sb.heap_top)
}

/// Allocate a chunk of at least `size` bytes; returns its region offset. ENOSPC when full.
pub fn alloc(tx: &mut Transaction<'_>, size: u64) -> FsResult<u64> {
    let Some((class, chunk)) = class_of(size) else {
        return errno(libc::E2BIG);
    };
    let sb = superblock(tx.bytes())?;
    let head_slot = field::HEAP_FREE + 8 * class as u64;
    let head = sb.heap_free[class];
    if head != 0 {
        if !chunk_inside(&sb, head, chunk) {
            return corrupt(format!(
                "heap free list {class} points outside the heap or off its alignment: {head}"
            ));
        }
        let next: u64 = pod::get(tx.bytes(), head)?;
        pod::put(tx, head_slot, &next)?;
        return Ok(head);
    }
    let align = chunk.min(4096);
    let start = sb.heap_top.div_ceil(align).saturating_mul(align);
    if start.saturating_add(chunk) > sb.heap_end {
        return errno(libc::ENOSPC);
    }
    pod::put(tx, field::HEAP_TOP, &(start + chunk))?;
    Ok(start)
}

/// Return the chunk at `offset`, allocated for `size` bytes, to its free list.
pub fn free(tx: &mut Transaction<'_>, offset: u64, size: u64) -> FsResult<()> {
    let Some((class, chunk)) = class_of(size) else {
        return corrupt(format!("free of a {size}-byte chunk"));
    };
    let sb = superblock(tx.bytes())?;
    if !chunk_inside(&sb, offset, chunk) {
        return corrupt(format!(
            "free of a {size}-byte chunk at {offset}, outside the heap or off its alignment"
        ));
    }
    pod::put(tx, offset, &sb.heap_free[class])?;
    pod::put(tx, field::HEAP_FREE + 8 * class as u64, &offset)?;
    Ok(())
}

/// Store `data` in a new chunk; returns its offset.
pub fn store(tx: &mut Transaction<'_>, data: &[u8]) -> FsResult<u64> {
    let at = alloc(tx, data.len() as u64)?;
    pod::put_bytes(tx, at, data)?;
    Ok(at)
}

/// The `len` bytes stored at `offset`.
pub fn load(bytes: &[u8], offset: u64, len: u64) -> FsResult<&[u8]> {
    pod::slice(bytes, offset, len)
}
