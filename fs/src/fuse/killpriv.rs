//! Who removes privileges from a changed file: FUSE_HANDLE_KILLPRIV_V2.
//!
//! Linux clears set-user-ID (and set-group-ID when group-executable) when a caller without
//! CAP_FSETID writes or truncates a file, and on any chown of a non-directory; it removes
//! `security.capability` on every write, truncate and chown (`file_remove_privs`, fs/inode.c;
//! `notify_change`, fs/attr.c). Without this feature the kernel's FUSE client does it itself,
//! with a GETXATTR of `security.capability` before each write and a SETATTR or REMOVEXATTR
//! when one is set. With it (negotiated in `init.rs`) the kernel sets SB_NOSEC, asks at most
//! once per inode between attribute refreshes, and tells the daemon when to clear the set-ID
//! bits: `FUSE_WRITE_KILL_SUIDGID` on a write, `FATTR_KILL_SUIDGID` on a setattr,
//! `FUSE_OPEN_KILL_SUIDGID` on an open with O_TRUNC (fs/fuse/file.c, fs/fuse/dir.c). The
//! capability attribute is always the daemon's job (`ops::xattr::drop_capability`, called by
//! every write, truncate and chown in `ops`). fallocate and copy_file_range carry no such flag
//! (upstream fuser 2b219fe): there a caller other than root counts as lacking CAP_FSETID, the
//! rule rvmfs applied everywhere before this feature.

use super::RvmFs;
use crate::error::FsResult;
use crate::ops::{file, Op};

impl RvmFs {
    /// Whether a request of caller `uid` must clear the set-ID bits; `kernel_says`: its
    /// KILL_SUIDGID flag, meaningful once FUSE_HANDLE_KILLPRIV_V2 was negotiated.
    pub(super) fn kill_setid(&self, kernel_says: bool, uid: u32) -> bool {
        if self.killpriv_v2 {
            kernel_says
        } else {
            uid != 0
        }
    }

    /// Whether a fallocate or copy_file_range of caller `uid` must clear the set-ID bits: the
    /// kernel clears them itself unless FUSE_HANDLE_KILLPRIV_V2 was negotiated, and then
    /// sends no flag for these requests.
    pub(super) fn kill_setid_unflagged(&self, uid: u32) -> bool {
        self.killpriv_v2 && uid != 0
    }
}

/// Clear the set-ID bits of `ino` when `kill` (within the request's transaction).
pub(super) fn clear_setid_if(op: &mut Op<'_>, ino: u64, kill: bool) -> FsResult<()> {
    let mut node = op.inode(ino)?;
    if kill && file::clear_setid(&mut node) {
        op.put_inode(ino, &node)?;
    }
    Ok(())
}
