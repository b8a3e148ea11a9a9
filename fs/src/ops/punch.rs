//! The punching thread of `-o discard` (`ops::discard`): freed runs whose free is durable are
//! handed to it under the filesystem lock, and it gives their host space back
//! (`fallocate(PUNCH_HOLE | KEEP_SIZE)`) without the lock, one run at a time, as
//! raft-engine's purge runs beside its writers. A punch costs the host filesystem a journal
//! transaction (about 250 µs on ext4 here, more when it splits a large folio of the page
//! cache); done under the lock after every commit, the punches of a burst of copy-on-write
//! overwrites stalled every request behind them (20,000 random 4 KiB overwrites fell from
//! 20,000 to 180 a second once the frees of an earlier pass were queued).
//!
//! A handed run stays held from the allocator (`Puncher::first_in`) until its punch is done,
//! so no data is ever written into a block about to be punched.
//!
//! A punch also holds the image file's inode lock on the host for its whole length, and the
//! log's and the data's writes to the image wait for it: deleting a file that random
//! overwrites cut into 18,000 extents queues 18,000 punches. So the thread punches at most a
//! [`DUTY`] share of the time (after a punch of d it rests 3d), except while someone waits for
//! the punches (a full host: `Puncher::wait_idle`).

use crate::layout::BLOCK_SIZE;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The share of time the thread may spend punching while nobody waits for it.
pub const DUTY: f64 = 0.25;

/// What the thread shares with the filesystem, under one mutex.
#[derive(Default)]
struct State {
    /// Runs to punch: first block -> blocks.
    todo: BTreeMap<u64, u64>,
    /// The run being punched now.
    busy: Option<(u64, u64)>,
    /// Blocks punched since mount.
    punched: u64,
    /// A punch failed (EOPNOTSUPP: a host without holes): discard is off.
    off: bool,
    stop: bool,
    /// Callers inside [`Puncher::wait_idle`]: punch without resting.
    waiters: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the thread: new runs, or stop.
    work: Condvar,
    /// Wakes waiters of [`Puncher::wait_idle`]: a punch ended.
    done: Condvar,
}

/// The punching thread and the runs handed to it (see the module docs).
pub struct Puncher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Puncher {
    /// Start the thread `rvmfs-discard`, punching into `file` (data block 0 at byte
    /// `data_offset`). Errors: the thread could not be started.
    pub fn start(file: File, data_offset: u64) -> std::io::Result<Puncher> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rvmfs-discard".into())
            .spawn(move || run(&sh, &file, data_offset))?;
        Ok(Puncher {
            shared,
            thread: Some(thread),
        })
    }

    /// Hand runs (first block, blocks) to the thread.
    pub fn hand(&self, runs: impl IntoIterator<Item = (u64, u64)>) {
        let mut st = lock(&self.shared.state);
        if st.off {
            return; // they keep their host space, and are free for the allocator
        }
        st.todo.extend(runs);
        self.shared.work.notify_one();
    }

    /// Wait until every handed run is punched (or discard turned itself off).
    pub fn wait_idle(&self) {
        let mut st = lock(&self.shared.state);
        st.waiters += 1;
        self.shared.work.notify_one(); // cut its rest short
        while !st.stop && (!st.todo.is_empty() || st.busy.is_some()) {
            st = self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiters -= 1;
    }

    /// The first handed run overlapping blocks [start, start+len), not to be allocated until
    /// it is punched: (first block, blocks).
    pub fn first_in(&self, start: u64, len: u64) -> Option<(u64, u64)> {
        let st = lock(&self.shared.state);
        let end = start.saturating_add(len);
        let before = st.todo.range(..start).next_back().map(|(&s, &l)| (s, l));
        let queued = before
            .filter(|&(s, l)| s + l > start)
            .or_else(|| st.todo.range(start..end).next().map(|(&s, &l)| (s, l)));
        let busy = st.busy.filter(|&(s, l)| s < end && s + l > start);
        queued.into_iter().chain(busy).min()
    }

    /// Runs handed and not yet punched (the one being punched included).
    pub fn waiting(&self) -> usize {
        let st = lock(&self.shared.state);
        st.todo.len() + usize::from(st.busy.is_some())
    }

    /// Blocks punched since mount.
    pub fn punched(&self) -> u64 {
        lock(&self.shared.state).punched
    }

    /// Whether a failed punch turned discard off.
    pub fn off(&self) -> bool {
        lock(&self.shared.state).off
    }
}

impl Drop for Puncher {
    /// Stop the thread after its current punch; runs still waiting keep their host space.
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.work.notify_all();
        self.shared.done.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: punch the lowest waiting run, without holding the mutex, until stopped.
fn run(sh: &Shared, file: &File, data_offset: u64) {
    let mut st = lock(&sh.state);
    loop {
        if st.stop {
            return;
        }
        let Some((start, len)) = st.todo.pop_first() else {
            st = sh.work.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        st.busy = Some((start, len));
        drop(st);
        let began = Instant::now();
        let r = punch(file, data_offset + start * BLOCK_SIZE, len * BLOCK_SIZE);
        let took = began.elapsed();
        st = lock(&sh.state);
        st.busy = None;
        match r {
            Ok(()) => st.punched += len,
            Err(e) => {
                log::warn!("discard: punching blocks {start}+{len} failed ({e}); discard is off");
                st.off = true;
                st.todo.clear();
            }
        }
        sh.done.notify_all();
        st = rest(sh, st, took.mul_f64((1.0 - DUTY) / DUTY));
    }
}

/// Rest for `d` after a punch, unless someone waits for the punches or the thread is stopped.
fn rest<'a>(sh: &'a Shared, mut st: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
    let until = Instant::now() + d;
    while st.waiters == 0 && !st.stop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        st = sh.work.wait_timeout(st, until - now).unwrap_or_else(|e| e.into_inner()).0;
    }
    st
}

/// Give bytes [at, at+len) of `file` back to the host, keeping its size.
pub fn punch(file: &File, at: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: fallocate on an open descriptor with plain integer arguments.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            at as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
