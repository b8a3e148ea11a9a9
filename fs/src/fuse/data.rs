//! Requests on file contents: open, read, write, flush, release, fsync, fallocate, lseek,
//! copy_file_range (flush and lseek answer ENOSYS under `-o writeback`: writeback.rs).
//! open without O_TRUNC, read planning and lseek share the filesystem lock; fsync takes
//! none; every reply is sent after the lock is released.

use super::reply::{reply_empty, to_errno};
use super::{killpriv, Counters, RvmFs};
use crate::ops::datasum::WriteSums;
use crate::ops::{cache_space, file, open, read, space, DATA_LOG_MAX_WRITE};
use fuser::{Errno, FileHandle, ReplyData, ReplyEmpty, ReplyLseek, ReplyOpen, ReplyWrite};

/// open: `truncate` is O_TRUNC (the kernel sends it only with FUSE_ATOMIC_O_TRUNC, which
/// init.rs does not ask for); `kill_setid`: the opener is not root.
pub(super) fn open(fs: &RvmFs, ino: u64, truncate: bool, kill_setid: bool, reply: ReplyOpen) {
    let r = if truncate {
        fs.change("open", ino, |f| open::open(f, ino, true, kill_setid))
    } else {
        open::open_shared(&fs.read(), ino)
    };
    match r {
        Ok(()) => reply.opened(FileHandle(0), fs.file_open_flags()),
        Err(e) => reply.error(to_errno(&e)),
    }
}

pub(super) fn read(fs: &RvmFs, ino: u64, offset: u64, size: u32, reply: ReplyData) {
    // Plan under the lock, copy under the read gate only (the checksum worker verifies
    // the first half meanwhile), verify the rest with no lock: reads of different requests
    // (readahead keeps several in flight) overlap each other and the other requests, and a
    // free waits at most for the worker's half.
    let fs_counters = &fs.counters;
    let fs = fs.read();
    let plan = read::plan_read(&fs.geo, fs.bytes(), ino, offset, size as u64);
    if let Ok(p) = &plan {
        // Free local blocks for the clean cache to keep what this read fetches.
        cache_space::lend_for_read(&fs, p);
    }
    let image = fs.geo.image.clone();
    let gate = fs.geo.read_gate.clone();
    let shared = gate.read().unwrap_or_else(|e| e.into_inner());
    drop(fs);
    let copied = plan.and_then(|p| Ok((read::copy_planned(&*image, &p)?, p)));
    drop(shared);
    let r = copied.and_then(|(c, p)| read::verify_copied(&p, c));
    match r {
        Ok(data) => {
            Counters::add(&fs_counters.read_bytes, data.len() as u64);
            reply.data(&data)
        }
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// write: `kill_setid`: the writer is not root.
pub(super) fn write(
    fs: &RvmFs,
    ino: u64,
    offset: u64,
    data: &[u8],
    (kill_setid, unprivileged): (bool, bool),
    reply: ReplyWrite,
) {
    let summing = fs.datasum.then(std::time::Instant::now);
    let sums = WriteSums::of(fs.datasum, offset, data); // before the lock
    if let Some(t) = summing {
        Counters::add(&fs.counters.csum_write_ns, t.elapsed().as_nanos() as u64);
    }
    if fs.remote.is_some() {
        fetch_partial_remote(fs, ino, offset, data.len() as u64);
    }
    let request =
        |op: &mut crate::ops::Op<'_>| file::write_summed(op, ino, offset, data, kill_setid, &sums);
    // Not root: also kept away from the blocks reserved for root.
    let attempt = || {
        if data.len() > DATA_LOG_MAX_WRITE {
            // Big: its data is written outside the lock (`planned.rs`).
            fs.write_planned("write", ino, unprivileged, data, &request)
        } else {
            fs.change("write", ino, |f| {
                f.as_caller(unprivileged, |f| f.transact_data("write", ino, &request))
            })
        }
    };
    // An object-store image whose local blocks are all dirty: ENOSPC, or wait for the
    // uploader (`-o cache_full=`), holding no lock.
    let r = match &fs.remote {
        Some(remote) => remote.when_full(attempt),
        None => attempt(),
    };
    match r {
        Ok(_) => {
            Counters::add(&fs.counters.written_bytes, data.len() as u64);
            reply.written(data.len() as u32)
        }
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// Before a truncation of `ino` to `size` takes the exclusive lock: fetch the block it cuts
/// inside, if `REMOTE` (its zeroed tail is copied on write); see [`fetch_partial_remote`].
pub(super) fn fetch_remote_tail(fs: &RvmFs, ino: u64, size: u64) {
    let cut = size % crate::layout::BLOCK_SIZE;
    fetch_partial_remote(fs, ino, size - cut, cut);
}

/// Before a write (or a punch, a zeroed range) of `len` bytes at `offset` of `ino` takes the
/// exclusive lock: read the `REMOTE` blocks it covers only in part (`read::partial_remote`)
/// under the shared lock and then none, so the copy on write finds them cached. A failure
/// here is left to the request itself (it reads them again, and answers EIO if the bucket
/// still fails).
fn fetch_partial_remote(fs: &RvmFs, ino: u64, offset: u64, len: u64) {
    let (source, vblocks) = {
        let f = fs.read();
        let Some(source) = f.geo.remote.clone() else {
            return;
        };
        let vblocks = read::partial_remote(f.bytes(), ino, offset, len).unwrap_or_default();
        (source, vblocks)
    };
    let mut block = vec![0u8; crate::layout::BLOCK_SIZE as usize];
    for v in vblocks {
        let _ = source.read(v, 1, &mut block);
    }
}

pub(super) fn flush(fs: &RvmFs, reply: ReplyEmpty) {
    // Every answered write is already committed to the spool: nothing is buffered here.
    Counters::bump(&fs.counters.flush);
    match fs.flush_answer() {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

pub(super) fn release(fs: &RvmFs, ino: u64, reply: ReplyEmpty) {
    reply_empty(reply, fs.release(ino));
}

pub(super) fn fsync(fs: &RvmFs, ino: u64, datasync: bool, reply: ReplyEmpty) {
    Counters::bump(if datasync {
        &fs.counters.fdatasync
    } else {
        &fs.counters.fsync
    });
    let r = fs.flush_log("fsync", ino).and_then(|()| match &fs.remote {
        // `-o upload=sync`: the file's data in the bucket, its repointing durable, and the
        // log shipped up to it.
        Some(remote) if remote.upload_sync => {
            remote.sync_inode(ino)?;
            fs.flush_log("fsync", ino)?;
            remote.sync_shipped()
        }
        _ => Ok(()),
    });
    reply_empty(reply, r);
}

/// fallocate of (offset, length) bytes; `unprivileged`: the caller is not root (set-ID bits
/// cleared, as killpriv.rs; the blocks reserved for root kept).
pub(super) fn fallocate(
    fs: &RvmFs,
    ino: u64,
    (offset, length): (u64, u64),
    mode: i32,
    unprivileged: bool,
    reply: ReplyEmpty,
) {
    // A punched or zeroed range's partly covered edge blocks are copied on write: fetch
    // them from the bucket first, holding no lock.
    if fs.remote.is_some() && mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0
    {
        fetch_partial_remote(fs, ino, offset, length);
    }
    // Not root: set-ID bits cleared (killpriv.rs), and kept away from the blocks reserved
    // for root.
    let r = fs.change("fallocate", ino, |f| {
        f.as_caller(unprivileged, |f| {
            f.transact_on("fallocate", ino, |op| {
                space::fallocate(op, ino, offset, length, mode)?;
                killpriv::clear_setid_if(op, ino, unprivileged)
            })
        })
    });
    reply_empty(reply, r.map(|_| ()));
}

/// lseek: only SEEK_DATA and SEEK_HOLE reach the filesystem.
pub(super) fn lseek(fs: &RvmFs, ino: u64, offset: i64, whence: i32, reply: ReplyLseek) {
    if let Err(e) = fs.lseek_answer() {
        return reply.error(e);
    }
    let data = match whence {
        libc::SEEK_DATA => true,
        libc::SEEK_HOLE => false,
        _ => return reply.error(Errno::EINVAL),
    };
    let Ok(offset) = u64::try_from(offset) else {
        return reply.error(Errno::ENXIO);
    };
    let r = {
        let fs = fs.read();
        space::seek(&fs.geo, fs.bytes(), ino, offset, data)
    };
    match r {
        Ok(at) => reply.offset(at as i64),
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// copy_file_range: (inode, offset) in and out, and the length in bytes; no flags are
/// defined; `unprivileged`: the caller is not root (set-ID bits of the destination cleared,
/// as killpriv.rs; the blocks reserved for root kept).
pub(super) fn copy_file_range(
    fs: &RvmFs,
    (from, to, len): ((u64, u64), (u64, u64), u64),
    no_flags: bool,
    unprivileged: bool,
    reply: ReplyWrite,
) {
    if !no_flags {
        return reply.error(Errno::EINVAL);
    }
    let r = fs.change("copy_file_range", to.0, |f| {
        f.as_caller(unprivileged, |f| {
            f.transact_data("copy_file_range", to.0, |op| {
                let n = space::copy_range(op, from.0, from.1, to.0, to.1, len)?;
                killpriv::clear_setid_if(op, to.0, unprivileged)?;
                Ok(n)
            })
        })
    });
    match r {
        Ok(n) => reply.written(n as u32),
        Err(e) => reply.error(to_errno(&e)),
    }
}
