//! The FUSE daemon's request handlers: decode a kernel request, take the lock, run one
//! operation from `ops`, release the lock, reply. A request is answered only after its
//! transaction committed to the spool (so it survives `kill -9` of the daemon) and its data
//! reached the image file.
//!
//! Locking (README "Concurrency"): the filesystem is one `RwLock<Fs>`. Read-only requests
//! take it shared ([`RvmFs::read`]) and run in parallel; changes take it exclusive
//! ([`RvmFs::write`], [`RvmFs::change`]). No reply is sent and no log flush runs with it held:
//! fsync, fsyncdir and the flush of a `-o sync` commit run after it is released, so
//! concurrent flushes share one group commit and readers never wait for them.

mod attr;
mod data;
mod dir;
mod dirplus;
mod init;
mod killpriv;
pub mod logging;
pub mod mount;
mod namespace;
mod opcodes;
mod planned;
mod reply;
mod requests;
mod resize;
pub mod rootless;
mod setgid;
mod writeback;

use crate::error::FsResult;
use crate::ops::{Durability, Fs};
pub use opcodes::{Op, OpStats, LATENCY_XATTR, NAMES as OP_NAMES, REQUESTS_XATTR};
use rvm_core::Rvm;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// How long the kernel may cache names and attributes. Only this daemon changes the image, and
/// the kernel invalidates what its own requests change (attributes after setattr, write, link,
/// unlink, rename; the parent after a directory change), so the cache stays coherent however
/// long it lives. A long TTL saves a LOOKUP/GETATTR round trip per path component.
const TTL: Duration = Duration::from_secs(60);

/// The filesystem as the FUSE session sees it.
pub struct RvmFs {
    state: Arc<RwLock<Fs>>,
    rvm: Arc<Rvm>,
    counters: Counters,
    /// `-o sync`: every change is flushed before its reply, outside the lock.
    sync: bool,
    /// Requests received by opcode, and their latency (`opcodes.rs`).
    ops: OpStats,
    /// FUSE_HANDLE_KILLPRIV_V2 was negotiated: the daemon clears set-ID bits when the kernel
    /// says so (`killpriv.rs`).
    killpriv_v2: bool,
    /// The mount keeps data checksums (writes compute them before taking the lock).
    datasum: bool,
    /// `-o writeback` asked for the kernel's writeback cache; after FUSE_INIT, whether the
    /// kernel granted it (`writeback.rs`).
    writeback: bool,
    /// An `object_data` image's uploader and session (`remote`): fsync under
    /// `-o upload=sync` waits for the file's upload.
    remote: Option<Arc<crate::remote::Remote>>,
}

/// How many durability requests reached the daemon (tests read them through the virtual
/// extended attribute [`COUNTERS_XATTR`] of any inode).
#[derive(Default)]
pub struct Counters {
    pub fsync: AtomicU64,
    pub fdatasync: AtomicU64,
    pub fsyncdir: AtomicU64,
    pub flush: AtomicU64,
    /// File data bytes answered to read requests and accepted by write requests (bytes).
    pub read_bytes: AtomicU64,
    pub written_bytes: AtomicU64,
    /// Time write requests spent computing their data checksums before taking the lock
    /// (`WriteSums::of`), ns: the sums' own cost, which the disk's swings do not blur.
    pub csum_write_ns: AtomicU64,
}

/// Name of the read-only virtual attribute holding the counters as text ("fsync=N
/// fdatasync=N fsyncdir=N flush=N read_bytes=N written_bytes=N csum_write_ns=N", then
/// rvm-core's "commits=N records_logged=N log_writes=N flush_syncs=N flushes=N
/// bytes_logged=N truncations=N bytes_truncated=N log_live=N log_capacity=N spool_bytes=N
/// spool_capacity=N": transactions committed, records written to the log, batches a
/// group-commit leader wrote, syncs flushes made, flush requests, log bytes written,
/// truncations and the bytes they applied, live log bytes and the log's capacity, no-flush
/// record bytes not yet in the log and the spool's room for them; byte counts in bytes;
/// `csum_write_ns`: ns write requests spent computing data checksums). `rvmfs-admin stats`
/// reads it. It has no namespace prefix, so it can never be set, is never listed, and cannot
/// collide with a stored attribute.
pub const COUNTERS_XATTR: &[u8] = b"rvmfs.counters";

impl Counters {
    fn bump(counter: &AtomicU64) {
        Counters::add(counter, 1);
    }
    /// Add `n` (bytes) to `counter`.
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    fn text(&self) -> Vec<u8> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "fsync={} fdatasync={} fsyncdir={} flush={} read_bytes={} written_bytes={} \
             csum_write_ns={}",
            get(&self.fsync),
            get(&self.fdatasync),
            get(&self.fsyncdir),
            get(&self.flush),
            get(&self.read_bytes),
            get(&self.written_bytes),
            get(&self.csum_write_ns)
        )
        .into_bytes()
    }
}

/// Whether `name` is one of the daemon's virtual attributes (their reads are not counted).
fn is_virtual_xattr(name: &[u8]) -> bool {
    [COUNTERS_XATTR, REQUESTS_XATTR, LATENCY_XATTR].contains(&name)
}

/// What a handler holds while it serves one request: the latency timer of its opcode
/// (`opcodes.rs`) and the context its log lines name (`logging.rs`); dropped after the reply.
type InRequest<'a> = (opcodes::Timer<'a>, logging::RequestContext);

impl RvmFs {
    /// Count request `op` on inode `ino`, time it, and name it in log lines until dropped.
    fn begin(&self, op: Op, ino: u64) -> InRequest<'_> {
        let context = logging::RequestContext::enter(opcodes::NAMES[op as usize], ino);
        (self.ops.start(op), context)
    }

    /// The value of virtual attribute `name`, or None for a stored one.
    fn virtual_xattr(&self, name: &[u8]) -> Option<Vec<u8>> {
        match name {
            COUNTERS_XATTR => Some(self.counters_text()),
            REQUESTS_XATTR => Some(self.ops.requests_text()),
            LATENCY_XATTR => Some(self.ops.latency_text()),
            _ => None,
        }
    }

    /// Serve `state`; `rvm` is its RVM instance (flushes happen outside the lock). A `sync`
    /// mount's commits are flushed by the handlers after the lock is released
    /// (`Fs::flush_by_caller`).
    pub fn new(state: Arc<RwLock<Fs>>) -> RvmFs {
        let (rvm, sync, datasum) = {
            let mut fs = lock(&state);
            fs.flush_by_caller = true;
            let datasum = fs.geo.csums.is_some() && !fs.geo.nodatasum;
            (fs.rvm.clone(), fs.durability == Durability::Sync, datasum)
        };
        RvmFs {
            state,
            rvm,
            counters: Counters::default(),
            sync,
            ops: OpStats::default(),
            killpriv_v2: false,
            datasum,
            writeback: false,
            remote: None,
        }
    }

    /// Serve an `object_data` image: fsync also uploads under `-o upload=sync`.
    pub fn with_remote(mut self, remote: Option<Arc<crate::remote::Remote>>) -> RvmFs {
        self.remote = remote;
        self
    }

    /// Ask the kernel for its writeback cache at FUSE_INIT (`-o writeback`, `writeback.rs`).
    pub fn with_writeback(mut self, on: bool) -> RvmFs {
        self.writeback = on;
        self
    }

    /// The filesystem, shared, for read-only requests. A failure of rvm-core since the last
    /// request (a background flush or truncation) is reported first, under the exclusive
    /// lock, so `errors=panic` acts on it at once.
    fn read(&self) -> RwLockReadGuard<'_, Fs> {
        let fs = read_lock(&self.state);
        if !fs.failure_unreported() {
            return fs;
        }
        drop(fs);
        drop(self.write());
        read_lock(&self.state)
    }

    /// The filesystem, exclusive (see [`RvmFs::read`] for the failure check). Callers that
    /// commit must go through [`RvmFs::change`], which flushes a `sync` mount's commit.
    fn write(&self) -> RwLockWriteGuard<'_, Fs> {
        let mut fs = lock(&self.state);
        fs.notice_failure("background flush", 0);
        fs
    }

    /// Run `f` (which may commit transactions) under the exclusive lock; release it; on a
    /// `sync` mount flush what `f` committed (one group-committed log flush shared with
    /// concurrent requests), answering EIO if that flush fails. `op`, `ino`: the request,
    /// for the error log.
    fn change<T>(&self, op: &str, ino: u64, f: impl FnOnce(&mut Fs) -> FsResult<T>) -> FsResult<T> {
        let (r, unflushed) = {
            let mut fs = self.write();
            let r = f(&mut fs);
            (r, std::mem::take(&mut fs.unflushed))
        };
        if self.sync && unflushed {
            self.flush_log(op, ino)?;
        }
        r
    }

    /// [`Fs::transact_on`] through [`RvmFs::change`].
    fn transact<T>(
        &self,
        op: &str,
        ino: u64,
        f: impl FnOnce(&mut crate::ops::Op<'_>) -> FsResult<T>,
    ) -> FsResult<T> {
        self.change(op, ino, |fs| fs.transact_on(op, ino, f))
    }

    /// release of `ino`: drop the handle under the shared lock; free an orphan at
    /// its last handle under the exclusive one.
    fn release(&self, ino: u64) -> FsResult<()> {
        let last_of_orphan = crate::ops::open::drop_handle(&self.read(), ino);
        if last_of_orphan {
            self.change("release", ino, |fs| {
                crate::ops::open::reclaim_orphan(fs, ino)
            })?;
        }
        Ok(())
    }

    /// The text of [`COUNTERS_XATTR`]: the daemon's counters, then rvm-core's.
    fn counters_text(&self) -> Vec<u8> {
        let s = self.rvm.stats();
        let mut text = self.counters.text();
        text.extend_from_slice(
            format!(
                " commits={} records_logged={} log_writes={} flush_syncs={} flushes={} \
                 bytes_logged={} truncations={} bytes_truncated={} log_live={} log_capacity={} \
                 spool_bytes={} spool_capacity={}",
                s.commits_flush + s.commits_no_flush,
                s.records_logged,
                s.log_writes,
                s.flush_syncs,
                s.flushes,
                s.bytes_logged,
                s.truncations,
                s.bytes_truncated,
                s.log_tail.saturating_sub(s.log_head),
                s.log_capacity,
                s.spool_bytes,
                s.spool_capacity
            )
            .as_bytes(),
        );
        text
    }

    /// Make every committed operation durable (fsync of `ino`, fsyncdir, syncfs, a `sync`
    /// mount's change): one group-committed log flush, which first syncs the image so data
    /// precedes the records that point at it; runs without the filesystem lock. Once failed,
    /// answers EIO without I/O (rvm-core refuses the flush).
    fn flush_log(&self, op: &str, ino: u64) -> FsResult<()> {
        if let Err(e) = self.rvm.flush() {
            if let Some(failure) = self.rvm.failure() {
                lock(&self.state).report_failure(&failure, op, ino);
            }
            return Err(e.into());
        }
        Ok(())
    }
}

/// Take the lock exclusive even if a previous holder panicked (the region is always
/// consistent between transactions: a panicking transaction was dropped, and dropping aborts
/// it).
pub fn lock(state: &RwLock<Fs>) -> RwLockWriteGuard<'_, Fs> {
    state
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Take the lock shared (see [`lock`]).
fn read_lock(state: &RwLock<Fs>) -> RwLockReadGuard<'_, Fs> {
    state
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
