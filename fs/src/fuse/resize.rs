//! Online grow (xfs_growfs, resize2fs on a mounted ext4): the control request is a setxattr
//! of the virtual attribute [`RESIZE_XATTR`] on the mount's root, by root, whose value is the
//! new image size in bytes as decimal text (`rvmfs-admin resize MOUNTPOINT SIZE` sends it
//! after extending the image file). No network port: the request goes through the mount
//! itself, as `rvmfs.counters` does. Shrinking is offline only.
//!
//! Errors (errno of the setxattr): EPERM not root; EINVAL not the root directory, a value that
//! is not a size, or a size below the current one; EFBIG past the growth room the image has
//! ([`crate::resize::capacity`]); ENOSPC the image file or device is not that large yet;
//! EROFS a read-only mount; EIO a failed write (the error policy applies).

use super::reply::reply_empty;
use super::RvmFs;
use crate::error::{errno, FsError, FsResult};
use crate::layout::superblock::ROOT_INO;
use crate::resize::{self, ResizeError};
use fuser::ReplyEmpty;

/// Name of the virtual attribute that grows a mounted image.
pub const RESIZE_XATTR: &[u8] = b"rvmfs.resize";

/// Answer a setxattr of [`RESIZE_XATTR`] from user `uid` on inode `ino`.
pub(super) fn setxattr(fs: &RvmFs, uid: u32, ino: u64, value: &[u8], reply: ReplyEmpty) {
    reply_empty(reply, grow(fs, uid, ino, value));
}

fn grow(fs: &RvmFs, uid: u32, ino: u64, value: &[u8]) -> FsResult<()> {
    if uid != 0 {
        return errno(libc::EPERM);
    }
    if ino != ROOT_INO {
        return errno(libc::EINVAL);
    }
    let text = String::from_utf8_lossy(value);
    let Ok(size) = text
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .parse::<u64>()
    else {
        log::warn!("resize: '{text}' is not a size in bytes");
        return errno(libc::EINVAL);
    };
    let mut guard = fs.write();
    let fs = &mut *guard;
    let current = resize::size_of(&fs.header, fs.geo.data_blocks);
    if size < current {
        log::warn!("resize: online shrinking is not supported ({size} < {current} bytes)");
        return errno(libc::EINVAL);
    }
    match resize::resize(fs, size) {
        Ok(c) => {
            log::info!(
                "resized online: {} -> {} data blocks ({} -> {} bytes)",
                c.old_blocks,
                c.new_blocks,
                c.old_size,
                c.new_size
            );
            Ok(())
        }
        Err(e) => {
            log::warn!("resize to {size} bytes: {e}");
            Err(errno_of(e))
        }
    }
}

fn errno_of(e: ResizeError) -> FsError {
    let code = match e {
        ResizeError::Fs(e) => return e,
        ResizeError::TooSmall { .. } | ResizeError::InUse { .. } => libc::EINVAL,
        ResizeError::PastCapacity { .. } => libc::EFBIG,
        ResizeError::ImageTooShort { .. } => libc::ENOSPC,
        ResizeError::ReadOnly => libc::EROFS,
        ResizeError::Header(_) => libc::EIO,
    };
    FsError::Errno(code)
}
