//! setattr: mode, owner, size, times.

use super::{file, inode, xattr, Op};
use crate::error::FsResult;
use crate::layout::inode::{now, Inode};

/// A time to set: now, or seconds + nanoseconds since the epoch.
#[derive(Clone, Copy, Debug)]
pub enum Time {
    Now,
    At(i64, u32),
}

impl Time {
    fn resolve(self) -> (i64, u32) {
        match self {
            Time::Now => now(),
            Time::At(s, ns) => (s, ns),
        }
    }
}

/// The attributes a setattr request changes (None = leave as is).
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Time>,
    pub mtime: Option<Time>,
    pub ctime: Option<Time>,
    /// Clear set-user-ID and set-group-ID (with group execute) after the change: the kernel's
    /// FATTR_KILL_SUIDGID, sent with FUSE_HANDLE_KILLPRIV_V2 on a chown of a non-directory and
    /// on a truncate by a caller without CAP_FSETID.
    pub kill_setid: bool,
}

/// Apply `set` to inode `ino`; returns the updated inode. ctime becomes now unless given. A
/// truncate or a change of owner of a non-directory removes a file capability, as in Linux.
pub fn setattr(op: &mut Op<'_>, ino: u64, set: &SetAttr) -> FsResult<Inode> {
    if let Some(size) = set.size {
        file::truncate(op, ino, size)?;
    }
    let mut node = op.inode(ino)?;
    if (set.uid.is_some() || set.gid.is_some()) && !node.is_dir() {
        xattr::drop_capability(op, ino)?;
    }
    if let Some(mode) = set.mode {
        node.mode = (node.mode & libc::S_IFMT) | (mode & 0o7777);
    }
    if let Some(uid) = set.uid {
        node.uid = uid;
    }
    if let Some(gid) = set.gid {
        node.gid = gid;
    }
    if set.kill_setid {
        file::clear_setid(&mut node);
    }
    inode::touch(&mut node, false);
    if let Some(t) = set.atime {
        (node.atime, node.atime_ns) = t.resolve();
    }
    if let Some(t) = set.mtime {
        (node.mtime, node.mtime_ns) = t.resolve();
    }
    if let Some(t) = set.ctime {
        (node.ctime, node.ctime_ns) = t.resolve();
    }
    op.put_inode(ino, &node)?;
    Ok(node)
}
