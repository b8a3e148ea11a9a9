//! Requests on file contents: open, read, write, flush, release, fsync, fallocate, lseek,
//! copy_file_range.

use super::reply::{reply_empty, to_errno};
use super::{Counters, RvmFs};
use crate::ops::datasum::WriteSums;
use crate::ops::{file, open, space};
use fuser::{
    Errno, FileHandle, FopenFlags, ReplyData, ReplyEmpty, ReplyLseek, ReplyOpen, ReplyWrite,
};

/// open: `truncate` is O_TRUNC (FUSE_ATOMIC_O_TRUNC leaves it to us); `kill_setid`: the
/// opener is not root.
pub(super) fn open(fs: &RvmFs, ino: u64, truncate: bool, kill_setid: bool, reply: ReplyOpen) {
    match open::open(&mut fs.fs(), ino, truncate, kill_setid) {
        Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
        Err(e) => reply.error(to_errno(&e)),
    }
}

pub(super) fn read(fs: &RvmFs, ino: u64, offset: u64, size: u32, reply: ReplyData) {
    // Plan under the lock, copy without it: reads of different requests (readahead
    // keeps several in flight) overlap each other and the other requests.
    let fs = fs.fs();
    let plan = file::plan_read(&fs.geo, fs.bytes(), ino, offset, size as u64);
    let image = fs.geo.image.clone();
    let gate = fs.geo.read_gate.clone();
    let shared = gate.read().unwrap_or_else(|e| e.into_inner());
    drop(fs);
    let r = plan.and_then(|p| file::read_planned(&*image, &p));
    drop(shared);
    match r {
        Ok(data) => reply.data(&data),
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// write: `kill_setid`: the writer is not root.
pub(super) fn write(
    fs: &RvmFs,
    ino: u64,
    offset: u64,
    data: &[u8],
    kill_setid: bool,
    reply: ReplyWrite,
) {
    let sums = WriteSums::of(fs.datasum, offset, data); // before the lock
    match fs.fs().transact_data("write", ino, |op| {
        file::write_summed(op, ino, offset, data, kill_setid, &sums)
    }) {
        Ok(_) => reply.written(data.len() as u32),
        Err(e) => reply.error(to_errno(&e)),
    }
}

pub(super) fn flush(fs: &RvmFs, reply: ReplyEmpty) {
    // Every answered write is already committed to the spool: nothing is buffered here.
    Counters::bump(&fs.counters.flush);
    reply.ok();
}

pub(super) fn release(fs: &RvmFs, ino: u64, reply: ReplyEmpty) {
    reply_empty(reply, open::release(&mut fs.fs(), ino));
}

pub(super) fn fsync(fs: &RvmFs, ino: u64, datasync: bool, reply: ReplyEmpty) {
    Counters::bump(if datasync {
        &fs.counters.fdatasync
    } else {
        &fs.counters.fsync
    });
    reply_empty(reply, fs.flush_log("fsync", ino));
}

pub(super) fn fallocate(
    fs: &RvmFs,
    ino: u64,
    offset: u64,
    length: u64,
    mode: i32,
    reply: ReplyEmpty,
) {
    let r = fs.fs().transact_on("fallocate", ino, |op| {
        space::fallocate(op, ino, offset, length, mode)
    });
    reply_empty(reply, r.map(|_| ()));
}

/// lseek: only SEEK_DATA and SEEK_HOLE reach the filesystem.
pub(super) fn lseek(fs: &RvmFs, ino: u64, offset: i64, whence: i32, reply: ReplyLseek) {
    let data = match whence {
        libc::SEEK_DATA => true,
        libc::SEEK_HOLE => false,
        _ => return reply.error(Errno::EINVAL),
    };
    let Ok(offset) = u64::try_from(offset) else {
        return reply.error(Errno::ENXIO);
    };
    let fs = fs.fs();
    match space::seek(&fs.geo, fs.bytes(), ino, offset, data) {
        Ok(at) => reply.offset(at as i64),
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// copy_file_range: (inode, offset) in and out; no flags are defined.
pub(super) fn copy_file_range(
    fs: &RvmFs,
    from: (u64, u64),
    to: (u64, u64),
    len: u64,
    no_flags: bool,
    reply: ReplyWrite,
) {
    if !no_flags {
        return reply.error(Errno::EINVAL);
    }
    let r = fs.fs().transact_data("copy_file_range", to.0, |op| {
        space::copy_range(op, from.0, from.1, to.0, to.1, len)
    });
    match r {
        Ok(n) => reply.written(n as u32),
        Err(e) => reply.error(to_errno(&e)),
    }
}
