//! Data logging (ext4's data=journal, for small writes): which data-area writes go into the
//! redo record as well as in place, and which are ordered before the next flush instead.

use super::Op;
use crate::error::{FsError, FsResult};
use rvm_core::{Lsn, Rvm};
use std::collections::BTreeMap;

/// Requests writing at most this many bytes log their new blocks' data (see [`DataLog`]).
pub const DATA_LOG_MAX_WRITE: usize = 64 << 10;
/// Data bytes logged between two requests for durability (fsync, `sync` commits) before new
/// blocks fall back to ordered writes.
pub const DATA_LOG_BUDGET: u64 = 8 << 20;

/// Data logging (ext4's data=journal, for small writes): the data of small writes into new
/// blocks goes into the transaction's redo record as well as in place
/// (`Transaction::log_external`), so a flush needs no sync to order it before the record;
/// one sync then makes an fsync durable. Data writes that are not logged call
/// `Rvm::note_unlogged_data`, so the next flush syncs them first (ordered data): the
/// flush's own log write is durable for the log range only.
///
/// Recovery replays the logged data of every live record; so while a record carrying a
/// block's data is live, every later write of that block is logged too (`hot`), and replay
/// ends with the block's last value.
#[derive(Default)]
pub struct DataLog {
    /// Data block -> Lsn of the last record carrying bytes of it (ordered: a run of blocks
    /// is one range query, [`DataLog::carries`]).
    pub hot: BTreeMap<u64, Lsn>,
    /// Prune `hot` (drop entries of applied records) when it grows past this.
    prune_at: usize,
    /// Bytes logged since `Rvm::durability_requests` was `epoch`: the budget renews only
    /// when someone asks for durability (an fsync, a `sync` mount's commit), so a bulk
    /// writer that never fsyncs (tar) writes its data once, not into the log as well.
    used: u64,
    epoch: u64,
    /// Records below this Lsn were recovered at mount: `hot` does not know which blocks they
    /// carry, so until truncation applies them every data write is logged (else replaying
    /// them after a crash would write their old data over the newer unlogged bytes: stale
    /// data, and a block that fails its checksum). 0 = nothing was recovered.
    pub recovered: Lsn,
}

impl DataLog {
    /// Whether a live record (its Lsn at or above `applied`, `Rvm::applied_lsn`) carries
    /// bytes of one of data blocks [first, last].
    pub fn carries(&self, first: u64, last: u64, applied: Lsn) -> bool {
        self.hot.range(first..=last).any(|(_, &lsn)| lsn >= applied)
    }

    /// After a commit (`lsn`, or None when it failed): the blocks the transaction logged are
    /// hot until its record is applied. `applied` is the operation's `Rvm::applied_lsn`, if it
    /// read one. A failed commit may still have queued the record: its blocks stay hot until
    /// restart (conservative).
    pub(super) fn note_commit(
        &mut self,
        logged: Vec<(u64, u64)>,
        lsn: Option<Lsn>,
        applied: Option<Lsn>,
        rvm: &Rvm,
    ) {
        if logged.is_empty() {
            return;
        }
        let lsn = lsn.unwrap_or(Lsn::MAX);
        for (first, last) in logged {
            for b in first..=last {
                self.hot.insert(b, lsn);
            }
        }
        if self.hot.len() > self.prune_at {
            let applied = applied.unwrap_or(0).max(rvm.applied_lsn());
            self.hot.retain(|_, l| *l >= applied);
            self.prune_at = (self.hot.len() * 2).max(4096);
        }
    }
}

impl Op<'_> {
    /// Write `data` at absolute image offset `pos` in the data area. `fresh`: the blocks
    /// are new to the file (allocated or unwritten until now), so ordered data applies;
    /// `small`: part of a small request (see [`DataLog`]).
    pub fn write_data(&mut self, pos: u64, data: &[u8], fresh: bool, small: bool) -> FsResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let bs = crate::layout::BLOCK_SIZE;
        let first = (pos - self.geo.data_offset) / bs;
        let last = (pos + data.len() as u64 - 1 - self.geo.data_offset) / bs;
        let replayable = self.replayable(small)?;
        let hot = replayable
            || !self.dlog.hot.is_empty() && {
                let applied = *self.applied.get_or_insert_with(|| self.rvm.applied_lsn());
                self.dlog.carries(first, last, applied)
            };
        let pending = self.pending.any(pos, pos + data.len() as u64);
        let log = pending || hot || (fresh && small && self.log_budget(data.len() as u64));
        if log {
            if self.planning() {
                return Ok(()); // logged data is the commit's, under the lock (`write_plan`)
            }
            if pending {
                // Truncation will write the pending bytes in place: so must this.
                return self.write_deferred(pos, data);
            }
            if fresh {
                // New blocks may need host space (a sparse image on a full host): take it
                // with a plain write first, so ENOSPC is this request's answer (nothing
                // committed points at the blocks) and not a failed external write, which
                // would fail the whole instance. `log_external` then rewrites the same bytes.
                self.geo
                    .image
                    .write_at(data, pos)
                    .map_err(data_write_error)?;
            }
            self.tx.log_external(pos, data)?;
            self.dlog.used += data.len() as u64;
            self.logged.push((first, last));
        } else {
            // A planned write's dry run keeps the bytes; its commit finds them written.
            if !self.planned_write(pos, data) {
                self.geo
                    .image
                    .write_at(data, pos)
                    .map_err(data_write_error)?;
            }
            // Every unlogged write is ordered before the next flush's records: new blocks
            // (their record points at them) and zeroed tails alike (a record that grows
            // the file must not make stale bytes visible after a power loss).
            if !self.planning() {
                self.rvm.note_unlogged_data();
            }
        }
        Ok(())
    }
}

impl Op<'_> {
    /// Whether records recovered at mount may still be replayed (`DataLog::recovered`), so
    /// this write's data must be logged. A write that is not `small` first has truncation
    /// apply them (the truncation the mount asked for, done now): logged whole, a big write
    /// could outgrow the log (`RecordTooLarge`: a false error, seen when the first write
    /// after recovery came before the background truncation) and would write its data
    /// twice. Once they are applied this costs one comparison. With log shipping on,
    /// truncation keeps unshipped records back (`rvm_core::ship`): those still count, and
    /// each big write until they are shipped asks again (a truncation with nothing it may
    /// apply returns at once). Errors: the truncation's (it fails the instance).
    fn replayable(&mut self, small: bool) -> FsResult<bool> {
        let recovered = self.dlog.recovered;
        if recovered == 0 {
            return Ok(false);
        }
        let applied = *self.applied.get_or_insert_with(|| self.rvm.applied_lsn());
        if applied >= recovered || small {
            return Ok(applied < recovered);
        }
        self.rvm.truncate()?;
        let applied = self.rvm.applied_lsn();
        self.applied = Some(applied);
        Ok(applied < recovered)
    }

    /// Whether `len` more bytes may be logged before the next durability request (the
    /// budget renews at each, see [`DataLog`]).
    pub fn log_budget(&mut self, len: u64) -> bool {
        let requests = self.rvm.durability_requests();
        if requests != self.dlog.epoch {
            self.dlog.epoch = requests;
            self.dlog.used = 0;
        }
        self.dlog.used + len <= DATA_LOG_BUDGET
    }

    /// Log `data` for image offset `pos` in the data area without writing it in place
    /// (a logged overwrite, `ops::pending`): whole blocks go into the record as a deferred
    /// range (a partial block merged with its newest bytes), and read from memory until
    /// truncation has written them. Only for blocks a committed state already shows
    /// written, so they hold host space.
    pub fn write_deferred(&mut self, pos: u64, data: &[u8]) -> FsResult<()> {
        let bs = crate::layout::BLOCK_SIZE;
        let base = self.geo.data_offset;
        let start = base + (pos - base) / bs * bs;
        let end = base + (pos + data.len() as u64 - base).div_ceil(bs) * bs;
        let whole = start == pos && end == pos + data.len() as u64;
        let blocks = if whole {
            data.to_vec()
        } else {
            let mut buf = vec![0u8; (end - start) as usize];
            self.read_newest(start, &mut buf)?;
            let lead = (pos - start) as usize;
            buf[lead..lead + data.len()].copy_from_slice(data);
            buf
        };
        self.tx.log_deferred(start, &blocks)?;
        self.dlog.used += blocks.len() as u64;
        self.logged
            .push(((start - base) / bs, (end - base) / bs - 1));
        self.deferred.push((start, blocks));
        Ok(())
    }

    /// Image bytes from `at` as this transaction leaves them: the image (through
    /// `pending`) with this transaction's own deferred writes over it.
    fn read_newest(&self, at: u64, buf: &mut [u8]) -> FsResult<()> {
        self.geo.image.read_at(buf, at)?;
        let end = at + buf.len() as u64;
        for (p, d) in &self.deferred {
            let (from, to) = ((*p).max(at), (p + d.len() as u64).min(end));
            if from < to {
                buf[(from - at) as usize..(to - at) as usize]
                    .copy_from_slice(&d[(from - p) as usize..(to - p) as usize]);
            }
        }
        Ok(())
    }
}

/// A failed write of file data. No committed metadata points at these bytes yet (the
/// transaction that would is aborted): a full host disk answers ENOSPC to this write only; any
/// other error is a storage error (see `ops::errors`).
fn data_write_error(e: std::io::Error) -> FsError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        FsError::Errno(libc::ENOSPC)
    } else {
        FsError::DataWrite(e)
    }
}
