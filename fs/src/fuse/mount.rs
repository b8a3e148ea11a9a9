//! Mounting with the type `fuse.rvmfs`, so `/proc/mounts`, `df -T` and `findmnt -t
//! fuse.rvmfs` tell rvmfs from other FUSE filesystems.
//!
//! fusermount3 (libfuse) mounts a filesystem with a subtype as type `fuse.SUBTYPE`; fuser
//! 0.18's own mount(2) call, which it makes when it can (root), always passes `fuse` and
//! drops the subtype (`fuser/src/mnt/fuse_pure.rs`, `fuse_mount_sys`). So when this process
//! may mount (root), it opens /dev/fuse and calls mount(2) itself with the type
//! `fuse.rvmfs` and the options libfuse passes (`fd=`, `rootmode=`, `user_id=`, `group_id=`,
//! `default_permissions`, `allow_other`), then serves the descriptor with fuser's
//! `Session::from_fd`. Otherwise (EPERM) fuser's `Session::new` mounts through fusermount3.

use fuser::{Config, Filesystem, Session, SessionACL, SessionUnmounter};
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The filesystem type after `fuse.` in /proc/mounts.
pub const SUBTYPE: &str = "rvmfs";

/// Unmounts what [`mount`] mounted (from any thread).
pub enum Unmounter {
    /// Mounted by fuser (through fusermount3).
    Fuser(SessionUnmounter),
    /// Mounted here with mount(2): umount(2) of this mount point.
    Direct(PathBuf),
}

impl Unmounter {
    /// Unmount. Errors: umount(2)'s (EBUSY while the mount is in use) or fuser's.
    pub fn unmount(&mut self) -> io::Result<()> {
        match self {
            Unmounter::Fuser(u) => u.unmount(),
            Unmounter::Direct(path) => {
                let c = CString::new(path.as_os_str().as_bytes())?;
                // SAFETY: umount2 with a NUL-terminated path and no flags.
                if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            }
        }
    }
}

/// Mount `fs` at `mountpoint` with `config` as type `fuse.rvmfs` and source `fsname` (the
/// image path), read-only if `read_only`; returns the session to run and its unmounter.
///
/// Errors: opening /dev/fuse, mount(2) (other than EPERM, which falls back to fusermount3),
/// or the FUSE handshake.
pub fn mount<FS: Filesystem>(
    fs: FS,
    mountpoint: &Path,
    config: &Config,
    fsname: &str,
    read_only: bool,
) -> io::Result<(Session<FS>, Unmounter)> {
    match mount_direct(mountpoint, config.acl, fsname, read_only) {
        Ok(Some(fd)) => {
            let mountpoint = std::fs::canonicalize(mountpoint)?;
            let session = Session::from_fd(fs, fd, config.acl, config.clone());
            if session.is_err() {
                let _ = Unmounter::Direct(mountpoint.clone()).unmount();
            }
            Ok((session?, Unmounter::Direct(mountpoint)))
        }
        Ok(None) => {
            let mut session = Session::new(fs, mountpoint, config)?;
            let unmounter = Unmounter::Fuser(session.unmount_callable());
            Ok((session, unmounter))
        }
        Err(e) => Err(e),
    }
}

/// mount(2) of /dev/fuse at `mountpoint`; None if not permitted (or /dev/fuse cannot be
/// opened), for fusermount3 to do it.
fn mount_direct(
    mountpoint: &Path,
    acl: SessionACL,
    fsname: &str,
    read_only: bool,
) -> io::Result<Option<OwnedFd>> {
    let Ok(dev) = OpenOptions::new().read(true).write(true).open("/dev/fuse") else {
        return Ok(None);
    };
    let fd = OwnedFd::from(dev);
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},default_permissions",
        fd.as_raw_fd()
    );
    if acl != SessionACL::Owner {
        data.push_str(",allow_other");
    }
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if read_only {
        flags |= libc::MS_RDONLY;
    }
    let cstr =
        |s: &[u8]| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let (source, target) = (
        cstr(fsname.as_bytes())?,
        cstr(mountpoint.as_os_str().as_bytes())?,
    );
    let (fstype, data) = (
        cstr(format!("fuse.{SUBTYPE}").as_bytes())?,
        cstr(data.as_bytes())?,
    );
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r == 0 {
        return Ok(Some(fd));
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EPERM) => Ok(None),
        e => Err(io::Error::new(
            e.kind(),
            format!("mount(2) of {} on {}: {e}", fsname, mountpoint.display()),
        )),
    }
}
