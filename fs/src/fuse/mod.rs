//! The FUSE daemon's request handlers: decode a kernel request, take the lock, run one
//! operation from `ops`, reply. A request is answered only after its transaction committed to
//! the spool (so it survives `kill -9` of the daemon) and its data reached the image file.

mod requests;

use crate::error::{FsError, FsResult};
use crate::layout::inode::Inode;
use crate::layout::BLOCK_SIZE;
use crate::ops::{orphan, Fs};
use fuser::{Errno, FileAttr, FileType, INodeNo};
use rvm_core::Rvm;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache names and attributes. Only this daemon changes the image, and
/// the kernel invalidates what its own requests change (attributes after setattr, write, link,
/// unlink, rename; the parent after a directory change), so the cache stays coherent however
/// long it lives. A long TTL saves a LOOKUP/GETATTR round trip per path component.
const TTL: Duration = Duration::from_secs(60);

/// The filesystem as the FUSE session sees it.
pub struct RvmFs {
    state: Arc<Mutex<Fs>>,
    rvm: Arc<Rvm>,
    counters: Counters,
}

/// How many durability requests reached the daemon (tests read them through the virtual
/// extended attribute [`COUNTERS_XATTR`] of any inode).
#[derive(Default)]
pub struct Counters {
    pub fsync: AtomicU64,
    pub fdatasync: AtomicU64,
    pub fsyncdir: AtomicU64,
    pub flush: AtomicU64,
}

/// Name of the read-only virtual attribute holding the counters as text
/// ("fsync=N fdatasync=N fsyncdir=N flush=N"). It has no namespace prefix, so it can never be
/// set, is never listed, and cannot collide with a stored attribute.
pub const COUNTERS_XATTR: &[u8] = b"rvmfs.counters";

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    fn text(&self) -> Vec<u8> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "fsync={} fdatasync={} fsyncdir={} flush={}",
            get(&self.fsync),
            get(&self.fdatasync),
            get(&self.fsyncdir),
            get(&self.flush)
        )
        .into_bytes()
    }
}

impl RvmFs {
    /// Serve `state`; `rvm` is its RVM instance (flushes happen outside the lock).
    pub fn new(state: Arc<Mutex<Fs>>) -> RvmFs {
        let rvm = lock(&state).rvm.clone();
        RvmFs {
            state,
            rvm,
            counters: Counters::default(),
        }
    }

    fn fs(&self) -> MutexGuard<'_, Fs> {
        lock(&self.state)
    }

    /// Make every committed operation durable (fsync, fsyncdir, syncfs): one group-committed
    /// log flush, which first syncs the image so data precedes the records that point at it.
    fn flush_log(&self) -> FsResult<()> {
        self.rvm.flush()?;
        Ok(())
    }
}

/// Take the lock even if a previous holder panicked (the region is always consistent between
/// transactions: a panicking transaction was dropped, and dropping aborts it).
pub fn lock(state: &Mutex<Fs>) -> MutexGuard<'_, Fs> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn time(sec: i64, ns: u32) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, ns)
    } else {
        UNIX_EPOCH - Duration::new(sec.unsigned_abs(), 0) + Duration::new(0, ns)
    }
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
        log::error!("request failed: {e}");
    }
    Errno::from_i32(e.errno())
}

/// Mount-time housekeeping inside the region: free the orphans a crash left behind and mark
/// the image mounted. One transaction each.
pub fn on_mount(fs: &mut Fs) -> FsResult<usize> {
    let orphans = orphan::list(fs.bytes())?;
    for &ino in &orphans {
        fs.transact(|op| orphan::reclaim(op, ino))?;
    }
    let now = crate::layout::inode::now().0;
    fs.transact(|op| {
        use crate::layout::pod::put;
        use crate::layout::superblock::field;
        let sb = op.superblock()?;
        put(&mut op.tx, field::MOUNTED, &1u32)?;
        put(&mut op.tx, field::MOUNT_COUNT, &(sb.mount_count + 1))?;
        put(&mut op.tx, field::LAST_MOUNT, &now)
    })?;
    fs.rvm.flush()?;
    Ok(orphans.len())
}

/// Clean unmount: mark the image clean, flush, and apply the log to the segment.
pub fn on_unmount(fs: &mut Fs) -> FsResult<()> {
    fs.transact(|op| {
        crate::layout::pod::put(&mut op.tx, crate::layout::superblock::field::MOUNTED, &0u32)
    })?;
    fs.rvm.flush()?;
    fs.rvm.truncate()?;
    Ok(())
}
