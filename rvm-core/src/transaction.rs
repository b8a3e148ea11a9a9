//! Transactions (LRVM §4.1 begin/set_range/end/abort).

use crate::error::{Result, RvmError};
use crate::region::Region;
use crate::types::{CommitMode, Lsn, RestoreMode};

/// A transaction on one region: atomicity and permanence (LRVM §3). Region bytes change only
/// through [`Transaction::set_range`], which records the range; `end` logs the new values of
/// all declared ranges as one redo record. Dropping it without `end` aborts it.
pub struct Transaction<'r> {
    region: &'r mut Region,
    mode: RestoreMode,
    /// Declared (offset, len), region-relative bytes, in declaration order.
    ranges: Vec<(usize, usize)>,
    /// Restore mode: (offset, old bytes) in declaration order.
    undo: Vec<(usize, Vec<u8>)>,
    /// External ranges (absolute storage offset, bytes), in call order.
    external: Vec<(u64, Vec<u8>)>,
    /// Deferred external ranges (`log_deferred`), in call order.
    deferred: Vec<(u64, Vec<u8>)>,
    finished: bool,
}

/// Sort and merge overlapping or adjacent ranges (LRVM §5.2 intra-transaction optimization).
pub(crate) fn coalesce(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    if ranges.len() <= 1 {
        return ranges; // set_range records no empty range
    }
    ranges.retain(|r| r.1 > 0);
    ranges.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (off, len) in ranges {
        if let Some(last) = out.last_mut() {
            let last_end = last.0 + last.1;
            if off <= last_end {
                last.1 = last_end.max(off + len) - last.0;
                continue;
            }
        }
        out.push((off, len));
    }
    out
}

impl<'r> Transaction<'r> {
    pub(crate) fn new(region: &'r mut Region, mode: RestoreMode) -> Self {
        let ranges = region.take_scratch();
        Transaction {
            region,
            mode,
            ranges,
            undo: Vec::new(),
            external: Vec::new(),
            deferred: Vec::new(),
            finished: false,
        }
    }

    /// Read view of the whole region (sees this transaction's writes).
    pub fn bytes(&self) -> &[u8] {
        self.region.bytes()
    }

    /// The restore mode this transaction was begun with.
    pub fn mode(&self) -> RestoreMode {
        self.mode
    }

    /// Declare `[offset, offset+len)` (region-relative bytes) and get it mutable: the only
    /// way to change region bytes (LRVM §4.1 `set_range`). In `Restore` mode the old bytes
    /// are saved for `abort`. Errors: [`RvmError::OutOfBounds`].
    pub fn set_range(&mut self, offset: usize, len: usize) -> Result<&mut [u8]> {
        let region_len = self.region.len();
        let end =
            offset
                .checked_add(len)
                .filter(|&e| e <= region_len)
                .ok_or(RvmError::OutOfBounds {
                    offset,
                    len,
                    region_len,
                })?;
        if len > 0 {
            if self.mode == RestoreMode::Restore {
                self.undo
                    .push((offset, self.region.bytes()[offset..end].to_vec()));
            }
            self.ranges.push((offset, len));
        }
        Ok(self.region.bytes_mut(offset, end))
    }

    /// Write `data` to the storage at the absolute `storage_offset` now, and carry the same
    /// bytes in this transaction's redo record (data logging, like ext4's data=journal): a
    /// storage range outside every mapped region and the log, e.g. file data in blocks the
    /// transaction makes metadata point at. Those bytes then need no sync before the record
    /// (ordered data): recovery writes the external ranges of every live record to the
    /// storage, in log order, before anything reads it; truncation skips them (they were
    /// written in place before the record, and the record's sync covered them).
    ///
    /// The caller keeps replay correct: while a record carrying external bytes is live (its
    /// Lsn is at or above [`Rvm::applied_lsn`](crate::Rvm::applied_lsn)), every later write
    /// of those bytes must be logged too, or recovery would put the older bytes back.
    /// An abort does not undo the storage write (only the record is dropped).
    ///
    /// Errors: `InvalidArgument` if the range overlaps the log or a mapped region;
    /// `RecordTooLarge` at `end` as for any range; [`RvmError::Failed`] if the instance
    /// has failed, or if this write fails (which fails the instance: the caller's data is
    /// not where the record will say it is).
    pub fn log_external(&mut self, storage_offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.check_external(storage_offset, data)?;
        let sh = self.region.shared();
        sh.storage
            .write_at(data, storage_offset)
            .map_err(|e| sh.fail(crate::failure::FailedOp::ExternalWrite, e.into()))?;
        self.external.push((storage_offset, data.to_vec()));
        Ok(())
    }

    /// Carry `data` for the absolute `storage_offset` in this transaction's redo record
    /// without writing it now (data logging for overwrites, ext4's data=journal
    /// checkpointing): the storage keeps its old bytes until the record is durable, so a
    /// crash or power cut before that leaves them whole. Recovery writes the deferred
    /// ranges of every live record, in log order; truncation writes them (before the head
    /// moves past their record, with its sync). Until a truncation has applied the record
    /// (its Lsn below [`Rvm::applied_lsn`](crate::Rvm::applied_lsn)) the caller serves
    /// reads of these bytes from its own copy, and every later write of them is deferred
    /// too (an in-place write would be overwritten by the truncation).
    ///
    /// Errors: as [`Transaction::log_external`], but no storage write can fail here.
    pub fn log_deferred(&mut self, storage_offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.check_external(storage_offset, data)?;
        self.deferred.push((storage_offset, data.to_vec()));
        Ok(())
    }

    /// An external range must lie outside the log and every mapped region, on a healthy
    /// instance.
    fn check_external(&self, storage_offset: u64, data: &[u8]) -> Result<()> {
        let sh = self.region.shared();
        let area = crate::storage::Area {
            offset: storage_offset,
            len: data.len() as u64,
        };
        let end = storage_offset.checked_add(data.len() as u64);
        let bad = end.is_none() || sh.overlaps_log(&area) || sh.overlaps_mapped(&area);
        if bad {
            return Err(RvmError::InvalidArgument(format!(
                "external range {area:?} overlaps the log or a mapped region"
            )));
        }
        sh.healthy()
    }

    /// Convenience: `set_range(offset, data.len())` and copy `data` in.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        self.set_range(offset, data.len())?.copy_from_slice(data);
        Ok(())
    }

    /// Commit (LRVM §4.1 `end_transaction`): coalesce the declared ranges, build one redo
    /// record from the current region bytes and queue it; with `Flush` it is durable (with
    /// every earlier record) on return. Returns the record's [`Lsn`]; a transaction that
    /// declared nothing writes no record and returns the last Lsn assigned.
    ///
    /// Errors: `RecordTooLarge` (nothing logged; Restore mode restores the old bytes),
    /// `Unrecorded` in checked mode (likewise); [`RvmError::Failed`] if the instance has
    /// failed (nothing is queued, for `NoFlush` too; Restore mode restores the old bytes)
    /// or if this commit's flush failed (the record stays queued but is never written:
    /// it may or may not be durable, and the instance refuses every later commit).
    pub fn end(mut self, mode: CommitMode) -> Result<Lsn> {
        self.finished = true;
        let shared = self.region.shared().clone();
        let declared = std::mem::take(&mut self.ranges);
        let ranges = if shared.intra.load(std::sync::atomic::Ordering::Relaxed) {
            let raw = crate::record::encoded_len(declared.iter().map(|r| r.1));
            let ranges = coalesce(declared);
            let got = crate::record::encoded_len(ranges.iter().map(|r| r.1));
            if !ranges.is_empty() {
                shared.note_intra_saved(raw.saturating_sub(got));
            }
            ranges
        } else {
            declared
        };
        if let Err(e) = self.region.check_unrecorded(&ranges) {
            self.restore();
            shared.note_abort();
            return Err(e);
        }
        let mut external = std::mem::take(&mut self.external);
        let external_from = ranges.len();
        let deferred_from = external_from + external.len();
        external.append(&mut self.deferred);
        if ranges.is_empty() && external.is_empty() {
            shared.healthy()?;
            if mode == CommitMode::Flush {
                shared.flush_all()?;
            }
            return Ok(shared.last_assigned_lsn());
        }
        let base = self.region.area().offset;
        let map = self.region.bytes();
        // Few ranges (the common case) go through a stack array: no allocation.
        let mut small: [(u64, &[u8]); 8] = [(0, &[]); 8];
        let heap: Vec<(u64, &[u8])>;
        let n = ranges.len() + external.len();
        let ext = external.iter().map(|(o, d)| (*o, &d[..]));
        let data: &[(u64, &[u8])] = if n <= small.len() {
            let all = ranges
                .iter()
                .map(|&(o, l)| (base + o as u64, &map[o..o + l]))
                .chain(ext);
            for (d, r) in small.iter_mut().zip(all) {
                *d = r;
            }
            &small[..n]
        } else {
            heap = ranges
                .iter()
                .map(|&(o, l)| (base + o as u64, &map[o..o + l]))
                .chain(ext)
                .collect();
            &heap
        };
        let kinds = crate::record::Kinds {
            external_from,
            deferred_from,
        };
        let res = shared.commit(data, kinds, mode);
        match res {
            Ok(lsn) => {
                self.region.note_committed(lsn, &ranges);
                // give the range list back to the region for the next transaction
                self.region.return_scratch(ranges);
                Ok(lsn)
            }
            Err(e) if e.queued => {
                self.region.note_queued(e.lsn, &ranges);
                Err(e.err)
            }
            Err(e) => {
                // Nothing was queued (and no Lsn assigned): undone like an abort.
                self.restore();
                shared.note_abort();
                Err(e.err)
            }
        }
    }

    fn restore(&mut self) {
        for (off, old) in self.undo.drain(..).rev() {
            self.region.put_back(off, &old);
        }
    }

    /// Abort (LRVM §4.1 `abort_transaction`): restore the old bytes of every declared range.
    /// Errors: [`RvmError::NoRestore`] in `NoRestore` mode (the new bytes stay in the region,
    /// unlogged).
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        self.region.shared().note_abort();
        match self.mode {
            RestoreMode::Restore => {
                self.restore();
                Ok(())
            }
            RestoreMode::NoRestore => Err(RvmError::NoRestore),
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            if self.mode == RestoreMode::NoRestore && !self.ranges.is_empty() {
                log::warn!("rvm: no_restore transaction dropped without end; bytes not restored");
            }
            self.region.shared().note_abort();
            self.restore();
        }
    }
}
