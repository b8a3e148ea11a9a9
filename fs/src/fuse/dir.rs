//! Requests on open directories: opendir, readdir, releasedir, fsyncdir. readdir and a
//! releasedir that frees nothing share the filesystem lock; fsyncdir takes none; opendir
//! takes nothing (it is declined once, see [`opendir`]).

use super::reply::{file_type, reply_empty, to_errno};
use super::{Counters, RvmFs};
use crate::ops::lookup;
use fuser::{Errno, INodeNo, ReplyDirectory, ReplyEmpty, ReplyOpen};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// opendir: answered ENOSYS, so the kernel sends no OPENDIR or RELEASEDIR again on this
/// connection ("no_opendir", fs/fuse/file.c `fuse_file_open`) and caches the entries it reads
/// (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, dropped when the directory changes through this
/// mount). An open directory holds no handle here: the VFS answers a readdir of a removed
/// directory itself (ENOENT), and nothing else reads its inode after rmdir.
pub(super) fn opendir(reply: ReplyOpen) {
    reply.error(Errno::ENOSYS);
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
