//! Writing file data outside the exclusive filesystem lock (README "Concurrency"): a big
//! write is planned, written, then committed.
//!
//! 1. **Plan** (exclusive lock, [`Fs::plan_write`]): the request runs as a dry run, a
//!    transaction that is aborted at the end. Its data writes into blocks it allocated are
//!    kept (image offset and bytes, [`Prewrite`]) instead of written, and those block runs
//!    are reserved: no other operation's allocation takes them ([`Reservations`], checked
//!    by `extent::alloc_blocks`) and discard never punches them (`Discard::forget`).
//! 2. **Write** (no lock, [`WritePlan::write`]): the kept bytes go into the reserved blocks.
//!    They are free in every state recovery can reach (the allocator gave them out, so their
//!    free is durable), no committed record points at them, and no reader's plan holds them,
//!    so lookups, stats, readdirs and reads of other files run meanwhile.
//! 3. **Commit** (exclusive lock, [`Fs::transact_planned`]): the request runs again, for real,
//!    on the state as it is now. Its allocations take the reserved runs first (when still the
//!    same size and free), and a data write whose offset and bytes equal a kept one that step
//!    2 wrote is skipped (the compare catches a state changed under the plan: an edge block
//!    merged with other old bytes, other blocks, a shorter write). So the commit is the
//!    request itself: whatever happened in between (another write to the file, a truncate,
//!    an unlink, a punch), it is correct; the plan only saves the data write when nothing
//!    changed under it. Anything else (logged data, writes into blocks the file already
//!    owned) is written under the lock as before.
//!
//! Data still precedes the record that points at it: the write of step 2 is done before the
//! transaction of step 3 commits, and is noted as unlogged data (`Rvm::note_unlogged_data`),
//! so the flush that makes that record durable syncs it first. Two writers of one inode need
//! no lock of their own: each commit is a whole request on the current state, and a plan made
//! stale by the other only costs its data write again, under the lock.
//!
//! The bytes of a big write are mostly the request's own (whole blocks, `file::write_blocks`):
//! a kept write that is a slice of the request's data is kept as where it lies in it, not
//! copied, and equals a commit's write when that is the same slice (same address and length:
//! the request's data is borrowed, unchanged, from plan to commit, [`WritePlan`]'s lifetime;
//! no other live buffer can start inside it). Bytes the dry run built (merged edge blocks,
//! zero padding) are copied and compared byte for byte. Copying and comparing every big
//! write's data cost 3.3% and 4.4% of the daemon's samples on sequential writes.

use super::{Fs, Op};
use crate::error::{FsError, FsResult};
use crate::layout::BLOCK_SIZE;
use std::collections::VecDeque;

/// One data write a plan kept: image offset (bytes) and the bytes.
pub struct Prewrite {
    pos: u64,
    bytes: Kept,
}

/// Where the bytes of a kept write are (see the module docs).
enum Kept {
    /// Bytes [at, at+len) of the request's data.
    Request { at: usize, len: usize },
    /// Bytes the dry run built, copied.
    Copy(Vec<u8>),
}

impl Kept {
    /// Keep `data`, written during a dry run of a request whose data is `request`.
    fn of(data: &[u8], request: &[u8]) -> Kept {
        match slice_at(data, request) {
            Some(at) => Kept::Request {
                at,
                len: data.len(),
            },
            None => Kept::Copy(data.to_vec()),
        }
    }

    /// The kept bytes, for a plan of a request whose data is `request`.
    fn get<'r>(&'r self, request: &'r [u8]) -> &'r [u8] {
        match self {
            Kept::Request { at, len } => &request[*at..*at + *len],
            Kept::Copy(bytes) => bytes,
        }
    }

    /// Whether a commit's write of `data` (the same request's, its data `request`) writes
    /// exactly the kept bytes.
    fn is(&self, data: &[u8], request: &[u8]) -> bool {
        match self {
            Kept::Request { at, len } => *len == data.len() && slice_at(data, request) == Some(*at),
            Kept::Copy(bytes) => bytes[..] == *data,
        }
    }

    fn len(&self) -> usize {
        match self {
            Kept::Request { len, .. } => *len,
            Kept::Copy(bytes) => bytes.len(),
        }
    }
}

/// Where `data` starts in `request` if it is a slice of it (by address, not by contents).
fn slice_at(data: &[u8], request: &[u8]) -> Option<usize> {
    let at = (data.as_ptr() as usize).checked_sub(request.as_ptr() as usize)?;
    (at.checked_add(data.len())? <= request.len()).then_some(at)
}

/// A planned write (see the module docs): the request's data (`'r`: from plan to commit),
/// its ticket in [`Reservations`], the kept data writes, and the block runs (first block,
/// blocks) its dry run allocated, in order.
pub struct WritePlan<'r> {
    request: &'r [u8],
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
    /// A dry run of a request writing `request`: unlogged data writes are kept, not written.
    Plan {
        request: &'a [u8],
        kept: Vec<Prewrite>,
    },
    /// The commit of a plan of a request writing `request`: the kept writes step 2 wrote,
    /// the runs to take.
    Commit {
        request: &'a [u8],
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
            Phase::Plan { request, kept } => {
                let bytes = Kept::of(data, request);
                kept.push(Prewrite { pos, bytes });
                true
            }
            Phase::Commit {
                request, written, ..
            } => written
                .iter()
                .any(|w| w.pos == pos && w.bytes.is(data, request)),
        }
    }

    /// In a dry run: true (a logged write is the commit's, under the lock).
    pub(super) fn planning(&self) -> bool {
        matches!(self.phase, Phase::Plan { .. })
    }

    /// In a plan's commit, the next run the dry run allocated, if it still fits an
    /// allocation of up to `want` blocks (the allocator then checks it is free and not held,
    /// `extent::alloc_blocks`); once one does not fit, the others are dropped (the request
    /// took another course).
    pub(super) fn next_preferred(&mut self, want: u64) -> Option<(u64, u64)> {
        let next = match &mut self.phase {
            Phase::Commit { prefer, .. } => prefer.pop_front(),
            _ => None,
        };
        let fits = next.filter(|&(_, len)| len <= want);
        if fits.is_none() {
            self.drop_preferred();
        }
        fits
    }

    /// Forget the runs the dry run allocated that the commit has not taken yet.
    pub(super) fn drop_preferred(&mut self) {
        if let Phase::Commit { prefer, .. } = &mut self.phase {
            prefer.clear();
        }
    }
}

impl WritePlan<'_> {
    /// Step 2: write the kept bytes into the reserved blocks (no lock held). A full host
    /// (ENOSPC, EDQUOT) is not an error here: the commit then writes the data itself, under
    /// the lock, where making room is possible. Any other failure is the request's data
    /// write error, which the commit answers without retrying (`ops::errors`: a failed write
    /// is never papered over by a second one that happens to succeed).
    pub fn write(&mut self, image: &dyn rvm_core::Storage) {
        for w in &self.writes {
            if let Err(e) = image.write_at(w.bytes.get(self.request), w.pos) {
                self.failed = (!super::discard::host_full_io(&e)).then_some(e);
                return;
            }
        }
        self.written = true;
    }

    /// Data bytes the plan writes outside the lock.
    pub fn bytes(&self) -> u64 {
        self.writes.iter().map(|w| w.bytes.len() as u64).sum()
    }
}

impl Fs {
    /// Step 1 (see the module docs): plan request `f`, which writes `request` (the data of
    /// the write request, borrowed until the commit), by a dry run; None when there is no
    /// data to write outside the lock (all of it logged, or into blocks the file owns), or
    /// the dry run failed (the commit, run as an ordinary transaction, answers for it).
    pub fn plan_write<'r, T>(
        &mut self,
        request: &'r [u8],
        f: impl FnOnce(&mut Op<'_>) -> FsResult<T>,
    ) -> Option<WritePlan<'r>> {
        if self.rvm.failure().is_some() {
            return None;
        }
        let (kept, allocated) = self.dry_run(request, f)?;
        let in_runs = |w: &Prewrite| {
            let first = (w.pos - self.geo.data_offset) / BLOCK_SIZE;
            let last = (w.pos + w.bytes.len() as u64 - 1 - self.geo.data_offset) / BLOCK_SIZE;
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
            request,
            ticket,
            writes,
            runs: allocated,
            written: false,
            failed: None,
        })
    }

    /// Step 3 (see the module docs): run request `f` for real as [`Fs::transact_data`] does,
    /// taking what `plan` reserved and wrote; the reservation ends here, whatever happens.
    /// `f` is the request `plan` was made for (another one is correct too, and only writes
    /// its data itself).
    pub fn transact_planned<T>(
        &mut self,
        op: &str,
        ino: u64,
        plan: WritePlan<'_>,
        mut f: impl FnMut(&mut Op<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        self.reserved.held.retain(|&(t, _, _)| t != plan.ticket);
        if let Some(e) = plan.failed {
            return Err(self.on_error(FsError::DataWrite(e), op, ino));
        }
        let written: &[Prewrite] = if plan.written { &plan.writes } else { &[] };
        let phase = Phase::Commit {
            request: plan.request,
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
