//! A checking `Storage` for hostile-image runs: every write must land in the image's redo log,
//! its metadata segment, or its data area (checked at once); writes into the data area are
//! recorded, so the caller can check after each operation that they went to blocks the
//! written file owns (`Writes::check` in the parent module).

use rvm_core::{MemStorage, Storage};
use std::io;
use std::sync::Mutex;

/// The image's areas, from its header (never from the possibly corrupt superblock).
#[derive(Clone, Copy, Debug)]
pub struct Areas {
    pub log: (u64, u64),
    pub segment: (u64, u64),
    /// Data area: byte offset of block 0 and number of 4 KiB blocks.
    pub data_offset: u64,
    pub data_blocks: u64,
}

/// `MemStorage` plus the checks above.
pub struct CheckedStorage {
    inner: MemStorage,
    areas: Areas,
    /// Data blocks written since the last `take_data_writes`: (first, last) block numbers.
    data_writes: Mutex<Vec<(u64, u64)>>,
    /// Writes outside every area: (offset, len). Must stay empty.
    stray: Mutex<Vec<(u64, u64)>>,
}

impl CheckedStorage {
    pub fn new(bytes: Vec<u8>, areas: Areas) -> CheckedStorage {
        CheckedStorage {
            inner: MemStorage::from_bytes(bytes),
            areas,
            data_writes: Mutex::default(),
            stray: Mutex::default(),
        }
    }

    /// Data blocks written since the last call, as (first, last).
    pub fn take_data_writes(&self) -> Vec<(u64, u64)> {
        std::mem::take(&mut *lock(&self.data_writes))
    }

    /// Writes that fell outside the log, the segment and the data area.
    pub fn stray_writes(&self) -> Vec<(u64, u64)> {
        lock(&self.stray).clone()
    }

    /// Record a write; false when it falls outside every area (it is then refused, so a
    /// wild offset cannot grow the in-memory image without bound).
    fn note(&self, offset: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let end = offset.saturating_add(len);
        let inside = |(at, n): (u64, u64)| offset >= at && end <= at.saturating_add(n);
        if inside(self.areas.log) || inside(self.areas.segment) {
            return true;
        }
        let a = &self.areas;
        let data_end = a
            .data_offset
            .saturating_add(a.data_blocks.saturating_mul(4096));
        if offset >= a.data_offset && end <= data_end {
            let first = (offset - a.data_offset) / 4096;
            let last = (end - 1 - a.data_offset) / 4096;
            lock(&self.data_writes).push((first, last));
            true
        } else {
            lock(&self.stray).push((offset, len));
            false
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Storage for CheckedStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.note(offset, buf.len() as u64) {
            return Err(io::Error::other("write outside the image's areas"));
        }
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
}
