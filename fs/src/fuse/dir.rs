//! Requests on open directories: opendir, readdir, releasedir, fsyncdir. opendir, readdir
//! and a releasedir that frees nothing share the filesystem lock; fsyncdir takes none.

use super::reply::{file_type, reply_empty, to_errno};
use super::{Counters, RvmFs};
use crate::ops::{lookup, open};
use fuser::{FileHandle, FopenFlags, INodeNo, ReplyDirectory, ReplyEmpty, ReplyOpen};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

pub(super) fn opendir(fs: &RvmFs, ino: u64, reply: ReplyOpen) {
    let r = open::opendir(&fs.read(), ino);
    match r {
        Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// readdir: the entries after cookie `offset`, as many as the reply holds.
pub(super) fn readdir(fs: &RvmFs, ino: u64, offset: u64, mut reply: ReplyDirectory) {
    // The entries go into the reply's buffer under the lock; it is sent after.
    let r = {
        let fs = fs.read();
        lookup::readdir(
            &fs.geo,
            fs.bytes(),
            ino,
            offset,
            |ino, cookie, kind, name| {
                !reply.add(
                    INodeNo(ino),
                    cookie,
                    file_type(kind),
                    OsStr::from_bytes(name),
                )
            },
        )
    };
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(to_errno(&e)),
    }
}

pub(super) fn releasedir(fs: &RvmFs, ino: u64, reply: ReplyEmpty) {
    reply_empty(reply, fs.release(ino));
}

pub(super) fn fsyncdir(fs: &RvmFs, ino: u64, reply: ReplyEmpty) {
    Counters::bump(&fs.counters.fsyncdir);
    reply_empty(reply, fs.flush_log("fsyncdir", ino));
}
