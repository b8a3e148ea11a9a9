//! Helpers shared by the `posix_*` tests (each includes this file with `#[path]`; built on its
//! own it is an empty test target). System calls std::fs does not offer: xattrs, fallocate,
//! lseek(SEEK_DATA/SEEK_HOLE), copy_file_range, renameat2, utimensat, mknod.
#![allow(dead_code)]

use rvmfs_tests::*;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The errno of a failed call; panics on success.
#[track_caller]
pub fn errno<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

pub fn c(p: impl AsRef<Path>) -> CString {
    CString::new(p.as_ref().as_os_str().as_bytes()).expect("no NUL in path")
}

/// A libc return value (-1 = error in errno) as an io::Result.
pub fn sys<T: Copy + PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (p, n) = (c(p), c(name));
    // SAFETY: valid C strings and a buffer of the given length.
    sys(unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

pub fn lsetxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let (p, n) = (c(p), c(name));
    // SAFETY: as above.
    sys(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// getxattr with a buffer of `cap` bytes (0: ask for the size only; the result is then empty
/// and its length is returned as the second value).
pub fn getxattr_cap(p: &Path, name: &str, cap: usize) -> io::Result<(Vec<u8>, usize)> {
    let (p, n) = (c(p), c(name));
    let mut buf = vec![0u8; cap];
    // SAFETY: the buffer has `cap` bytes.
    let len = sys(unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), cap) })?
        as usize;
    buf.truncate(if cap == 0 { 0 } else { len });
    Ok((buf, len))
}

/// The whole value of attribute `name`: its size, then the value; asked again if it grew in
/// between (ERANGE), as getfattr does (the daemon's virtual counters change all the time).
pub fn getxattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    let mut tries = 0;
    loop {
        let (_, len) = getxattr_cap(p, name, 0)?;
        match getxattr_cap(p, name, len) {
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && tries < 10 => tries += 1,
            r => return Ok(r?.0),
        }
    }
}

/// listxattr with a buffer of `cap` bytes, as a list of names.
pub fn listxattr_cap(p: &Path, cap: usize) -> io::Result<(Vec<String>, usize)> {
    let p = c(p);
    let mut buf = vec![0u8; cap];
    // SAFETY: the buffer has `cap` bytes.
    let len = sys(unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), cap) })? as usize;
    buf.truncate(if cap == 0 { 0 } else { len });
    let names = buf
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    Ok((names, len))
}

pub fn listxattr(p: &Path) -> io::Result<Vec<String>> {
    let (_, len) = listxattr_cap(p, 0)?;
    let mut names = listxattr_cap(p, len)?.0;
    names.sort();
    Ok(names)
}

pub fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let (p, n) = (c(p), c(name));
    // SAFETY: valid C strings.
    sys(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) }).map(drop)
}

/// The daemon's durability counters (virtual attribute `rvmfs.counters` of any inode).
pub fn counters(p: &Path) -> std::collections::HashMap<String, u64> {
    let text = getxattr(p, "rvmfs.counters").expect("getxattr rvmfs.counters");
    name_values(&text)
}

/// "a=1 b=2" as a map.
fn name_values(text: &[u8]) -> std::collections::HashMap<String, u64> {
    String::from_utf8_lossy(text)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().expect("a number")))
        .collect()
}

pub fn fallocate(f: &std::fs::File, mode: i32, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    sys(unsafe { libc::fallocate(f.as_raw_fd(), mode, offset as i64, len as i64) }).map(drop)
}

/// lseek with SEEK_DATA / SEEK_HOLE (or any whence).
pub fn lseek(f: &std::fs::File, offset: u64, whence: i32) -> io::Result<u64> {
    // SAFETY: a valid descriptor.
    sys(unsafe { libc::lseek(f.as_raw_fd(), offset as i64, whence) }).map(|o| o as u64)
}

/// copy_file_range until `len` bytes are copied or the source ends; returns the total.
pub fn copy_range(
    src: &std::fs::File,
    off_in: u64,
    dst: &std::fs::File,
    off_out: u64,
    len: u64,
) -> io::Result<u64> {
    let (mut i, mut o, mut done) = (off_in as i64, off_out as i64, 0u64);
    while done < len {
        // SAFETY: valid descriptors and offsets owned here.
        let n = sys(unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut i,
                dst.as_raw_fd(),
                &mut o,
                (len - done) as usize,
                0,
            )
        })?;
        if n == 0 {
            break;
        }
        done += n as u64;
    }
    Ok(done)
}

pub fn renameat2(from: &Path, to: &Path, flags: u32) -> io::Result<()> {
    let (f, t) = (c(from), c(to));
    // SAFETY: valid C strings.
    sys(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

pub fn mknod(p: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let p = c(p);
    // SAFETY: a valid C string.
    sys(unsafe { libc::mknod(p.as_ptr(), mode, dev) }).map(drop)
}

/// utimensat(AT_FDCWD, p, [atime, mtime], AT_SYMLINK_NOFOLLOW) with raw timespecs (tv_nsec
/// may be UTIME_NOW / UTIME_OMIT).
pub fn utimens(p: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let p = c(p);
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: a valid C string and two timespecs.
    sys(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// (free blocks, free inodes) of the filesystem holding `p`.
pub fn statfs_free(p: &Path) -> (u64, u64) {
    let p = c(p);
    // SAFETY: statvfs writes into the zeroed struct.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    sys(unsafe { libc::statvfs(p.as_ptr(), &mut s) }).expect("statvfs");
    (s.f_bfree as u64, s.f_ffree as u64)
}

/// A tool in $PATH or ~/.cargo/bin (where `cargo install` puts it).
pub fn tool(name: &str) -> Option<PathBuf> {
    which(name).or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?)
            .join(".cargo/bin")
            .join(name);
        p.is_file().then_some(p)
    })
}

/// Unmount, require a clean `fsck -n`, and mount again.
pub fn fsck_and_remount(m: &mut Mounted) {
    m.unmount_ok();
    m.assert_fsck_clean();
    m.mount();
}

/// A count from an environment variable, else `default`.
pub fn env_count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The daemon's requests by opcode (virtual attribute `rvmfs.requests`, "lookup=N ..."), read
/// in one call with a large buffer (its reads are not counted themselves).
pub fn requests(p: &Path) -> std::collections::HashMap<String, u64> {
    let (text, _) = getxattr_cap(p, "rvmfs.requests", 1 << 16).expect("getxattr rvmfs.requests");
    name_values(&text)
}

/// The requests of each opcode between two readings of [`requests`] (only the nonzero ones).
pub fn requests_since(
    p: &Path,
    base: &std::collections::HashMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    requests(p)
        .into_iter()
        .map(|(k, v)| (v - base.get(&k).copied().unwrap_or(0), k))
        .filter(|&(d, _)| d > 0)
        .map(|(d, k)| (k, d))
        .collect()
}

/// Run `f` in a child process as user `uid`:`gid` with no supplementary groups (so the
/// mount sees that user's requests, without CAP_FSETID); whether it returned true.
pub fn as_user(uid: u32, gid: u32, f: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child only makes system calls and exits.
    match unsafe { libc::fork() } {
        0 => {
            let ok = unsafe {
                libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setgid(gid) == 0
                    && libc::setuid(uid) == 0
            } && f();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        -1 => panic!("fork failed"),
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
        }
    }
}
