//! Statistics of an RVM instance: the public [`Stats`] snapshot and the atomic
//! [`Counters`] the commit, flush, truncation, recovery and mapping paths bump. LRVM keeps
//! such counters too (its `rvm_statistics`); the LRVM §5.2 savings are among them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::shared::{lock, Shared};
use crate::types::Lsn;
#[cfg(doc)]
use crate::Rvm;

/// Counters (see [`Rvm::stats`]). Byte counts in bytes; positions are logical log positions.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Transactions committed with `Flush`.
    pub commits_flush: u64,
    /// Transactions committed with `NoFlush`.
    pub commits_no_flush: u64,
    /// Transactions aborted (explicitly, by drop, or undone after a failed commit).
    pub aborts: u64,
    /// Log bytes saved by coalescing overlapping and adjacent ranges within a transaction
    /// (LRVM §5.2 intra-transaction optimization): the record each transaction would have
    /// had with one range per `set_range`, minus the record it got.
    pub bytes_saved_intra: u64,
    /// Log bytes saved by merging pending no-flush records before writing them (LRVM §5.2
    /// inter-transaction optimization): their encoded size minus the merged records' size.
    pub bytes_saved_inter: u64,
    /// Records folded into another record by the inter-transaction optimization.
    pub records_merged: u64,
    /// Total and longest time spent in one truncation.
    pub truncation_time: Duration,
    pub truncation_time_max: Duration,
    /// Time `initialize` took to recover (scan and validate the log, take the spool, write
    /// external ranges); applying the log is truncation's, later.
    pub recovery_time: Duration,
    /// Records written to the log.
    pub records_logged: u64,
    pub bytes_logged: u64,
    /// Batches written by a group-commit leader (records_logged / log_writes = sharing).
    pub log_writes: u64,
    /// `storage.sync()` calls made by flushes (truncations not included).
    pub flush_syncs: u64,
    pub truncations: u64,
    pub bytes_truncated: u64,
    /// Records recovered by `initialize` (log + spool): left live in the log (lazy
    /// recovery: `map` overlays them, truncation applies them later).
    pub records_recovered: u64,
    /// Live log bytes right after recovery (what truncation still had to apply).
    pub bytes_recovered: u64,
    /// Records of a poisoned spool (its instance failed before they were durable) that
    /// `initialize` did not replay.
    pub spool_records_discarded: u64,
    /// Flush requests: `Rvm::flush` calls and `end(Flush)` commits (group commit: see
    /// `log_writes` and `flush_syncs` for the I/O they took).
    pub flushes: u64,
    /// Times a group-commit leader found the log full and had to truncate (or wait for the
    /// truncator) before writing: the only way truncation makes a commit wait.
    pub log_full_waits: u64,
    /// Times such a leader then waited for log shipping to move its floor (`RvmOptions::ship`).
    pub log_ship_waits: u64,
    /// `map` and `unmap` calls (regions dropped without `unmap` are not counted).
    pub maps: u64,
    pub unmaps: u64,
    /// Total time `map` spent overlaying live log records onto new mappings.
    pub map_overlay_time: Duration,
    /// Duration of the last truncation.
    pub truncation_time_last: Duration,
    /// A truncation is running right now.
    pub truncating: bool,
    pub log_head: u64,
    pub log_tail: u64,
    pub log_capacity: u64,
    /// Lsn the next commit gets.
    pub next_lsn: Lsn,
    /// Every Lsn below this one is durable in the log.
    pub durable_lsn: Lsn,
    /// Bytes of no-flush records committed and not yet written to the log (in the spool, or
    /// in memory without one), and the bytes they may take before the spool grows (or a
    /// commit forces a flush): the spool's fill.
    pub spool_bytes: u64,
    pub spool_capacity: u64,
}

/// The live counters behind [`Stats`] (same names; times in nanoseconds), bumped with
/// relaxed atomics so no commit path takes a lock for them.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) commits_flush: AtomicU64,
    pub(crate) commits_no_flush: AtomicU64,
    pub(crate) aborts: AtomicU64,
    pub(crate) bytes_saved_intra: AtomicU64,
    pub(crate) bytes_saved_inter: AtomicU64,
    pub(crate) records_merged: AtomicU64,
    pub(crate) truncation_ns: AtomicU64,
    pub(crate) truncation_ns_max: AtomicU64,
    pub(crate) recovery_ns: AtomicU64,
    pub(crate) records_logged: AtomicU64,
    pub(crate) bytes_logged: AtomicU64,
    pub(crate) log_writes: AtomicU64,
    pub(crate) flush_syncs: AtomicU64,
    pub(crate) truncations: AtomicU64,
    pub(crate) bytes_truncated: AtomicU64,
    pub(crate) records_recovered: AtomicU64,
    pub(crate) bytes_recovered: AtomicU64,
    pub(crate) spool_records_discarded: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) log_full_waits: AtomicU64,
    pub(crate) log_ship_waits: AtomicU64,
    pub(crate) maps: AtomicU64,
    pub(crate) unmaps: AtomicU64,
    pub(crate) map_overlay_ns: AtomicU64,
    pub(crate) truncation_ns_last: AtomicU64,
}

/// Add `n` to counter `c`.
pub(crate) fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Shared {
    /// A snapshot of the counters and log positions ([`Rvm::stats`]).
    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (next_lsn, durable_lsn, spool_bytes, spool_capacity) = {
            let g = lock(&self.inner);
            let spool = (g.pending.unflushed().len() as u64, g.pending.capacity());
            (g.next_seq, g.durable_seq, spool.0, spool.1)
        };
        let p = *lock(&self.pos);
        Stats {
            commits_flush: ld(&c.commits_flush),
            commits_no_flush: ld(&c.commits_no_flush),
            aborts: ld(&c.aborts),
            bytes_saved_intra: ld(&c.bytes_saved_intra),
            bytes_saved_inter: ld(&c.bytes_saved_inter),
            records_merged: ld(&c.records_merged),
            truncation_time: Duration::from_nanos(ld(&c.truncation_ns)),
            truncation_time_max: Duration::from_nanos(ld(&c.truncation_ns_max)),
            recovery_time: Duration::from_nanos(ld(&c.recovery_ns)),
            records_logged: ld(&c.records_logged),
            bytes_logged: ld(&c.bytes_logged),
            log_writes: ld(&c.log_writes),
            flush_syncs: ld(&c.flush_syncs),
            truncations: ld(&c.truncations),
            bytes_truncated: ld(&c.bytes_truncated),
            records_recovered: ld(&c.records_recovered),
            bytes_recovered: ld(&c.bytes_recovered),
            spool_records_discarded: ld(&c.spool_records_discarded),
            flushes: ld(&c.flushes),
            log_full_waits: ld(&c.log_full_waits),
            log_ship_waits: ld(&c.log_ship_waits),
            maps: ld(&c.maps),
            unmaps: ld(&c.unmaps),
            map_overlay_time: Duration::from_nanos(ld(&c.map_overlay_ns)),
            truncation_time_last: Duration::from_nanos(ld(&c.truncation_ns_last)),
            truncating: self.truncating.load(Ordering::Relaxed),
            log_head: p.head_pos,
            log_tail: p.tail_pos,
            log_capacity: self.log.capacity,
            next_lsn,
            durable_lsn,
            spool_bytes,
            spool_capacity,
        }
    }
}
