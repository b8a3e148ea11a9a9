//! Log shipping hooks (rvmfs issue 14, docs/format.md section 11.7): what a shipper that
//! copies the committed redo records elsewhere (an object store) needs from the log, in
//! plain Rust (no network, no async):
//!
//! * a **flush tap**: a callback the flush leader calls with the bytes of the records it
//!   has just made durable and their Lsn range ([`Flushed`]), exactly the bytes now in the
//!   log;
//! * a **shipped floor**: truncation never frees the log space of a record at or above the
//!   Lsn the shipper reports shipped ([`Rvm::set_shipped_lsn`]), so an outage makes writers
//!   wait for log space (a full log waits for the floor to move) and never loses a record;
//! * reading the live log from an Lsn ([`Rvm::read_log`]): a shipper that restarts (after
//!   a crash) or whose tap buffer overflowed reads what it lacks from the log itself;
//! * the applied state ([`Rvm::hold_applied`]): while the callback runs no truncation
//!   writes the segments, so they hold exactly the state before the head Lsn (a snapshot).
//!
//! Off by default ([`RvmOptions::ship`](crate::RvmOptions::ship)); off, the flush path pays
//! one `Option` test. The idea is Litestream's (SQLite's WAL shipped with its checkpoints
//! held back until shipped) applied to LRVM's redo log.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::error::{Result, RvmError};
use crate::rvm::Rvm;
use crate::shared::{lock, Shared};
use crate::types::Lsn;

/// Records the flush leader has just written durably: `records` holds whole encoded redo
/// records (docs/format.md section 3.3) with Lsns `[first, next)`, as they are in the log.
#[derive(Debug)]
pub struct Flushed<'a> {
    pub first: Lsn,
    pub next: Lsn,
    pub records: &'a [u8],
}

/// The flush tap: called by the flush leader, under its lock, after each durable log write;
/// it must not block (copy the bytes into a bounded buffer and return).
pub type FlushTap = Box<dyn Fn(&Flushed<'_>) + Send + Sync>;

/// Whole records read back from the live log by [`Rvm::read_log`]: Lsns `[first, next)`.
#[derive(Debug, Default, Clone)]
pub struct LogChunk {
    pub first: Lsn,
    pub next: Lsn,
    pub records: Vec<u8>,
}

/// The shipping state of an instance opened with `ship`.
pub(crate) struct ShipState {
    /// Every record whose seq is below this is shipped: truncation may free it.
    floor: Mutex<Lsn>,
    moved: Condvar,
    tap: Mutex<Option<FlushTap>>,
}

impl ShipState {
    pub(crate) fn new(floor: Lsn) -> ShipState {
        ShipState {
            floor: Mutex::new(floor),
            moved: Condvar::new(),
            tap: Mutex::new(None),
        }
    }

    pub(crate) fn floor(&self) -> Lsn {
        *lock(&self.floor)
    }

    pub(crate) fn tap(&self, f: &Flushed<'_>) {
        if let Some(tap) = &*lock(&self.tap) {
            tap(f);
        }
    }

    /// Wait until the floor is above `above` or `timeout` passed.
    fn wait_above(&self, above: Lsn, timeout: Duration) {
        let g = lock(&self.floor);
        let _ = self
            .moved
            .wait_timeout_while(g, timeout, |f| *f <= above)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// How long a writer waiting for the shipped floor sleeps before it checks again.
const FLOOR_WAIT: Duration = Duration::from_millis(100);

impl Shared {
    /// The truncation limit: the shipped floor, or no limit with shipping off.
    pub(crate) fn truncation_floor(&self) -> Lsn {
        self.ship.as_ref().map_or(Lsn::MAX, ShipState::floor)
    }

    /// A full log that truncation could not shrink: with shipping on, wait a little for the
    /// shipper to move the floor (the caller loops). Without shipping, returns at once.
    pub(crate) fn wait_for_shipping(&self, head_seq: Lsn) {
        if let Some(s) = &self.ship {
            crate::stats::inc(&self.counters.log_ship_waits, 1);
            s.wait_above(head_seq, FLOOR_WAIT);
        }
    }

    fn ship_state(&self) -> Result<&ShipState> {
        self.ship.as_ref().ok_or_else(|| {
            RvmError::InvalidArgument("log shipping is off (RvmOptions::ship)".into())
        })
    }
}

impl Rvm {
    /// Install the flush tap (shipping must be on), or remove it (`None`): from now on
    /// every durable log write by the flush path is passed to `tap`; records written before
    /// (by recovery, or while no tap was installed) are read with [`Rvm::read_log`].
    ///
    /// Errors: `InvalidArgument` if shipping is off.
    pub fn set_flush_tap(&self, tap: Option<FlushTap>) -> Result<()> {
        *lock(&self.sh().ship_state()?.tap) = tap;
        Ok(())
    }

    /// The shipped floor: every record below it may be freed by truncation. `None` with
    /// shipping off. It starts at the head the recovery found (nothing new is freed).
    pub fn shipped_lsn(&self) -> Option<Lsn> {
        self.sh().ship.as_ref().map(ShipState::floor)
    }

    /// Every record with Lsns below `lsn` is shipped (the floor never goes back); wakes the
    /// writers waiting for log space. `lsn` must be a record boundary at or below the
    /// durable Lsn (or the log's tail).
    ///
    /// Errors: `InvalidArgument` if shipping is off or `lsn` is past the durable Lsn.
    pub fn set_shipped_lsn(&self, lsn: Lsn) -> Result<()> {
        let sh = self.sh();
        let s = sh.ship_state()?;
        // The log tail: records written there are durable, though the flush that wrote
        // them may not have advanced the durable Lsn yet (the tap runs before it does).
        let durable = sh.durable_seq().max(lock(&sh.pos).tail_seq);
        if lsn > durable {
            return Err(RvmError::InvalidArgument(format!(
                "shipped Lsn {lsn} is past the durable Lsn {durable}"
            )));
        }
        let mut f = lock(&s.floor);
        *f = (*f).max(lsn);
        drop(f);
        s.moved.notify_all();
        sh.wake_truncator();
        Ok(())
    }

    /// Whole durable records from the one with seq `from`, about `max_bytes` of them (at
    /// least one record if there is one); empty (`first == next == from`) when `from` is
    /// the durable tail. Holds off truncation while it reads, so the records stay put.
    ///
    /// Errors: `InvalidArgument` if `from` is below the log head (truncated: no longer in
    /// the log), not the seq of a record, or past the tail; `Io`, `CorruptLog`.
    pub fn read_log(&self, from: Lsn, max_bytes: usize) -> Result<LogChunk> {
        let sh = self.sh();
        let _trunc = lock(&sh.trunc);
        let p = *lock(&sh.pos);
        if from < p.head_seq || from > p.tail_seq {
            return Err(RvmError::InvalidArgument(format!(
                "Lsn {from} is not in the live log (Lsns {}..{})",
                p.head_seq, p.tail_seq
            )));
        }
        let mut out = LogChunk {
            first: from,
            next: from,
            records: Vec::new(),
        };
        let mut found = from == p.tail_seq;
        sh.log.walk_bytes(&p, |h, bytes| {
            found |= h.seq == from;
            if found && (out.records.is_empty() || out.records.len() < max_bytes) {
                out.records.extend_from_slice(bytes);
                out.next = h.next_seq();
            }
        })?;
        if !found {
            return Err(RvmError::InvalidArgument(format!(
                "Lsn {from} is not the first Lsn of a record in the live log"
            )));
        }
        Ok(out)
    }

    /// Run `f` while no truncation writes the segments, with the head Lsn: every record
    /// below it is applied to the segment storage and none at or above it, so the segment
    /// areas of [`Rvm::storage`] hold exactly the committed state before that Lsn (what a
    /// snapshot reads). Commits go on meanwhile; a writer that finds the log full waits.
    ///
    /// Errors: [`RvmError::Failed`] on a failed instance (a truncation may have stopped
    /// half way).
    pub fn hold_applied<T>(&self, f: impl FnOnce(Lsn) -> T) -> Result<T> {
        let sh = self.sh();
        let _trunc = lock(&sh.trunc);
        sh.healthy()?;
        let head = lock(&sh.pos).head_seq;
        Ok(f(head))
    }
}
