//! The state one RVM instance shares between its [`Rvm`] handles, its mapped
//! [`Region`](crate::Region)s and its background threads: the log and its live positions,
//! the pending no-flush records, the group-commit leader's lock, the tunables and the
//! counters (LRVM §4: one RVM per process, many regions and transactions over it).
//!
//! The behaviour lives beside the concept it implements, in `impl Shared` blocks of
//! `recovery`, `commit`, `truncate`, `background`, `mapping` and `stats`.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::background::Signal;
use crate::commit::FlushScratch;
use crate::failure::Failure;
use crate::log::{Log, Positions};
use crate::options::RvmOptions;
use crate::spool::Pending;
use crate::stats::{inc, Counters};
use crate::storage::{Area, Storage};
use crate::types::Lsn;
#[cfg(doc)]
use crate::Rvm;

/// Lock `m`, ignoring poisoning: every critical section leaves its data consistent, so a
/// panic in another holder is no reason to fail this one.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sequence numbers and pending records, under [`Shared::inner`].
pub(crate) struct Inner {
    /// Seq of the next commit.
    pub(crate) next_seq: u64,
    /// Every seq below is durable in the log.
    pub(crate) durable_seq: u64,
    pub(crate) pending: Pending,
    pub(crate) mapped: Vec<Area>,
    /// A group-commit leader is writing a batch (see `Shared::flush_upto`).
    pub(crate) leading: bool,
}

impl Inner {
    pub(crate) fn next_seq_minus_one(&self) -> Lsn {
        self.next_seq.saturating_sub(1)
    }
}

pub(crate) struct Shared {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) opts: RvmOptions,
    pub(crate) log: Log,
    /// Held by the group-commit leader: the only writer at the log tail. Holds its buffers
    /// (a flush step's records and their merged form), kept from one flush to the next.
    pub(crate) leader: Mutex<FlushScratch>,
    /// Signalled when a leader resigns (`durable_seq` advanced or the leader failed).
    pub(crate) durable_cv: Condvar,
    /// Live log positions; short critical sections only.
    pub(crate) pos: Mutex<Positions>,
    /// Held by the truncator: the status generation last written.
    pub(crate) trunc: Mutex<u64>,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) counters: Counters,
    /// read_only: recovered (offset, bytes) in order, applied by `map`.
    pub(crate) recovered: Vec<(u64, Vec<u8>)>,
    pub(crate) signal: Signal,
    /// Background truncation starts when the log is this percent full (0 = never).
    pub(crate) threshold: AtomicU64,
    /// LRVM §5.2 optimizations (see `Rvm::set_optimizations`).
    pub(crate) intra: AtomicBool,
    pub(crate) inter: AtomicBool,
    /// Checked mode (see `RvmOptions::checked`, `Rvm::set_options`).
    pub(crate) checked: AtomicBool,
    /// The background flush interval (`None` = off); the timer thread rereads it.
    pub(crate) commit_interval: Mutex<Option<Duration>>,
    /// A truncation is running (for `Stats::truncating`).
    pub(crate) truncating: AtomicBool,
    /// `ordered` pre-syncs only when `unlogged` is set (see `Rvm::set_ordered_on_demand`).
    pub(crate) on_demand: AtomicBool,
    /// Notes of unlogged data (`note_unlogged_data`) so far, and how many of them the last
    /// successful data sync covers: data is pending while they differ. A note made during a
    /// sync stays pending, and a failed sync clears nothing (fsyncgate).
    pub(crate) unlogged_noted: AtomicU64,
    pub(crate) unlogged_synced: AtomicU64,
    /// The first storage error; set once, then every modifying request is refused.
    pub(crate) failure: OnceLock<Failure>,
    /// The spool file (another descriptor), poisoned at the first failure (`spool`).
    pub(crate) spool_file: Option<std::fs::File>,
    /// Log shipping (`RvmOptions::ship`): the shipped floor and the flush tap.
    pub(crate) ship: Option<crate::ship::ShipState>,
}

impl Shared {
    /// Whether `area` of the segment storage overlaps the log (never, when the log has a
    /// storage of its own).
    pub(crate) fn overlaps_log(&self, area: &Area) -> bool {
        Arc::ptr_eq(&self.storage, &self.log.storage) && area.overlaps(&self.opts.log)
    }
}

impl Shared {
    /// Every Lsn below this one was applied to the segments by truncation.
    pub(crate) fn applied_seq(&self) -> Lsn {
        lock(&self.pos).head_seq
    }

    /// Every Lsn below this one is durable in the log ([`Rvm::durable_lsn`]).
    pub(crate) fn durable_seq(&self) -> Lsn {
        lock(&self.inner).durable_seq
    }

    /// The last Lsn assigned (what a transaction that logs nothing returns).
    pub(crate) fn last_assigned_lsn(&self) -> Lsn {
        lock(&self.inner).next_seq_minus_one()
    }

    /// Whether `area` overlaps a mapped region.
    pub(crate) fn overlaps_mapped(&self, area: &Area) -> bool {
        lock(&self.inner).mapped.iter().any(|a| a.overlaps(area))
    }

    /// Forget the mapped region of `area` (its [`Region`](crate::Region) is gone).
    pub(crate) fn forget_mapped(&self, area: Area) {
        lock(&self.inner).mapped.retain(|a| *a != area);
    }

    pub(crate) fn note_abort(&self) {
        inc(&self.counters.aborts, 1);
    }

    pub(crate) fn note_intra_saved(&self, n: u64) {
        inc(&self.counters.bytes_saved_intra, n);
    }
}
