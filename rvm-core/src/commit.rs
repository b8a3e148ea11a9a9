//! Commit and flush (LRVM §4.1 `end_transaction`, `flush`; §5.2 log optimizations): a
//! commit encodes one redo record into the pending records (the spool, Rio Vista style);
//! a flush makes them durable with group commit: one leader writes everyone's records at
//! the log tail with one sync, in steps of [`FLUSH_CHUNK`] bytes, folding runs of records
//! into one (the inter-transaction optimization) on the way.

use std::sync::atomic::Ordering;

use crate::error::{Result, RvmError};
use crate::failure::FailedOp;
use crate::overlay::RangeList;
use crate::record::{self, rd_u32, rd_u64, HEADER_LEN};
use crate::shared::{lock, Shared};
use crate::stats::inc;
use crate::types::{CommitMode, Lsn};

/// Most Lsns one merged record may hold (bounds the sequence numbers a log area can contain).
pub(crate) const MAX_MERGE: u32 = 4096;

/// The group-commit leader's buffers, reused by every flush step: a step's records copied
/// out of the spool, and their merged encoding. Reuse spares the page faults (and zeroing) of
/// fresh multi-MiB buffers in every step; they hold about [`FLUSH_CHUNK`] bytes each (more
/// only after a single larger record).
#[derive(Default)]
pub(crate) struct FlushScratch {
    chunk: Vec<u8>,
    merged: Vec<u8>,
}

/// Bytes of pending records one flush step writes (and copies) at most: the records of a
/// full spool go to the log in steps of this size (a single larger record goes alone).
const FLUSH_CHUNK: usize = 2 << 20;

/// The prefix of `pending` (encoded records) that one flush step writes: whole records with
/// seq below `end_seq`, at most [`FLUSH_CHUNK`] bytes unless the first record alone is
/// larger. Returns its length in bytes and the seq after its last record. A malformed
/// header ends the prefix at the end of `pending` (the log writer reports it).
fn chunk_prefix(pending: &[u8], end_seq: u64) -> (usize, u64) {
    let (mut at, mut next) = (0usize, 0u64);
    while at + HEADER_LEN <= pending.len() {
        let seq = rd_u64(pending, at + 16);
        let tl = rd_u32(pending, at + 8) as usize;
        if tl < HEADER_LEN || at + tl > pending.len() {
            return (pending.len(), next);
        }
        if seq >= end_seq || (at > 0 && at + tl > FLUSH_CHUNK) {
            break;
        }
        next = seq + rd_u32(pending, at + 36) as u64 + 1;
        at += tl;
    }
    (at, next)
}

/// Error of `Shared::commit`: the error and whether the record was already queued.
pub(crate) struct CommitError {
    pub err: RvmError,
    pub queued: bool,
    /// The record's Lsn when it was queued.
    pub lsn: Option<Lsn>,
}

impl Shared {
    /// Queue one redo record of `ranges` (absolute storage offset, new bytes) and, for
    /// `Flush`, make it durable.
    /// `kinds`: which ranges are external (`Transaction::log_external`) and deferred
    /// (`Transaction::log_deferred`).
    pub(crate) fn commit(
        &self,
        ranges: &[(u64, &[u8])],
        kinds: record::Kinds,
        mode: CommitMode,
    ) -> std::result::Result<Lsn, CommitError> {
        let len = record::encoded_len(ranges.iter().map(|r| r.1.len()));
        let pre = |err| CommitError {
            err,
            queued: false,
            lsn: None,
        };
        if len > self.log.capacity || len > u32::MAX as u64 {
            return Err(pre(RvmError::RecordTooLarge {
                len,
                capacity: self.log.capacity,
            }));
        }
        // A failed instance refuses no-flush commits too: their record would never be
        // made durable, as `end(NoFlush)` promises.
        self.healthy().map_err(pre)?;
        let mut g = lock(&self.inner);
        if self.opts.read_only {
            let seq = g.next_seq;
            g.next_seq += 1;
            return Ok(seq);
        }
        if !g.pending.has_room(len) {
            // The spool is full: flush it (Rio Vista), then grow it if still needed.
            let target = g.next_seq;
            drop(g);
            self.flush_upto(target).map_err(pre)?;
            g = lock(&self.inner);
            if !g.pending.has_room(len) {
                g.pending.make_room(len).map_err(|e| pre(e.into()))?;
            }
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        let log_id = self.log.log_id;
        g.pending.append_with(len as usize, |out| {
            record::encode_slice(out, seq, 0, log_id, ranges, kinds)
        });
        let early = g.pending.unflushed().len() as u64 > self.opts.spool_size / 2;
        drop(g);
        if early {
            // Past half the spool: the commit timer writes the records out now, so a
            // committer rarely finds the spool full and waits for that write itself.
            self.request_early_flush();
        }
        match mode {
            CommitMode::NoFlush => inc(&self.counters.commits_no_flush, 1),
            CommitMode::Flush => {
                inc(&self.counters.commits_flush, 1);
                inc(&self.counters.flushes, 1);
                self.flush_upto(seq + 1).map_err(|err| CommitError {
                    err,
                    queued: true,
                    lsn: Some(seq),
                })?;
            }
        }
        Ok(seq)
    }

    pub(crate) fn flush_all(&self) -> Result<()> {
        if self.opts.read_only {
            return Ok(());
        }
        let target = lock(&self.inner).next_seq;
        self.flush_upto(target).map(|_| ())
    }

    /// Group commit: return once every seq below `target` is durable. The holder of the
    /// leader mutex writes everything pending (its followers' records too) with one sync;
    /// the followers then find their records durable and return without I/O. Returns
    /// whether this call wrote (and synced) a batch.
    ///
    /// Followers wait on a condition variable for `durable_seq`, not on the leader mutex:
    /// when a batch is durable every committer in it returns at once, instead of queueing
    /// behind the next leader's sync (a convoy that halves group commit's sharing).
    pub(crate) fn flush_upto(&self, target: u64) -> Result<bool> {
        let batch_end = {
            let mut g = lock(&self.inner);
            loop {
                if g.durable_seq >= target {
                    return Ok(false);
                }
                // A failed instance writes nothing more; a follower whose leader failed
                // gets the error (its records are not durable).
                self.healthy()?;
                if !g.leading {
                    break;
                }
                g = self.durable_cv.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            g.leading = true;
            g.next_seq
        };
        /// Resigns the leadership (also on error or panic) and wakes the followers.
        struct Resign<'a>(&'a Shared);
        impl Drop for Resign<'_> {
            fn drop(&mut self) {
                lock(&self.0.inner).leading = false;
                self.0.durable_cv.notify_all();
            }
        }
        let resign = Resign(self);
        // The failure is recorded before the followers are woken, so they see it.
        let wrote = self
            .write_pending(batch_end)
            .map_err(|e| self.fail(FailedOp::LogWrite, e));
        drop(resign);
        wrote
    }

    /// Leader only: write every pending record with seq below `batch_end`, advancing
    /// `durable_seq` after each durable chunk. Returns whether anything was written.
    fn write_pending(&self, batch_end: u64) -> Result<bool> {
        let mut scratch = lock(&self.leader);
        let FlushScratch { chunk, merged } = &mut *scratch;
        // Everything committed before the call (seq < batch_end) goes out in chunks of at
        // most FLUSH_CHUNK bytes, so a full spool never costs its size again in memory.
        let mut chunks = 0u32;
        loop {
            let chunk_end = {
                let g = lock(&self.inner);
                let (len, end_seq) = chunk_prefix(g.pending.unflushed(), batch_end);
                chunk.clear();
                chunk.extend_from_slice(&g.pending.unflushed()[..len]);
                end_seq
            };
            if chunk.is_empty() {
                break;
            }
            if self.inter.load(Ordering::Relaxed) {
                self.merge_batch(chunk, merged)?;
                self.write_batch(merged)?;
            } else {
                self.write_batch(chunk)?;
            }
            chunks += 1;
            let mut g = lock(&self.inner);
            let next = g.next_seq;
            // The spool keeps every record until its chunk is durable: a kill -9 before
            // this point replays them on top of the log (a merged record's Lsns are skipped).
            g.pending.mark_flushed(chunk.len() as u64, next);
            g.durable_seq = g.durable_seq.max(chunk_end);
            drop(g);
            // Followers whose records are in this chunk need not wait for the rest.
            self.durable_cv.notify_all();
        }
        let mut g = lock(&self.inner);
        g.durable_seq = g.durable_seq.max(batch_end);
        drop(g);
        Ok(chunks > 0)
    }

    /// Sync the storage so that file data written before now is durable before records
    /// that point at it (`ordered`; also `Rvm::flush`'s data sync). The unlogged-data
    /// notes taken before the sync count as synced only once it has succeeded (a note
    /// made meanwhile stays pending; a failed sync clears nothing: PostgreSQL's
    /// "fsyncgate" lesson). A failed sync fails the instance.
    pub(crate) fn sync_data(&self) -> Result<()> {
        let noted = self.unlogged_noted.load(Ordering::Acquire);
        self.storage
            .sync()
            .map_err(|e| self.fail(FailedOp::DataSync, e.into()))?;
        // Another thread's failed sync may have taken the error of our pages.
        self.healthy()?;
        self.unlogged_synced.fetch_max(noted, Ordering::AcqRel);
        inc(&self.counters.flush_syncs, 1);
        Ok(())
    }

    /// Data was noted (`Rvm::note_unlogged_data`) that no successful sync covers yet.
    pub(crate) fn unlogged_pending(&self) -> bool {
        self.unlogged_noted.load(Ordering::Acquire) != self.unlogged_synced.load(Ordering::Acquire)
    }

    /// Inter-transaction optimization (LRVM §5.2): fold runs of consecutive pending records
    /// into one record each, holding the union of their ranges with the latest values and
    /// the Lsns of all of them. A merged record is applied atomically (one CRC), so recovery
    /// still yields the state after some commit. Runs are capped at [`MAX_MERGE`] Lsns and
    /// a quarter of the log, so a merged record always fits.
    fn merge_batch(&self, batch: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let max_len = (self.log.capacity / 4).clamp(HEADER_LEN as u64, u32::MAX as u64 / 2);
        out.clear();
        // Region, external and deferred ranges are merged apart (external ranges lie outside
        // every region; a block's deferred write is never followed by an immediate one while
        // its record is live, see `Transaction::log_deferred`), in that order, as in every
        // record.
        let mut lists = [RangeList::new(), RangeList::new(), RangeList::new()];
        let (mut at, mut run_start, mut run_seq, mut run_n) = (0usize, 0usize, 0u64, 0u32);
        while at < batch.len() {
            let rec = record::decode(&batch[at..])
                .map_err(|e| RvmError::CorruptLog(format!("pending record: {e}")))?;
            let tl = rec.header.total_len as usize;
            if run_n > 0
                && ((at + tl - run_start) as u64 > max_len
                    || run_n as u64 + rec.header.seq_count() > MAX_MERGE as u64)
            {
                self.end_run(out, batch, &mut lists, (run_start, at), run_seq, run_n);
                run_n = 0;
            }
            if run_n == 0 {
                run_start = at;
                run_seq = rec.header.seq;
            }
            let kinds = [
                rec.region_ranges(),
                rec.immediate_ranges(),
                rec.deferred_ranges(),
            ];
            for (list, ranges) in lists.iter_mut().zip(kinds) {
                for (off, data) in ranges {
                    list.push(*off, data);
                }
            }
            run_n += rec.header.seq_count() as u32;
            at += tl;
        }
        if run_n > 0 {
            self.end_run(out, batch, &mut lists, (run_start, at), run_seq, run_n);
        }
        Ok(())
    }

    /// End a run of `n` records, `batch[from..to]`, starting at Lsn `seq`, whose ranges
    /// `lists` holds (region, external, deferred): one record as it was, else their merge.
    fn end_run(
        &self,
        out: &mut Vec<u8>,
        batch: &[u8],
        lists: &mut [RangeList<'_>; 3],
        (from, to): (usize, usize),
        seq: u64,
        n: u32,
    ) {
        if n <= 1 {
            out.extend_from_slice(&batch[from..to]);
            lists.iter_mut().for_each(RangeList::clear);
            return;
        }
        let [u, ux, ud] = lists.each_mut().map(RangeList::take_union);
        let mut ranges = u.ranges();
        let external_from = ranges.len();
        ranges.extend(ux.ranges());
        let deferred_from = ranges.len();
        ranges.extend(ud.ranges());
        let kinds = record::Kinds {
            external_from,
            deferred_from,
        };
        let before = out.len();
        record::encode_merged_ext_into(out, seq, n - 1, self.log.log_id, &ranges, kinds);
        let saved = (to - from).saturating_sub(out.len() - before) as u64;
        inc(&self.counters.bytes_saved_inter, saved);
        inc(&self.counters.records_merged, n as u64 - 1);
    }

    /// Leader only: write whole encoded records at the log tail, syncing, and truncating
    /// when the log is full.
    fn write_batch(&self, batch: &[u8]) -> Result<()> {
        // Ordered data: file data written in place must be on disk before the records that
        // point at it. On demand (`Rvm::set_ordered_on_demand`), only when the caller noted
        // such data (`Rvm::note_unlogged_data`) since the last sync; data carried in the
        // records themselves (`Transaction::log_external`) needs no sync of its own.
        let pre_sync = self.opts.ordered
            && (!self.on_demand.load(Ordering::Acquire) || self.unlogged_pending());
        if pre_sync {
            self.sync_data()?;
        }
        let cap = self.log.capacity;
        let mut off = 0usize;
        while off < batch.len() {
            let p = *lock(&self.pos);
            let free = cap - p.used();
            let (mut end, mut n) = (off, 0u64);
            let mut seqs = 0u64;
            while end + HEADER_LEN <= batch.len() {
                let tl = rd_u32(batch, end + 8) as usize;
                if tl < HEADER_LEN || end + tl > batch.len() {
                    return Err(RvmError::CorruptLog("pending record is malformed".into()));
                }
                if (end + tl - off) as u64 > free {
                    break;
                }
                end += tl;
                n += 1;
                seqs += rd_u32(batch, end - tl + 36) as u64 + 1;
            }
            if end == off {
                if p.used() == 0 {
                    return Err(RvmError::RecordTooLarge {
                        len: rd_u32(batch, off + 8) as u64,
                        capacity: cap,
                    });
                }
                // Full: truncate (or wait for the background truncator), then go on; what
                // shipping holds back is waited for (`crate::ship`).
                inc(&self.counters.log_full_waits, 1);
                self.truncate_once()?;
                if lock(&self.pos).head_pos == p.head_pos {
                    self.wait_for_shipping(p.head_seq);
                }
                continue;
            }
            self.log.write_pos(p.tail_pos, &batch[off..end], true)?;
            // The tail moves only while the instance is healthy: another thread's failed
            // sync may have taken an error of these pages.
            self.healthy()?;
            let used = {
                let mut p = lock(&self.pos);
                p.tail_pos += (end - off) as u64;
                p.tail_seq += seqs;
                p.used()
            };
            if let Some(ship) = &self.ship {
                ship.tap(&crate::ship::Flushed {
                    first: p.tail_seq,
                    next: p.tail_seq + seqs,
                    records: &batch[off..end],
                });
            }
            inc(&self.counters.flush_syncs, 1);
            inc(&self.counters.log_writes, 1);
            inc(&self.counters.records_logged, n);
            inc(&self.counters.bytes_logged, (end - off) as u64);
            self.maybe_request_truncation(used);
            off = end;
        }
        Ok(())
    }
}
