//! Writing file data outside the exclusive filesystem lock (README "Concurrency"): a big
//! write is planned, written, then committed.
//!
//! 1. **Plan** (exclusive lock, [`Fs::plan_write`]): the request runs as a dry run, a
//!    transaction that is aborted at the end. Its data writes into blocks it allocated are
//!    kept (image offset and bytes) instead of written, and those block runs are reserved:
//!    no other operation's allocation takes them ([`Reservations`], checked by
//!    `extent::alloc_blocks`) and discard never punches them (`Discard::forget`).
//! 2. **Write** (no lock, [`WritePlan::write`]): the kept bytes go into the reserved blocks.
//!    They are free in every state recovery can reach (the allocator gave them out, so their
//!    free is durable), no committed record points at them, and no reader's plan holds them,
//!    so lookups, stats, readdirs and reads of other files run meanwhile.
//! 3. **Commit** (exclusive lock, [`Fs::transact_planned`]): the request runs again, for real,
//!    on the state as it is now. Its allocations take the reserved runs first (when still the
//!    same size and free), and a data write whose offset and bytes equal a kept one that step
//!    2 wrote is skipped. So the commit is the request itself: whatever happened in between
//!    (another write to the file, a truncate, an unlink, a punch), it is correct; the plan
//!    only saves the data write when nothing changed under it. Anything else (logged data,
//!    writes into blocks the file already owned) is written under the lock as before.
//!
//! Data still precedes the record that points at it: the write of step 2 is done before the
//! transaction of step 3 commits, and is noted as unlogged data (`Rvm::note_unlogged_data`),
//! so the flush that makes that record durable syncs it first. Two writers of one inode need
//! no lock of their own: each commit is a whole request on the current state, and a plan made
//! stale by the other only costs its data write again, under the lock.

use super::{Fs, Op};
use crate::error::{FsError, FsResult};
use crate::layout::BLOCK_SIZE;
use std::collections::VecDeque;

/// One data write a plan kept: image offset (bytes) and the bytes.
pub struct Prewrite {
    pos: u64,
    data: Vec<u8>,
}

/// A planned write (see the module docs): its ticket in [`Reservations`], the kept data
/// writes, and the block runs (first block, blocks) its dry run allocated, in order.
pub struct WritePlan {
    ticket: u64,
    writes: Vec<Prewrite>,
    runs: Vec<(u64, u64)>,
    /// Whether step 2 wrote every kept write (else the commit writes them itself).
    written: bool,
    /// Step 2's failed write, unless the host was full: the request's data write error.
    failed: Option<std::io::Error>,
}

/// Block runs reserved by plans between their plan and their commit: (ticket, first block,
/// blocks). Changed under the exclusive lock only.
#[derive(Default)]
pub struct Reservations {
    next: u64,
    held: Vec<(u64, u64, u64)>,
}

impl Reservations {
    /// Runs reserved now.
    pub fn len(&self) -> usize {
        self.held.len()
    }
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The first reserved run overlapping blocks [start, start+len): (first block, blocks).
    /// A plan's commit drops its own reservation first (it holds the lock throughout).
    pub(super) fn first_overlap(&self, start: u64, len: u64) -> Option<(u64, u64)> {
        let end = start.saturating_add(len);
        self.held
            .iter()
            .filter(|&&(_, s, l)| s < end && s + l > start)
            .map(|&(_, s, l)| (s, l))
            .min()
    }
}

/// What the write path of an operation is doing (see the module docs).
#[derive(Default)]
pub enum Phase<'a> {
    /// An ordinary transaction: data is written where it goes.
    #[default]
    Direct,
    /// A dry run: unlogged data writes are kept, not written.
    Plan(Vec<Prewrite>),
    /// The commit of a plan: the kept writes step 2 wrote, the runs to take.
    Commit {
        written: &'a [Prewrite],
        prefer: VecDeque<(u64, u64)>,
    },
}

impl Op<'_> {
    /// Called by `write_data` for a write that is not logged: in a dry run, keep it (true:
    /// the caller writes nothing); in a plan's commit, true if step 2 wrote exactly these
    /// bytes here already (the caller only notes the data as unlogged).
    pub(super) fn planned_write(&mut self, pos: u64, data: &[u8]) -> bool {
        match &mut self.phase {
            Phase::Direct => false,
            Phase::Plan(kept) => {
                kept.push(Prewrite {
                    pos,
                    data: data.to_vec(),
                });
                true
            }
            Phase::Commit { written, .. } => written.iter().any(|w| w.pos == pos && w.data == data),
        }
    }

    /// In a dry run: true (a logged write is the commit's, under the lock).
    pub(super) fn planning(&self) -> bool {
        matches!(self.phase, Phase::Plan(_))
    }

    /// In a plan's commit, the next run the dry run allocated, if it still fits an
    /// allocation of up to `want` blocks and is free and not held; once one does not, the
    /// others are not tried (the request took another course).
    pub(super) fn preferred_run(
        &mut self,
        free: impl Fn(&Op<'_>, u64, u64) -> FsResult<bool>,
        want: u64,
    ) -> FsResult<Option<(u64, u64)>> {
        let next = match &mut self.phase {
            Phase::Commit { prefer, .. } => prefer.pop_front(),
            _ => None,
        };
        let Some((start, len)) = next.filter(|&(_, len)| len <= want) else {
            self.drop_preferred();
            return Ok(None);
        };
        if free(self, start, len)? {
            return Ok(Some((start, len)));
        }
        self.drop_preferred();
        Ok(None)
    }

    fn drop_preferred(&mut self) {
        if let Phase::Commit { prefer, .. } = &mut self.phase {
            prefer.clear();
        }
    }
}

impl WritePlan {
    /// Step 2: write the kept bytes into the reserved blocks (no lock held). A full host
    /// (ENOSPC, EDQUOT) is not an error here: the commit then writes the data itself, under
    /// the lock, where making room is possible. Any other failure is the request's data
    /// write error, which the commit answers without retrying (`ops::errors`: a failed write
    /// is never papered over by a second one that happens to succeed).
    pub fn write(&mut self, image: &dyn rvm_core::Storage) {
        for w in &self.writes {
            if let Err(e) = image.write_at(&w.data, w.pos) {
                self.failed = (!super::discard::host_full_io(&e)).then_some(e);
                return;
            }
        }
        self.written = true;
    }

    /// Data bytes the plan writes outside the lock.
    pub fn bytes(&self) -> u64 {
        self.writes.iter().map(|w| w.data.len() as u64).sum()
    }
}

impl Fs {
    /// Step 1 (see the module docs): plan request `f` by a dry run; None when there is no
    /// data to write outside the lock (all of it logged, or into blocks the file owns), or
    /// the dry run failed (the commit, run as an ordinary transaction, answers for it).
    pub fn plan_write<T>(
        &mut self,
        f: impl FnOnce(&mut Op<'_>) -> FsResult<T>,
    ) -> Option<WritePlan> {
        if self.rvm.failure().is_some() {
            return None;
        }
        let (kept, allocated) = self.dry_run(f)?;
        let in_runs = |w: &Prewrite| {
            let first = (w.pos - self.geo.data_offset) / BLOCK_SIZE;
            let last = (w.pos + w.data.len() as u64 - 1 - self.geo.data_offset) / BLOCK_SIZE;
            allocated.iter().any(|&(s, l)| s <= first && last < s + l)
        };
        let writes: Vec<Prewrite> = kept.into_iter().filter(in_runs).collect();
        if writes.is_empty() {
            return None;
        }
        self.reserved.next += 1;
        let ticket = self.reserved.next;
        for &(s, l) in &allocated {
            self.reserved.held.push((ticket, s, l));
            self.discard.forget(s, l);
        }
        Some(WritePlan {
            ticket,
            writes,
            runs: allocated,
            written: false,
            failed: None,
        })
    }

    /// Step 3 (see the module docs): run request `f` for real as [`Fs::transact_data`] does,
    /// taking what `plan` reserved and wrote; the reservation ends here, whatever happens.
    pub fn transact_planned<T>(
        &mut self,
        op: &str,
        ino: u64,
        plan: WritePlan,
        mut f: impl FnMut(&mut Op<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        self.reserved.held.retain(|&(t, _, _)| t != plan.ticket);
        if let Some(e) = plan.failed {
            return Err(self.on_error(FsError::DataWrite(e), op, ino));
        }
        let written: &[Prewrite] = if plan.written { &plan.writes } else { &[] };
        let phase = Phase::Commit {
            written,
            prefer: plan.runs.iter().copied().collect(),
        };
        let r = self.transact_in(op, ino, phase, &mut f);
        match r {
            Err(e) if super::discard::host_full(&e) && self.make_room().unwrap_or(false) => {
                self.transact_on(op, ino, f)
            }
            r => r,
        }
    }
}
