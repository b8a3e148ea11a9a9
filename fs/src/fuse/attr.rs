//! Requests on attributes: getattr, setattr, access, statfs, and extended attributes. The
//! read-only ones share the filesystem lock; every reply is sent after the lock is released.

use super::reply::{reply_attr, reply_empty, reply_xattr, to_errno};
use super::RvmFs;
use crate::ops::attr::{setattr as set_attr, SetAttr};
use crate::ops::{statfs, xattr};
use fuser::{ReplyAttr, ReplyEmpty, ReplyStatfs, ReplyXattr};

pub(super) fn getattr(fs: &RvmFs, ino: u64, reply: ReplyAttr) {
    let r = fs.read().inode(ino);
    reply_attr(reply, ino, r);
}

pub(super) fn setattr(fs: &RvmFs, ino: u64, set: &SetAttr, reply: ReplyAttr) {
    if let (Some(size), Some(_)) = (set.size, &fs.remote) {
        super::data::fetch_remote_tail(fs, ino, size); // before the lock
    }
    let r = fs.transact("setattr", ino, |op| set_attr(op, ino, set));
    reply_attr(reply, ino, r);
}

pub(super) fn access(fs: &RvmFs, ino: u64, reply: ReplyEmpty) {
    // With default_permissions the kernel checks permissions itself; this checks existence.
    let r = fs.read().inode(ino).map(|_| ());
    reply_empty(reply, r);
}

pub(super) fn statfs(fs: &RvmFs, reply: ReplyStatfs) {
    let r = statfs::statfs(fs.read().bytes());
    match r {
        Ok(st) => reply.statfs(
            st.blocks, st.bfree, st.bavail, st.files, st.ffree, st.bsize, st.namelen, st.frsize,
        ),
        Err(e) => reply.error(to_errno(&e)),
    }
}

pub(super) fn setxattr(
    fs: &RvmFs,
    ino: u64,
    name: &[u8],
    value: &[u8],
    flags: i32,
    reply: ReplyEmpty,
) {
    let r = fs.transact("setxattr", ino, |op| {
        xattr::set(op, ino, name, value, flags)
    });
    reply_empty(reply, r);
}

/// getxattr: a stored attribute, or one of the daemon's virtual ones (its counters).
pub(super) fn getxattr(fs: &RvmFs, ino: u64, name: &[u8], size: u32, reply: ReplyXattr) {
    if let Some(v) = fs.virtual_xattr(name) {
        return reply_xattr(reply, size, Ok(v));
    }
    let r = {
        let fs = fs.read();
        fs.inode(ino)
            .and_then(|_| xattr::get(fs.bytes(), ino, name))
    };
    reply_xattr(reply, size, r);
}

pub(super) fn listxattr(fs: &RvmFs, ino: u64, size: u32, reply: ReplyXattr) {
    let r = {
        let fs = fs.read();
        fs.inode(ino).and_then(|_| xattr::list(fs.bytes(), ino))
    };
    reply_xattr(reply, size, r);
}

pub(super) fn removexattr(fs: &RvmFs, ino: u64, name: &[u8], reply: ReplyEmpty) {
    let r = fs.transact("removexattr", ino, |op| xattr::remove(op, ino, name));
    reply_empty(reply, r);
}
