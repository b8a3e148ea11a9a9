//! The RVM instance: initialization and recovery, mapping, commit, flush, truncation.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::error::{Result, RvmError};
use crate::log::Log;
use crate::record::{self, rd_u32, HEADER_LEN};
use crate::region::Region;
use crate::spool::{self, Pending, Spool};
use crate::status::{self, Status};
use crate::storage::{Area, Storage};

/// Sequence number of a redo record; `Transaction::end` returns the one of its record.
/// Lsns grow by one per committed transaction, but may jump after a recovery.
pub type Lsn = u64;

/// `begin_transaction` mode (LRVM §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreMode {
    /// `set_range` saves the old bytes in memory so `abort` can restore them.
    Restore,
    /// The caller promises not to abort; `set_range` skips the copy.
    NoRestore,
}

/// `end_transaction` mode (LRVM §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// The record (and every earlier no-flush record) is durable when `end` returns.
    Flush,
    /// The record goes to the spool (or memory); a later `flush` makes it durable.
    NoFlush,
}

/// Options of [`Rvm::initialize`].
#[derive(Clone, Debug)]
pub struct RvmOptions {
    /// The circular redo log inside the storage (formatted by [`Rvm::create_log`]).
    pub log: Area,
    /// Spool file for no-flush records (normally on tmpfs); `None` = process memory.
    pub spool: Option<PathBuf>,
    /// Bytes of pending no-flush records before a commit forces a flush (and the spool file
    /// size). Default 64 MiB.
    pub spool_size: u64,
    /// Background flush timer; `None` = off.
    pub commit_interval: Option<Duration>,
    /// `flush()` (and `end(Flush)`) sync the storage before writing records, so file data
    /// the caller wrote earlier reaches disk before the records that point at it.
    pub ordered: bool,
    /// Checked mode: `end` compares the region with a shadow copy and fails with
    /// [`RvmError::Unrecorded`] if a byte changed outside every declared range. Costs a copy
    /// of each region and a full compare per commit.
    pub checked: bool,
    /// Recovery replays into memory only and `map` applies it to the private mapping;
    /// nothing is ever written (commits stay in memory, flush/truncate do nothing).
    pub read_only: bool,
}

impl Default for RvmOptions {
    fn default() -> Self {
        RvmOptions {
            log: Area { offset: 0, len: 0 },
            spool: None,
            spool_size: 64 << 20,
            commit_interval: None,
            ordered: false,
            checked: false,
            read_only: false,
        }
    }
}

/// Counters (see [`Rvm::stats`]). Byte counts in bytes; positions are logical log positions.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub commits_flush: u64,
    pub commits_no_flush: u64,
    /// Records written to the log.
    pub records_logged: u64,
    pub bytes_logged: u64,
    /// Batches written by a group-commit leader (records_logged / log_writes = sharing).
    pub log_writes: u64,
    /// `storage.sync()` calls made by flushes (truncations not included).
    pub flush_syncs: u64,
    pub truncations: u64,
    pub bytes_truncated: u64,
    /// Records replayed by recovery (log + spool).
    pub records_recovered: u64,
    pub log_head: u64,
    pub log_tail: u64,
    pub log_capacity: u64,
    /// Lsn the next commit gets.
    pub next_lsn: Lsn,
    /// Every Lsn below this one is durable in the log.
    pub durable_lsn: Lsn,
}

#[derive(Default)]
struct Counters {
    commits_flush: AtomicU64,
    commits_no_flush: AtomicU64,
    records_logged: AtomicU64,
    bytes_logged: AtomicU64,
    log_writes: AtomicU64,
    flush_syncs: AtomicU64,
    truncations: AtomicU64,
    bytes_truncated: AtomicU64,
    records_recovered: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Inner {
    /// Seq of the next commit.
    next_seq: u64,
    /// Every seq below is durable in the log.
    durable_seq: u64,
    pending: Pending,
    pub(crate) mapped: Vec<Area>,
}

#[derive(Default)]
struct Stopper {
    stop: Mutex<bool>,
    cv: Condvar,
}

pub(crate) struct Shared {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) opts: RvmOptions,
    capacity: u64,
    log_id: u64,
    /// The on-disk log; its holder is the only writer of the log area (group-commit leader
    /// or truncator).
    log: Mutex<Log>,
    pub(crate) inner: Mutex<Inner>,
    counters: Counters,
    /// read_only: recovered (offset, bytes) in order, applied by `map`.
    recovered: Vec<(u64, Vec<u8>)>,
    stopper: Arc<Stopper>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        *lock(&self.stopper.stop) = true;
        self.stopper.cv.notify_all();
    }
}

/// Lightweight recoverable virtual memory (LRVM, SOSP 1993) over a [`Storage`]: mapped
/// regions changed in transactions, with a checksummed circular redo log. Cheap to clone
/// (an `Arc` inside); `Send + Sync`.
///
/// Dropping the last handle does **not** flush: pending no-flush records stay in the spool
/// (or are lost without one), exactly as after a crash. Call [`Rvm::close`] to flush.
#[derive(Clone)]
pub struct Rvm {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Rvm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rvm")
            .field("log", &self.shared.opts.log)
            .finish()
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}

impl Rvm {
    /// Format an empty log in `log` (both status copies, head = tail = 0, a new random log
    /// id so records of an older log in the same area are never replayed), then sync.
    /// `log` must be 4096-aligned and at least 12 KiB; capacity = `log.len - 8192` bytes.
    pub fn create_log(storage: &dyn Storage, log: Area) -> Result<()> {
        let capacity = status::capacity_of(log)?;
        let log_id = random_u64();
        for generation in [1u64, 2] {
            let s = Status {
                generation,
                head_pos: 0,
                head_seq: 1,
                capacity,
                log_id,
            };
            status::write_status(storage, log, &s)?;
        }
        storage.sync()?;
        Ok(())
    }

    /// Open the log, recovering (LRVM §5.1.2): replay the committed records from the head in
    /// order onto the storage (absolute offsets, so no region is needed), stopping at the
    /// first torn, stale or corrupt record; then replay the spool records that continue the
    /// sequence; sync; and reset (status head = end of the log, spool emptied). A crash at any
    /// point of this recovers again to the same image. With `read_only`, the recovered
    /// ranges are kept in memory for [`Rvm::map`] and nothing is written.
    ///
    /// Errors: [`RvmError::CorruptStatus`] if neither status copy is valid or the capacity
    /// does not match `options.log`; `InvalidArgument` for a bad log area; `Io`.
    pub fn initialize(storage: Arc<dyn Storage>, options: RvmOptions) -> Result<Rvm> {
        let st = status::read_status(&*storage, options.log)?;
        let mut log = Log::from_status(storage.clone(), options.log, &st);
        let read_only = options.read_only;
        let mut recovered: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut apply = |ranges: &[(u64, &[u8])]| -> Result<()> {
            for (off, data) in ranges {
                if read_only {
                    recovered.push((*off, data.to_vec()));
                } else {
                    storage.write_at(data, *off)?;
                }
            }
            Ok(())
        };
        let mut nrec = log.scan(|rec| apply(&rec.ranges))?;
        let mut next = log.tail_seq;
        if let Some(path) = &options.spool {
            if let Some(bytes) = spool::read_spool(path, st.log_id)? {
                let mut at = 0usize;
                while at + HEADER_LEN <= bytes.len() {
                    let Ok(rec) = record::decode(&bytes[at..]) else {
                        break;
                    };
                    let h = rec.header;
                    if h.log_id != st.log_id || h.seq > next {
                        log::warn!("spool record seq {} does not continue the log", h.seq);
                        break;
                    }
                    if h.seq == next {
                        apply(&rec.ranges)?;
                        next += 1;
                        nrec += 1;
                    }
                    at += h.total_len as usize;
                }
            }
        }
        log::info!(
            "rvm: recovered {nrec} records, log head {} tail {}",
            log.head_pos,
            log.tail_pos
        );
        if !read_only {
            storage.sync()?;
            // Start past every sequence number that may still lie in the log area (at most
            // one per HEADER_LEN bytes of capacity), so a stale record beyond the tail can
            // never pass for a new one.
            let new_seq = next + log.capacity / HEADER_LEN as u64 + 1;
            log.write_status(log.tail_pos, new_seq)?;
            storage.sync()?;
            log.tail_seq = new_seq;
            next = new_seq;
        }
        let pending = match &options.spool {
            Some(path) if !read_only => {
                Pending::Spool(Spool::create(path, options.spool_size, st.log_id, next)?)
            }
            _ => Pending::Mem {
                buf: Vec::new(),
                limit: options.spool_size,
            },
        };
        let counters = Counters::default();
        counters.records_recovered.store(nrec, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            storage,
            capacity: log.capacity,
            log_id: st.log_id,
            log: Mutex::new(log),
            inner: Mutex::new(Inner {
                next_seq: next,
                durable_seq: next,
                pending,
                mapped: Vec::new(),
            }),
            counters,
            recovered,
            stopper: Arc::new(Stopper::default()),
            opts: options,
        });
        if let (Some(iv), false) = (shared.opts.commit_interval, read_only) {
            spawn_timer(Arc::downgrade(&shared), shared.stopper.clone(), iv)?;
        }
        Ok(Rvm { shared })
    }

    /// Map one segment area as a region (LRVM §4.1 `map`); it shows every committed
    /// transaction. The area must be 4096-aligned, non-empty, outside the log and not
    /// overlap another mapped region (`InvalidArgument`). The mapping is private
    /// (copy-on-write), so mapping reads nothing until pages are touched.
    pub fn map(&self, segment: Area) -> Result<Region> {
        let sh = &self.shared;
        if !segment.offset.is_multiple_of(4096)
            || segment.len == 0
            || !segment.len.is_multiple_of(4096)
        {
            return Err(RvmError::InvalidArgument(format!(
                "segment {segment:?} must be non-empty and 4096-aligned"
            )));
        }
        if segment.overlaps(&sh.opts.log) {
            return Err(RvmError::InvalidArgument(format!(
                "segment {segment:?} overlaps the log {:?}",
                sh.opts.log
            )));
        }
        {
            let mut g = lock(&sh.inner);
            if let Some(a) = g.mapped.iter().find(|a| a.overlaps(&segment)) {
                return Err(RvmError::InvalidArgument(format!(
                    "segment {segment:?} overlaps mapped region {a:?}"
                )));
            }
            g.mapped.push(segment);
        }
        let map = match sh.storage.map_private(segment) {
            Ok(m) => m,
            Err(e) => {
                lock(&sh.inner).mapped.retain(|a| *a != segment);
                return Err(e.into());
            }
        };
        let mut region = Region::new(self.shared.clone(), segment, map);
        for (off, data) in &sh.recovered {
            region.apply_recovered(*off, data);
        }
        if sh.opts.checked {
            region.enable_shadow();
        }
        Ok(region)
    }

    /// Make every committed no-flush record durable (LRVM §4.1 `flush`): with `ordered`,
    /// sync the storage first; write the pending records to the log; sync; empty the spool.
    /// Concurrent flushes and `end(Flush)` share one sync (group commit).
    pub fn flush(&self) -> Result<()> {
        if self.shared.opts.read_only {
            return Ok(());
        }
        let target = lock(&self.shared.inner).next_seq;
        self.shared.flush_upto(target)
    }

    /// Truncate the log (LRVM §5.1.2): apply the live records to the segments, sync, move
    /// the head to the tail, sync. Pending no-flush records are not flushed first.
    pub fn truncate(&self) -> Result<()> {
        if self.shared.opts.read_only {
            return Ok(());
        }
        let mut log = lock(&self.shared.log);
        self.shared.truncate_log(&mut log)
    }

    /// Flush, then drop this handle.
    pub fn close(self) -> Result<()> {
        self.flush()
    }

    /// Counters and log positions.
    pub fn stats(&self) -> Stats {
        let sh = &self.shared;
        let c = &sh.counters;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (next_lsn, durable_lsn) = {
            let g = lock(&sh.inner);
            (g.next_seq, g.durable_seq)
        };
        let (log_head, log_tail) = {
            let l = lock(&sh.log);
            (l.head_pos, l.tail_pos)
        };
        Stats {
            commits_flush: ld(&c.commits_flush),
            commits_no_flush: ld(&c.commits_no_flush),
            records_logged: ld(&c.records_logged),
            bytes_logged: ld(&c.bytes_logged),
            log_writes: ld(&c.log_writes),
            flush_syncs: ld(&c.flush_syncs),
            truncations: ld(&c.truncations),
            bytes_truncated: ld(&c.bytes_truncated),
            records_recovered: ld(&c.records_recovered),
            log_head,
            log_tail,
            log_capacity: sh.capacity,
            next_lsn,
            durable_lsn,
        }
    }

    /// The storage under this instance.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.shared.storage
    }

    /// The options this instance was opened with.
    pub fn options(&self) -> &RvmOptions {
        &self.shared.opts
    }
}

fn spawn_timer(weak: Weak<Shared>, stopper: Arc<Stopper>, iv: Duration) -> Result<()> {
    std::thread::Builder::new()
        .name("rvm-commit-timer".into())
        .spawn(move || loop {
            {
                let g = lock(&stopper.stop);
                let (g, _) = stopper
                    .cv
                    .wait_timeout_while(g, iv, |s| !*s)
                    .unwrap_or_else(|e| e.into_inner());
                if *g {
                    return;
                }
            }
            let Some(sh) = weak.upgrade() else { return };
            let target = lock(&sh.inner).next_seq;
            if let Err(e) = sh.flush_upto(target) {
                log::error!("rvm: background flush failed: {e}");
            }
        })?;
    Ok(())
}

/// Error of `Shared::commit`: the error and whether the record was already queued.
pub(crate) struct CommitError {
    pub err: RvmError,
    pub queued: bool,
}

impl Shared {
    /// Queue one redo record of `ranges` (absolute storage offset, new bytes) and, for
    /// `Flush`, make it durable. The caller checked the size.
    pub(crate) fn commit(
        &self,
        ranges: &[(u64, &[u8])],
        mode: CommitMode,
    ) -> std::result::Result<Lsn, CommitError> {
        let len = record::encoded_len(ranges.iter().map(|r| r.1.len()));
        let pre = |err| CommitError { err, queued: false };
        if len > self.capacity || len > u32::MAX as u64 {
            return Err(pre(RvmError::RecordTooLarge {
                len,
                capacity: self.capacity,
            }));
        }
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
        let rec = record::encode(seq, self.log_id, ranges);
        g.pending.append(&rec);
        drop(g);
        match mode {
            CommitMode::NoFlush => inc(&self.counters.commits_no_flush, 1),
            CommitMode::Flush => {
                inc(&self.counters.commits_flush, 1);
                self.flush_upto(seq + 1)
                    .map_err(|err| CommitError { err, queued: true })?;
            }
        }
        Ok(seq)
    }

    /// Group commit: return once every seq below `target` is durable. The holder of the log
    /// mutex is the leader; it writes everything pending (its followers' records too) with
    /// one sync, and the followers then find their records durable.
    pub(crate) fn flush_upto(&self, target: u64) -> Result<()> {
        let mut log = lock(&self.log);
        let (batch, batch_end) = {
            let g = lock(&self.inner);
            if g.durable_seq >= target {
                return Ok(());
            }
            (g.pending.unflushed().to_vec(), g.next_seq)
        };
        if !batch.is_empty() {
            self.write_batch(&mut log, &batch)?;
        }
        let mut g = lock(&self.inner);
        let next = g.next_seq;
        g.pending.mark_flushed(batch.len() as u64, next);
        g.durable_seq = g.durable_seq.max(batch_end);
        Ok(())
    }

    /// Write whole encoded records to the log tail, truncating when the log is full.
    fn write_batch(&self, log: &mut Log, batch: &[u8]) -> Result<()> {
        if self.opts.ordered {
            self.storage.sync()?;
            inc(&self.counters.flush_syncs, 1);
        }
        let mut off = 0usize;
        while off < batch.len() {
            let free = log.capacity - log.used();
            let (mut end, mut n) = (off, 0u64);
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
            }
            if end == off {
                if log.used() == 0 {
                    return Err(RvmError::RecordTooLarge {
                        len: rd_u32(batch, off + 8) as u64,
                        capacity: log.capacity,
                    });
                }
                self.truncate_log(log)?;
                continue;
            }
            log.write_at_tail(&batch[off..end])?;
            self.storage.sync()?;
            log.advance_tail((end - off) as u64, n);
            inc(&self.counters.flush_syncs, 1);
            inc(&self.counters.log_writes, 1);
            inc(&self.counters.records_logged, n);
            inc(&self.counters.bytes_logged, (end - off) as u64);
            off = end;
        }
        Ok(())
    }

    pub(crate) fn truncate_log(&self, log: &mut Log) -> Result<()> {
        let n = log.truncate()?;
        if n > 0 {
            inc(&self.counters.truncations, 1);
            inc(&self.counters.bytes_truncated, n);
        }
        Ok(())
    }
}

impl Inner {
    pub(crate) fn next_seq_minus_one(&self) -> Lsn {
        self.next_seq.saturating_sub(1)
    }
}
