//! Changing extent maps and allocating data blocks. The map's format (the extent tree, its
//! key and value) is `store::extent_map`.

use super::discard::RunEvent;
use super::Op;
use crate::error::{corrupt, errno, FsResult};
use crate::layout::pod;
use crate::layout::superblock::{field, Superblock};
use crate::store::bitmap;
use crate::store::extent_map::{self, Extent, REMOTE};

/// Longest extent, blocks (keeps one write's allocation bounded).
pub const MAX_EXTENT: u64 = 1 << 15;

/// Map [first, first+len) to physical blocks from `phys`, merging with the extent just before
/// it when the two are contiguous on disk too (`REMOTE` ones: in the same object). A local
/// extent of an `object_data` image makes its inode dirty (`remote::Blocks`).
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
    if let (Some(r), 0) = (&op.geo.remote, flags & REMOTE) {
        r.mark_dirty(ino);
    }
    if first > 0 {
        if let Some(prev) = extent_map::find(op.bytes(), ino, first - 1)? {
            let shift = op.superblock()?.object_shift;
            let one_object = flags & REMOTE == 0 || prev.phys >> shift == (phys + len - 1) >> shift;
            let adjacent = prev.last + 1 == first
                && prev.phys + prev.len() == phys
                && prev.flags == flags
                && one_object;
            if adjacent && prev.len() + len <= MAX_EXTENT {
                extent_map::remove(&mut op.tx, ino, prev.last)?;
                e.first = prev.first;
                e.phys = prev.phys;
            }
        }
    }
    extent_map::put(&mut op.tx, ino, &e)
}

/// Unmap logical blocks [from, to] of `ino` and free their data blocks; returns blocks
/// unmapped. `REMOTE` blocks free nothing locally (their object leaks or is partly dead;
/// fsck's sweep collects whole dead objects).
pub fn punch(op: &mut Op<'_>, ino: u64, from: u64, to: u64) -> FsResult<u64> {
    let mut freed = 0;
    let mut at = from;
    while at <= to {
        let Some(e) = extent_map::find(op.bytes(), ino, at)? else {
            break;
        };
        if e.first > to {
            break;
        }
        extent_map::remove(&mut op.tx, ino, e.last)?;
        let cut_first = e.first.max(from);
        let cut_last = e.last.min(to);
        if !e.is_remote() {
            free_blocks(op, e.phys_of(cut_first), cut_last - cut_first + 1)?;
        }
        freed += cut_last - cut_first + 1;
        keep_outside(op, ino, &e, cut_first, cut_last)?;
        match e.last.checked_add(1) {
            Some(next) => at = next,
            None => break,
        }
    }
    Ok(freed)
}

/// Map again the parts of extent `e` (just removed) outside [from, to].
fn keep_outside(op: &mut Op<'_>, ino: u64, e: &Extent, from: u64, to: u64) -> FsResult<()> {
    if e.first < from {
        let head = Extent {
            last: from - 1,
            ..*e
        };
        extent_map::put(&mut op.tx, ino, &head)?;
    }
    if e.last > to {
        let tail = Extent {
            first: to + 1,
            phys: e.phys_of(to + 1),
            ..*e
        };
        extent_map::put(&mut op.tx, ino, &tail)?;
    }
    Ok(())
}

/// Where an allocation looks for blocks; [`SOURCES`] is the order they are tried in, and
/// every run a source offers is taken only if [`is_reusable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The next run a planned write's dry run allocated, reserved and wrote (`write_plan`),
    /// in a plan's commit. First: taking any other run would point the file at blocks its
    /// data was not written to (fsx nommap seed 1 read EIO when spare runs came first). Once
    /// one does not fit, the others are not tried (the request took another course).
    Reserved,
    /// For a small allocation (up to `discard::SMALL_RUN` blocks), a spare run of the
    /// discard queue: freed, durable, not punched, so its host space is still there
    /// (`ops::discard`). At most [`SPARE_TRIES`] are tried.
    Spare,
    /// The free-space bitmap from the allocation hint on ([`find_reusable`]).
    Scan,
    /// The bitmap again after a flush, when only blocks whose free is not durable yet were
    /// left (the flush makes those frees durable): so that is no ENOSPC.
    ScanFlushed,
}

/// The order in which an allocation tries its sources (see [`Source`]).
const SOURCES: [Source; 4] = [
    Source::Reserved,
    Source::Spare,
    Source::Scan,
    Source::ScanFlushed,
];

/// Spare runs tried by one allocation (`Source::Spare`).
const SPARE_TRIES: usize = 8;

/// Allocate up to `want` contiguous data blocks (at least one); ENOSPC when none is free.
/// An unprivileged request (`Hints::unprivileged`) gets ENOSPC once only the superblock's
/// `reserved_blocks` are left. The blocks come from the first of [`SOURCES`] that offers a
/// run [`is_reusable`]: blocks whose free is not durable yet are skipped ([`first_held`]).
/// Blocks the clean cache of an `object_data` image holds are free: taken like any other,
/// their cache entries evicted first (`remote::cache`).
/// Errors: ENOSPC; the flush's storage error.
pub fn alloc_blocks(op: &mut Op<'_>, want: u64) -> FsResult<(u64, u64)> {
    let sb = op.superblock()?;
    let free = sb.data_blocks.saturating_sub(sb.blocks_used);
    let available = match op.hints.unprivileged {
        true => free.saturating_sub(sb.reserved_blocks),
        false => free,
    };
    if available == 0 {
        return errno(libc::ENOSPC);
    }
    let want = want.clamp(1, MAX_EXTENT).min(available);
    let mut run = None;
    for source in SOURCES {
        run = take_from(op, &sb, source, want)?;
        if run.is_some() {
            break;
        }
    }
    let Some((start, len)) = run else {
        return errno(libc::ENOSPC);
    };
    if let Some(r) = &op.geo.remote {
        r.local().evict_run(start, len); // before anything is written there
    }
    bitmap::set_run(&mut op.tx, sb.data_bitmap, start, len, true)?;
    pod::put(
        &mut op.tx,
        field::BLOCKS_USED,
        &sb.blocks_used.saturating_add(len),
    )?;
    op.hints.next_block = start + len;
    op.runs.push(RunEvent::Allocated(start, len));
    Ok((start, len))
}

/// The first run `source` offers for an allocation of up to `want` blocks (its runs best
/// first, see [`Source`]) that [`is_reusable`], or None. Errors: `ScanFlushed`'s flush.
fn take_from(
    op: &mut Op<'_>,
    sb: &Superblock,
    source: Source,
    want: u64,
) -> FsResult<Option<(u64, u64)>> {
    let offered: Vec<(u64, u64)> = match source {
        Source::Reserved => op.next_preferred(want).into_iter().collect(),
        Source::Spare if want <= super::discard::SMALL_RUN => op
            .frees
            .spare_runs(want)
            .take(SPARE_TRIES)
            .map(|(start, _)| (start, want))
            .collect(),
        Source::Spare => Vec::new(),
        Source::Scan => find_reusable(op, sb, want)?.into_iter().collect(),
        Source::ScanFlushed if op.frees.any_held(op.rvm.durable_lsn()) => {
            op.rvm.flush()?;
            find_reusable(op, sb, want)?.into_iter().collect()
        }
        Source::ScanFlushed => Vec::new(),
    };
    for (start, len) in offered {
        if is_reusable(op, sb, start, len)? {
            return Ok(Some((start, len)));
        }
        if source == Source::Reserved {
            op.drop_preferred();
        }
    }
    Ok(None)
}

/// The first free run of up to `want` blocks from the allocation hint on that holds no
/// held block ([`first_held`]), or None.
fn find_reusable(op: &Op<'_>, sb: &Superblock, want: u64) -> FsResult<Option<(u64, u64)>> {
    let mut goal = op.hints.next_block;
    // Each round skips one held run; more rounds than there are held runs means the scan
    // came round again: every free block is held.
    let rounds = op.frees.pending()
        + op.runs.len()
        + op.geo.unmarked.runs.len()
        + op.reserved.len()
        + op.pending.len()
        + 1;
    for _ in 0..rounds {
        let found = bitmap::find_clear_run(op.bytes(), sb.data_bitmap, sb.data_blocks, goal, want)?;
        let Some((start, len)) = found else {
            return Ok(None);
        };
        match first_held(op, start, len) {
            None => return Ok(Some((start, len))),
            Some((s, _)) if s > start => return Ok(Some((start, s - start))),
            Some((s, l)) => goal = s + l,
        }
    }
    Ok(None)
}

/// The first run overlapping free blocks [start, start+len) that must not be reused yet:
/// freed by this transaction, or by one whose record is not durable (`Discard`), or
/// reserved by a planned write (`write_plan`), or written deferred and not yet in place
/// (`pending`). In a state
/// a crash or power cut brings back, its old file still owns it, and data written into it
/// now would show in that file. Also blocks a file owns that a damaged bitmap calls free
/// (`Geo::unmarked`).
fn first_held(op: &Op<'_>, start: u64, len: u64) -> Option<(u64, u64)> {
    let end = start + len;
    let mine = op.runs.iter().filter_map(|ev| match *ev {
        RunEvent::Freed(s, l) if s < end && s + l > start => {
            Some((s.max(start), s + l - s.max(start)))
        }
        _ => None,
    });
    let queued = op.frees.first_held(start, len, op.rvm.durable_lsn());
    // Blocks a damaged bitmap calls free though files own them (`bitmap_guard`).
    let owned = op.geo.unmarked.first_in(start, len);
    let reserved = op.reserved.first_overlap(start, len);
    mine.chain(queued)
        .chain(owned)
        .chain(reserved)
        .chain(first_pending(op, start, len))
        .min()
}

/// The first block of [start, start+len) written deferred and not yet in place
/// (`ops::pending`): truncation will still write its bytes there.
fn first_pending(op: &Op<'_>, start: u64, len: u64) -> Option<(u64, u64)> {
    first_pending_in(op.pending, op.geo.data_offset, start, len)
}

/// [`first_pending`] in `pending`, data block 0 at image byte `data_offset`: (block, 1).
pub(super) fn first_pending_in(
    pending: &super::pending::PendingData,
    data_offset: u64,
    start: u64,
    len: u64,
) -> Option<(u64, u64)> {
    let at = |b: u64| data_offset + b * crate::layout::BLOCK_SIZE;
    let pos = pending.first_in(at(start), at(start + len))?;
    Some(((pos - data_offset) / crate::layout::BLOCK_SIZE, 1))
}

/// Whether blocks [start, start+len) are all free and none is held ([`first_held`]): the
/// check every candidate of an allocation passes (see [`Source`]).
fn is_reusable(op: &Op<'_>, sb: &Superblock, start: u64, len: u64) -> FsResult<bool> {
    let found = bitmap::find_clear_run(op.bytes(), sb.data_bitmap, sb.data_blocks, start, len)?;
    Ok(found == Some((start, len)) && first_held(op, start, len).is_none())
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
    op.runs.push(RunEvent::Freed(start, len));
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
    let found = extent_map::find(op.bytes(), ino, from)?;
    let Some(e) = found.filter(|e| e.first <= from && e.last >= to) else {
        return corrupt(format!(
            "inode {ino}: no single extent holds blocks {from}..={to}"
        ));
    };
    extent_map::remove(&mut op.tx, ino, e.last)?;
    keep_outside(op, ino, &e, from, to)
}
