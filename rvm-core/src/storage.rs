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
    /// Write all of `buf` at byte `offset` and make *that range* durable before returning;
    /// other pending writes may stay volatile. The redo log's commit write: on a file whose
    /// data area has dirty pages, a whole-file fdatasync would write those pages (and the
    /// file-system metadata their allocation needs) too. The default is `write_at` + `sync`.
    fn write_durable_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_at(buf, offset)?;
        self.sync()
    }
    /// The parts of `len` bytes at `offset` that may hold data, as (offset, len) runs in
    /// order; the rest reads as zeros (a file's holes and unwritten extents, found with
    /// `lseek(2)` SEEK_DATA / SEEK_HOLE as `cp` finds them), so a reader of a large, mostly
    /// empty area may skip it. The default lists the whole range.
    fn data_ranges(&self, offset: u64, len: u64) -> io::Result<Vec<(u64, u64)>> {
        Ok(vec![(offset, len)])
    }
    /// Whether `map_private` maps the storage itself (pages not changed in memory can be
    /// dropped and fault back in from it); false for the default anonymous copy, where
    /// dropping a page would lose it.
    fn maps_file(&self) -> bool {
        false
    }
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
    /// SEEK_DATA / SEEK_HOLE (they move only the file offset, which no read or write here
    /// uses); where the file system does not support them, the whole range.
    fn data_ranges(&self, offset: u64, len: u64) -> io::Result<Vec<(u64, u64)>> {
        use std::os::fd::AsRawFd;
        let (fd, end) = (self.file.as_raw_fd(), offset.saturating_add(len));
        let seek = |at: u64, whence| {
            let at = i64::try_from(at)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
            // SAFETY: lseek on an open descriptor with plain integer arguments.
            match unsafe { libc::lseek(fd, at, whence) } {
                n if n >= 0 => Ok(Some(n as u64)),
                _ => match io::Error::last_os_error() {
                    e if e.raw_os_error() == Some(libc::ENXIO) => Ok(None), // no data after `at`
                    e => Err(e),
                },
            }
        };
        let mut out = Vec::new();
        let mut at = offset;
        while at < end {
            let data = match seek(at, libc::SEEK_DATA) {
                Ok(Some(d)) if d < end => d,
                Ok(_) => break,
                Err(_) => return Ok(vec![(offset, len)]),
            };
            let hole = match seek(data, libc::SEEK_HOLE) {
                Ok(Some(h)) if h > data => h.min(end),
                Ok(Some(_)) => return Ok(vec![(offset, len)]),
                _ => end,
            };
            out.push((data, hole - data));
            at = hole;
        }
        Ok(out)
    }
    /// `pwritev2(RWF_DSYNC)`: the kernel writes and waits for this range only, then flushes
    /// the device cache (ext4 `vfs_fsync_range` semantics). Falls back to `write_at` +
    /// `sync` where the flag is not supported.
    fn write_durable_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (mut done, fd) = (0usize, self.file.as_raw_fd());
        while done < buf.len() {
            let rest = &buf[done..];
            let iov = libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            };
            let at = i64::try_from(offset + done as u64)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
            // SAFETY: `iov` points at `rest`, which outlives the call; fd is open.
            let n = unsafe { libc::pwritev2(fd, &iov, 1, at, libc::RWF_DSYNC) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => {
                        self.file.write_all_at(rest, offset + done as u64)?;
                        return self.file.sync_data();
                    }
                    _ => return Err(e),
                }
            }
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n as usize;
        }
        Ok(())
    }
    fn maps_file(&self) -> bool {
        true
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
