//! The spool: where no-flush records wait for `flush()` (Rio Vista's lesson, Lowell & Chen
//! SOSP 1997). It is a file (normally on tmpfs) mapped `MAP_SHARED`, so a record in it
//! survives `kill -9` of the process, though not a power loss.
//!
//! ```text
//!  0 magic u32 "RVSP" | 4 version u32 | 8 log_id u64 | 16 base_seq u64
//! 24 crc32c u32 of [0,24) | 28 reserved u32
//! 32 used u64   bytes of records after the header (updated by an aligned atomic store
//!               after the record bytes are in place, so a kill never exposes a torn one)
//! 40 poisoned u32  1 once the instance failed (a storage error, `failure`): recovery does
//!               not replay the records | 44 failed_op u32 (`FailedOp` code, 0 = none)
//! 64 records, encoded exactly as in the log, seq base_seq, base_seq+1, ...
//! ```
//! Why poisoned: the log, the segment and file data share one image file, and after a
//! failed sync the kernel may have dropped any of its dirty pages (PostgreSQL's "fsyncgate",
//! 2018), so a record left in the spool may point at file data that never reached the disk.
//! With no spool configured, the same bytes live in a `Vec<u8>` in process memory.
//!
//! A read-write instance holds an exclusive `flock` on its spool file from before recovery
//! reads it until the instance ends ([`claim`]): two instances given one spool path (rvmfs
//! names it by the image's UUID, and a restored copy of an image keeps it) would otherwise
//! replay each other's records and overwrite each other's pending ones. The second one runs
//! with its records in process memory instead, and says so.

/// Spent spool bytes above which `reset` returns their memory to tmpfs.
const PUNCH_ABOVE: u64 = 1 << 20;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;

use crate::error::Result;
use crate::options::RvmOptions;
use crate::record::{rd_u32, rd_u64};
use crate::types::PAGE_SIZE;

pub(crate) const SPOOL_MAGIC: u32 = u32::from_le_bytes(*b"RVSP");
pub(crate) const SPOOL_VERSION: u32 = 1;
/// Bytes of the spool header; records start here.
pub const SPOOL_HEADER_LEN: u64 = 64;

/// Byte offset of the `poisoned` flag (u32) and of the failed operation's code (u32).
const POISONED_AT: usize = 40;

/// A spool file as recovery reads it.
pub(crate) struct SpoolFile {
    /// The record bytes, `[64, 64 + used)`.
    pub records: Vec<u8>,
    /// The instance that wrote it failed (see the module docs): `Some(FailedOp code)`.
    pub poisoned: Option<u32>,
}

/// Read a spool file for recovery without changing it, when the file exists, has a valid
/// header and belongs to log `log_id`.
pub(crate) fn read_spool(path: &Path, log_id: u64) -> io::Result<Option<SpoolFile>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() {
        return Ok(None); // just created by `claim`
    }
    if (bytes.len() as u64) < SPOOL_HEADER_LEN
        || rd_u32(&bytes, 0) != SPOOL_MAGIC
        || rd_u32(&bytes, 4) != SPOOL_VERSION
        || rd_u32(&bytes, 24) != crc32c::crc32c(&bytes[..24])
    {
        log::warn!("spool {} has no valid header; ignored", path.display());
        return Ok(None);
    }
    if rd_u64(&bytes, 8) != log_id {
        log::warn!("spool {} belongs to another log; ignored", path.display());
        return Ok(None);
    }
    let used = rd_u64(&bytes, 32);
    let end = (SPOOL_HEADER_LEN.saturating_add(used)).min(bytes.len() as u64) as usize;
    let poisoned = (rd_u32(&bytes, POISONED_AT) != 0).then(|| rd_u32(&bytes, POISONED_AT + 4));
    Ok(Some(SpoolFile {
        records: bytes[SPOOL_HEADER_LEN as usize..end].to_vec(),
        poisoned,
    }))
}

/// Mark the spool `file` poisoned by a failure of operation `op_code` (see the module docs):
/// one write of its header, through the file (the mapping is `MAP_SHARED`, so it sees it).
pub(crate) fn poison(file: &File, op_code: u32) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut field = [0u8; 8];
    field[..4].copy_from_slice(&1u32.to_le_bytes());
    field[4..].copy_from_slice(&op_code.to_le_bytes());
    file.write_all_at(&field, POISONED_AT as u64)
}

/// Take the spool file of `options` for a new read-write instance (see the module docs):
/// opened (created empty if absent) and locked with `flock(LOCK_EX)` for as long as the
/// returned file is open. When another process holds it, `options.spool` becomes `None`
/// (records wait in process memory: a `kill -9` then loses the no-flush commits of the last
/// commit interval) and a warning says so. Read-only instances take nothing: they only
/// read a spool, and that of a live instance is what they should show.
///
/// Errors: `Io` opening, locking or inspecting the file.
pub(crate) fn claim(mut options: RvmOptions) -> Result<(RvmOptions, Option<File>)> {
    let Some(path) = options.spool.clone().filter(|_| !options.read_only) else {
        return Ok((options, None));
    };
    // Locking a file the holder removes meanwhile (its clean shutdown) locks an unlinked
    // inode: then open the new one again.
    for _ in 0..CLAIM_TRIES {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if !try_lock(&file)? {
            log::warn!(
                "spool {} is held by another process (an image with this one's UUID is \
                 mounted read-write: a restored copy?); this instance keeps its no-flush \
                 commits in process memory, so a kill -9 loses those of the last commit \
                 interval",
                path.display()
            );
            options.spool = None;
            return Ok((options, None));
        }
        if is_file_at(&file, &path)? {
            return Ok((options, Some(file)));
        }
    }
    Err(io::Error::other(format!(
        "spool {}: replaced while being locked",
        path.display()
    ))
    .into())
}

/// Times [`claim`] opens a spool file that another process keeps removing.
const CLAIM_TRIES: usize = 3;

/// `flock(LOCK_EX | LOCK_NB)` on `file`: false if another open file description holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a valid open descriptor; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(e),
    }
}

/// Whether `path` still names the inode `file` has open.
fn is_file_at(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// An open, mapped spool file.
pub(crate) struct Spool {
    file: File,
    map: MmapMut,
    log_id: u64,
    /// Bytes of records (after the header); mirrors the `used` field.
    used: u64,
    /// Bytes of records already written to the log.
    flushed: u64,
}

impl Spool {
    /// Make the spool `file` ([`claim`]ed) `size` bytes long and reset it to empty.
    pub fn create(file: File, size: u64, log_id: u64, base_seq: u64) -> io::Result<Spool> {
        let size = size
            .max(2 * SPOOL_HEADER_LEN)
            .next_multiple_of(PAGE_SIZE as u64);
        file.set_len(size)?;
        // SAFETY: the spool file is private to this Rvm; MAP_SHARED so stores reach the file.
        let map = unsafe { MmapMut::map_mut(&file)? };
        let mut s = Spool {
            file,
            map,
            log_id,
            used: 0,
            flushed: 0,
        };
        s.reset(base_seq);
        Ok(s)
    }

    /// Another descriptor of the spool file (for [`poison`], which must not wait for the
    /// lock the spool lives under).
    pub fn file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    fn used_cell(&self) -> &AtomicU64 {
        // SAFETY: offset 32 of a page-aligned mapping is 8-byte aligned and inside it; the
        // mapping lives as long as `self`.
        unsafe { &*(self.map.as_ptr().add(32) as *const AtomicU64) }
    }

    fn capacity(&self) -> u64 {
        self.map.len() as u64 - SPOOL_HEADER_LEN
    }

    /// Empty the spool; the next record appended must have seq `base_seq`.
    /// (A failed hole punch only keeps memory in use, so its result is not checked.)
    pub fn reset(&mut self, base_seq: u64) {
        let old_used = self.used;
        self.used_cell().store(0, Ordering::Release);
        self.used = 0;
        self.flushed = 0;
        let h = &mut self.map[..SPOOL_HEADER_LEN as usize];
        h[0..4].copy_from_slice(&SPOOL_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&SPOOL_VERSION.to_le_bytes());
        h[8..16].copy_from_slice(&self.log_id.to_le_bytes());
        h[16..24].copy_from_slice(&base_seq.to_le_bytes());
        let crc = crc32c::crc32c(&h[..24]);
        h[24..28].copy_from_slice(&crc.to_le_bytes());
        h[POISONED_AT..POISONED_AT + 8].fill(0); // a new instance: healthy
                                                 // Give the memory of a large spent spool back to tmpfs (its records are stale now
                                                 // that the header says the spool is empty), so a burst of commits does not keep the
                                                 // spool's high-water mark resident.
        let spent = (SPOOL_HEADER_LEN + old_used).next_multiple_of(PAGE_SIZE as u64);
        if spent > PUNCH_ABOVE {
            use std::os::fd::AsRawFd;
            // SAFETY: fallocate on our own open file; plain integer arguments.
            unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    PAGE_SIZE as libc::off_t,
                    (spent - PAGE_SIZE as u64) as libc::off_t,
                );
            }
        }
    }

    pub fn has_room(&self, n: u64) -> bool {
        self.used + n <= self.capacity()
    }

    /// Grow the file so `n` more bytes fit.
    pub fn grow(&mut self, n: u64) -> io::Result<()> {
        let need = SPOOL_HEADER_LEN + self.used + n;
        let size = need
            .max(2 * self.map.len() as u64)
            .next_multiple_of(PAGE_SIZE as u64);
        self.file.set_len(size)?;
        // SAFETY: as in `create`.
        self.map = unsafe { MmapMut::map_mut(&self.file)? };
        Ok(())
    }

    /// Append `n` bytes filled in by `f` (the caller checked `has_room`); `used` is
    /// published only after `f` returns.
    pub fn append_with(&mut self, n: usize, f: impl FnOnce(&mut [u8])) {
        let at = (SPOOL_HEADER_LEN + self.used) as usize;
        f(&mut self.map[at..at + n]);
        self.used += n as u64;
        self.used_cell().store(self.used, Ordering::Release);
    }

    /// Append one encoded record (the caller checked `has_room`).
    #[allow(dead_code)]
    pub fn append(&mut self, rec: &[u8]) {
        let at = (SPOOL_HEADER_LEN + self.used) as usize;
        self.map[at..at + rec.len()].copy_from_slice(rec);
        self.used += rec.len() as u64;
        self.used_cell().store(self.used, Ordering::Release);
    }

    pub fn unflushed(&self) -> &[u8] {
        let s = (SPOOL_HEADER_LEN + self.flushed) as usize;
        let e = (SPOOL_HEADER_LEN + self.used) as usize;
        &self.map[s..e]
    }

    pub fn mark_flushed(&mut self, n: u64, next_seq: u64) {
        self.flushed += n;
        if self.flushed >= self.used {
            self.reset(next_seq);
        }
    }
}

/// Records committed with `NoFlush` and not yet written to the log.
pub(crate) enum Pending {
    /// In process memory (no spool): `limit` bytes before a commit forces a flush.
    Mem {
        buf: Vec<u8>,
        limit: u64,
    },
    Spool(Spool),
}

impl Pending {
    pub fn has_room(&self, n: u64) -> bool {
        match self {
            Pending::Mem { buf, limit } => buf.len() as u64 + n <= *limit,
            Pending::Spool(s) => s.has_room(n),
        }
    }
    pub fn make_room(&mut self, n: u64) -> io::Result<()> {
        match self {
            Pending::Mem { buf, limit } => {
                *limit = (*limit).max(buf.len() as u64 + n);
                Ok(())
            }
            Pending::Spool(s) => s.grow(n),
        }
    }
    /// Append `n` bytes of one record, encoded in place by `f`.
    pub fn append_with(&mut self, n: usize, f: impl FnOnce(&mut [u8])) {
        match self {
            Pending::Mem { buf, .. } => {
                let at = buf.len();
                buf.resize(at + n, 0);
                f(&mut buf[at..]);
            }
            Pending::Spool(s) => s.append_with(n, f),
        }
    }
    #[allow(dead_code)]
    pub fn append(&mut self, rec: &[u8]) {
        match self {
            Pending::Mem { buf, .. } => buf.extend_from_slice(rec),
            Pending::Spool(s) => s.append(rec),
        }
    }
    /// Bytes the pending records may take before a commit must grow the spool (or, in
    /// memory, force a flush).
    pub fn capacity(&self) -> u64 {
        match self {
            Pending::Mem { limit, .. } => *limit,
            Pending::Spool(s) => s.capacity(),
        }
    }
    pub fn unflushed(&self) -> &[u8] {
        match self {
            Pending::Mem { buf, .. } => buf,
            Pending::Spool(s) => s.unflushed(),
        }
    }
    pub fn mark_flushed(&mut self, n: u64, next_seq: u64) {
        match self {
            Pending::Mem { buf, .. } => {
                buf.drain(..n as usize);
            }
            Pending::Spool(s) => s.mark_flushed(n, next_seq),
        }
    }
}
