//! The background threads of an instance and the signals that drive them: the commit
//! timer (LRVM's periodic flush of no-flush commits, `commit_interval`; also woken early
//! when the pending records pass half the spool) and the truncator (LRVM §5.1.2 truncation
//! in the background once the live log passes the threshold, so commits never wait for it
//! unless the log is full).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::error::Result;
use crate::shared::{lock, Shared};

/// What the background threads are asked to do, under [`Signal::flags`].
#[derive(Default)]
pub(crate) struct Flags {
    pub(crate) stop: bool,
    pub(crate) truncate: bool,
    /// The pending records passed half the spool: the commit timer flushes them now.
    pub(crate) flush: bool,
}

/// Wakes and stops the background threads.
#[derive(Default)]
pub(crate) struct Signal {
    pub(crate) flags: Mutex<Flags>,
    /// Wakes the truncator (stop or a truncation request).
    pub(crate) cv: Condvar,
    /// Wakes the commit timer (stop, a new interval, or an early flush).
    pub(crate) timer_cv: Condvar,
}

/// Start the truncator and the commit timer of `shared` (named `rvm-truncate` and
/// `rvm-commit-timer`); they run until [`Shared::stop_background`].
pub(crate) fn spawn_background(shared: &Arc<Shared>) -> Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
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
    Ok(threads)
}

impl Shared {
    /// Ask both background threads to stop (the caller joins them).
    pub(crate) fn stop_background(&self) {
        lock(&self.signal.flags).stop = true;
        self.signal.cv.notify_all();
        self.signal.timer_cv.notify_all();
    }

    /// Wake the commit timer so it rereads the commit interval.
    pub(crate) fn wake_timer(&self) {
        let _g = lock(&self.signal.flags);
        self.signal.timer_cv.notify_all();
    }

    /// Ask the commit timer to flush now (the pending records passed half the spool).
    pub(crate) fn request_early_flush(&self) {
        let mut f = lock(&self.signal.flags);
        if !f.flush {
            f.flush = true;
            self.signal.timer_cv.notify_all();
        }
    }

    /// Ask the background truncator to run, whatever the log's fill level.
    pub(crate) fn wake_truncator(&self) {
        let mut g = lock(&self.signal.flags);
        if !g.truncate {
            g.truncate = true;
            self.signal.cv.notify_all();
        }
    }

    /// Ask the background truncator to run if the log is past the threshold.
    pub(crate) fn maybe_request_truncation(&self, used: u64) {
        let t = self.threshold.load(Ordering::Relaxed);
        if t > 0 && used * 100 > self.log.capacity * t {
            self.wake_truncator();
        }
    }

    /// The commit timer: flush every pending record each `commit_interval` (reread after
    /// every wake), or at once on an early-flush request, until stopped.
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
            // A failed instance flushes nothing more (its failure was logged once).
            if self.is_failed() {
                continue;
            }
            if let Err(e) = self.flush_all() {
                if !self.is_failed() {
                    log::error!("rvm: background flush failed: {e}");
                }
            }
        }
    }

    /// The truncator: one truncation per request, until stopped.
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
            if self.is_failed() {
                continue;
            }
            if let Err(e) = self.truncate_once() {
                if !self.is_failed() {
                    log::error!("rvm: background truncation failed: {e}");
                }
            }
        }
    }
}
