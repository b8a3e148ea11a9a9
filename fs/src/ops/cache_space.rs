//! Free data blocks lent to the clean cache of an `object_data` image (`remote::cache`):
//! before a read of `REMOTE` blocks, under the filesystem lock (shared: nothing is allocated
//! meanwhile), enough free blocks for what the read will fetch are picked as the cache's
//! spare blocks. Only blocks nothing may write or punch: free in the bitmap, their free
//! durable and out of the discard queue (`Discard::first_queued`: never punched while
//! cached), not reserved by a planned write, not written deferred (`pending`), carried by no
//! live log record (`DataLog::hot`: truncation would write that data there), not owned by a
//! file a damaged bitmap calls free (`Geo::unmarked`), not the cache's already. They stay
//! free: the allocator takes them back at once (`extent::alloc_blocks` evicts them). At a
//! clean unmount with `discard`, the blocks holding cached bytes are punched ([`give_back`]).

use super::read::ReadPlan;
use super::Fs;
use crate::error::FsResult;
use crate::layout::BLOCK_SIZE;
use crate::store::{bitmap, superblock};

/// Most runs one search looks at (a fragmented free space yields fewer blocks, not a long
/// scan under the lock).
const ROUNDS: usize = 64;

/// Lend the clean cache the free blocks the `REMOTE` pieces of `plan` would fill (see the
/// module docs); nothing when the image has no clean cache. A failure to read the bitmap is
/// logged and lends nothing (the read itself goes on).
pub fn lend_for_read(fs: &Fs, plan: &ReadPlan) {
    let Some(remote) = &fs.geo.remote else { return };
    let vblocks = plan.remote.iter().flat_map(|&(_, vblock, lead, len)| {
        let n = (lead + len).div_ceil(BLOCK_SIZE as usize) as u64;
        vblock..vblock + n
    });
    let want = remote.local().spares_wanted(vblocks);
    if want == 0 {
        return;
    }
    let found = remote
        .local()
        .add_spares(|cursor, owned| find(fs, cursor, want, owned));
    if let Err(e) = found {
        log::warn!("clean cache: looking for free blocks: {e}");
    }
}

/// Up to `want` blocks in runs (first, blocks) the cache may use, from block `goal` on.
fn find(
    fs: &Fs,
    mut goal: u64,
    want: u64,
    owned: &dyn Fn(u64, u64) -> Option<u64>,
) -> FsResult<Vec<(u64, u64)>> {
    let applied = fs.rvm.applied_lsn();
    if applied < fs.dlog.recovered {
        return Ok(Vec::new()); // recovered records may still write into any free block
    }
    let sb = superblock(fs.bytes())?;
    let mut runs = Vec::new();
    let mut left = want;
    for _ in 0..ROUNDS {
        if left == 0 {
            break;
        }
        let found = bitmap::find_clear_run(fs.bytes(), sb.data_bitmap, sb.data_blocks, goal, left)?;
        let Some((start, len)) = found else { break };
        let usable = match first_unusable(fs, start, len, applied, owned) {
            None => len,
            Some(b) => b - start,
        };
        if usable > 0 {
            runs.push((start, usable));
            left -= usable;
        }
        goal = start + usable + 1;
    }
    Ok(runs)
}

/// The first block of free run [start, start+len) the cache must not use, if any.
fn first_unusable(
    fs: &Fs,
    start: u64,
    len: u64,
    applied: rvm_core::Lsn,
    owned: &dyn Fn(u64, u64) -> Option<u64>,
) -> Option<u64> {
    let hot = (start..start + len).find(|b| fs.dlog.hot.get(b).is_some_and(|&l| l >= applied));
    let pending = super::extent::first_pending_in(&fs.pending, fs.geo.data_offset, start, len);
    [
        fs.discard.first_queued(start, len),
        fs.reserved.first_overlap(start, len).map(|r| r.0),
        fs.geo.unmarked.first_in(start, len).map(|r| r.0),
        pending.map(|r| r.0),
        hot,
        owned(start, len),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Clean unmount, with `discard` on: punch the blocks the clean cache holds out of the image
/// file so their host space comes back (they are free, and their frees durable: nothing any
/// recoverable state owns is punched). Returns the blocks punched; a failed punch is logged
/// and ends it (the rest keep their host space).
pub fn give_back(fs: &mut Fs) -> u64 {
    let Some(remote) = fs.geo.remote.clone() else {
        return 0;
    };
    if !fs.discard.enabled() {
        return 0;
    }
    let mut punched = 0;
    for (start, len) in remote.local().drain() {
        if let Err(e) = fs.discard.punch_now(start, len) {
            log::warn!("clean cache: punching blocks {start}+{len} failed: {e}");
            break;
        }
        punched += len;
    }
    punched
}
