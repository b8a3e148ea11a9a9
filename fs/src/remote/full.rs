//! When every local block is dirty (issue 14 item 4: the bucket down or slow): a write that
//! finds no free local block answers ENOSPC at once (`-o cache_full=enospc`, the default), or
//! waits for the uploader to free some (`-o cache_full=block`), at most `cache_wait=SECONDS`
//! (default 60), then answers ENOSPC. The wait holds no lock (the uploader needs the
//! filesystem lock to repoint, so it can never be kept from freeing blocks), wakes the
//! uploader at once and again every second meanwhile (so a bucket that heals is used at
//! once, not after the upload backoff), and retries the whole request: an ENOSPC'd
//! transaction was aborted, so nothing of it is left to undo. Nothing dirty (no upload could
//! free a block): ENOSPC at once.

use super::lock;
use crate::error::FsResult;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Default `cache_wait`: how long a write waits for space under `cache_full=block`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// How often a waiting write wakes the uploader again.
const NUDGE: Duration = Duration::from_secs(1);

/// `-o cache_full=`: what a write does when no local block is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CacheFull {
    /// Answer ENOSPC at once.
    #[default]
    Enospc,
    /// Wait up to this long for the uploader to free blocks, then answer ENOSPC.
    Block(Duration),
}

/// A count of the uploader's commits that freed local blocks, and writers waiting for one.
#[derive(Default)]
pub struct Freed {
    count: Mutex<u64>,
    wake: Condvar,
}

impl Freed {
    /// The uploader freed local blocks: wake the waiting writes.
    pub fn note(&self) {
        *lock(&self.count) += 1;
        self.wake.notify_all();
    }

    /// The count now.
    pub fn count(&self) -> u64 {
        *lock(&self.count)
    }

    /// Wait until the count passes `seen`, at most `timeout`.
    pub fn wait_past(&self, seen: u64, timeout: Duration) {
        let guard = lock(&self.count);
        let _unused = self
            .wake
            .wait_timeout_while(guard, timeout, |c| *c == seen)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// Run request `f`, and under [`CacheFull::Block`] run it again while it fails with ENOSPC,
/// `dirty()` says an upload could free blocks and the wait is not over: between tries
/// `nudge()` (wake the uploader) and wait on `freed`. See the module docs.
pub fn retry_while_full<T>(
    policy: CacheFull,
    freed: &Freed,
    (dirty, nudge): (&dyn Fn() -> bool, &dyn Fn()),
    mut f: impl FnMut() -> FsResult<T>,
) -> FsResult<T> {
    let CacheFull::Block(wait) = policy else {
        return f();
    };
    let deadline = Instant::now() + wait;
    let mut logged = false;
    loop {
        let seen = freed.count();
        let r = f();
        let left = deadline.saturating_duration_since(Instant::now());
        match &r {
            Err(e) if e.errno() == libc::ENOSPC && !left.is_zero() && dirty() => {
                if !logged {
                    log::info!("every local block is dirty: a write waits for the uploader");
                    logged = true;
                }
                nudge();
                freed.wait_past(seen, left.min(NUDGE));
            }
            _ => return r,
        }
    }
}
