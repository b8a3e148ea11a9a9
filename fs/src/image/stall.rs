//! A test tool (mount option `inject_stall=PATH`): a [`Storage`] wrapper whose durability
//! calls (`sync`, `write_durable_at`, i.e. every log flush) wait while the file `PATH`
//! exists, so a test can hold a request inside its flush for as long as it likes and watch
//! what other requests do meanwhile. While a call waits, `PATH.held` exists (created on
//! entry, removed on exit), so the test knows a request is provably inside the flush.
//!
//! Likewise every plain write (`write_at`: file data, and truncation's region pages) waits
//! while the file `PATH.data` exists, and `PATH.data.held` shows one waiting: a test holds a
//! big write inside its data write, between its plan and its commit (`ops::write_plan`).

use memmap2::MmapMut;
use rvm_core::{Area, Storage};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a stalled call looks at the gate file again.
const POLL: Duration = Duration::from_millis(5);

/// See the module docs.
pub struct StallStorage {
    inner: Arc<dyn Storage>,
    /// Gates durability calls.
    flushes: Gate,
    /// Gates plain writes.
    writes: Gate,
}

/// A gate file, its marker (the gate's name + ".held") and the calls waiting at it now.
struct Gate {
    path: PathBuf,
    held: PathBuf,
    waiting: AtomicU64,
}

impl Gate {
    fn new(path: PathBuf) -> Gate {
        let mut held = path.clone().into_os_string();
        held.push(".held");
        Gate {
            path,
            held: held.into(),
            waiting: AtomicU64::new(0),
        }
    }

    /// Wait while the gate exists (the marker shows it meanwhile).
    fn pass(&self) {
        if !self.path.exists() {
            return;
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            if let Err(e) = std::fs::write(&self.held, b"") {
                log::warn!("inject_stall: {}: {e}", self.held.display());
            }
        }
        while self.path.exists() {
            std::thread::sleep(POLL);
        }
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = std::fs::remove_file(&self.held);
        }
    }
}

impl StallStorage {
    /// `inner`, with durability calls gated by the file `gate` and plain writes by
    /// `gate` + ".data".
    pub fn new(inner: Arc<dyn Storage>, gate: PathBuf) -> StallStorage {
        let mut data = gate.clone().into_os_string();
        data.push(".data");
        StallStorage {
            inner,
            flushes: Gate::new(gate),
            writes: Gate::new(data.into()),
        }
    }
}

impl Storage for StallStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.writes.pass();
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.flushes.pass();
        self.inner.sync()
    }
    fn write_durable_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.flushes.pass();
        self.inner.write_durable_at(buf, offset)
    }
    fn maps_file(&self) -> bool {
        self.inner.maps_file()
    }
    fn map_private(&self, area: Area) -> io::Result<MmapMut> {
        self.inner.map_private(area)
    }
}
