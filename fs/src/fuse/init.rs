//! FUSE_INIT: the protocol features rvmfs asks the kernel for, and what it was granted; and
//! the open flags that follow from them.

use super::RvmFs;
use fuser::{Errno, FopenFlags, InitFlags, KernelConfig};

/// Negotiate with the kernel; `fs` records the features it must honor itself.
pub(super) fn negotiate(fs: &mut RvmFs, config: &mut KernelConfig) {
    // Larger writes: fewer transactions per MiB. Errors only mean "kernel limit applies".
    let _ = config.set_max_write(1 << 20);
    // As much readahead as the kernel allows (its bdi default, often 128 KiB; see
    // `raise_readahead` for more).
    let max = config.set_max_readahead(u32::MAX).err().unwrap_or(1 << 20);
    let _ = config.set_max_readahead(max);
    let _ = config.add_capabilities(InitFlags::FUSE_BIG_WRITES | InitFlags::FUSE_ATOMIC_O_TRUNC);
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
        fs.writeback = negotiate_writeback(config);
    }
}

/// `-o writeback`: ask for the kernel's writeback cache (FUSE_WRITEBACK_CACHE, Linux 3.15+).
/// What the kernel then does (fs/fuse/file.c, inode.c, dir.c):
/// - write(2) copies into the page cache and returns; dirty pages reach the daemon as WRITEs
///   (merged, up to max_write) at close (`fuse_flush` runs `write_inode_now` before FLUSH),
///   fsync (`fuse_fsync`, before FSYNC), or the kernel's own writeback. Until then a `kill -9`
///   of the daemon loses them: the connection is gone and nothing can write them back.
/// - It owns the size, mtime and ctime of regular files: GETATTR replies do not override its
///   cached values (`fuse_get_cache_mask`), and it sends mtime and ctime in a SETATTR
///   (`fuse_flush_times`) after writing the pages back, so `ops::attr::setattr` takes the
///   given ctime instead of "now".
/// - Files opened O_WRONLY are opened O_RDWR (it must read pages to fill partial writes);
///   the daemon checks no access mode at open, `default_permissions` did at the kernel.
///
/// Returns whether the kernel granted it; a kernel without it serves in the default mode
/// (logged).
fn negotiate_writeback(config: &mut KernelConfig) -> bool {
    match config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE) {
        Ok(()) => {
            log::info!("writeback cache on: a write is kept until close or fsync (close-to-open)");
            true
        }
        Err(_) => {
            log::warn!("-o writeback: the kernel offers no writeback cache; every write is answered as without it");
            false
        }
    }
}

impl RvmFs {
    /// How every regular file is opened (open and create replies).
    ///
    /// Default mode: FOPEN_NOFLUSH, the kernel sends no FLUSH at close, since there is
    /// nothing to flush: every answered write is already committed (the daemon buffers
    /// nothing, and POSIX locks are the kernel's own).
    ///
    /// Writeback mode: never FOPEN_NOFLUSH. The close-to-open promise rests on the flush at
    /// close, which writes the file's dirty pages to the daemon before close(2) returns.
    /// Linux's `fuse_flush` ignores FOPEN_NOFLUSH while the writeback cache is on, but the
    /// promise must not depend on that check: a kernel that honored the flag would return
    /// from close with the data only in its page cache, and a `kill -9` would lose a closed
    /// file.
    pub(super) fn file_open_flags(&self) -> FopenFlags {
        if self.writeback {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_NOFLUSH
        }
    }

    /// The answer to FLUSH (sent at every close of a file opened without FOPEN_NOFLUSH).
    /// The daemon holds nothing to flush, so: ok in the default mode; ENOSYS under the
    /// writeback cache, which makes the kernel stop sending FLUSH for the rest of the mount
    /// (`fc->no_flush`) and saves a round trip per close, while close stays close-to-open:
    /// `fuse_flush` writes the file's dirty pages back and waits for their WRITEs
    /// (`write_inode_now`, `fuse_sync_writes`) before it looks at `no_flush`, and it turns
    /// the ENOSYS into success for the close.
    pub(super) fn flush_answer(&self) -> Result<(), Errno> {
        if self.writeback {
            Err(Errno::ENOSYS)
        } else {
            Ok(())
        }
    }
}
