//! `fuser::Filesystem` for rvmfs: one method per kernel request.

use super::{attr, file_type, to_errno, Counters, RvmFs, COUNTERS_XATTR, TTL};
use crate::error::FsResult;
use crate::layout::inode::Inode;
use crate::ops::attr::{SetAttr, Time};
use crate::ops::inode::NewInode;
use crate::ops::{dir, file, namespace, orphan, space, xattr, Fs};
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn reply_entry(reply: ReplyEntry, r: FsResult<(u64, Inode)>) {
    match r {
        Ok((ino, node)) => reply.entry(&TTL, &attr(ino, &node), Generation(node.generation)),
        Err(e) => reply.error(to_errno(&e)),
    }
}

fn reply_empty(reply: ReplyEmpty, r: FsResult<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(to_errno(&e)),
    }
}

fn reply_attr(reply: ReplyAttr, ino: u64, r: FsResult<Inode>) {
    match r {
        Ok(node) => reply.attr(&TTL, &attr(ino, &node)),
        Err(e) => reply.error(to_errno(&e)),
    }
}

fn to_time(t: TimeOrNow) -> Time {
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

fn creds(req: &Request, mode: u32, umask: u32, rdev: u32) -> NewInode {
    NewInode {
        mode: (mode & libc::S_IFMT) | (mode & !umask & 0o7777),
        uid: req.uid(),
        gid: req.gid(),
        rdev,
    }
}

impl RvmFs {
    fn create_node(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        new: NewInode,
        target: Option<&[u8]>,
    ) -> FsResult<(u64, Inode)> {
        let _ = req;
        self.fs()
            .transact(|op| namespace::create(op, parent.0, name.as_bytes(), new, target))
    }

    fn open_handle(fs: &mut Fs, ino: u64) {
        *fs.open.entry(ino).or_insert(0) += 1;
    }

    /// Drop one open handle of `ino`; free it if it was the last one of an orphan.
    fn close_handle(&self, ino: u64) -> FsResult<()> {
        let mut fs = self.fs();
        let left = match fs.open.get_mut(&ino) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left == 0 {
            fs.open.remove(&ino);
            if matches!(fs.inode(ino), Ok(node) if node.nlink == 0) {
                fs.transact(|op| orphan::reclaim(op, ino))?;
            }
        }
        Ok(())
    }
}

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
        if let Err(e) = super::on_unmount(&mut fs) {
            log::error!("clean unmount failed (the log will be replayed at next mount): {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = self.fs();
        let r = (|| {
            if name.len() > dir::NAME_MAX {
                return crate::error::errno(libc::ENAMETOOLONG);
            }
            let p = fs.inode(parent.0)?;
            if !p.is_dir() {
                return crate::error::errno(libc::ENOTDIR);
            }
            match dir::lookup(fs.bytes(), parent.0, name.as_bytes())? {
                Some(d) => Ok((d.ino, fs.inode(d.ino)?)),
                None => crate::error::errno(libc::ENOENT),
            }
        })();
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
        let r = (|| {
            let node = fs.inode(ino.0)?;
            if !node.is_symlink() {
                return crate::error::errno(libc::EINVAL);
            }
            crate::store::heap::load(fs.bytes(), node.parent_or_target, node.size)
                .map(<[u8]>::to_vec)
        })();
        match r {
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
        let kind = mode & libc::S_IFMT;
        let kind_ok = [
            libc::S_IFREG,
            libc::S_IFCHR,
            libc::S_IFBLK,
            libc::S_IFIFO,
            libc::S_IFSOCK,
        ]
        .contains(&kind);
        if !kind_ok {
            return reply.error(Errno::EINVAL);
        }
        let r = self.create_node(req, parent, name, creds(req, mode, umask, rdev), None);
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
        let r = self.create_node(
            req,
            parent,
            name,
            creds(req, libc::S_IFDIR | (mode & 0o7777), umask, 0),
            None,
        );
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
        let r = self.create_node(
            req,
            parent,
            link_name,
            new,
            Some(target.as_os_str().as_bytes()),
        );
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
        let mut fs = self.fs();
        // FUSE_ATOMIC_O_TRUNC: the kernel leaves O_TRUNC to us.
        let r = match fs.inode(ino.0) {
            Ok(node) if node.is_reg() && flags.0 & libc::O_TRUNC != 0 => fs.transact(|op| {
                let mut node = file::truncate(op, ino.0, 0)?;
                if req.uid() != 0 && file::clear_setid(&mut node) {
                    op.put_inode(ino.0, &node)?;
                }
                Ok(node)
            }),
            r => r,
        };
        match r {
            Ok(_) => {
                Self::open_handle(&mut fs, ino.0);
                reply.opened(FileHandle(0), FopenFlags::empty());
            }
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
        reply_empty(reply, self.close_handle(ino.0));
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
        let mut fs = self.fs();
        match fs.inode(ino.0) {
            Ok(node) if node.is_dir() => {
                Self::open_handle(&mut fs, ino.0);
                reply.opened(FileHandle(0), FopenFlags::empty());
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
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
        let r = (|| {
            let node = fs.inode(ino.0)?;
            if offset < 1 && reply.add(ino, 1, fuser::FileType::Directory, ".") {
                return Ok(());
            }
            if offset < 2
                && reply.add(
                    INodeNo(node.parent_or_target),
                    2,
                    fuser::FileType::Directory,
                    "..",
                )
            {
                return Ok(());
            }
            let bytes = fs.bytes();
            dir::list(bytes, ino.0, offset, |d| {
                let name = OsStr::from_bytes(d.name(bytes)?);
                Ok(!reply.add(INodeNo(d.ino), d.key.1, file_type(d.kind), name))
            })
        })();
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
        reply_empty(reply, self.close_handle(ino.0));
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
        let fs = self.fs();
        match crate::store::superblock(fs.bytes()) {
            Ok(sb) => {
                let bfree = sb.data_blocks.saturating_sub(sb.blocks_used);
                let ffree = sb.inode_count.saturating_sub(sb.inodes_used);
                let bsize = crate::layout::BLOCK_SIZE as u32;
                reply.statfs(
                    sb.data_blocks,
                    bfree,
                    bfree,
                    sb.inode_count,
                    ffree,
                    bsize,
                    dir::NAME_MAX as u32,
                    bsize,
                );
            }
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
        let mut fs = self.fs();
        match fs.transact(|op| namespace::create(op, parent.0, name.as_bytes(), new, None)) {
            Ok((ino, node)) => {
                Self::open_handle(&mut fs, ino);
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

fn reply_xattr(reply: ReplyXattr, size: u32, r: FsResult<Vec<u8>>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() <= size as usize => reply.data(&v),
        Ok(_) => reply.error(Errno::ERANGE),
        Err(e) => reply.error(to_errno(&e)),
    }
}
