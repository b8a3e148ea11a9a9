//! `-o writeback`, the kernel's writeback cache: asking for it at FUSE_INIT, and the answers
//! that differ under it (open flags, FLUSH, LSEEK). The promise it keeps is close-to-open
//! (README, "The promises"); tests/tests/torture_writeback checks it.

use super::RvmFs;
use fuser::{Errno, FopenFlags, InitFlags, KernelConfig};

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
pub(super) fn negotiate(config: &mut KernelConfig) -> bool {
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
        self.enosys_under_writeback()
    }

    /// Whether LSEEK (SEEK_DATA, SEEK_HOLE) may be answered from the daemon's extent maps.
    /// Not under the writeback cache: the kernel sends LSEEK without writing dirty pages
    /// back first, so the daemon would miss data that is only in the page cache (a file
    /// just written would answer ENXIO). It answers ENOSYS instead, and the kernel falls back
    /// to its generic lseek for the rest of the mount (`fc->no_lseek`): all of a file is
    /// data, up to its size as the kernel knows it.
    pub(super) fn lseek_answer(&self) -> Result<(), Errno> {
        self.enosys_under_writeback()
    }

    /// ENOSYS under the writeback cache ("not implemented": the kernel stops asking and
    /// does without), else Ok.
    fn enosys_under_writeback(&self) -> Result<(), Errno> {
        if self.writeback {
            Err(Errno::ENOSYS)
        } else {
            Ok(())
        }
    }
}
