//! Giving freed data blocks back to the host (`-o discard`, as a thin-provisioned disk gets
//! TRIM): an image file is sparse, and without this a block once written keeps its host space
//! forever, so deleting files on a full host would free nothing under the image.
//!
//! A freed run of data blocks is punched out of the image file
//! (`fallocate(PUNCH_HOLE | KEEP_SIZE)`) only when both hold:
//! - the transaction that freed it is durable (`Rvm::durable_lsn` passed its Lsn): before
//!   that, a power cut brings back the state where a file still owns the blocks, and its data
//!   would read as zeros;
//! - it was not allocated again since (`forget` drops it from the queue at allocation, under
//!   the same lock as the punching), nor does a live log record carry data for one of its
//!   blocks (`DataLog::hot`: recovery would write that data back into the hole, needing host
//!   space at mount time). Such runs wait for truncation to apply the record.
//!
//! So a punched block is free in every state recovery can reach. The queue lives in memory: a
//! crash before the punch only leaves the host space in use (never wrong data).
//!
//! Small runs (under [`SMALL_RUN`] blocks: the old blocks of copy-on-write overwrites, small
//! files) wait as **spare** runs once ready: free for the allocator, which takes them first
//! for small allocations (their host space is still there, so nothing is punched and nothing
//! new allocated on the host), and punched only when more than [`SPARE_MAX`] wait, or when
//! the host is full. Every punch takes the image file's inode lock on the host (ext4: about
//! 250 µs), blocking the log's and the data's writes to that file meanwhile: a burst of
//! random overwrites punched one block per overwrite, and 20,000 random 4 KiB overwrites
//! fell from 20,000 to 200 a second once the frees of an earlier pass were queued.
//!
//! The same queue holds freed runs back from the allocator, discard on or off
//! (`extent::alloc_blocks`, [`Discard::first_held`]): a run whose freeing record is not
//! durable yet still belongs to its old file in the state a power cut brings back, so
//! another file's data written into it would show in the old file. With discard off a run
//! leaves the queue as soon as its free is durable.
//! On a block device nothing is discarded (no BLKDISCARD: a device's discard can be slow,
//! and some devices read back garbage after it).
//!
//! # Why punching stays under the lock
//! A punch must come before every write into its run that a later commit relies on, never
//! after. Punches run in [`Discard::punch_ready`], under the filesystem's exclusive lock, and
//! are done when it returns. A thread punching the ready runs later, without the lock
//! (commit 7c4b930, reverted), broke that for planned writes (`write_plan`), and
//! `tests/tests/objstore_data.rs`'s kill -9 test read zeros, in this order:
//! 1. A big write's plan runs its dry run under the lock. Its allocation takes run R: free,
//!    its free durable, but still queued (`durable_lsn` moved by a flush outside the lock
//!    since the last attempt) or spare. A dry run is aborted, so `note_commit` never cuts R
//!    from the queue, unlike a committed allocation.
//! 2. Every transaction ends with `Fs::discard_ready`, the dry run's too: R is ready, so
//!    `punch_ready` takes it, to punch (or with every spare run once more than
//!    [`SPARE_MAX`] wait). The thread got R in its list, to punch later.
//! 3. `plan_write` reserves R and calls [`Discard::forget`]: too late, R is not queued any
//!    more. The lock is released and step 2 of the plan writes the data into R.
//! 4. The thread punches R after that write: the data is gone from the image.
//! 5. The commit takes R again (`extent::alloc_blocks`, the reserved runs first: R is free,
//!    and no longer held by the thread once punched) and skips the data write, since step 2
//!    wrote those very bytes: the file points at a hole, and reads zeros (and the crash
//!    test's remount found them). Had the punch still been waiting, the commit would have
//!    taken other blocks and written the data itself: a race on timing, hence rare.
//!
//! Under the lock, step 2's punch is done before the plan's data write is issued, which
//! then takes the host space again. The unit test (discard_tests.rs)
//! `a_run_a_dry_run_took_is_punched_before_its_data_is_written_never_after` shows the rule.
//! A thread would need the same: a run a dry run took is never punched after the lock is
//! released (`forget` removing it from the thread's list and waiting for a punch in flight).

use super::data_log::DataLog;
use super::Fs;
use crate::error::{FsError, FsResult};
use crate::layout::BLOCK_SIZE;
use rvm_core::Lsn;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Most runs punched by one call of [`Discard::punch_ready`] after an operation (each is one
/// `fallocate`; a big `rm -rf` queues thousands).
pub const PUNCH_BATCH: usize = 256;

/// Runs shorter than this (blocks) wait as spare runs instead of being punched at once.
pub const SMALL_RUN: u64 = 16;
/// Spare runs beyond this many are punched (at most 16 blocks each:
/// 960 MiB of host space kept at worst, 16 MiB when they are single blocks).
pub const SPARE_MAX: usize = 4096;

/// What a transaction did to data blocks, in order: runs (first block, blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEvent {
    Freed(u64, u64),
    Allocated(u64, u64),
}

/// The discard queue: freed runs waiting for their commit to become durable (held back from
/// the allocator until then), and with discard on, to be punched.
#[derive(Default)]
pub struct Discard {
    /// The image file to punch (None: discard off).
    file: Option<File>,
    /// Image byte offset of data block 0.
    data_offset: u64,
    /// First block -> (blocks, Lsn of the commit that freed the run).
    queue: BTreeMap<u64, (u64, Lsn)>,
    /// Spare runs: ready (durable, carried by no live record), not punched, free for the
    /// allocator; first block -> blocks.
    spare: BTreeMap<u64, u64>,
    /// `durable_lsn` at the last attempt: nothing new can be ready until it moves.
    tried_at: Lsn,
    /// Log records below this Lsn predate the mount: `DataLog::hot` does not know which
    /// blocks they carry, so nothing is punched until truncation has applied them all.
    floor: Lsn,
    /// Blocks given back to the host since mount.
    punched: u64,
}

impl Discard {
    /// Discard into the regular image file at `path` (opened again for writing; the lock
    /// belongs to the daemon's other descriptor). `data_offset`: bytes before data block 0;
    /// `floor`: `Rvm::durable_lsn` at mount (after a clean unmount the log is empty, and
    /// `Rvm::applied_lsn` has reached it already). Errors: the image cannot be opened for
    /// writing.
    pub fn open(path: &Path, data_offset: u64, floor: Lsn) -> std::io::Result<Discard> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        Ok(Discard {
            file: Some(file),
            data_offset,
            floor,
            ..Discard::default()
        })
    }

    /// Whether discard is on (a failed punch turns it off).
    pub fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Runs waiting for their free to become durable, or to be punched.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Blocks given back to the host since mount.
    pub fn punched(&self) -> u64 {
        self.punched
    }

    /// After a commit at `lsn` (None: it failed, nothing changed) with `events`: drop runs
    /// allocated again from the queue and queue the runs this transaction left free.
    pub(super) fn note_commit(&mut self, lsn: Option<Lsn>, events: Vec<RunEvent>) {
        let Some(lsn) = lsn else {
            return;
        };
        let mut freed: BTreeMap<u64, (u64, Lsn)> = BTreeMap::new();
        for ev in events {
            match ev {
                RunEvent::Freed(start, len) => {
                    freed.insert(start, (len, lsn));
                }
                RunEvent::Allocated(start, len) => {
                    cut(&mut freed, start, len);
                    cut(&mut self.queue, start, len);
                    cut_spare(&mut self.spare, start, len);
                }
            }
        }
        for (start, (len, lsn)) in freed {
            self.insert(start, len, lsn);
        }
    }

    /// After a transaction that failed because the host had no room: the blocks it allocated
    /// are free again (the abort restored the bitmap) but may hold host space its data writes
    /// took before the failure. Give that back now, except for runs still queued (their free
    /// may not be durable yet; they are punched when it is). Every other free block's free
    /// is durable, so nothing any recoverable state owns is punched.
    pub(super) fn note_abort(&mut self, events: Vec<RunEvent>) {
        if !self.enabled() {
            return;
        }
        let mut unowned = BTreeMap::new();
        for ev in events {
            if let RunEvent::Allocated(start, len) = ev {
                unowned.insert(start, (len, 0));
            }
        }
        let queued: Vec<(u64, u64)> = self.queue.iter().map(|(&s, &(l, _))| (s, l)).collect();
        for (s, l) in queued {
            cut(&mut unowned, s, l);
        }
        for (start, (len, _)) in unowned {
            if let Err(e) = self.punch_now(start, len) {
                log::warn!("discard: punching blocks {start}+{len} failed: {e}");
            }
        }
    }

    /// The first queued run overlapping blocks [start, start+len) whose free is not durable
    /// (its Lsn at or above `durable`, `Rvm::durable_lsn`): (first block, blocks).
    pub(super) fn first_held(&self, start: u64, len: u64, durable: Lsn) -> Option<(u64, u64)> {
        let before = self.queue.range(..start).next_back();
        let before = before.filter(|(&s, &(l, _))| s + l > start);
        let queued = before
            .into_iter()
            .chain(self.queue.range(start..start.saturating_add(len)))
            .find(|(_, &(_, lsn))| lsn >= durable)
            .map(|(&s, &(l, _))| (s, l));
        queued
    }

    /// The first block of [start, start+len) in a queued or spare run, whether or not its
    /// free is durable: such a block may be punched (`ops::cache_space` keeps the clean
    /// cache out of them).
    pub(super) fn first_queued(&self, start: u64, len: u64) -> Option<u64> {
        let end = start.saturating_add(len);
        // The run holding `start`, if any, else the first run starting inside the range.
        let first = |at: Option<(u64, u64)>, next: Option<u64>| match at {
            Some((s, l)) if s + l > start => Some(start),
            _ => next.filter(|&s| s < end),
        };
        let q_at = self
            .queue
            .range(..=start)
            .next_back()
            .map(|(&s, &(l, _))| (s, l));
        let q_next = self.queue.range(start..).next().map(|(&s, _)| s);
        let s_at = self
            .spare
            .range(..=start)
            .next_back()
            .map(|(&s, &l)| (s, l));
        let s_next = self.spare.range(start..).next().map(|(&s, _)| s);
        first(q_at, q_next)
            .into_iter()
            .chain(first(s_at, s_next))
            .min()
    }

    /// Drop blocks [start, start+len) from the queue: a planned write reserved them
    /// (`write_plan`) and writes into them before anything commits, so they must not be
    /// punched. If it ends up not using them, they only keep their host space.
    pub(super) fn forget(&mut self, start: u64, len: u64) {
        cut(&mut self.queue, start, len);
        cut_spare(&mut self.spare, start, len);
    }

    /// Spare runs of at least `want` blocks, lowest first (see the module docs).
    pub(super) fn spare_runs(&self, want: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.spare
            .iter()
            .filter(move |(_, &l)| l >= want)
            .map(|(&s, &l)| (s, l))
    }

    /// Whether some queued run's free is not durable yet (see [`Discard::first_held`]).
    pub(super) fn any_held(&self, durable: Lsn) -> bool {
        self.queue.values().any(|&(_, lsn)| lsn >= durable)
    }

    /// Discard off: forget the runs whose free is durable (nothing to punch, nothing to hold).
    fn release_durable(&mut self, durable: Lsn) {
        self.queue.retain(|_, &mut (_, lsn)| lsn >= durable);
    }

    /// Queue [start, start+len) freed at `lsn`, merged with the runs ending where it starts
    /// and starting where it ends (the later Lsn holds the whole): files freed in another
    /// order than they were allocated (`rm -rf` walks names, not blocks) join again into
    /// runs long enough to punch with one `fallocate`.
    fn insert(&mut self, start: u64, len: u64, lsn: Lsn) {
        let (mut start, mut len, mut lsn) = (start, len, lsn);
        if let Some((&s, &(l, old))) = self.queue.range(..start).next_back() {
            if s + l == start {
                self.queue.remove(&s);
                (start, len, lsn) = (s, l + len, old.max(lsn));
            }
        }
        if let Some((l, old)) = self.queue.remove(&(start + len)) {
            (len, lsn) = (len + l, old.max(lsn));
        }
        self.queue.insert(start, (len, lsn));
    }

    /// Make [start, start+len) a spare run, merged with the spare runs on either side;
    /// returns the merged run.
    fn insert_spare(&mut self, start: u64, len: u64) -> (u64, u64) {
        let (mut start, mut len) = (start, len);
        if let Some((&s, &l)) = self.spare.range(..start).next_back() {
            if s + l == start {
                self.spare.remove(&s);
                (start, len) = (s, l + len);
            }
        }
        if let Some(l) = self.spare.remove(&(start + len)) {
            len += l;
        }
        self.spare.insert(start, len);
        (start, len)
    }

    /// Punch every queued run whose freeing commit is below `durable` and none of whose
    /// blocks a live log record carries (`hot` entries at or above `applied`); runs under
    /// [`SMALL_RUN`] blocks become spare runs instead, punched once more than [`SPARE_MAX`]
    /// wait. `force`: try even if `durable` has not moved, and punch every ready and spare
    /// run (else at most [`PUNCH_BATCH`] runs, the rest at the next call: the punches run
    /// under the filesystem's lock). Returns the blocks punched; a failed punch (EOPNOTSUPP
    /// on a host without holes) turns discard off.
    pub(super) fn punch_ready(
        &mut self,
        durable: Lsn,
        applied: Lsn,
        hot: &DataLog,
        force: bool,
    ) -> u64 {
        let nothing = self.queue.is_empty() && (!force || self.spare.is_empty());
        if nothing || (!force && durable == self.tried_at) {
            return 0;
        }
        if !self.enabled() {
            self.tried_at = durable;
            self.release_durable(durable);
            return 0;
        }
        if applied < self.floor {
            return 0;
        }
        let ready: Vec<(u64, u64)> = self
            .queue
            .iter()
            .filter(|(&s, &(l, lsn))| lsn < durable && !hot.carries(s, s + l - 1, applied))
            .map(|(&s, &(l, _))| (s, l))
            .collect();
        // Ready runs join the spare runs beside them; a run that is long enough then is
        // punched whole.
        let mut touched = Vec::with_capacity(ready.len());
        for (start, len) in ready {
            self.queue.remove(&start);
            touched.push(self.insert_spare(start, len).0);
        }
        let mut punch: Vec<(u64, u64)> = Vec::new();
        for t in touched {
            let Some((&s, &l)) = self.spare.range(..=t).next_back() else {
                continue;
            };
            if s + l > t && l >= SMALL_RUN {
                self.spare.remove(&s);
                punch.push((s, l));
            }
        }
        if force || self.spare.len() > SPARE_MAX {
            punch.extend(std::mem::take(&mut self.spare));
        }
        let limit = if force { usize::MAX } else { PUNCH_BATCH };
        if punch.len() <= limit {
            self.tried_at = durable; // else: more are ready, try again at the next call
        }
        let mut runs = punch.into_iter();
        let mut done = 0;
        for (start, len) in runs.by_ref().take(limit) {
            if let Err(e) = self.punch_now(start, len) {
                log::warn!("discard: punching blocks {start}+{len} failed ({e}); discard is off");
                self.file = None;
                self.spare.clear();
                self.release_durable(durable); // the others are still held from reuse
                return done;
            }
            done += len;
        }
        // Over the batch: back in the queue, durable and ready, for the next call.
        for (start, len) in runs {
            self.queue.insert(start, (len, 0));
        }
        self.punched += done;
        done
    }

    /// Give blocks [start, start+len) back to the host now, under the caller's lock.
    pub(super) fn punch_now(&self, start: u64, len: u64) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let at = self.data_offset + start * BLOCK_SIZE;
        // SAFETY: fallocate on our own open descriptor with plain integer arguments.
        let r = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                at as libc::off_t,
                (len * BLOCK_SIZE) as libc::off_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Remove [start, start+len) from the spare runs in `map` (first block -> blocks).
fn cut_spare(map: &mut BTreeMap<u64, u64>, start: u64, len: u64) {
    let mut runs: BTreeMap<u64, (u64, Lsn)> = BTreeMap::new();
    let end = start + len;
    let first = map.range(..start).next_back().map_or(start, |(&s, _)| s);
    for (&s, &l) in map.range(first..end) {
        runs.insert(s, (l, 0));
    }
    if runs.is_empty() {
        return;
    }
    for s in runs.keys() {
        map.remove(s);
    }
    cut(&mut runs, start, len);
    map.extend(runs.into_iter().map(|(s, (l, _))| (s, l)));
}

/// Remove [start, start+len) from the runs in `map` (first block -> (blocks, lsn)), splitting
/// the runs it overlaps.
fn cut(map: &mut BTreeMap<u64, (u64, Lsn)>, start: u64, len: u64) {
    let end = start + len;
    let overlapping: Vec<(u64, u64, Lsn)> = map
        .range(..end)
        .rev()
        .take_while(|(&s, &(l, _))| s + l > start) // runs never overlap: earlier ones end earlier
        .map(|(&s, &(l, lsn))| (s, l, lsn))
        .collect();
    for (s, l, lsn) in overlapping {
        map.remove(&s);
        if s < start {
            map.insert(s, (start - s, lsn));
        }
        if s + l > end {
            map.insert(end, (s + l - end, lsn));
        }
    }
}

/// Is `e` the host having no room for data (a full host disk, a quota)?
pub fn host_full(e: &FsError) -> bool {
    match e {
        FsError::Io(e) => host_full_io(e),
        // A data write's ENOSPC as `ops::data_log` answers it (no storage error).
        FsError::Errno(n) => matches!(*n, libc::ENOSPC | libc::EDQUOT),
        _ => false,
    }
}

/// Is storage error `e` the host having no room (ENOSPC, EDQUOT)?
pub fn host_full_io(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl Fs {
    /// Punch the runs that became ready (called after each commit; cheap while
    /// `durable_lsn` stands still).
    pub fn discard_ready(&mut self) {
        if self.discard.pending() > 0 {
            let (durable, applied) = (self.rvm.durable_lsn(), self.rvm.applied_lsn());
            self.discard
                .punch_ready(durable, applied, &self.dlog, false);
        }
    }

    /// The host had no room for a data write: make the queued frees durable (a flush), then,
    /// if their blocks are still carried by live records, apply those (a truncation), and
    /// punch. Returns whether any host space came back.
    pub fn make_room(&mut self) -> FsResult<bool> {
        if !self.discard.enabled() || self.discard.pending() == 0 {
            return Ok(false);
        }
        self.rvm.flush()?;
        let mut punched = self.discard_now();
        if self.discard.pending() > 0 {
            self.rvm.truncate()?;
            punched += self.discard_now();
        }
        Ok(punched > 0)
    }

    /// Punch every queued run that is ready now (after a flush or truncation); returns the
    /// blocks punched.
    pub fn discard_now(&mut self) -> u64 {
        let (durable, applied) = (self.rvm.durable_lsn(), self.rvm.applied_lsn());
        self.discard.punch_ready(durable, applied, &self.dlog, true)
    }

    /// [`Fs::transact_on`] for an operation writing file data: if the host has no room for it
    /// (ENOSPC from the image file, before anything committed points at the data) and
    /// freed blocks wait to be given back, give them back and try once more.
    pub fn transact_data<T>(
        &mut self,
        op: &str,
        ino: u64,
        mut f: impl FnMut(&mut super::Op<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        match self.transact_on(op, ino, &mut f) {
            Err(e) if host_full(&e) && self.make_room().unwrap_or(false) => {
                self.transact_on(op, ino, f)
            }
            r => r,
        }
    }
}

#[cfg(test)]
#[path = "discard_tests.rs"]
mod tests;
