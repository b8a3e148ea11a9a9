//! Running an operation on the real filesystem under the mount: from the driver's thread
//! ([`perform`]), or from a second thread while the daemon gets `kill -9`
//! ([`perform_racing_kill`]).

use crate::model::Errno;
use crate::ops::{Op, Target};
use rvmfs_tests::*;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a performed operation gave back besides success.
pub enum Done {
    Unit,
    File(File),
    Data(Vec<u8>),
}

/// A path as a C string for libc calls.
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn check_rc(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The driver's open handle number `i`.
fn handle(files: &[File], i: usize) -> &File {
    &files[i]
}

/// Do `op` on the real filesystem under `root`.
pub fn perform(op: &Op, root: &Path, files: &[File]) -> io::Result<Done> {
    let p = |s: &str| root.join(s);
    match op {
        Op::Create { path, perm, keep } => {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(*perm)
                .open(p(path))?;
            Ok(if *keep { Done::File(f) } else { Done::Unit })
        }
        Op::Mkdir { path, perm, .. } => fs::DirBuilder::new()
            .mode(*perm)
            .create(p(path))
            .map(|_| Done::Unit),
        Op::Symlink { target, path } => {
            std::os::unix::fs::symlink(target, p(path)).map(|_| Done::Unit)
        }
        Op::Link { from, to } => fs::hard_link(p(from), p(to)).map(|_| Done::Unit),
        Op::Unlink { path } => fs::remove_file(p(path)).map(|_| Done::Unit),
        Op::Rmdir { path } => fs::remove_dir(p(path)).map(|_| Done::Unit),
        Op::Rename { from, to } => fs::rename(p(from), p(to)).map(|_| Done::Unit),
        Op::Write {
            target,
            off,
            len,
            seed,
        } => {
            let data = pattern(*seed, *len as usize);
            match target {
                Target::Path(t) => open_for_write(&p(t))?.write_all_at(&data, *off)?,
                Target::Handle(i) => handle(files, *i).write_all_at(&data, *off)?,
            }
            Ok(Done::Unit)
        }
        Op::Truncate { target, size } => {
            match target {
                Target::Path(t) => check_rc(unsafe {
                    libc::truncate(cpath(&p(t)).as_ptr(), *size as libc::off_t)
                })?,
                Target::Handle(i) => handle(files, *i).set_len(*size)?,
            }
            Ok(Done::Unit)
        }
        Op::SetXattr {
            path,
            name,
            value,
            flags,
        } => set_xattr(&p(path), name, value, *flags).map(|_| Done::Unit),
        Op::RemoveXattr { path, name } => {
            let n = CString::new(name.as_str()).unwrap();
            // SAFETY: valid C strings.
            check_rc(unsafe { libc::lremovexattr(cpath(&p(path)).as_ptr(), n.as_ptr()) })
                .map(|_| Done::Unit)
        }
        Op::Chmod { path, perm } => {
            fs::set_permissions(p(path), fs::Permissions::from_mode(*perm)).map(|_| Done::Unit)
        }
        Op::Fsync { target, data_only } => fsync(target, *data_only, root, files),
        Op::FsyncDir { path } => File::open(p(path))?.sync_all().map(|_| Done::Unit),
        Op::OpenHold { path } => OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p(path))
            .map(Done::File),
        Op::Close { .. } => Ok(Done::Unit), // the driver drops the handle
        Op::Check { path } => fs::read(p(path)).map(Done::Data),
    }
}

/// A file opened for writing by path, never through a symlink.
fn open_for_write(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// `lsetxattr(path, name, value, flags)`.
fn set_xattr(path: &Path, name: &str, value: &[u8], flags: i32) -> io::Result<()> {
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    check_rc(unsafe {
        libc::lsetxattr(
            cpath(path).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
}

/// `fsync` (or `fdatasync` when `data_only`) of a file opened by path or of a held handle.
fn fsync(target: &Target, data_only: bool, root: &Path, files: &[File]) -> io::Result<Done> {
    let owned;
    let f = match target {
        Target::Path(t) => {
            owned = File::open(root.join(t))?;
            &owned
        }
        Target::Handle(i) => handle(files, *i),
    };
    if data_only {
        f.sync_data()?;
    } else {
        f.sync_all()?;
    }
    Ok(Done::Unit)
}

/// [`perform`] for the operation in flight at the kill: a write is one `pwrite` (not retried
/// after a short write, so what was answered is known) and returns the bytes written.
fn perform_inflight(op: &Op, root: &Path, files: &[File]) -> io::Result<Option<usize>> {
    let Op::Write {
        target,
        off,
        len,
        seed,
    } = op
    else {
        return perform(op, root, files).map(|_| None);
    };
    let data = pattern(*seed, *len as usize);
    let n = match target {
        Target::Path(t) => open_for_write(&root.join(t))?.write_at(&data, *off)?,
        Target::Handle(i) => files[*i].write_at(&data, *off)?,
    };
    Ok(Some(n))
}

/// The errno of an I/O error (-1 if it has none).
pub fn errno_of(e: &io::Error) -> Errno {
    e.raw_os_error().unwrap_or(-1)
}

/// "N (strerror text)", for messages.
pub fn errno_name(e: Errno) -> String {
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(e)) };
    format!("{e} ({})", s.to_string_lossy())
}

/// Run `op` ([`perform_inflight`]) from a second thread and `kill -9` the daemon `pid` (ours)
/// `delay` after that thread started; returns what the system call answered (for a request
/// the dead daemon never answered: ECONNABORTED, or ENOTCONN once the connection is gone).
pub fn perform_racing_kill(
    op: &Op,
    root: &Path,
    files: &[File],
    pid: u32,
    delay: Duration,
) -> io::Result<Option<usize>> {
    let files: Vec<File> = files.iter().map(|f| f.try_clone().expect("dup")).collect();
    let root = root.to_path_buf();
    let op2 = op.clone();
    run_racing_kill(pid, delay, move |started| {
        started();
        perform_inflight(&op2, &root, &files)
    })
}

/// Run `job` on a second thread and send SIGKILL to the daemon `pid` (ours) `delay` after
/// the job calls the `started` callback it is given (right before its system call). Spins
/// rather than sleeps: the delays are microseconds. Returns what the job returned.
pub fn run_racing_kill<T, F>(pid: u32, delay: Duration, job: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&dyn Fn()) -> T + Send + 'static,
{
    let started = Arc::new(AtomicBool::new(false));
    let started2 = started.clone();
    let t = std::thread::spawn(move || job(&|| started2.store(true, Ordering::SeqCst)));
    while !started.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    let t0 = Instant::now();
    while t0.elapsed() < delay {
        std::hint::spin_loop();
    }
    signal_pid(pid, libc::SIGKILL);
    t.join().expect("in-flight thread")
}
