//! `fuser::Filesystem` for rvmfs: one method per kernel request. Each decodes its
//! arguments, runs one operation from `ops` under the lock, and replies.

use super::reply::{
    attr, creds, file_type, reply_attr, reply_empty, reply_entry, reply_xattr, to_errno, to_time,
};
use super::{Counters, RvmFs, COUNTERS_XATTR, TTL};
use crate::ops::attr::SetAttr;
use crate::ops::inode::NewInode;
use crate::ops::{file, lookup, mount, namespace, open, space, statfs, xattr};
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

impl Filesystem for RvmFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger writes: fewer transactions per MiB. Errors only mean "kernel limit applies".
        let _ = config.set_max_write(1 << 20);
        // As much readahead as the kernel allows (its bdi default, often 128 KiB; see
        // `raise_readahead` for more).
        let max = config.set_max_readahead(u32::MAX).err().unwrap_or(1 << 20);
        let _ = config.set_max_readahead(max);
        let _ =
            config.add_capabilities(InitFlags::FUSE_BIG_WRITES | InitFlags::FUSE_ATOMIC_O_TRUNC);
        Ok(())
    }

    fn destroy(&mut self) {
        let mut fs = self.fs();
        if let Err(e) = mount::on_unmount(&mut fs) {
            log::error!("clean unmount failed (the log will be replayed at next mount): {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = self.fs();
        let r = lookup::lookup(&fs.geo, fs.bytes(), parent.0, name.as_bytes());
        reply_entry(reply, r);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.fs().inode(ino.0);
        reply_attr(reply, ino.0, r);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(to_time),
            mtime: mtime.map(to_time),
            ctime: ctime.map(|t| to_time(TimeOrNow::SpecificTime(t))),
        };
        let r = self
            .fs()
            .transact(|op| crate::ops::attr::setattr(op, ino.0, &set));
        reply_attr(reply, ino.0, r);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = self.fs();
        match lookup::readlink(&fs.geo, fs.bytes(), ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let new = creds(req, mode, umask, rdev);
        let r = self
            .fs()
            .transact(|op| namespace::mknod(op, parent.0, name.as_bytes(), new));
        reply_entry(reply, r);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let new = creds(req, libc::S_IFDIR | (mode & 0o7777), umask, 0);
        let r = self
            .fs()
            .transact(|op| namespace::create(op, parent.0, name.as_bytes(), new, None));
        reply_entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .fs()
            .transact(|op| namespace::unlink(op, parent.0, name.as_bytes()));
        reply_empty(reply, r);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .fs()
            .transact(|op| namespace::rmdir(op, parent.0, name.as_bytes()));
        reply_empty(reply, r);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let new = NewInode {
            mode: libc::S_IFLNK | 0o777,
            uid: req.uid(),
            gid: req.gid(),
            rdev: 0,
        };
        let target = Some(target.as_os_str().as_bytes());
        let r = self
            .fs()
            .transact(|op| namespace::create(op, parent.0, link_name.as_bytes(), new, target));
        reply_entry(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.fs().transact(|op| {
            namespace::rename(
                op,
                parent.0,
                name.as_bytes(),
                newparent.0,
                newname.as_bytes(),
                flags.bits(),
            )
        });
        reply_empty(reply, r);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = self
            .fs()
            .transact(|op| namespace::link(op, ino.0, newparent.0, newname.as_bytes()));
        reply_entry(reply, r.map(|node| (ino.0, node)));
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // FUSE_ATOMIC_O_TRUNC: the kernel leaves O_TRUNC to us.
        let truncate = flags.0 & libc::O_TRUNC != 0;
        match open::open(&mut self.fs(), ino.0, truncate, req.uid() != 0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Plan under the lock, copy without it: reads of different requests (readahead
        // keeps several in flight) overlap each other and the other requests.
        let fs = self.fs();
        let plan = file::plan_read(&fs.geo, fs.bytes(), ino.0, offset, size as u64);
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

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self
            .fs()
            .transact(|op| file::write(op, ino.0, offset, data, req.uid() != 0))
        {
            Ok(_) => reply.written(data.len() as u32),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Every answered write is already committed to the spool: nothing is buffered here.
        Counters::bump(&self.counters.flush);
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, open::release(&mut self.fs(), ino.0));
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        Counters::bump(if datasync {
            &self.counters.fdatasync
        } else {
            &self.counters.fsync
        });
        reply_empty(reply, self.flush_log());
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match open::opendir(&mut self.fs(), ino.0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let fs = self.fs();
        let r = lookup::readdir(
            &fs.geo,
            fs.bytes(),
            ino.0,
            offset,
            |ino, cookie, kind, name| {
                !reply.add(
                    INodeNo(ino),
                    cookie,
                    file_type(kind),
                    OsStr::from_bytes(name),
                )
            },
        );
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, open::release(&mut self.fs(), ino.0));
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        Counters::bump(&self.counters.fsyncdir);
        reply_empty(reply, self.flush_log());
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match statfs::statfs(self.fs().bytes()) {
            Ok(st) => reply.statfs(
                st.blocks, st.bfree, st.bavail, st.files, st.ffree, st.bsize, st.namelen, st.frsize,
            ),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = self
            .fs()
            .transact(|op| xattr::set(op, ino.0, name.as_bytes(), value, flags));
        reply_empty(reply, r);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if name.as_bytes() == COUNTERS_XATTR {
            return reply_xattr(reply, size, Ok(self.counters.text()));
        }
        let fs = self.fs();
        let r = fs
            .inode(ino.0)
            .and_then(|_| xattr::get(fs.bytes(), ino.0, name.as_bytes()));
        reply_xattr(reply, size, r);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let fs = self.fs();
        let r = fs.inode(ino.0).and_then(|_| xattr::list(fs.bytes(), ino.0));
        reply_xattr(reply, size, r);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .fs()
            .transact(|op| xattr::remove(op, ino.0, name.as_bytes()));
        reply_empty(reply, r);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // With default_permissions the kernel checks permissions itself; this checks existence.
        let r = self.fs().inode(ino.0).map(|_| ());
        reply_empty(reply, r);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // No device controls: "not a terminal", as ext4 answers unknown ones (isatty, TCGETS).
        reply.error(Errno::ENOTTY);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let new = creds(req, libc::S_IFREG | (mode & 0o7777), umask, 0);
        match open::create(&mut self.fs(), parent.0, name.as_bytes(), new) {
            Ok((ino, node)) => {
                reply.created(
                    &TTL,
                    &attr(ino, &node),
                    Generation(node.generation),
                    FileHandle(0),
                    FopenFlags::empty(),
                );
            }
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = self
            .fs()
            .transact(|op| space::fallocate(op, ino.0, offset, length, mode));
        reply_empty(reply, r.map(|_| ()));
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => return reply.error(Errno::EINVAL),
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::ENXIO);
        };
        let fs = self.fs();
        match space::seek(&fs.geo, fs.bytes(), ino.0, offset, data) {
            Ok(at) => reply.offset(at as i64),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let r = self
            .fs()
            .transact(|op| space::copy_range(op, ino_in.0, offset_in, ino_out.0, offset_out, len));
        match r {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(to_errno(&e)),
        }
    }
}
