//! Positional storage under the log and the segments.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use memmap2::{MmapMut, MmapOptions};

/// Byte range of a [`Storage`] holding one area (log or segment). `offset` and `len` are in
/// bytes and are multiples of 4096.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    pub offset: u64,
    pub len: u64,
}

impl Area {
    /// Exclusive end offset in bytes (`offset + len`).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
    /// Whether the two areas share at least one byte.
    pub fn overlaps(&self, other: &Area) -> bool {
        self.offset < other.end() && other.offset < self.end()
    }
}

/// Positional I/O under the log and the segment (raft-engine's `env` idea). Implemented by
/// [`FileStorage`], [`MemStorage`] and crash simulators.
pub trait Storage: Send + Sync {
    /// Read exactly `buf.len()` bytes at byte `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write all of `buf` at byte `offset` (not durable until [`Storage::sync`]).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Durability barrier (fdatasync): every completed `write_at` is on stable storage.
    fn sync(&self) -> io::Result<()>;
    /// Private (copy-on-write) mapping of `area`; the default reads the area into an
    /// anonymous map.
    fn map_private(&self, area: Area) -> io::Result<MmapMut> {
        let len = usize::try_from(area.len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "area too large"))?;
        let mut map = MmapMut::map_anon(len)?;
        self.read_at(&mut map[..], area.offset)?;
        Ok(map)
    }
}

/// A regular file or block device. `map_private` uses memmap2's `map_copy` at
/// `area.offset`, so mapping does not read the area (pages fault in on access).
#[derive(Debug)]
pub struct FileStorage {
    file: File,
}

impl FileStorage {
    /// Wrap an open file (read-write unless only used read-only).
    pub fn new(file: File) -> Self {
        FileStorage { file }
    }
    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Storage for FileStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn map_private(&self, area: Area) -> io::Result<MmapMut> {
        let len = usize::try_from(area.len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "area too large"))?;
        // SAFETY: a private copy-on-write mapping; changes by other processes to the file
        // may show through untouched pages, which the caller (the RVM owner) rules out.
        unsafe {
            MmapOptions::new()
                .offset(area.offset)
                .len(len)
                .map_copy(&self.file)
        }
    }
}

/// An in-memory storage for tests: a `Vec<u8>` behind a mutex. Writes past the end grow it;
/// reads past the end return zeros (like a sparse file). `sync` only counts calls.
#[derive(Debug, Default)]
pub struct MemStorage {
    data: Mutex<Vec<u8>>,
    syncs: std::sync::atomic::AtomicU64,
}

impl MemStorage {
    /// A zero-filled storage of `len` bytes.
    pub fn new(len: usize) -> Self {
        Self::from_bytes(vec![0; len])
    }
    /// A storage holding `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        MemStorage {
            data: Mutex::new(bytes),
            syncs: Default::default(),
        }
    }
    /// A copy of the whole contents.
    pub fn snapshot(&self) -> Vec<u8> {
        self.lock().clone()
    }
    /// Number of `sync` calls so far.
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for MemStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let data = self.lock();
        let len = data.len() as u64;
        buf.fill(0);
        if offset < len {
            let start = offset as usize;
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
        }
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut data = self.lock();
        let end = offset
            .checked_add(buf.len() as u64)
            .and_then(|e| usize::try_from(e).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset overflow"))?;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
