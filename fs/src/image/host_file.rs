//! Chores on a host file or block device that the tools which write whole images and logs
//! share (`mkfs.rvmfs`, `rvmfs-admin restore`): is anything in it, making a range of it
//! read as zeros, and readying an external log.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Open `path` to read and write, creating it if missing, keeping what it holds (a file to
/// be sized or a block device).
///
/// Errors: the open failed (a missing directory, permissions).
pub fn open_or_create(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Is there anything in `file` (a non-zero byte in its first 64 KiB)?
///
/// Errors: the seek or read failed.
pub fn has_contents(mut file: &File) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 << 10];
    file.seek(SeekFrom::Start(0))?;
    let n = file.read(&mut buf)?;
    Ok(buf[..n].iter().any(|&b| b != 0))
}

/// Make [offset, offset+len) of `file` (bytes) read as zeros, then sync it:
/// FALLOC_FL_ZERO_RANGE (a device often zeroes it without writing; a file gets written
/// extents), else plain writes of zeros ([`write_zeros`]).
///
/// Errors: a write or the sync failed.
pub fn zero_range(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a valid descriptor with plain integer arguments.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        write_zeros(file, offset, len)?;
    }
    file.sync_all()
}

/// Ready an external log file or device of `len` bytes (a multiple of 4096) to be
/// formatted: a file is cut to 0 bytes and set to `len` (no byte of what it held survives),
/// a block device keeps its size; then all `len` bytes read as zeros ([`zero_range`]),
/// synced.
///
/// Errors: the size could not be set (a full host, permissions), a write or the sync failed.
pub fn prepare_log(file: &File, len: u64, is_block: bool) -> io::Result<()> {
    if !is_block {
        file.set_len(0)?;
        file.set_len(len)?;
    }
    zero_range(file, 0, len)
}

/// Write zeros over [offset, offset+len) of `file` (bytes) in 1 MiB writes.
///
/// Errors: a write failed (ENOSPC on a full host among them).
pub fn write_zeros(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
