//! The RVM instance: initialization and recovery, mapping, commit, flush, truncation.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Result, RvmError};
use crate::log::{Log, Positions};
use crate::overlay::{Overlay, RangeList};
use crate::record::{self, rd_u32, rd_u64, HEADER_LEN};
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
    /// Background truncation starts when the live log exceeds this percent of its
    /// capacity (default `Some(DEFAULT_TRUNCATE_THRESHOLD)`); `None` or 0 = never (a
    /// committer then truncates when the log is full). Also [`Rvm::set_options`].
    pub truncate_threshold: Option<u8>,
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
            truncate_threshold: Some(DEFAULT_TRUNCATE_THRESHOLD),
        }
    }
}

/// The options [`Rvm::set_options`] changes at run time ([`Rvm::query_options`] reads them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunables {
    /// Background flush timer; `None` = off.
    pub commit_interval: Option<Duration>,
    /// Background truncation threshold in percent of the log; `None` = never.
    pub truncate_threshold: Option<u8>,
    /// Checked mode (see [`RvmOptions::checked`]).
    pub checked: bool,
    /// LRVM §5.2 intra- and inter-transaction optimizations.
    pub intra: bool,
    pub inter: bool,
}

/// One region as [`Rvm::query_region`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    pub area: Area,
    /// Lsn of the last transaction this region committed, if any.
    pub last_lsn: Option<Lsn>,
    /// Whether that transaction (and every earlier one) is durable in the log.
    pub durable: bool,
    /// Whether checked mode keeps a shadow copy of this region.
    pub checked: bool,
}

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
    /// Time `initialize` took to recover (scan, replay, reset).
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
    /// Flush requests: `Rvm::flush` calls and `end(Flush)` commits (group commit: see
    /// `log_writes` and `flush_syncs` for the I/O they took).
    pub flushes: u64,
    /// Times a group-commit leader found the log full and had to truncate (or wait for the
    /// truncator) before writing: the only way truncation makes a commit wait.
    pub log_full_waits: u64,
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
}

#[derive(Default)]
struct Counters {
    commits_flush: AtomicU64,
    commits_no_flush: AtomicU64,
    aborts: AtomicU64,
    bytes_saved_intra: AtomicU64,
    bytes_saved_inter: AtomicU64,
    records_merged: AtomicU64,
    truncation_ns: AtomicU64,
    truncation_ns_max: AtomicU64,
    recovery_ns: AtomicU64,
    records_logged: AtomicU64,
    bytes_logged: AtomicU64,
    log_writes: AtomicU64,
    flush_syncs: AtomicU64,
    truncations: AtomicU64,
    bytes_truncated: AtomicU64,
    records_recovered: AtomicU64,
    bytes_recovered: AtomicU64,
    flushes: AtomicU64,
    log_full_waits: AtomicU64,
    maps: AtomicU64,
    unmaps: AtomicU64,
    map_overlay_ns: AtomicU64,
    truncation_ns_last: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Inner {
    /// Seq of the next commit.
    pub(crate) next_seq: u64,
    /// Every seq below is durable in the log.
    durable_seq: u64,
    pending: Pending,
    pub(crate) mapped: Vec<Area>,
    /// A group-commit leader is writing a batch (see `Shared::flush_upto`).
    leading: bool,
}

impl Inner {
    pub(crate) fn next_seq_minus_one(&self) -> Lsn {
        self.next_seq.saturating_sub(1)
    }
}

#[derive(Default)]
struct Flags {
    stop: bool,
    truncate: bool,
    /// The pending records passed half the spool: the commit timer flushes them now.
    flush: bool,
}

/// Wakes and stops the background threads.
#[derive(Default)]
struct Signal {
    flags: Mutex<Flags>,
    cv: Condvar,
    /// Wakes the commit timer (stop, a new interval, or an early flush).
    timer_cv: Condvar,
}

/// Most Lsns one merged record may hold (bounds the sequence numbers a log area can contain).
pub(crate) const MAX_MERGE: u32 = 4096;
/// Bytes of range data recovery gathers before writing their union.
const RECOVERY_BATCH: usize = 16 << 20;

/// The group-commit leader's buffers, reused by every flush step: a step's records copied
/// out of the spool, and their merged encoding. Reuse spares the page faults (and zeroing) of
/// fresh multi-MiB buffers in every step; they hold about [`FLUSH_CHUNK`] bytes each (more
/// only after a single larger record).
#[derive(Default)]
struct FlushScratch {
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

/// Give the allocator's free memory back to the kernel (glibc keeps what a thread freed in
/// its arena): called after a truncation, so its buffers do not stay in the resident set.
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Recovery with no room in the log (spool records or the sequence jump do not fit): apply
/// the live records to the segments, sync, status head = tail, sync (the old, eager way).
fn truncate_eagerly(log: &Log, pos: &mut Positions, generation: &mut u64) -> Result<()> {
    log.apply(pos)?;
    log.storage.sync()?;
    *generation += 1;
    log.write_status(*generation, pos.tail_pos, pos.tail_seq)?;
    log.storage.sync()?;
    pos.head_pos = pos.tail_pos;
    pos.head_seq = pos.tail_seq;
    Ok(())
}

/// Default `truncate_threshold`: percent of the log capacity.
pub const DEFAULT_TRUNCATE_THRESHOLD: u8 = 50;

pub(crate) struct Shared {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) opts: RvmOptions,
    log: Log,
    /// Held by the group-commit leader: the only writer at the log tail. Holds its buffers
    /// (a flush step's records and their merged form), kept from one flush to the next.
    leader: Mutex<FlushScratch>,
    /// Signalled when a leader resigns (`durable_seq` advanced or the leader failed).
    durable_cv: Condvar,
    /// Live log positions; short critical sections only.
    pos: Mutex<Positions>,
    /// Held by the truncator: the status generation last written.
    trunc: Mutex<u64>,
    pub(crate) inner: Mutex<Inner>,
    counters: Counters,
    /// read_only: recovered (offset, bytes) in order, applied by `map`.
    recovered: Vec<(u64, Vec<u8>)>,
    signal: Signal,
    /// Background truncation starts when the log is this percent full (0 = never).
    threshold: AtomicU64,
    /// LRVM §5.2 optimizations (see `Rvm::set_optimizations`).
    pub(crate) intra: AtomicBool,
    inter: AtomicBool,
    /// Checked mode (see `RvmOptions::checked`, `Rvm::set_options`).
    pub(crate) checked: AtomicBool,
    /// The background flush interval (`None` = off); the timer thread rereads it.
    commit_interval: Mutex<Option<Duration>>,
    /// A truncation is running (for `Stats::truncating`).
    truncating: AtomicBool,
    /// `ordered` pre-syncs only when `unlogged` is set (see `Rvm::set_ordered_on_demand`).
    on_demand: AtomicBool,
    /// Data the caller did not log was written since the last sync (`note_unlogged_data`).
    unlogged: AtomicBool,
}

/// The user-visible handle; when the last clone goes, background threads are stopped and
/// joined (regions may keep the shared state alive longer).
struct Handle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.signal.flags).stop = true;
        self.shared.signal.cv.notify_all();
        self.shared.signal.timer_cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Lightweight recoverable virtual memory (LRVM, SOSP 1993) over a [`Storage`]: mapped
/// regions changed in transactions, with a checksummed circular redo log. Cheap to clone
/// (an `Arc` inside); `Send + Sync`.
///
/// Background threads (log truncation past [`Rvm::set_truncate_threshold`], the
/// `commit_interval` timer) stop when the last `Rvm` clone is dropped. Dropping does **not**
/// flush: pending no-flush records stay in the spool (or are lost without one), exactly as
/// after a crash. Call [`Rvm::close`] to flush.
#[derive(Clone)]
pub struct Rvm {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Rvm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rvm")
            .field("log", &self.sh().opts.log)
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
    fn sh(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

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
        let log = Log {
            storage: storage.clone(),
            area: options.log,
            capacity: st.capacity,
            log_id: st.log_id,
        };
        let started = Instant::now();
        let read_only = options.read_only;
        let mut recovered: Vec<(u64, Vec<u8>)> = Vec::new();
        // read_only: gather the ranges (later value wins) in memory for `map`.
        let mut ov = Overlay::new();
        let mut drain = |ov: &mut Overlay| {
            if !ov.is_empty() {
                let u = ov.union();
                for (off, data) in u.ranges() {
                    recovered.push((off, data.to_vec()));
                }
            }
        };
        // Lazy recovery: the scan only validates the live log (and finds its tail); the
        // records stay live, `map` overlays them and truncation applies them later.
        // Records counted as recovered: those holding ranges (not recovery's jumps).
        let mut nrec = 0u64;
        // External ranges of the live records (later value wins), written to the storage
        // eagerly below: the caller reads them from the storage, not through a region.
        let mut ovx = Overlay::new();
        let write_ext = |ovx: &mut Overlay| -> Result<()> {
            if !ovx.is_empty() {
                crate::overlay::write_union(&*storage, &ovx.union())?;
            }
            Ok(())
        };
        let (mut pos, _) = log.scan(st.head_pos, st.head_seq, |rec| {
            nrec += (rec.header.nranges > 0) as u64;
            if !read_only {
                for (off, data) in rec.external_ranges() {
                    ovx.push(*off, data);
                }
                if ovx.data_len() >= RECOVERY_BATCH {
                    write_ext(&mut ovx)?;
                }
            }
            if read_only {
                for (off, data) in &rec.ranges {
                    ov.push(*off, data);
                }
                if ov.data_len() >= RECOVERY_BATCH {
                    drain(&mut ov);
                }
            }
            Ok(())
        })?;
        let mut next = pos.tail_seq;
        // The spool records that continue the log, as encoded.
        let mut spooled: Vec<u8> = Vec::new();
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
                        spooled.extend_from_slice(&bytes[at..at + h.total_len as usize]);
                        next = h.next_seq();
                        nrec += 1;
                        if !read_only {
                            for (off, data) in rec.external_ranges() {
                                ovx.push(*off, data);
                            }
                        }
                    }
                    at += h.total_len as usize;
                }
            }
        }
        // Idempotent and needs no sync of its own: the records stay live until a truncation,
        // whose first sync covers these writes; a crash before that replays them again.
        write_ext(&mut ovx)?;
        let mut generation = st.generation;
        let live_bytes;
        if read_only {
            let mut at = 0;
            while at < spooled.len() {
                let rec = record::decode(&spooled[at..]).map_err(RvmError::CorruptLog)?;
                for (off, data) in &rec.ranges {
                    ov.push(*off, data);
                }
                at += rec.header.total_len as usize;
            }
            drain(&mut ov);
            live_bytes = pos.used();
        } else {
            // The spool does not survive a power loss (tmpfs), so its records become part of
            // the committed state only once they are durable in the log: append them at the
            // tail and sync (they reach the segment later, by truncation, like any record).
            // Only if the log has no room is it truncated here first (eagerly).
            let mut at = 0;
            while at < spooled.len() {
                let free = log.capacity - pos.used();
                let (mut end, mut seq) = (at, pos.tail_seq);
                while end < spooled.len() {
                    let h = record::parse_header(&spooled[end..])
                        .ok_or_else(|| RvmError::CorruptLog("spool record".into()))?;
                    if (end + h.total_len as usize - at) as u64 > free {
                        break;
                    }
                    end += h.total_len as usize;
                    seq = h.next_seq();
                }
                if end == at {
                    if pos.used() == 0 {
                        return Err(RvmError::CorruptLog(
                            "spool record larger than the log".into(),
                        ));
                    }
                    truncate_eagerly(&log, &mut pos, &mut generation)?;
                    continue;
                }
                log.write_pos(pos.tail_pos, &spooled[at..end], false)?;
                storage.sync()?;
                pos.tail_pos += (end - at) as u64;
                pos.tail_seq = seq;
                at = end;
            }
            // Start past every sequence number that may still lie in the log area (at most
            // one record per HEADER_LEN bytes of capacity, each holding at most MAX_MERGE
            // Lsns), so a stale record beyond the tail can never pass for a new one. The
            // jump is made durable as record(s) holding no ranges at the tail (the log stays
            // live), before anything else is written after it.
            let jump = (log.capacity / HEADER_LEN as u64 + 1) * MAX_MERGE as u64;
            let jumps = record::jump_records(pos.tail_seq, jump, log.log_id);
            if jumps.len() as u64 > log.capacity - pos.used() {
                truncate_eagerly(&log, &mut pos, &mut generation)?;
            }
            if jumps.len() as u64 > log.capacity {
                return Err(RvmError::InvalidArgument("log too small".into()));
            }
            log.write_pos(pos.tail_pos, &jumps, false)?;
            storage.sync()?;
            pos.tail_pos += jumps.len() as u64;
            pos.tail_seq += jump;
            next = pos.tail_seq;
            live_bytes = pos.used();
        }
        log::info!(
            "rvm: recovered {nrec} records lazily, log head {} tail {}",
            pos.head_pos,
            pos.tail_pos
        );
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
        counters
            .bytes_recovered
            .store(live_bytes, Ordering::Relaxed);
        let threshold = options.truncate_threshold.unwrap_or(0).min(100) as u64;
        let checked = options.checked;
        let interval = options.commit_interval;
        counters
            .recovery_ns
            .store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            storage,
            log,
            leader: Mutex::new(FlushScratch::default()),
            durable_cv: Condvar::new(),
            pos: Mutex::new(pos),
            trunc: Mutex::new(generation),
            inner: Mutex::new(Inner {
                next_seq: next,
                durable_seq: next,
                pending,
                mapped: Vec::new(),
                leading: false,
            }),
            counters,
            recovered,
            signal: Signal::default(),
            threshold: AtomicU64::new(threshold),
            checked: AtomicBool::new(checked),
            commit_interval: Mutex::new(interval),
            truncating: AtomicBool::new(false),
            on_demand: AtomicBool::new(false),
            unlogged: AtomicBool::new(false),
            intra: AtomicBool::new(true),
            inter: AtomicBool::new(true),
            opts: options,
        });
        let mut threads = Vec::new();
        if !read_only {
            let sh = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("rvm-truncate".into())
                    .spawn(move || sh.truncator_loop())?,
            );
            let sh = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("rvm-commit-timer".into())
                    .spawn(move || sh.timer_loop())?,
            );
            // A recovered log past the threshold is applied in the background at once.
            shared.maybe_request_truncation(live_bytes);
        }
        Ok(Rvm {
            handle: Arc::new(Handle { shared, threads }),
        })
    }

    /// Map one segment area as a region (LRVM §4.1 `map`); it shows every committed
    /// transaction. The area must be 4096-aligned, non-empty, outside the log and not
    /// overlap another mapped region (`InvalidArgument`).
    ///
    /// The mapping is private (copy-on-write), so mapping reads nothing until pages are
    /// touched; the live log records (not yet applied to the segment by truncation, e.g.
    /// everything recovery found) are then overlaid onto it, which copies only the pages
    /// they touch. Pending no-flush records (of a region unmapped without `unmap`) are
    /// flushed first; with none, `map` writes nothing.
    ///
    /// Why the overlay stays right while truncation later writes the segment file under
    /// the private mapping: truncation writes only committed values, and only at bytes of
    /// live records; every such byte inside this region was written in memory (by the
    /// overlay, or by the transaction that committed it), so its page is a private copy
    /// that no longer sees the file. Pages never written still see the file, which equals
    /// the committed state there.
    pub fn map(&self, segment: Area) -> Result<Region> {
        let sh = self.sh();
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
        let unmap = |e: RvmError| {
            lock(&sh.inner).mapped.retain(|a| *a != segment);
            e
        };
        let region = sh.map_overlaid(segment).map_err(unmap)?;
        inc(&sh.counters.maps, 1);
        Ok(region)
    }

    /// Unmap a region (LRVM §4.1 `unmap`): make every transaction it committed durable
    /// (a flush up to its last Lsn), then release the mapping. LRVM refuses to unmap a
    /// region with an uncommitted transaction; here that cannot even be written: a
    /// [`Transaction`](crate::Transaction) borrows its region mutably until `end`, `abort`
    /// or drop, so the region cannot be moved into `unmap` meanwhile. On an error the
    /// region is returned unchanged. Dropping a region unmaps it without the flush.
    #[allow(clippy::result_large_err)] // the region comes back on error
    pub fn unmap(&self, region: Region) -> std::result::Result<(), (RvmError, Region)> {
        if !Arc::ptr_eq(self.sh(), &region.shared) {
            return Err((
                RvmError::InvalidArgument("region belongs to another Rvm".into()),
                region,
            ));
        }
        unmap_region(self.sh(), region)
    }

    /// Options in force (LRVM §4.1 `query_options`): the tunables [`Rvm::set_options`]
    /// changes, plus the fixed ones this instance was opened with ([`Rvm::options`]).
    pub fn query_options(&self) -> Tunables {
        let sh = self.sh();
        let t = sh.threshold.load(Ordering::Relaxed) as u8;
        Tunables {
            commit_interval: *lock(&sh.commit_interval),
            truncate_threshold: (t > 0).then_some(t),
            checked: sh.checked.load(Ordering::Relaxed),
            intra: sh.intra.load(Ordering::Relaxed),
            inter: sh.inter.load(Ordering::Relaxed),
        }
    }

    /// What LRVM's `query_options(region)` tells about one region: its area, the last Lsn
    /// it committed and whether that is durable, and whether checked mode guards it.
    pub fn query_region(&self, region: &Region) -> RegionInfo {
        let durable = lock(&self.sh().inner).durable_seq;
        RegionInfo {
            area: region.area,
            last_lsn: region.last_lsn,
            durable: region.last_lsn.is_none_or(|l| l < durable),
            checked: region.shadow.is_some(),
        }
    }

    /// Change the tunables at run time (LRVM §4.1 `set_options`): the commit interval (the
    /// timer restarts with it), the truncation threshold (a log already past it is
    /// truncated in the background at once), checked mode (regions start or stop keeping a
    /// shadow copy at their next `begin_transaction`), and the LRVM §5.2 optimizations.
    pub fn set_options(&self, t: Tunables) -> Result<()> {
        let sh = self.sh();
        if t.truncate_threshold.is_some_and(|p| p > 100) {
            return Err(RvmError::InvalidArgument(
                "truncate_threshold is a percent".into(),
            ));
        }
        if t.commit_interval == Some(Duration::ZERO) {
            return Err(RvmError::InvalidArgument(
                "commit_interval must not be 0".into(),
            ));
        }
        *lock(&sh.commit_interval) = t.commit_interval;
        {
            let _g = lock(&sh.signal.flags);
            sh.signal.timer_cv.notify_all();
        }
        sh.checked.store(t.checked, Ordering::Relaxed);
        self.set_optimizations(t.intra, t.inter);
        self.set_truncate_threshold(t.truncate_threshold);
        Ok(())
    }

    /// Make every committed no-flush record durable (LRVM §4.1 `flush`): with `ordered`,
    /// sync the storage first; write the pending records to the log with a write that is
    /// durable for the log range only (`Storage::write_durable_at`); empty the spool.
    /// Concurrent flushes and `end(Flush)` share one sync (group commit). A full log is
    /// truncated on the way; never fails for lack of space.
    ///
    /// With `ordered` (and ordered data not on demand), every storage write completed before
    /// the call is durable on return even when no record was pending (the filesystem's
    /// fsync of file data); on demand, every write noted with [`Rvm::note_unlogged_data`].
    pub fn flush(&self) -> Result<()> {
        let sh = self.sh();
        if sh.opts.read_only {
            return Ok(());
        }
        inc(&sh.counters.flushes, 1);
        let target = lock(&sh.inner).next_seq;
        let wrote = sh.flush_upto(target)?;
        if sh.opts.ordered && !wrote {
            sh.unlogged.store(false, Ordering::Release);
            sh.storage.sync()?;
            inc(&sh.counters.flush_syncs, 1);
        }
        Ok(())
    }

    /// Ordered data on demand: with `on`, a flush syncs the storage before writing records
    /// only if [`Rvm::note_unlogged_data`] was called since the last sync (the records
    /// themselves are written durably for their log range only, so an unnoted, unlogged
    /// write may still be volatile after the flush). Off (the default), every
    /// flush of an `ordered` instance syncs first. Callers that turn it on must note every
    /// data write that a record will point at and that is not carried in a record
    /// ([`Transaction::log_external`](crate::Transaction::log_external)).
    pub fn set_ordered_on_demand(&self, on: bool) {
        self.sh().on_demand.store(on, Ordering::Release);
    }

    /// Data was written to the storage that records committed from now on may point at and
    /// that is not in a record: the next flush syncs the storage before writing records
    /// (see [`Rvm::set_ordered_on_demand`]). Call it after the write, before the commit.
    pub fn note_unlogged_data(&self) {
        self.sh().unlogged.store(true, Ordering::Release);
    }

    /// Ask the background truncator to run now (it applies the log up to the durable tail),
    /// whatever the log's fill level; returns at once. For callers that bound memory:
    /// region pages changed before a truncation can then be released
    /// ([`Region::release_applied_pages`]). No effect on a read-only instance.
    pub fn request_truncation(&self) {
        let sh = self.sh();
        if sh.opts.read_only {
            return;
        }
        let mut g = lock(&sh.signal.flags);
        if !g.truncate {
            g.truncate = true;
            sh.signal.cv.notify_all();
        }
    }

    /// Every Lsn below this one was applied by truncation: its record is no longer in the
    /// log, so recovery never replays it (nor its external ranges) again.
    pub fn applied_lsn(&self) -> Lsn {
        lock(&self.sh().pos).head_seq
    }

    /// Explicit requests for durability so far: calls of [`Rvm::flush`] plus commits with
    /// [`CommitMode::Flush`] (the commit timer's and a full spool's flushes are not counted).
    /// Lets a caller tell whether anyone asked for durability since some point (the
    /// filesystem logs small file data only for writers that fsync).
    pub fn durability_requests(&self) -> u64 {
        let c = &self.sh().counters;
        c.flushes.load(Ordering::Relaxed) + c.commits_flush.load(Ordering::Relaxed)
    }

    /// Every Lsn below this one is durable in the log.
    pub fn durable_lsn(&self) -> Lsn {
        lock(&self.sh().inner).durable_seq
    }

    /// Truncate the log (LRVM §5.1.2): apply the live records to the segments, sync, move
    /// the head to the tail, sync. Pending no-flush records are not flushed first.
    /// Concurrent commits proceed meanwhile (only a committer that finds the log full waits).
    pub fn truncate(&self) -> Result<()> {
        if self.sh().opts.read_only {
            return Ok(());
        }
        self.sh().truncate_once()
    }

    /// Turn the log optimizations of LRVM §5.2 on or off (both on by default): `intra`
    /// coalesces the overlapping and adjacent ranges of one transaction; `inter` merges the
    /// pending no-flush records into one record per flush (a later value of the same bytes
    /// replaces an earlier one). Off is for measuring what they save.
    pub fn set_optimizations(&self, intra: bool, inter: bool) {
        self.sh().intra.store(intra, Ordering::Relaxed);
        self.sh().inter.store(inter, Ordering::Relaxed);
    }

    /// Background truncation starts when the live log exceeds `percent` of its capacity
    /// (default [`DEFAULT_TRUNCATE_THRESHOLD`]); `None` or 0 turns it off (a committer then
    /// truncates when the log is full).
    pub fn set_truncate_threshold(&self, percent: Option<u8>) {
        let p = percent.unwrap_or(0).min(100);
        let sh = self.sh();
        sh.threshold.store(p as u64, Ordering::Relaxed);
        if !sh.opts.read_only {
            let used = lock(&sh.pos).used();
            sh.maybe_request_truncation(used);
        }
    }

    /// Whether a truncation is running right now (one atomic load).
    pub fn is_truncating(&self) -> bool {
        self.sh().truncating.load(Ordering::Relaxed)
    }

    /// Flush, then drop this handle.
    pub fn close(self) -> Result<()> {
        self.flush()
    }

    /// Counters and log positions.
    pub fn stats(&self) -> Stats {
        let sh = self.sh();
        let c = &sh.counters;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (next_lsn, durable_lsn) = {
            let g = lock(&sh.inner);
            (g.next_seq, g.durable_seq)
        };
        let p = *lock(&sh.pos);
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
            flushes: ld(&c.flushes),
            log_full_waits: ld(&c.log_full_waits),
            maps: ld(&c.maps),
            unmaps: ld(&c.unmaps),
            map_overlay_time: Duration::from_nanos(ld(&c.map_overlay_ns)),
            truncation_time_last: Duration::from_nanos(ld(&c.truncation_ns_last)),
            truncating: sh.truncating.load(Ordering::Relaxed),
            log_head: p.head_pos,
            log_tail: p.tail_pos,
            log_capacity: sh.log.capacity,
            next_lsn,
            durable_lsn,
        }
    }

    /// The storage under this instance.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.sh().storage
    }

    /// The options this instance was opened with.
    pub fn options(&self) -> &RvmOptions {
        &self.sh().opts
    }
}

/// `unmap`: flush up to the region's last Lsn, then drop it.
#[allow(clippy::result_large_err)]
pub(crate) fn unmap_region(
    sh: &Arc<Shared>,
    region: Region,
) -> std::result::Result<(), (RvmError, Region)> {
    if let Some(lsn) = region.last_lsn {
        if !sh.opts.read_only {
            if let Err(e) = sh.flush_upto(lsn + 1) {
                return Err((e, region));
            }
        }
    }
    inc(&sh.counters.unmaps, 1);
    drop(region);
    Ok(())
}

/// Error of `Shared::commit`: the error and whether the record was already queued.
pub(crate) struct CommitError {
    pub err: RvmError,
    pub queued: bool,
    /// The record's Lsn when it was queued.
    pub lsn: Option<Lsn>,
}

impl Shared {
    /// Every Lsn below this one was applied to the segments by truncation.
    pub(crate) fn applied_seq(&self) -> Lsn {
        lock(&self.pos).head_seq
    }

    /// A private mapping of `segment` showing the committed state: the segment file plus
    /// the live log records overlaid in order (or, read_only, the recovered ranges). The log
    /// is read without a lock: if a truncation finishes meanwhile and its freed log space
    /// is reused, the walk stops short; the mapping (whose copied pages may predate that
    /// truncation's segment writes) is then discarded and made again.
    pub(crate) fn map_overlaid(self: &Arc<Self>, segment: Area) -> Result<Region> {
        if !self.opts.read_only {
            // Pending no-flush records may touch this area (a region dropped without
            // `unmap`): make them log records first. Nothing pending: no I/O.
            self.flush_all()?;
        }
        let started = Instant::now();
        let mut tries = 0u32;
        // Pages the overlay copied (private now) -> Lsn of the last record that wrote them:
        // they count as changed, so only truncation lets them go.
        let mut overlaid = std::collections::HashMap::new();
        let map = loop {
            let p = *lock(&self.pos);
            let mut map = self.storage.map_private(segment)?;
            overlaid.clear();
            if self.opts.read_only {
                for (off, data) in &self.recovered {
                    crate::region::overlay(&mut map, segment, *off, data);
                    crate::region::note_pages(&mut overlaid, segment, *off, data.len(), Lsn::MAX);
                }
                break map;
            }
            let reached = self.log.walk(&p, |rec| {
                let lsn = rec.header.seq + rec.header.seq_count() - 1;
                for (off, data) in rec.region_ranges() {
                    crate::region::overlay(&mut map, segment, *off, data);
                    crate::region::note_pages(&mut overlaid, segment, *off, data.len(), lsn);
                }
            })?;
            if reached == p.tail_pos {
                break map;
            }
            let head_now = lock(&self.pos).head_pos;
            if head_now <= reached || tries >= 1000 {
                return Err(RvmError::CorruptLog(format!(
                    "live record at position {reached} is unreadable"
                )));
            }
            tries += 1;
        };
        inc(
            &self.counters.map_overlay_ns,
            started.elapsed().as_nanos() as u64,
        );
        let mut region = Region::new(self.clone(), segment, map);
        region.dirty_pages = overlaid;
        if self.checked.load(Ordering::Relaxed) {
            region.enable_shadow();
        }
        Ok(region)
    }

    fn timer_loop(&self) {
        loop {
            {
                let iv = *lock(&self.commit_interval);
                let mut g = lock(&self.signal.flags);
                // Wake on stop, on an interval change (`set_options` notifies), on an early
                // flush request, or when the interval elapses.
                if !g.stop && !g.flush {
                    g = match iv {
                        Some(iv) => {
                            let (g, r) = self
                                .signal
                                .timer_cv
                                .wait_timeout(g, iv)
                                .unwrap_or_else(|e| e.into_inner());
                            if !r.timed_out() && !g.flush && !g.stop {
                                continue; // maybe a new interval: reread it
                            }
                            g
                        }
                        None => {
                            let g = self
                                .signal
                                .timer_cv
                                .wait(g)
                                .unwrap_or_else(|e| e.into_inner());
                            if !g.flush && !g.stop {
                                continue;
                            }
                            g
                        }
                    };
                }
                if g.stop {
                    return;
                }
                g.flush = false;
            }
            if let Err(e) = self.flush_all() {
                log::error!("rvm: background flush failed: {e}");
            }
        }
    }

    fn truncator_loop(&self) {
        loop {
            {
                let mut g = lock(&self.signal.flags);
                while !g.stop && !g.truncate {
                    g = self.signal.cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                if g.stop {
                    return;
                }
                g.truncate = false;
            }
            if let Err(e) = self.truncate_once() {
                log::error!("rvm: background truncation failed: {e}");
            }
        }
    }

    /// Ask the background truncator to run if the log is past the threshold.
    fn maybe_request_truncation(&self, used: u64) {
        let t = self.threshold.load(Ordering::Relaxed);
        if t > 0 && used * 100 > self.log.capacity * t {
            let mut g = lock(&self.signal.flags);
            if !g.truncate {
                g.truncate = true;
                self.signal.cv.notify_all();
            }
        }
    }

    /// Queue one redo record of `ranges` (absolute storage offset, new bytes) and, for
    /// `Flush`, make it durable.
    /// `ranges[ext_from..]` are external ranges (`Transaction::log_external`).
    pub(crate) fn commit(
        &self,
        ranges: &[(u64, &[u8])],
        ext_from: usize,
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
            record::encode_slice(out, seq, 0, log_id, ranges, ext_from)
        });
        let early = g.pending.unflushed().len() as u64 > self.opts.spool_size / 2;
        drop(g);
        if early {
            // Past half the spool: the commit timer writes the records out now, so a
            // committer rarely finds the spool full and waits for that write itself.
            let mut f = lock(&self.signal.flags);
            if !f.flush {
                f.flush = true;
                self.signal.timer_cv.notify_all();
            }
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
        let _resign = Resign(self);
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

    /// Inter-transaction optimization (LRVM §5.2): fold runs of consecutive pending records
    /// into one record each, holding the union of their ranges with the latest values and
    /// the Lsns of all of them. A merged record is applied atomically (one CRC), so recovery
    /// still yields the state after some commit. Runs are capped at [`MAX_MERGE`] Lsns and
    /// a quarter of the log, so a merged record always fits.
    fn merge_batch(&self, batch: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let max_len = (self.log.capacity / 4).clamp(HEADER_LEN as u64, u32::MAX as u64 / 2);
        out.clear();
        // Region ranges and external ranges are merged apart (they never overlap: external
        // ranges lie outside every region), region ranges first, as in every record.
        let mut ov = RangeList::new();
        let mut ovx = RangeList::new();
        let (mut at, mut run_start, mut run_seq, mut run_n) = (0usize, 0usize, 0u64, 0u32);
        let end_run = |out: &mut Vec<u8>,
                       ov: &mut RangeList<'_>,
                       ovx: &mut RangeList<'_>,
                       from: usize,
                       to: usize,
                       seq: u64,
                       n: u32| {
            if n <= 1 {
                out.extend_from_slice(&batch[from..to]);
                ov.clear();
                ovx.clear();
                return;
            }
            let u = ov.take_union();
            let ux = ovx.take_union();
            let mut ranges = u.ranges();
            let ext_from = ranges.len();
            ranges.extend(ux.ranges());
            let before = out.len();
            record::encode_merged_ext_into(out, seq, n - 1, self.log.log_id, &ranges, ext_from);
            let saved = (to - from).saturating_sub(out.len() - before) as u64;
            inc(&self.counters.bytes_saved_inter, saved);
            inc(&self.counters.records_merged, n as u64 - 1);
        };
        while at < batch.len() {
            let rec = record::decode(&batch[at..])
                .map_err(|e| RvmError::CorruptLog(format!("pending record: {e}")))?;
            let tl = rec.header.total_len as usize;
            if run_n > 0
                && ((at + tl - run_start) as u64 > max_len
                    || run_n as u64 + rec.header.seq_count() > MAX_MERGE as u64)
            {
                end_run(out, &mut ov, &mut ovx, run_start, at, run_seq, run_n);
                run_n = 0;
            }
            if run_n == 0 {
                run_start = at;
                run_seq = rec.header.seq;
            }
            for (off, data) in rec.region_ranges() {
                ov.push(*off, data);
            }
            for (off, data) in rec.external_ranges() {
                ovx.push(*off, data);
            }
            run_n += rec.header.seq_count() as u32;
            at += tl;
        }
        if run_n > 0 {
            end_run(out, &mut ov, &mut ovx, run_start, at, run_seq, run_n);
        }
        Ok(())
    }

    pub(crate) fn note_abort(&self) {
        inc(&self.counters.aborts, 1);
    }

    pub(crate) fn note_intra_saved(&self, n: u64) {
        inc(&self.counters.bytes_saved_intra, n);
    }

    /// Leader only: write whole encoded records at the log tail, syncing, and truncating
    /// when the log is full.
    fn write_batch(&self, batch: &[u8]) -> Result<()> {
        // Ordered data: file data written in place must be on disk before the records that
        // point at it. On demand (`Rvm::set_ordered_on_demand`), only when the caller noted
        // such data (`Rvm::note_unlogged_data`) since the last sync; data carried in the
        // records themselves (`Transaction::log_external`) needs no sync of its own.
        let pre_sync = self.opts.ordered
            && (!self.on_demand.load(Ordering::Acquire)
                || self.unlogged.swap(false, Ordering::AcqRel));
        if pre_sync {
            self.storage.sync()?;
            inc(&self.counters.flush_syncs, 1);
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
                // Full: truncate (or wait for the background truncator), then go on.
                inc(&self.counters.log_full_waits, 1);
                self.truncate_once()?;
                continue;
            }
            self.log.write_pos(p.tail_pos, &batch[off..end], true)?;
            let used = {
                let mut p = lock(&self.pos);
                p.tail_pos += (end - off) as u64;
                p.tail_seq += seqs;
                p.used()
            };
            inc(&self.counters.flush_syncs, 1);
            inc(&self.counters.log_writes, 1);
            inc(&self.counters.records_logged, n);
            inc(&self.counters.bytes_logged, (end - off) as u64);
            self.maybe_request_truncation(used);
            off = end;
        }
        Ok(())
    }

    /// Truncation (LRVM §5.1.2): apply the durable records `[head, tail)` as of now to the
    /// segments, sync, write the next status copy with head = that tail, sync. Runs beside
    /// the leader: it only reads below the tail, the leader only writes above it.
    pub(crate) fn truncate_once(&self) -> Result<()> {
        let mut generation = lock(&self.trunc);
        let p = *lock(&self.pos);
        if p.used() == 0 {
            return Ok(());
        }
        let started = Instant::now();
        self.truncating.store(true, Ordering::Relaxed);
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        let _done = Done(&self.truncating);
        self.log.apply(&p)?;
        self.storage.sync()?;
        self.log
            .write_status(*generation + 1, p.tail_pos, p.tail_seq)?;
        *generation += 1;
        self.storage.sync()?;
        {
            let mut q = lock(&self.pos);
            q.head_pos = p.tail_pos;
            q.head_seq = p.tail_seq;
        }
        return_free_memory();
        inc(&self.counters.truncations, 1);
        inc(&self.counters.bytes_truncated, p.used());
        let ns = started.elapsed().as_nanos() as u64;
        inc(&self.counters.truncation_ns, ns);
        self.counters
            .truncation_ns_max
            .fetch_max(ns, Ordering::Relaxed);
        self.counters
            .truncation_ns_last
            .store(ns, Ordering::Relaxed);
        Ok(())
    }
}
