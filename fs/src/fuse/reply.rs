//! Between the kernel's types and the filesystem's: attributes, file types, times, errors, and
//! the replies most requests share.

use super::TTL;
use crate::error::{FsError, FsResult};
use crate::layout::inode::Inode;
use crate::layout::BLOCK_SIZE;
use crate::ops::attr::Time;
use crate::ops::inode::NewInode;
use fuser::{
    Errno, FileAttr, FileType, Generation, INodeNo, ReplyAttr, ReplyEmpty, ReplyEntry, ReplyXattr,
    Request, TimeOrNow,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn time(sec: i64, ns: u32) -> SystemTime {
    // Checked: a damaged inode's times must not panic the daemon (they show as the epoch).
    let ns = Duration::from_nanos(u64::from(ns.min(999_999_999)));
    let t = if sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(sec as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(sec.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(ns)).unwrap_or(UNIX_EPOCH)
}

pub(crate) fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

/// The kernel's view of inode `ino`.
pub(crate) fn attr(ino: u64, node: &Inode) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: node.size,
        blocks: node.blocks * (BLOCK_SIZE / 512),
        atime: time(node.atime, node.atime_ns),
        mtime: time(node.mtime, node.mtime_ns),
        ctime: time(node.ctime, node.ctime_ns),
        crtime: time(node.crtime, node.crtime_ns),
        kind: file_type(node.mode),
        perm: (node.mode & 0o7777) as u16,
        nlink: node.nlink,
        uid: node.uid,
        gid: node.gid,
        rdev: node.rdev,
        blksize: BLOCK_SIZE as u32,
        flags: 0,
    }
}

pub(crate) fn to_errno(e: &FsError) -> Errno {
    if !matches!(e, FsError::Errno(_)) {
        log::error!("{} failed: {e}", super::logging::current_request());
    }
    Errno::from_i32(e.errno())
}

pub(super) fn to_time(t: TimeOrNow) -> Time {
    match t {
        TimeOrNow::Now => Time::Now,
        TimeOrNow::SpecificTime(st) => match st.duration_since(UNIX_EPOCH) {
            Ok(d) => Time::At(d.as_secs() as i64, d.subsec_nanos()),
            // fuser 0.18 decodes the kernel's (sec < 0, nsec) as EPOCH - (-sec s + nsec ns)
            // (`system_time_from_time`, not EPOCH - (-sec) s + nsec ns): invert exactly that, so
            // times before the epoch keep their seconds and nanoseconds.
            Err(e) => Time::At(
                -(e.duration().as_secs() as i64),
                e.duration().subsec_nanos(),
            ),
        },
    }
}

/// A new inode of the requester, `mode`'s permission bits masked by `umask`.
pub(super) fn creds(req: &Request, mode: u32, umask: u32, rdev: u32) -> NewInode {
    NewInode {
        mode: (mode & libc::S_IFMT) | (mode & !umask & 0o7777),
        uid: req.uid(),
        gid: req.gid(),
        rdev,
    }
}

pub(super) fn reply_entry(reply: ReplyEntry, r: FsResult<(u64, Inode)>) {
    match r {
        Ok((ino, node)) => reply.entry(&TTL, &attr(ino, &node), Generation(node.generation)),
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// A lookup reply. A name that does not exist is answered as an entry with inode 0 and the
/// TTL (the protocol's negative entry: "zero nodeid is same as -ENOENT, but with valid
/// timeout", fs/fuse/dir.c), so the kernel caches the negative dentry and the next lookup of
/// that name (a stat before create, a PATH search) costs no request. The cache stays
/// coherent: only this daemon changes the image, and the kernel turns the negative dentry
/// into the new inode when the name is created through this mount (create, mkdir, mknod,
/// symlink, link, rename onto it).
pub(super) fn reply_lookup(reply: ReplyEntry, r: FsResult<(u64, Inode)>) {
    match r {
        Err(FsError::Errno(libc::ENOENT)) => {
            reply.entry(&TTL, &attr(0, &Inode::default()), Generation(0))
        }
        r => reply_entry(reply, r),
    }
}

pub(super) fn reply_empty(reply: ReplyEmpty, r: FsResult<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(to_errno(&e)),
    }
}

pub(super) fn reply_attr(reply: ReplyAttr, ino: u64, r: FsResult<Inode>) {
    match r {
        Ok(node) => reply.attr(&TTL, &attr(ino, &node)),
        Err(e) => reply.error(to_errno(&e)),
    }
}

/// A getxattr/listxattr reply: the size when the caller asked for it (`size` 0), else the
/// bytes, or ERANGE when they do not fit.
pub(super) fn reply_xattr(reply: ReplyXattr, size: u32, r: FsResult<Vec<u8>>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() <= size as usize => reply.data(&v),
        Ok(_) => reply.error(Errno::ERANGE),
        Err(e) => reply.error(to_errno(&e)),
    }
}
