//! A test tool (mount option `inject_stall=PATH`): a [`Storage`] wrapper whose durability
//! calls (`sync`, `write_durable_at`, i.e. every log flush) wait while the file `PATH`
//! exists, so a test can hold a request inside its flush for as long as it likes and watch
//! what other requests do meanwhile. While a call waits, `PATH.held` exists (created on
//! entry, removed on exit), so the test knows a request is provably inside the flush.

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
    gate: PathBuf,
    held: PathBuf,
    /// Calls waiting at the gate now.
    waiting: AtomicU64,
}

impl StallStorage {
    /// `inner`, with durability calls gated by the file `gate`.
    pub fn new(inner: Arc<dyn Storage>, gate: PathBuf) -> StallStorage {
        let mut held = gate.clone().into_os_string();
        held.push(".held");
        StallStorage {
            inner,
            gate,
            held: held.into(),
            waiting: AtomicU64::new(0),
        }
    }

    /// Wait while the gate exists (the marker shows it meanwhile).
    fn pass(&self) {
        if !self.gate.exists() {
            return;
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            if let Err(e) = std::fs::write(&self.held, b"") {
                log::warn!("inject_stall: {}: {e}", self.held.display());
            }
        }
        while self.gate.exists() {
            std::thread::sleep(POLL);
        }
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = std::fs::remove_file(&self.held);
        }
    }
}

impl Storage for StallStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.pass();
        self.inner.sync()
    }
    fn write_durable_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.pass();
        self.inner.write_durable_at(buf, offset)
    }
    fn maps_file(&self) -> bool {
        self.inner.maps_file()
    }
    fn map_private(&self, area: Area) -> io::Result<MmapMut> {
        self.inner.map_private(area)
    }
}
