//! Log truncation (LRVM §5.1.2): apply the live records to the segments, sync, and move
//! the log head to the tail in the status block, sync. The background truncator runs it
//! past the threshold (see `background`), a committer when the log is full, recovery
//! eagerly when the log has no room for what it must append.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::Result;
use crate::failure::FailedOp;
use crate::log::{Log, Positions};
use crate::shared::{lock, Shared};
use crate::stats::inc;

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
pub(crate) fn truncate_eagerly(log: &Log, pos: &mut Positions, generation: &mut u64) -> Result<()> {
    log.apply(pos)?;
    log.segment.sync()?;
    *generation += 1;
    log.write_status(*generation, pos.tail_pos, pos.tail_seq)?;
    log.storage.sync()?;
    pos.head_pos = pos.tail_pos;
    pos.head_seq = pos.tail_seq;
    Ok(())
}

impl Shared {
    /// Truncation (LRVM §5.1.2): apply the durable records `[head, tail)` as of now to the
    /// segments, sync, write the next status copy with head = that tail, sync. Runs beside
    /// the leader: it only reads below the tail, the leader only writes above it.
    ///
    /// A storage error fails the instance ([`FailedOp::Truncation`]); a failed instance
    /// does not truncate ([`RvmError::Failed`](crate::RvmError::Failed)).
    pub(crate) fn truncate_once(&self) -> Result<()> {
        self.healthy()?;
        self.truncate_healthy()
            .map_err(|e| self.fail(FailedOp::Truncation, e))
    }

    /// [`Shared::truncate_once`] while healthy: each step only after the previous one
    /// succeeded and the instance is still healthy (another thread's failed sync may have
    /// taken an error of the pages this truncation wrote), so the head never moves past a
    /// record whose segment bytes are not durable.
    fn truncate_healthy(&self) -> Result<()> {
        let mut generation = lock(&self.trunc);
        let mut p = *lock(&self.pos);
        let floor = self.truncation_floor();
        if floor < p.tail_seq {
            // Shipping holds back every record not yet shipped (`crate::ship`).
            (p.tail_pos, p.tail_seq) = self.log.boundary(&p, floor)?;
        }
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
        self.log.segment.sync()?;
        self.healthy()?;
        self.log
            .write_status(*generation + 1, p.tail_pos, p.tail_seq)?;
        *generation += 1;
        self.log.storage.sync()?;
        self.healthy()?;
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
