//! Running an operation on the real filesystem under the mount.

use crate::model::*;
use crate::ops::*;
use rvmfs_tests::*;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// What a performed operation gave back besides success.
pub enum Done {
    Unit,
    File(File),
    Data(Vec<u8>),
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

pub fn check_rc(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn handle(files: &[File], i: usize) -> &File {
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
                Target::Path(t) => {
                    let f = OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(p(t))?;
                    f.write_all_at(&data, *off)?;
                }
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
        } => {
            let n = CString::new(name.as_str()).unwrap();
            // SAFETY: valid C strings and a buffer of the given length.
            check_rc(unsafe {
                libc::lsetxattr(
                    cpath(&p(path)).as_ptr(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    *flags,
                )
            })
            .map(|_| Done::Unit)
        }
        Op::RemoveXattr { path, name } => {
            let n = CString::new(name.as_str()).unwrap();
            // SAFETY: valid C strings.
            check_rc(unsafe { libc::lremovexattr(cpath(&p(path)).as_ptr(), n.as_ptr()) })
                .map(|_| Done::Unit)
        }
        Op::Chmod { path, perm } => {
            fs::set_permissions(p(path), fs::Permissions::from_mode(*perm)).map(|_| Done::Unit)
        }
        Op::Fsync { target, data_only } => {
            let owned;
            let f = match target {
                Target::Path(t) => {
                    owned = File::open(p(t))?;
                    &owned
                }
                Target::Handle(i) => handle(files, *i),
            };
            if *data_only {
                f.sync_data()?;
            } else {
                f.sync_all()?;
            }
            Ok(Done::Unit)
        }
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

/// [`perform`] for the operation in flight at the kill: a write is one `pwrite` (not retried
/// after a short write, so what was answered is known) and returns the bytes written.
pub fn perform_inflight(op: &Op, root: &Path, files: &[File]) -> io::Result<Option<usize>> {
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
        Target::Path(t) => OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(root.join(t))?
            .write_at(&data, *off)?,
        Target::Handle(i) => files[*i].write_at(&data, *off)?,
    };
    Ok(Some(n))
}

pub fn errno_of(e: &io::Error) -> Errno {
    e.raw_os_error().unwrap_or(-1)
}

pub fn errno_name(e: Errno) -> String {
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(e)) };
    format!("{e} ({})", s.to_string_lossy())
}
