//! Requests on open directories: opendir, readdir, releasedir, fsyncdir. readdir shares the
//! filesystem lock; opendir, releasedir and fsyncdir take none.

use super::reply::{file_type, reply_empty, to_errno};
use super::{Counters, RvmFs};
use crate::ops::lookup;
use fuser::{FileHandle, FopenFlags, INodeNo, ReplyDirectory, ReplyEmpty, ReplyOpen};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// opendir: answered with handle 0 and no FOPEN_CACHE_DIR, so every listing is read from
/// the region. An open directory holds no handle here: the VFS answers a readdir of a
/// removed directory itself (ENOENT), and nothing else reads its inode after rmdir.
///
/// Not declined (ENOSYS), though that would save an OPENDIR and a RELEASEDIR per directory
/// open: a declined OPENDIR turns on the kernel's directory cache for the connection
/// (`fuse_file_open`, fs/fuse/file.c), and that cache can keep a stale listing. A READDIR
/// answered before an unlink can be appended to the cache after the unlink has reset it
/// (`fuse_add_dirent_to_cache`, fs/fuse/readdir.c, checks the cache version when it
/// appends, not when the request was sent), and the cache then serves the removed name
/// until the directory changes again (`tests/tests/round_trips.rs`,
/// `listings_never_show_a_removed_name`).
pub(super) fn opendir(reply: ReplyOpen) {
    reply.opened(FileHandle(0), FopenFlags::empty());
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

/// releasedir: nothing to drop (see [`opendir`]).
pub(super) fn releasedir(reply: ReplyEmpty) {
    reply.ok();
}

pub(super) fn fsyncdir(fs: &RvmFs, ino: u64, reply: ReplyEmpty) {
    Counters::bump(&fs.counters.fsyncdir);
    reply_empty(reply, fs.flush_log("fsyncdir", ino));
}
