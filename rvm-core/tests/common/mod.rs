#![allow(dead_code)]
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rvm_core::sim::{Crash, SimStorage};
use rvm_core::*;

pub const LOG: Area = Area {
    offset: 0,
    len: 12 * 1024,
}; // capacity 4096
pub const SEG: Area = Area {
    offset: 16 * 1024,
    len: 16 * 1024,
};
pub const SIZE: usize = 32 * 1024;

pub fn opts(log: Area) -> RvmOptions {
    RvmOptions {
        log,
        ..Default::default()
    }
}

pub fn fresh(size: usize, log: Area) -> Arc<MemStorage> {
    let st = Arc::new(MemStorage::new(size));
    Rvm::create_log(&*st, log).unwrap();
    st
}

pub fn open(st: &Arc<MemStorage>, log: Area) -> Rvm {
    Rvm::initialize(st.clone(), opts(log)).unwrap()
}

/// Physical storage offset of logical log position `pos`.
pub fn phys(log: Area, pos: u64) -> u64 {
    let cap = log.len - 8192;
    log.offset + 8192 + pos % cap
}

/// Storage wrapper: counts writes; fails every write after `fail_after` writes.
pub struct FaultyStorage {
    pub inner: Arc<MemStorage>,
    pub writes: AtomicU64,
    pub fail_after: u64,
}

impl FaultyStorage {
    pub fn new(inner: Arc<MemStorage>, fail_after: u64) -> Self {
        FaultyStorage {
            inner,
            writes: AtomicU64::new(0),
            fail_after,
        }
    }
}

impl Storage for FaultyStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) >= self.fail_after {
            return Err(io::Error::other("injected crash"));
        }
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        if self.writes.load(Ordering::SeqCst) > self.fail_after {
            return Err(io::Error::other("injected crash"));
        }
        self.inner.sync()
    }
}

/// Tiny deterministic PRNG (xorshift).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The first commit point a crash must keep: a process crash (`Crash::All`) keeps the spool
/// and so every commit whose `end` returned (`committed`); any other crash is a power loss,
/// which loses the spool (removed here) and keeps what a flush made durable (`durable`).
pub fn must_survive(
    crash: &Crash,
    use_spool: bool,
    spool: &Path,
    committed: usize,
    durable: usize,
) -> usize {
    if use_spool && *crash == Crash::All {
        committed
    } else {
        let _ = std::fs::remove_file(spool);
        durable
    }
}

/// Crash again during the recovery of `img`: `recover` runs on a disk that loses power at one
/// of its first 24 I/O operations. Returns whether that was a power loss (anything but
/// `Crash::All`; the spool is then removed) and the image it leaves.
pub fn crash_during_recovery(
    img: Vec<u8>,
    rng: &mut Rng,
    spool: &Path,
    recover: impl FnOnce(&Arc<SimStorage>),
) -> (bool, Vec<u8>) {
    let sim = Arc::new(SimStorage::from_bytes(img));
    sim.crash_after(Some(rng.below(24)));
    recover(&sim);
    sim.crash_now();
    let (crash, img) = sim.random_crash(rng.next());
    let power_loss = crash != Crash::All;
    if power_loss {
        let _ = std::fs::remove_file(spool);
    }
    (power_loss, img)
}

/// Whether the instance that used `spool` failed and poisoned it (rvm-core/src/spool.rs: the
/// u32 flag at byte 40 of the header), read after the instance was dropped so that a failure
/// of a background flush during the drop counts too.
pub fn poisoned(spool: &Path) -> bool {
    let Ok(bytes) = std::fs::read(spool) else {
        return false;
    };
    bytes.get(40..44).is_some_and(|b| b != [0u8; 4])
}
