//! READDIRPLUS: directory entries with their attributes, so the kernel fills its dentry and
//! attribute caches from one request instead of a LOOKUP per entry (`ls -l`, `du`, `find
//! -type`). Requested as FUSE_READDIRPLUS_AUTO (`init.rs`): the kernel uses it for the first
//! read of a directory and while the entries are then looked up, plain READDIR otherwise
//! (fs/fuse/readdir.c, `fuse_use_readdirplus`).

use super::reply::{attr, to_errno};
use super::{RvmFs, TTL};
use crate::ops::lookup;
use fuser::{Generation, INodeNo, ReplyDirectoryPlus};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// readdirplus: the entries after cookie `offset` with their attributes, as many as the reply
/// holds. An entry whose inode cannot be read fails the request (as its LOOKUP would).
pub(super) fn readdirplus(fs: &RvmFs, ino: u64, offset: u64, mut reply: ReplyDirectoryPlus) {
    // The entries go into the reply's buffer under the shared lock; it is sent after.
    let mut failed = None;
    let r = {
        let fs = fs.read();
        let bytes = fs.bytes();
        lookup::readdir(
            &fs.geo,
            bytes,
            ino,
            offset,
            |ino, cookie, _kind, name| match fs.geo.inode(bytes, ino) {
                Ok(node) => !reply.add(
                    INodeNo(ino),
                    cookie,
                    OsStr::from_bytes(name),
                    &TTL,
                    &attr(ino, &node),
                    Generation(node.generation),
                ),
                Err(e) => {
                    failed = Some(e);
                    false
                }
            },
        )
    };
    match failed.map_or(r, Err) {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(to_errno(&e)),
    }
}
