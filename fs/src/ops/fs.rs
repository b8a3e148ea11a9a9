//! The mounted filesystem (`Fs`) and one operation in progress (`Op`): `Fs::transact` runs an
//! operation as one RVM transaction.

use super::data_log::DataLog;
use super::discard::{Discard, RunEvent};
use super::errors::Errors;
use super::geo::{Geo, Hints};
use super::pending::PendingData;
use super::shrinks::Shrinks;
use super::write_plan::{Phase, Prewrite, Reservations};
use crate::error::{errno, FsResult};
use crate::layout::header::Header;
use crate::layout::inode::Inode;
use crate::layout::pod;
use crate::layout::superblock::Superblock;
use crate::layout::superblock_backup;
use crate::store::superblock;
use rvm_core::{CommitMode, Lsn, Region, RestoreMode, Rvm, Storage, Transaction};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One operation in progress: its transaction plus what it needs to reach.
pub struct Op<'a> {
    pub tx: Transaction<'a>,
    pub geo: &'a Geo,
    pub hints: &'a mut Hints,
    /// Open handles per inode (files unlinked while open become orphans, not freed).
    pub open: &'a HashMap<u64, u32>,
    pub rvm: &'a Rvm,
    pub dlog: &'a mut DataLog,
    /// Data blocks (first, last) this transaction logged.
    pub logged: Vec<(u64, u64)>,
    /// `Rvm::applied_lsn` when first needed (older is safe: more blocks count as hot).
    pub(super) applied: Option<Lsn>,
    /// Files shrunk by commits that may not be durable yet (`shrinks`).
    pub(super) shrinks: &'a mut Shrinks,
    /// Files this transaction shrank (`file::truncate`).
    pub(super) shrunk: Vec<u64>,
    /// Data block runs this transaction freed and allocated, in order (for `Discard`).
    pub(super) runs: Vec<RunEvent>,
    /// Runs freed by earlier transactions: the allocator skips those whose free is not
    /// durable yet (`extent::alloc_blocks`).
    pub(super) frees: &'a Discard,
    /// Block runs reserved by planned writes (`write_plan`): the allocator skips them.
    pub(super) reserved: &'a Reservations,
    /// Direct, a planned write's dry run, or its commit (`write_plan`).
    pub(super) phase: Phase<'a>,
    /// Blocks written deferred by earlier transactions, not yet applied (`pending`).
    pub(super) pending: &'a PendingData,
    /// This transaction's deferred writes: image offset of whole blocks, their bytes.
    pub(super) deferred: Vec<(u64, Vec<u8>)>,
}

impl Op<'_> {
    pub fn bytes(&self) -> &[u8] {
        self.tx.bytes()
    }
    pub fn inode(&self, ino: u64) -> FsResult<Inode> {
        self.geo.inode(self.tx.bytes(), ino)
    }
    pub fn put_inode(&mut self, ino: u64, inode: &Inode) -> FsResult<()> {
        let at = self.geo.inode_offset(ino)?;
        pod::put(&mut self.tx, at, inode)
    }
    pub fn superblock(&self) -> FsResult<Superblock> {
        superblock(self.tx.bytes())
    }
}

/// Durability of each operation's commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Commit to the spool: survives kill -9 of the daemon; disk within the commit interval.
    Spool,
    /// Commit with flush: durable on disk before the reply (the `sync` mount option).
    Sync,
}

/// The mounted filesystem's state, behind the daemon's lock (a `RwLock`: read-only requests
/// share it, see README "Concurrency"). Everything a read-only request changes is interior:
/// the open-handle counts (`open`, a mutex taken after the filesystem lock) and atomics.
pub struct Fs {
    pub region: Region,
    pub rvm: Arc<Rvm>,
    pub header: Header,
    pub geo: Geo,
    pub hints: Hints,
    /// Open handles per inode (files only); open without O_TRUNC and release change it under a shared
    /// filesystem lock, so it has its own (innermost) mutex.
    pub open: Mutex<HashMap<u64, u32>>,
    pub durability: Durability,
    /// The caller makes `Durability::Sync` commits durable itself: they commit to the spool
    /// (`CommitMode::NoFlush`) and set `unflushed`, and the caller flushes after releasing the
    /// filesystem lock, so concurrent sync requests share one log flush (group commit). The
    /// FUSE daemon sets it; library users (fsck's tests) get flushing commits.
    pub flush_by_caller: bool,
    /// A `Sync` commit under `flush_by_caller` is waiting for its flush (see there).
    pub unflushed: bool,
    pub dlog: DataLog,
    /// Transactions committed since mount.
    pub commits: u64,
    /// The error state and policy (`-o errors=`).
    pub errors: Errors,
    /// Freed data blocks waiting to be given back to the host (`-o discard`; off unless the
    /// daemon turns it on).
    pub discard: Discard,
    /// Block runs reserved by writes between their plan and their commit (`write_plan`).
    pub reserved: Reservations,
    /// Blocks written deferred, until truncation applies them (`pending`); `geo.image`
    /// reads through it.
    pub pending: Arc<PendingData>,
    /// The heap's mapping is advised `MADV_RANDOM` (`heap_advice`).
    pub heap_advised: bool,
    /// Files shrunk by commits that may not be durable yet (`shrinks`).
    pub shrinks: Shrinks,
}

/// What a dry run kept: its data writes and the block runs (first, blocks) it allocated.
type DryRun = (Vec<Prewrite>, Vec<(u64, u64)>);

/// The errno a dry run ends with (`Fs::dry_run`): it is aborted, never committed.
const DRY_RUN: i32 = libc::ECANCELED;

/// Every this many commits, region pages whose changes truncation has applied are given back
/// (`Region::release_applied_pages`) and pages only read are unmapped
/// (`Region::release_clean_pages`), so the daemon's memory does not grow with the image.
const RELEASE_EVERY: u64 = 512;

/// Bytes of changed region pages (private copies) above which a truncation is requested,
/// so the next release can give them back: bounds the daemon's memory (issue 6).
const DIRTY_BUDGET: u64 = 16 << 20;

impl Fs {
    /// Wrap a mapped region (after recovery).
    pub fn new(
        region: Region,
        rvm: Arc<Rvm>,
        header: Header,
        image: Arc<dyn Storage>,
    ) -> FsResult<Fs> {
        let sb = superblock(region.bytes())?;
        let errors = Errors::new(image.clone(), rvm.options().read_only);
        let pending = PendingData::new(image);
        let geo = Geo::new(&header, &sb, pending.clone())?;
        // New data blocks are either logged or noted (`DataLog`): flushes sync first only
        // after noted ones.
        rvm.set_ordered_on_demand(true);
        let mut dlog = DataLog::default();
        if rvm.stats().records_recovered > 0 {
            // Live records may carry file data: log every data write until truncation has
            // applied them (`DataLog::recovered`), and ask for that truncation now.
            dlog.recovered = rvm.durable_lsn();
            rvm.request_truncation();
        }
        Ok(Fs {
            region,
            rvm,
            header,
            geo,
            hints: Hints::default(),
            open: Mutex::default(),
            durability: Durability::Spool,
            flush_by_caller: false,
            unflushed: false,
            dlog,
            commits: 0,
            errors,
            discard: Discard::default(),
            reserved: Reservations::default(),
            pending,
            heap_advised: false,
            shrinks: Shrinks::default(),
        })
    }

    /// The region's bytes, for read-only operations.
    pub fn bytes(&self) -> &[u8] {
        self.region.bytes()
    }

    /// Run `f` for a request of a caller who is root (`unprivileged` false) or not: data
    /// blocks reserved for root (`mkfs -m`) are only given to root (as ext4's
    /// `s_r_blocks_count`).
    pub fn as_caller<T>(&mut self, unprivileged: bool, f: impl FnOnce(&mut Fs) -> T) -> T {
        self.hints.unprivileged = unprivileged;
        let r = f(self);
        self.hints.unprivileged = false;
        r
    }

    /// Run `f` as one transaction: commit on Ok, abort (restoring every byte) on Err. See
    /// [`Fs::transact_on`], for a request with no name.
    pub fn transact<T>(&mut self, f: impl FnOnce(&mut Op<'_>) -> FsResult<T>) -> FsResult<T> {
        self.transact_on("request", 0, f)
    }

    /// Run `f` as one transaction for request `op` on inode `ino` (names for the error
    /// log and record). Once the filesystem is in its error state (`Rvm::failure`), answers
    /// EIO without trying; a storage error met on the way is handled by the error policy
    /// (`ops::errors`).
    pub fn transact_on<T>(
        &mut self,
        op: &str,
        ino: u64,
        f: impl FnOnce(&mut Op<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        self.transact_in(op, ino, Phase::Direct, f)
    }

    /// [`Fs::transact_on`] in write phase `phase` (`write_plan`).
    pub(super) fn transact_in<T>(
        &mut self,
        op: &str,
        ino: u64,
        phase: Phase<'_>,
        f: impl FnOnce(&mut Op<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        if let Some(failure) = self.rvm.failure() {
            self.report_failure(&failure, op, ino);
            return errno(libc::EIO);
        }
        self.run(phase, f).map_err(|e| self.on_error(e, op, ino))
    }

    /// A planned write's dry run (`write_plan`): run `f`, a request writing `request`, as a
    /// transaction and abort it; returns the data writes it kept and the block runs it
    /// allocated, or None if `f` failed.
    pub(super) fn dry_run<T>(
        &mut self,
        request: &[u8],
        f: impl FnOnce(&mut Op<'_>) -> FsResult<T>,
    ) -> Option<DryRun> {
        let mut out = None;
        let phase = Phase::Plan {
            request,
            kept: Vec::new(),
        };
        let r = self.run(phase, |op| {
            let r = f(op);
            if let (Ok(_), Phase::Plan { kept, .. }) = (&r, std::mem::take(&mut op.phase)) {
                let allocated = op.runs.iter().filter_map(|ev| match *ev {
                    RunEvent::Allocated(s, l) => Some((s, l)),
                    RunEvent::Freed(..) => None,
                });
                out = Some((kept, allocated.collect()));
            }
            // Never commit: end the dry run as an aborted transaction.
            errno::<()>(DRY_RUN)
        });
        debug_assert!(r.is_err());
        out
    }

    /// The transaction itself (see [`Fs::transact_on`]).
    fn run<T>(
        &mut self,
        phase: Phase<'_>,
        f: impl FnOnce(&mut Op<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        let mode = match self.durability {
            Durability::Sync if !self.flush_by_caller => CommitMode::Flush,
            _ => CommitMode::NoFlush,
        };
        // The runs the transaction freed and allocated, and how it ended: committed at an
        // Lsn, failed to commit (None), or aborted (Err: whether for want of host space).
        // The backup superblock follows every change of the primary, in the same record.
        let backup = superblock_backup::offset(&self.header);
        let before = superblock_backup::snapshot(self.region.bytes());
        let (result, runs, ended) = {
            let open = lock_open(&self.open);
            let mut op = Op {
                tx: self.region.begin_transaction(RestoreMode::Restore),
                geo: &self.geo,
                hints: &mut self.hints,
                open: &open,
                rvm: &self.rvm,
                dlog: &mut self.dlog,
                shrinks: &mut self.shrinks,
                shrunk: Vec::new(),
                logged: Vec::new(),
                applied: None,
                runs: Vec::new(),
                frees: &self.discard,
                reserved: &self.reserved,
                phase,
                pending: &self.pending,
                deferred: Vec::new(),
            };
            let done = f(&mut op).and_then(|value| match backup {
                Some(at) => superblock_backup::mirror(&mut op.tx, at, &before).map(|()| value),
                None => Ok(value),
            });
            match done {
                Ok(value) => {
                    let Op {
                        tx,
                        logged,
                        applied,
                        dlog: d,
                        rvm,
                        runs,
                        deferred,
                        pending,
                        shrinks,
                        shrunk,
                        ..
                    } = op;
                    let lsn = tx.end(mode);
                    let at = lsn.as_ref().ok().copied();
                    d.note_commit(logged, at, applied, rvm);
                    if !shrunk.is_empty() {
                        shrinks.note(&shrunk, at, rvm.durable_lsn());
                    }
                    if !deferred.is_empty() {
                        // A commit whose log write failed stays in the mapped region (as a
                        // journal abort leaves ext4's caches), its checksums included: its
                        // deferred bytes stay readable with it. Nothing is truncated after a
                        // failure, so they are never pruned (Lsn::MAX) nor written.
                        pending.insert(deferred, at.unwrap_or(Lsn::MAX));
                    }
                    (lsn.map(|_| value).map_err(Into::into), runs, Ok(at))
                }
                Err(e) => {
                    if let Err(abort) = op.tx.abort() {
                        log::error!("abort after {e} failed: {abort}");
                    }
                    let full = super::discard::host_full(&e);
                    (Err(e), std::mem::take(&mut op.runs), Err(full))
                }
            }
        };
        self.after_transaction(mode, ended, runs);
        result
    }

    /// Housekeeping after every transaction: note a `-o sync` commit left in the spool, hand
    /// its freed and allocated runs to discard (`ended`: committed at an Lsn or not, or
    /// aborted, and whether for want of host space), prune the logged overwrites truncation
    /// applied, and every [`RELEASE_EVERY`] commits drop region pages.
    fn after_transaction(
        &mut self,
        mode: CommitMode,
        ended: Result<Option<Lsn>, bool>,
        runs: Vec<RunEvent>,
    ) {
        if matches!(ended, Ok(Some(_))) {
            // A `-o sync` commit left in the spool: the caller flushes it after the lock.
            self.unflushed |= mode == CommitMode::NoFlush && self.durability == Durability::Sync;
        }
        match ended {
            Ok(at) => self.discard.note_commit(at, runs),
            Err(true) => self.discard.note_abort(runs),
            Err(false) => {}
        }
        self.commits += 1;
        self.discard_ready();
        if !self.pending.is_empty() {
            self.pending.prune(self.rvm.applied_lsn());
            if self.pending.over_budget() {
                self.rvm.request_truncation();
            }
        }
        if self.commits.is_multiple_of(RELEASE_EVERY) {
            self.region.release_applied_pages();
            // Pages only read stay mapped too (lookups in a big directory touch every leaf
            // over time, and each fault maps its neighbours as well): unmap them, the page
            // cache keeps them.
            self.region.release_clean_pages();
            self.advise_heap(); // the heap may have grown past its readahead size
            if self.region.dirty_bytes() > DIRTY_BUDGET {
                // Changed pages stay private until truncation applies their records: ask
                // for one early rather than let them pile up until the log is half full.
                self.rvm.request_truncation();
            }
        }
    }

    /// Inode `ino` (read-only).
    pub fn inode(&self, ino: u64) -> FsResult<Inode> {
        self.geo.inode(self.region.bytes(), ino)
    }

    /// The open-handle counts, locked (see [`Fs::open`]).
    pub fn open_handles(&self) -> MutexGuard<'_, HashMap<u64, u32>> {
        lock_open(&self.open)
    }
}

/// Take the open-handle lock even if a holder panicked (a count is one plain store).
fn lock_open(open: &Mutex<HashMap<u64, u32>>) -> MutexGuard<'_, HashMap<u64, u32>> {
    open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
