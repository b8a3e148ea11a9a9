//! Writing one copied inode: its data (damaged blocks left as holes), device files and FIFOs,
//! and its metadata (owner, mode, xattrs, times) through the host's system calls.

use crate::debug::xattrs;
use rvmfs::layout::inode::Inode;
use rvmfs::ops::{file, Fs};
use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes read at once; a read that fails is retried block by block.
const CHUNK: u64 = 1 << 20;
/// Data block size, bytes.
const BLOCK: u64 = 4096;

/// Copy the `size` bytes of file `ino` into `out` (all-zero blocks are left as holes).
/// Returns the byte ranges that could not be read, with why (they are left as holes).
/// Errors: writing `out` failed.
pub fn data(fs: &Fs, ino: u64, size: u64, out: &File) -> std::io::Result<Vec<(u64, u64, String)>> {
    let mut bad: Vec<(u64, u64, String)> = Vec::new();
    let mut at = 0;
    while at < size {
        let n = CHUNK.min(size - at);
        match file::read(&fs.geo, fs.bytes(), ino, at, n) {
            Ok(buf) => write_sparse(out, &buf, at)?,
            Err(_) => {
                for b in (at..at + n).step_by(BLOCK as usize) {
                    let len = BLOCK.min(at + n - b);
                    match file::read(&fs.geo, fs.bytes(), ino, b, len) {
                        Ok(buf) => write_sparse(out, &buf, b)?,
                        Err(e) => match bad.last_mut() {
                            Some(last) if last.1 == b && last.2 == e.to_string() => {
                                last.1 = b + len
                            }
                            _ => bad.push((b, b + len, e.to_string())),
                        },
                    }
                }
            }
        }
        at += n;
    }
    out.set_len(size)?;
    Ok(bad)
}

/// Write `buf` at `at`, skipping its all-zero blocks (the file stays sparse there).
fn write_sparse(out: &File, buf: &[u8], at: u64) -> std::io::Result<()> {
    for (i, block) in buf.chunks(BLOCK as usize).enumerate() {
        if block.iter().any(|b| *b != 0) {
            out.write_all_at(block, at + i as u64 * BLOCK)?;
        }
    }
    Ok(())
}

fn c_path(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> std::io::Result<()> {
    match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Make the device file, FIFO or socket `node` at `dest` (mode bits are set later).
pub fn special(node: &Inode, dest: &Path) -> std::io::Result<()> {
    let p = c_path(dest)?;
    // SAFETY: mknod with a NUL-terminated path and plain integers.
    check(unsafe { libc::mknod(p.as_ptr(), node.kind() | 0o600, node.rdev as libc::dev_t) })
}

/// Owner, mode bits and extended attributes of `dest` from inode `ino`. Returns what could
/// not be copied (damaged xattrs, ones the host refuses); errors: the path is unusable.
pub fn metadata(fs: &Fs, ino: u64, node: &Inode, dest: &Path) -> std::io::Result<Vec<String>> {
    let p = c_path(dest)?;
    let mut problems = Vec::new();
    match xattrs::read_all(fs.bytes(), ino) {
        Ok(all) => {
            for (name, value) in all {
                let Ok(n) = CString::new(name.clone()) else {
                    continue;
                };
                // SAFETY: NUL-terminated path and name, a value buffer of the length given.
                let r = unsafe {
                    libc::lsetxattr(
                        p.as_ptr(),
                        n.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    )
                };
                if let Err(e) = check(r) {
                    problems.push(format!(
                        "xattr {} not copied: {e}",
                        String::from_utf8_lossy(&name)
                    ));
                }
            }
        }
        Err(e) => problems.push(format!("inode {ino}: its xattrs cannot be read: {e}")),
    }
    // SAFETY: lchown with a NUL-terminated path. Only root may give files away; others keep theirs.
    let owned = check(unsafe { libc::lchown(p.as_ptr(), node.uid, node.gid) });
    if let Err(e) = owned {
        if e.raw_os_error() != Some(libc::EPERM) {
            problems.push(format!("owner {}:{} not set: {e}", node.uid, node.gid));
        }
    }
    if !node.is_symlink() {
        // SAFETY: chmod with a NUL-terminated path (after chown, which may clear set-id bits).
        check(unsafe { libc::chmod(p.as_ptr(), node.mode & 0o7777) })?;
    }
    Ok(problems)
}

/// Set atime and mtime of `dest` (not following a symlink).
pub fn times(node: &Inode, dest: &Path) -> std::io::Result<()> {
    let p = c_path(dest)?;
    let ts = [
        libc::timespec {
            tv_sec: node.atime,
            tv_nsec: node.atime_ns as i64,
        },
        libc::timespec {
            tv_sec: node.mtime,
            tv_nsec: node.mtime_ns as i64,
        },
    ];
    // SAFETY: a NUL-terminated path and an array of two timespecs.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}
