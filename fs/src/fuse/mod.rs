//! The FUSE daemon's request handlers: decode a kernel request, take the lock, run one
//! operation from `ops`, reply. A request is answered only after its transaction committed to
//! the spool (so it survives `kill -9` of the daemon) and its data reached the image file.

mod attr;
mod data;
mod dir;
mod namespace;
mod reply;
mod requests;
mod setgid;

use crate::error::FsResult;
use crate::ops::Fs;
use rvm_core::Rvm;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long the kernel may cache names and attributes. Only this daemon changes the image, and
/// the kernel invalidates what its own requests change (attributes after setattr, write, link,
/// unlink, rename; the parent after a directory change), so the cache stays coherent however
/// long it lives. A long TTL saves a LOOKUP/GETATTR round trip per path component.
const TTL: Duration = Duration::from_secs(60);

/// The filesystem as the FUSE session sees it.
pub struct RvmFs {
    state: Arc<Mutex<Fs>>,
    rvm: Arc<Rvm>,
    counters: Counters,
    /// The mount keeps data checksums (writes compute them before taking the lock).
    datasum: bool,
}

/// How many durability requests reached the daemon (tests read them through the virtual
/// extended attribute [`COUNTERS_XATTR`] of any inode).
#[derive(Default)]
pub struct Counters {
    pub fsync: AtomicU64,
    pub fdatasync: AtomicU64,
    pub fsyncdir: AtomicU64,
    pub flush: AtomicU64,
}

/// Name of the read-only virtual attribute holding the counters as text
/// ("fsync=N fdatasync=N fsyncdir=N flush=N"). It has no namespace prefix, so it can never be
/// set, is never listed, and cannot collide with a stored attribute.
pub const COUNTERS_XATTR: &[u8] = b"rvmfs.counters";

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    fn text(&self) -> Vec<u8> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "fsync={} fdatasync={} fsyncdir={} flush={}",
            get(&self.fsync),
            get(&self.fdatasync),
            get(&self.fsyncdir),
            get(&self.flush)
        )
        .into_bytes()
    }
}

impl RvmFs {
    /// Serve `state`; `rvm` is its RVM instance (flushes happen outside the lock).
    pub fn new(state: Arc<Mutex<Fs>>) -> RvmFs {
        let (rvm, datasum) = {
            let fs = lock(&state);
            (fs.rvm.clone(), fs.geo.csums.is_some() && !fs.geo.nodatasum)
        };
        RvmFs {
            state,
            rvm,
            counters: Counters::default(),
            datasum,
        }
    }

    /// The filesystem, locked. A failure of rvm-core since the last request (a background
    /// flush or truncation) is reported here, so `errors=panic` acts on it at once.
    fn fs(&self) -> MutexGuard<'_, Fs> {
        let mut fs = lock(&self.state);
        fs.notice_failure("background flush", 0);
        fs
    }

    /// Make every committed operation durable (fsync of `ino`, fsyncdir, syncfs): one
    /// group-committed log flush, which first syncs the image so data precedes the records
    /// that point at it. Once failed, answers EIO without I/O (rvm-core refuses the flush).
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

/// Take the lock even if a previous holder panicked (the region is always consistent between
/// transactions: a panicking transaction was dropped, and dropping aborts it).
pub fn lock(state: &Mutex<Fs>) -> MutexGuard<'_, Fs> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
