//! FUSE_INIT: the protocol features rvmfs asks the kernel for, and what it was granted.

use super::RvmFs;
use fuser::{InitFlags, KernelConfig};

/// Negotiate with the kernel; `fs` records the features it must honor itself.
pub(super) fn negotiate(fs: &mut RvmFs, config: &mut KernelConfig) {
    // Larger writes: fewer transactions per MiB. Errors only mean "kernel limit applies".
    let _ = config.set_max_write(1 << 20);
    // As much readahead as the kernel allows (its bdi default, often 128 KiB; see
    // `raise_readahead` for more).
    let max = config.set_max_readahead(u32::MAX).err().unwrap_or(1 << 20);
    let _ = config.set_max_readahead(max);
    // No FUSE_ATOMIC_O_TRUNC: with it the kernel sends O_TRUNC in OPEN, before it checks
    // write access, so open(O_RDONLY|O_TRUNC) of a running executable truncated the file
    // and then answered ETXTBSY (pjdfstest open::etxtbsy failed when the truncation beat
    // the exec's reads). Without it the kernel checks, then truncates by SETATTR.
    let _ = config.add_capabilities(InitFlags::FUSE_BIG_WRITES);
    // Lookups and readdirs of one directory may run at once: without this flag the kernel
    // serializes them on a mutex per directory (fs/fuse/dir.c `fuse_lock_inode`), so two
    // threads looking up names in one directory take turns. The daemon's read lock already
    // lets them run together; changes to a directory stay serialized by the VFS's i_rwsem.
    let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
    // Entries with their attributes when a directory is read and then looked up (dirplus.rs).
    let _ =
        config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
    // The daemon removes set-user-ID, set-group-ID and file capabilities itself (killpriv.rs):
    // the kernel then marks inodes S_NOSEC and stops asking GETXATTR security.capability
    // before every write. Linux 5.11+; on an older kernel it keeps doing that itself.
    fs.killpriv_v2 = config
        .add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2)
        .is_ok();
    if fs.writeback {
        fs.writeback = super::writeback::negotiate(config);
    }
}
