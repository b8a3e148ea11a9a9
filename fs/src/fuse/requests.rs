//! `fuser::Filesystem` for rvmfs: the table of kernel requests. Each entry decodes its
//! arguments and hands them to its family's handler (`namespace`, `data`, `dir`, `attr`),
//! which runs one operation from `ops` under the lock and replies.

use super::logging::RequestContext;
use super::opcodes::Op;
use super::reply::{creds, to_time};
use super::{attr, data, dir, dirplus, init, namespace, resize, setgid, RvmFs};
use crate::ops::attr::SetAttr;
use crate::ops::inode::NewInode;
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

impl Filesystem for RvmFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        init::negotiate(self, config);
        Ok(())
    }

    // No `destroy`: the clean-unmount housekeeping runs once, in the daemon after the
    // session ends (`main.rs`), and never on a read-only mount.

    // A no-op (inode numbers are stable and never reused while cached), counted; fuser's
    // default batch_forget calls it once per inode.
    fn forget(&self, _req: &Request, _ino: INodeNo, _nlookup: u64) {
        self.ops.add(Op::Forget, 1);
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _r = self.begin(Op::Lookup, parent.0);
        namespace::lookup(self, parent.0, name.as_bytes(), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _r = self.begin(Op::Getattr, ino.0);
        attr::getattr(self, ino.0, reply);
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
        kill_suid_gid: bool,
        reply: ReplyAttr,
    ) {
        let _r = self.begin(Op::Setattr, ino.0);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(to_time),
            mtime: mtime.map(to_time),
            ctime: ctime.map(|t| to_time(TimeOrNow::SpecificTime(t))),
            kill_setid: self.killpriv_v2 && kill_suid_gid,
        };
        attr::setattr(self, ino.0, &set, reply);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _r = self.begin(Op::Readlink, ino.0);
        namespace::readlink(self, ino.0, reply);
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
        let _r = self.begin(Op::Mknod, parent.0);
        let new = setgid::strip_on_create(self, req, parent.0, creds(req, mode, umask, rdev));
        namespace::mknod(self, parent.0, name.as_bytes(), new, reply);
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
        let _r = self.begin(Op::Mkdir, parent.0);
        let new = creds(req, libc::S_IFDIR | (mode & 0o7777), umask, 0);
        namespace::mkdir(self, parent.0, name.as_bytes(), new, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _r = self.begin(Op::Unlink, parent.0);
        namespace::unlink(self, parent.0, name.as_bytes(), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _r = self.begin(Op::Rmdir, parent.0);
        namespace::rmdir(self, parent.0, name.as_bytes(), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _r = self.begin(Op::Symlink, parent.0);
        let new = NewInode {
            mode: libc::S_IFLNK | 0o777,
            uid: req.uid(),
            gid: req.gid(),
            rdev: 0,
        };
        let (name, target) = (link_name.as_bytes(), target.as_os_str().as_bytes());
        namespace::symlink(self, parent.0, name, new, target, reply);
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
        let _r = self.begin(Op::Rename, parent.0);
        let (from, to) = (
            (parent.0, name.as_bytes()),
            (newparent.0, newname.as_bytes()),
        );
        namespace::rename(self, from, to, flags.bits(), reply);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _r = self.begin(Op::Link, ino.0);
        namespace::link(self, ino.0, newparent.0, newname.as_bytes(), reply);
    }

    fn open(
        &self,
        req: &Request,
        ino: INodeNo,
        flags: OpenFlags,
        kill_suid_gid: bool,
        reply: ReplyOpen,
    ) {
        let _t = self.ops.start(Op::Open);
        // Without FUSE_ATOMIC_O_TRUNC (init.rs) the kernel strips O_TRUNC from OPEN and
        // truncates by SETATTR after its own checks; one that reaches us is still honoured.
        let truncate = flags.0 & libc::O_TRUNC != 0;
        let kill = self.kill_setid(kill_suid_gid, req.uid());
        data::open(self, ino.0, truncate, kill, reply);
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
        let _r = self.begin(Op::Read, ino.0);
        data::read(self, ino.0, offset, size, reply);
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _r = self.begin(Op::Write, ino.0);
        let flagged = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        let kill = self.kill_setid(flagged, req.uid());
        data::write(self, ino.0, offset, data, (kill, req.uid() != 0), reply);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _r = self.begin(Op::Flush, _ino.0);
        data::flush(self, reply);
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
        let _r = self.begin(Op::Release, ino.0);
        data::release(self, ino.0, reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _r = self.begin(Op::Fsync, ino.0);
        data::fsync(self, ino.0, datasync, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _r = self.begin(Op::Opendir, ino.0);
        dir::opendir(reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let _r = self.begin(Op::Readdir, ino.0);
        dir::readdir(self, ino.0, offset, reply);
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let _t = self.ops.start(Op::Readdirplus);
        dirplus::readdirplus(self, ino.0, offset, reply);
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _r = self.begin(Op::Releasedir, ino.0);
        dir::releasedir(reply);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _r = self.begin(Op::Fsyncdir, ino.0);
        dir::fsyncdir(self, ino.0, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _r = self.begin(Op::Statfs, _ino.0);
        attr::statfs(self, reply);
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _r = self.begin(Op::Setxattr, ino.0);
        if name.as_bytes() == resize::RESIZE_XATTR {
            return resize::setxattr(self, req.uid(), ino.0, value, reply);
        }
        attr::setxattr(self, ino.0, name.as_bytes(), value, flags, reply);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _t = (!super::is_virtual_xattr(name.as_bytes())).then(|| self.ops.start(Op::Getxattr));
        let _c = RequestContext::enter("getxattr", ino.0);
        attr::getxattr(self, ino.0, name.as_bytes(), size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _r = self.begin(Op::Listxattr, ino.0);
        attr::listxattr(self, ino.0, size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _r = self.begin(Op::Removexattr, ino.0);
        attr::removexattr(self, ino.0, name.as_bytes(), reply);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let _r = self.begin(Op::Access, ino.0);
        attr::access(self, ino.0, reply);
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
        let _r = self.begin(Op::Ioctl, _ino.0);
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
        _kill_suid_gid: bool, // only for an existing file, and CREATE makes a new one
        reply: ReplyCreate,
    ) {
        let _r = self.begin(Op::Create, parent.0);
        let new = creds(req, libc::S_IFREG | (mode & 0o7777), umask, 0);
        let new = setgid::strip_on_create(self, req, parent.0, new);
        namespace::create(self, parent.0, name.as_bytes(), new, reply);
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _r = self.begin(Op::Fallocate, ino.0);
        let kill = self.kill_setid_unflagged(req.uid());
        data::fallocate(self, ino.0, (offset, length), mode, kill, reply);
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
        let _r = self.begin(Op::Lseek, ino.0);
        data::lseek(self, ino.0, offset, whence, reply);
    }

    fn copy_file_range(
        &self,
        req: &Request,
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
        let _r = self.begin(Op::CopyFileRange, ino_in.0);
        let (from, to) = ((ino_in.0, offset_in), (ino_out.0, offset_out));
        let kill = self.kill_setid_unflagged(req.uid());
        data::copy_file_range(self, (from, to, len), flags.is_empty(), kill, reply);
    }
}
