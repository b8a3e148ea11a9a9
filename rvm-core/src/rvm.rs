//! The RVM instance handle, [`Rvm`]: the public API of LRVM §4.1 (`initialize`, `map`,
//! `unmap`, `flush`, `truncate`, `query_options`, `set_options`) as a thin facade. The
//! work is done by the concept modules it calls: `recovery` (initialize), `mapping`,
//! `commit` (flush, group commit), `truncate`, `background` (the threads), `stats`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::background::spawn_background;
use crate::error::{Result, RvmError};
use crate::failure::{FailedOp, Failure};
#[cfg(doc)]
use crate::options::DEFAULT_TRUNCATE_THRESHOLD;
use crate::options::{RegionInfo, RvmOptions, Tunables};
use crate::recovery;
use crate::region::Region;
use crate::shared::{lock, Shared};
use crate::spool::{self, Pending};
use crate::stats::{inc, Stats};
use crate::status::{self, Status};
use crate::storage::{Area, Storage};
#[cfg(doc)]
use crate::types::CommitMode;
use crate::types::Lsn;

/// The user-visible handle; when the last clone goes, background threads are stopped and
/// joined (regions may keep the shared state alive longer).
struct Handle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop_background();
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
    pub(crate) fn sh(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Format an empty log in `log` (both status copies, head = tail = 0, a new random log
    /// id so records of an older log in the same area are never replayed), then sync.
    /// `log` must be 4096-aligned and at least 12 KiB; capacity = `log.len - 8192` bytes.
    pub fn create_log(storage: &dyn Storage, log: Area) -> Result<()> {
        Self::create_log_at(storage, log, 1)
    }

    /// As [`Rvm::create_log`], the first record to get Lsn `head_seq` (at least 1): a
    /// region restored as of Lsn `head_seq - 1` (from a shipped log, `rvm_core::ship`)
    /// continues the Lsns it was restored to.
    pub fn create_log_at(storage: &dyn Storage, log: Area, head_seq: Lsn) -> Result<()> {
        let capacity = status::capacity_of(log)?;
        let head_seq = head_seq.max(1);
        let log_id = random_u64();
        for generation in [1u64, 2] {
            let s = Status {
                generation,
                head_pos: 0,
                head_seq,
                capacity,
                log_id,
            };
            status::write_status(storage, log, &s)?;
        }
        storage.sync()?;
        Ok(())
    }

    /// Open the log, recovering lazily (LRVM §5.1.2; the steps are in `recovery`): validate
    /// the live log from the status head and find its tail, stopping at the first torn,
    /// stale or corrupt record; take the spool records that continue the sequence (Rio
    /// Vista) and make them durable at the log tail; write the external ranges; start the
    /// sequence past every number still in the log area. The live records are not replayed
    /// onto the segment here: [`Rvm::map`] overlays them on the private mapping and the
    /// background truncator applies them later. A crash at any point of this recovers again
    /// to the same image. With `read_only`, nothing is written: the recovered ranges are
    /// kept in memory for [`Rvm::map`]. A read-write instance first locks its spool file
    /// for its lifetime; if another process holds it, it keeps its no-flush records in
    /// memory instead (`spool::claim`).
    ///
    /// Errors: [`RvmError::CorruptStatus`] if neither status copy is valid or the capacity
    /// does not match `options.log`; `InvalidArgument` for a bad log area; `Io` (also
    /// opening or locking the spool file).
    pub fn initialize(storage: Arc<dyn Storage>, options: RvmOptions) -> Result<Rvm> {
        Self::initialize_with_log(storage.clone(), storage, options)
    }

    /// As [`Rvm::initialize`], with the log on its own storage (an external log device,
    /// ext4's `mke2fs -J device=`, XFS's `-l logdev=`; LRVM's experience paper asks for a
    /// faster log device): `options.log` is an area of `log_storage`, formatted by
    /// [`Rvm::create_log`] on it; the segments and every record's ranges are in `storage`.
    /// A commit writes and syncs `log_storage` only; `ordered` syncs `storage` before it; a
    /// truncation applies to `storage` and syncs it before the log's status moves on.
    ///
    /// Errors: as [`Rvm::initialize`].
    pub fn initialize_with_log(
        storage: Arc<dyn Storage>,
        log_storage: Arc<dyn Storage>,
        options: RvmOptions,
    ) -> Result<Rvm> {
        let read_only = options.read_only;
        let (options, spool) = spool::claim(options)?;
        let rec = recovery::recover(&storage, &log_storage, &options)?;
        let live_bytes = rec.live_bytes();
        let shared = Arc::new(Shared::recovered(storage, options, rec, spool)?);
        let mut threads = Vec::new();
        if !read_only {
            threads = spawn_background(&shared)?;
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
        self.sh().map_region(segment)
    }

    /// Unmap a region (LRVM §4.1 `unmap`): make every transaction it committed durable
    /// (a flush up to its last Lsn), then release the mapping. LRVM refuses to unmap a
    /// region with an uncommitted transaction; here that cannot even be written: a
    /// [`Transaction`](crate::Transaction) borrows its region mutably until `end`, `abort`
    /// or drop, so the region cannot be moved into `unmap` meanwhile. On an error the
    /// region is returned unchanged. Dropping a region unmaps it without the flush.
    /// A failed instance ([`Rvm::failure`]) still unmaps a region whose records are all
    /// durable; otherwise the error is [`RvmError::Failed`].
    #[allow(clippy::result_large_err)] // the region comes back on error
    pub fn unmap(&self, region: Region) -> std::result::Result<(), (RvmError, Region)> {
        if !region.belongs_to(self.sh()) {
            return Err((
                RvmError::InvalidArgument("region belongs to another Rvm".into()),
                region,
            ));
        }
        self.sh().unmap_region(region)
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
        let durable = self.sh().durable_seq();
        RegionInfo {
            area: region.area(),
            last_lsn: region.last_lsn(),
            durable: region.last_lsn().is_none_or(|l| l < durable),
            checked: region.is_checked(),
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
        sh.wake_timer();
        sh.checked.store(t.checked, Ordering::Relaxed);
        self.set_optimizations(t.intra, t.inter);
        self.set_truncate_threshold(t.truncate_threshold);
        Ok(())
    }

    /// Make every committed no-flush record durable (LRVM §4.1 `flush`): with `ordered`,
    /// sync the storage first; write the pending records to the log with a write that is
    /// durable for the log range only (`Storage::write_durable_at`); empty the spool.
    /// Concurrent flushes and `end(Flush)` share one sync (group commit). A full log is
    /// truncated on the way; never fails for lack of log space.
    ///
    /// Errors: [`RvmError::Failed`] if the instance has failed, or if a write or sync of
    /// this flush fails (which fails the instance; see [`Rvm::failure`]).
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
        sh.healthy()?;
        let target = lock(&sh.inner).next_seq;
        let wrote = sh.flush_upto(target)?;
        // Nothing left to write (a concurrent leader wrote our records, with its pre-sync):
        // sync only what no completed sync covers, so followers of a group commit share
        // the leader's sync instead of each making one.
        let on_demand = sh.on_demand.load(Ordering::Acquire);
        if sh.opts.ordered && !wrote && (!on_demand || sh.unlogged_pending()) {
            sh.sync_data()?;
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
        self.sh().unlogged_noted.fetch_add(1, Ordering::AcqRel);
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
        sh.wake_truncator();
    }

    /// Every Lsn below this one was applied by truncation: its record is no longer in the
    /// log, so recovery never replays it (nor its external ranges) again.
    pub fn applied_lsn(&self) -> Lsn {
        self.sh().applied_seq()
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
        self.sh().durable_seq()
    }

    /// Truncate the log (LRVM §5.1.2): apply the live records to the segments, sync, move
    /// the head to the tail, sync (with log shipping on, only the records below the shipped
    /// floor, `crate::ship`). Pending no-flush records are not flushed first.
    /// Concurrent commits proceed meanwhile (only a committer that finds the log full waits).
    ///
    /// Errors: [`RvmError::Failed`] if the instance has failed, or if a read, write or sync
    /// of this truncation fails (which fails the instance; the head has not moved, so the
    /// records stay live and recovery replays them).
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

    /// At a clean shutdown, once every record is in the log: remove the spool file, so no
    /// stale spool stays behind (in `/dev/shm` for rvmfs). No-flush commits after this wait
    /// in process memory. Returns whether a file was removed: nothing is on a read-only or
    /// failed instance, nor while records wait only in the spool (a crashed or failed
    /// daemon's spool stays for the next recovery). Errors: `Failed`; `Io` from the removal.
    pub fn remove_spool(&self) -> Result<bool> {
        let sh = self.sh();
        let Some(path) = sh.opts.spool.as_ref().filter(|_| !sh.opts.read_only) else {
            return Ok(false);
        };
        sh.healthy()?;
        let mut g = lock(&sh.inner);
        // A flush leader's records stay in the spool until durable: none is under way.
        if !matches!(g.pending, Pending::Spool(_)) || !g.pending.unflushed().is_empty() {
            return Ok(false);
        }
        g.pending = Pending::Mem {
            buf: Vec::new(),
            limit: sh.opts.spool_size,
        };
        drop(g);
        std::fs::remove_file(path)?;
        Ok(true)
    }

    /// Flush, then drop this handle.
    pub fn close(self) -> Result<()> {
        self.flush()
    }

    /// The first storage error, once the instance has failed (see [`RvmError::Failed`]):
    /// from then on every commit, flush, truncation and external write is refused with
    /// `Failed` holding this, while mapped regions stay readable. `None` while healthy.
    /// One atomic load; a filesystem asks it to answer modifying requests with `EIO`.
    pub fn failure(&self) -> Option<Failure> {
        self.sh().failure.get().cloned()
    }

    /// The caller's own write or sync of data that records point at failed (file data
    /// written in place with [`Storage::write_at`], not through a transaction): fail the
    /// instance as if its own I/O had failed ([`FailedOp::DataWrite`], logged once), so
    /// every later commit, flush and truncation is refused. Returns the
    /// [`RvmError::Failed`] to hand on (holding the first failure if the instance had
    /// failed already).
    pub fn fail(&self, err: std::io::Error) -> RvmError {
        self.sh().fail(FailedOp::DataWrite, err.into())
    }

    /// Counters and log positions.
    pub fn stats(&self) -> Stats {
        self.sh().stats()
    }

    /// The storage under the segments (and, unless it has its own, the log).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.sh().storage
    }

    /// The storage holding the log ([`Rvm::storage`] unless opened with
    /// [`Rvm::initialize_with_log`]).
    pub fn log_storage(&self) -> &Arc<dyn Storage> {
        &self.sh().log.storage
    }

    /// The options this instance was opened with.
    pub fn options(&self) -> &RvmOptions {
        &self.sh().opts
    }

    /// With `read_only`: the ranges recovery replayed into memory, as (storage offset,
    /// bytes) in order (a later range wins where two overlap); `map` applies those inside a
    /// region, the caller must apply the others (external ranges, e.g. logged file data)
    /// to its reads of the storage. Empty otherwise (recovery wrote them to the storage).
    pub fn recovered_ranges(&self) -> &[(u64, Vec<u8>)] {
        &self.sh().recovered
    }
}
