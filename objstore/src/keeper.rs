//! Keeping the lease while the daemon runs: a thread that renews it every `every` (a third of
//! its ttl, say), and what the commit path asks before each commit, [`Keeper::may_commit`]:
//! true only while the lease is held *and* within its trusted time (section 11.3 of
//! docs/format.md). A renewal that fails for a passing reason (timeout, 5xx) is tried again
//! at the next tick, and the lease stays trusted until it would expire; one that finds the
//! lease taken over ends the keeper for good ([`Status::Lost`]): the daemon then commits
//! nothing more and turns read-only.

use crate::bucket::Bucket;
use crate::error::Error;
use crate::lease::Lease;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The keeper's view of the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Ours, trusted until `valid_until` (monotonic clock).
    Held { epoch: u64, valid_until: Instant },
    /// Taken over by `holder` with `epoch`: never ours again.
    Lost { holder: String, epoch: u64 },
}

struct Shared {
    status: Mutex<(Status, bool)>,
    wake: Condvar,
}

/// A running renewal thread for one lease.
pub struct Keeper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Option<Lease>>>,
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, (Status, bool)> {
    // A poisoned lock means a renewal thread panicked mid-update; the status is still whole.
    s.status.lock().unwrap_or_else(|p| p.into_inner())
}

impl Keeper {
    /// Renew `lease` on `bucket` every `every` from now on, in a thread of its own.
    pub fn start(bucket: Arc<Bucket>, lease: Lease, every: Duration) -> Keeper {
        let status = Status::Held {
            epoch: lease.epoch(),
            valid_until: lease.valid_until(),
        };
        let shared = Arc::new(Shared {
            status: Mutex::new((status, false)),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rvmfs-lease".into())
            .spawn(move || renew_loop(&s, &bucket, lease, every))
            .ok();
        Keeper { shared, thread }
    }

    /// The lease as the keeper last saw it.
    pub fn status(&self) -> Status {
        lock(&self.shared).0.clone()
    }

    /// May the writer commit now? Held and not past its trusted time.
    pub fn may_commit(&self) -> bool {
        matches!(self.status(), Status::Held { valid_until, .. } if Instant::now() < valid_until)
    }

    /// Stop renewing; the lease back (to release it at a clean unmount) unless it was lost.
    pub fn stop(mut self) -> Option<Lease> {
        lock(&self.shared).1 = true;
        self.shared.wake.notify_all();
        self.thread.take().and_then(|t| t.join().ok()).flatten()
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        lock(&self.shared).1 = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn renew_loop(s: &Shared, bucket: &Bucket, mut lease: Lease, every: Duration) -> Option<Lease> {
    loop {
        let guard = lock(s);
        let (guard, _) = s
            .wake
            .wait_timeout_while(guard, every, |st| !st.1)
            .unwrap_or_else(|p| p.into_inner());
        if guard.1 {
            return Some(lease);
        }
        drop(guard);
        match lease.renew(bucket) {
            Ok(()) => {
                lock(s).0 = Status::Held {
                    epoch: lease.epoch(),
                    valid_until: lease.valid_until(),
                }
            }
            Err(Error::LeaseLost { holder, epoch, .. }) => {
                log::error!("lease lost to {holder} (epoch {epoch}): committing nothing more");
                lock(s).0 = Status::Lost { holder, epoch };
                return None;
            }
            Err(e) => log::warn!("lease renewal failed, retrying: {e}"),
        }
    }
}
