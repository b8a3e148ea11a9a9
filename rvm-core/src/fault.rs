//! Fault injection, a test tool (like [`sim`](crate::sim)): a [`Storage`] wrapper that makes
//! the Nth write, durable write or sync fail with the errno the test chooses (`EIO`,
//! `ENOSPC`, ...), once or from then on, and counts every call. Over a
//! [`SimStorage`](crate::SimStorage) it shows what a power loss after the fault keeps
//! ([`SimStorage::durable_image`](crate::SimStorage::durable_image)); `tests/faults.rs` uses
//! it to check that errors are sticky and honest (see [`RvmError::Failed`](crate::RvmError)).
//!
//! What a failed call did to the inner storage:
//! * `write_at`: nothing (the write never happened);
//! * `write_durable_at`: the bytes were written (reads see them) but not made durable, as
//!   after a `pwritev2(RWF_DSYNC)` whose writeback failed;
//! * `sync`: the inner storage was not synced (the pending writes stay volatile).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::MmapMut;

use crate::storage::{Area, Storage};

/// Which calls a fault counts and fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// `Storage::write_at`.
    Write,
    /// `Storage::write_durable_at` (the redo log's commit write).
    DurableWrite,
    /// `Storage::sync`.
    Sync,
    /// Any of the three.
    Any,
}

impl FaultOp {
    fn matches(self, call: FaultOp) -> bool {
        self == FaultOp::Any || self == call
    }
}

/// The armed fault.
#[derive(Clone, Copy, Debug)]
struct Plan {
    op: FaultOp,
    /// Matching calls that still succeed before the fault.
    left: u64,
    errno: i32,
    /// After the first fault, every later matching call fails too.
    every_later: bool,
    /// The first fault was injected.
    fired: bool,
}

/// Calls a [`FaultStorage`] has seen (failed ones included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub writes: u64,
    pub durable_writes: u64,
    pub syncs: u64,
    /// Calls that were made to fail.
    pub injected: u64,
}

/// A [`Storage`] over `inner` that fails calls on demand; see the module docs. Reads,
/// `maps_file` and `map_private` pass through and never fail.
pub struct FaultStorage<S: Storage + ?Sized> {
    inner: Arc<S>,
    plan: Mutex<Option<Plan>>,
    writes: AtomicU64,
    durable_writes: AtomicU64,
    syncs: AtomicU64,
    injected: AtomicU64,
}

impl<S: Storage + ?Sized> FaultStorage<S> {
    /// A wrapper of `inner` with no fault armed.
    pub fn new(inner: Arc<S>) -> Self {
        FaultStorage {
            inner,
            plan: Mutex::new(None),
            writes: AtomicU64::new(0),
            durable_writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Arm a fault: after `n` more calls of `op` succeed, the next one fails with
    /// `io::Error::from_raw_os_error(errno)`; with `every_later`, so does every matching
    /// call after it. Replaces any fault armed before.
    pub fn fail_after(&self, op: FaultOp, n: u64, errno: i32, every_later: bool) {
        *self.lock() = Some(Plan {
            op,
            left: n,
            errno,
            every_later,
            fired: false,
        });
    }

    /// Disarm the fault: every later call passes through.
    pub fn disarm(&self) {
        *self.lock() = None;
    }

    /// Whether the armed fault has been injected at least once.
    pub fn fired(&self) -> bool {
        self.lock().is_some_and(|p| p.fired)
    }

    /// The calls seen so far.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            writes: self.writes.load(Ordering::SeqCst),
            durable_writes: self.durable_writes.load(Ordering::SeqCst),
            syncs: self.syncs.load(Ordering::SeqCst),
            injected: self.injected.load(Ordering::SeqCst),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Plan>> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count one `call`; the error to return if it is to fail.
    fn enter(&self, call: FaultOp) -> Option<io::Error> {
        let counter = match call {
            FaultOp::Write => &self.writes,
            FaultOp::DurableWrite => &self.durable_writes,
            _ => &self.syncs,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock();
        let p = g.as_mut().filter(|p| p.op.matches(call))?;
        let fail = if p.fired {
            p.every_later
        } else if p.left == 0 {
            p.fired = true;
            true
        } else {
            p.left -= 1;
            false
        };
        if !fail {
            return None;
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(io::Error::from_raw_os_error(p.errno))
    }
}

impl<S: Storage + ?Sized> Storage for FaultStorage<S> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.enter(FaultOp::Write) {
            Some(e) => Err(e),
            None => self.inner.write_at(buf, offset),
        }
    }

    fn sync(&self) -> io::Result<()> {
        match self.enter(FaultOp::Sync) {
            Some(e) => Err(e),
            None => self.inner.sync(),
        }
    }

    fn write_durable_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.enter(FaultOp::DurableWrite) {
            Some(e) => {
                self.inner.write_at(buf, offset)?;
                Err(e)
            }
            None => self.inner.write_durable_at(buf, offset),
        }
    }

    fn maps_file(&self) -> bool {
        self.inner.maps_file()
    }

    fn map_private(&self, area: Area) -> io::Result<MmapMut> {
        self.inner.map_private(area)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    #[test]
    fn fails_the_nth_call_then_passes_or_keeps_failing() {
        let f = FaultStorage::new(Arc::new(MemStorage::new(16)));
        f.fail_after(FaultOp::Sync, 1, libc::ENOSPC, false);
        f.write_at(&[1], 0).unwrap();
        f.sync().unwrap();
        let e = f.sync().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        f.sync().unwrap();
        assert!(f.fired());
        f.fail_after(FaultOp::Any, 0, libc::EIO, true);
        assert!(f.write_at(&[2], 1).is_err());
        assert!(f.write_durable_at(&[3], 2).is_err());
        assert!(f.sync().is_err());
        let c = f.counts();
        assert_eq!(
            (c.writes, c.durable_writes, c.syncs, c.injected),
            (2, 1, 4, 4)
        );
        let mut b = [0u8; 3];
        f.read_at(&mut b, 0).unwrap();
        assert_eq!(
            b,
            [1, 0, 3],
            "a failed durable write reached the cache only"
        );
        f.disarm();
        f.write_at(&[4], 1).unwrap();
    }
}
