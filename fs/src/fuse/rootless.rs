//! What a mount by an unprivileged user needs from the machine, said when a mount fails for
//! want of it. The daemon mounts as fuser does (as libfuse does): it opens `/dev/fuse` itself
//! and tries mount(2); as a user that fails with EPERM and the setuid helper fusermount3
//! mounts instead. So a user needs `/dev/fuse` readable and writable (mode 0666, udev's rule
//! for it on Debian), else the mount fails with a bare EACCES before fusermount3 is tried;
//! and `-o allow_other` needs `user_allow_other` in /etc/fuse.conf (fusermount3 says so).

use std::io;
use std::os::unix::fs::PermissionsExt;

/// The device every FUSE mount reads requests from.
pub const DEV_FUSE: &str = "/dev/fuse";

/// `err` (from mounting) with the machine setting to change when it is the cause: for a user
/// who is not root and cannot open [`DEV_FUSE`], its mode and what it needs to be. Any other
/// error is returned as it is.
pub fn explain_mount_error(err: io::Error) -> io::Error {
    // SAFETY: geteuid has no preconditions.
    if err.kind() != io::ErrorKind::PermissionDenied || unsafe { libc::geteuid() } == 0 {
        return err;
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEV_FUSE);
    match opened {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let mode = std::fs::metadata(DEV_FUSE)
                .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777))
                .unwrap_or_else(|_| "unknown".into());
            io::Error::new(
                err.kind(),
                format!(
                    "{err}: {DEV_FUSE} (mode {mode}) cannot be opened by this user; a mount \
                     by a user who is not root needs it mode 0666 (as udev sets it: \
                     `chmod 0666 {DEV_FUSE}` as root) and fusermount3 installed setuid root"
                ),
            )
        }
        _ => err,
    }
}
