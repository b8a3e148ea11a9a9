//! Requests on names: lookup, mknod, mkdir, symlink, create, link, unlink, rmdir, rename,
//! readlink. lookup and readlink share the filesystem lock; every reply is sent after the
//! lock is released.

use super::reply::{attr, reply_empty, reply_entry, reply_lookup, to_errno};
use super::{RvmFs, TTL};
use crate::ops::inode::NewInode;
use crate::ops::{lookup, namespace, open};
use fuser::{FileHandle, Generation, ReplyCreate, ReplyData, ReplyEmpty, ReplyEntry};

pub(super) fn lookup(fs: &RvmFs, parent: u64, name: &[u8], reply: ReplyEntry) {
    let r = {
        let fs = fs.read();
        lookup::lookup(&fs.geo, fs.bytes(), parent, name)
    };
    reply_lookup(reply, r);
}

pub(super) fn readlink(fs: &RvmFs, ino: u64, reply: ReplyData) {
    let r = {
        let fs = fs.read();
        lookup::readlink(&fs.geo, fs.bytes(), ino)
    };
    match r {
        Ok(target) => reply.data(&target),
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// mknod: `new.mode` carries the file type.
pub(super) fn mknod(fs: &RvmFs, parent: u64, name: &[u8], new: NewInode, reply: ReplyEntry) {
    let r = fs.transact("mknod", parent, |op| {
        namespace::mknod(op, parent, name, new)
    });
    reply_entry(reply, r);
}

pub(super) fn mkdir(fs: &RvmFs, parent: u64, name: &[u8], new: NewInode, reply: ReplyEntry) {
    let r = fs.transact("mkdir", parent, |op| {
        namespace::create(op, parent, name, new, None)
    });
    reply_entry(reply, r);
}

pub(super) fn symlink(
    fs: &RvmFs,
    parent: u64,
    name: &[u8],
    new: NewInode,
    target: &[u8],
    reply: ReplyEntry,
) {
    let r = fs.transact("symlink", parent, |op| {
        namespace::create(op, parent, name, new, Some(target))
    });
    reply_entry(reply, r);
}

/// create: make a regular file and open it.
pub(super) fn create(fs: &RvmFs, parent: u64, name: &[u8], new: NewInode, reply: ReplyCreate) {
    let r = fs.change("create", parent, |fs| open::create(fs, parent, name, new));
    match r {
        Ok((ino, node)) => {
            reply.created(
                &TTL,
                &attr(ino, &node),
                Generation(node.generation),
                FileHandle(0),
                fs.file_open_flags(),
            );
        }
        Err(e) => reply.error(to_errno(&e)),
    }
}

pub(super) fn link(fs: &RvmFs, ino: u64, new_parent: u64, new_name: &[u8], reply: ReplyEntry) {
    let r = fs.transact("link", ino, |op| {
        namespace::link(op, ino, new_parent, new_name)
    });
    reply_entry(reply, r.map(|node| (ino, node)));
}

pub(super) fn unlink(fs: &RvmFs, parent: u64, name: &[u8], reply: ReplyEmpty) {
    let r = fs.transact("unlink", parent, |op| namespace::unlink(op, parent, name));
    reply_empty(reply, r);
}

pub(super) fn rmdir(fs: &RvmFs, parent: u64, name: &[u8], reply: ReplyEmpty) {
    let r = fs.transact("rmdir", parent, |op| namespace::rmdir(op, parent, name));
    reply_empty(reply, r);
}

/// rename: (directory, name) from and to; `flags` are renameat2's (RENAME_NOREPLACE,
/// RENAME_EXCHANGE).
pub(super) fn rename(
    fs: &RvmFs,
    from: (u64, &[u8]),
    to: (u64, &[u8]),
    flags: u32,
    reply: ReplyEmpty,
) {
    let r = fs.transact("rename", from.0, |op| {
        namespace::rename(op, from.0, from.1, to.0, to.1, flags)
    });
    reply_empty(reply, r);
}
