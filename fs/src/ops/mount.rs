//! Mount and clean unmount, inside the region: free the orphans a crash left behind and mark
//! the image mounted; at unmount mark it clean, apply the log and remove the spool.

use super::{orphan, Fs};
use crate::error::FsResult;
use crate::layout::inode::now;
use crate::layout::pod::put;
use crate::layout::superblock::field;
use crate::store::orphan as orphan_list;

/// Mount-time housekeeping: free the orphans a crash left behind and mark the image mounted.
/// One transaction each; returns how many orphans were freed. A damaged orphan list or orphan
/// is logged and left for fsck: it does not keep the rest of the image from mounting.
pub fn on_mount(fs: &mut Fs) -> FsResult<usize> {
    let orphans = orphan_list::list(fs.bytes()).unwrap_or_else(|e| {
        log::error!("mount: the orphan list is unreadable, its inodes stay for fsck: {e}");
        Vec::new()
    });
    let mut freed = 0;
    for &ino in &orphans {
        match fs.transact(|op| orphan::reclaim(op, ino)) {
            Ok(()) => freed += 1,
            Err(e) => log::error!("mount: orphan inode {ino} not freed (run fsck.rvmfs): {e}"),
        }
    }
    let now = now().0;
    fs.transact(|op| {
        let sb = op.superblock()?;
        put(&mut op.tx, field::MOUNTED, &1u32)?;
        put(
            &mut op.tx,
            field::MOUNT_COUNT,
            &sb.mount_count.saturating_add(1),
        )?;
        put(&mut op.tx, field::LAST_MOUNT, &now)
    })?;
    fs.rvm.flush()?;
    fs.discard_now(); // the orphans' blocks
    Ok(freed)
}

/// Clean unmount: mark the image clean, flush, and apply the log to the segment.
pub fn on_unmount(fs: &mut Fs) -> FsResult<()> {
    on_unmount_with(fs, || ())
}

/// [`on_unmount`], calling `durable` once every record is durable and before truncation
/// applies them: a log shipper ships the last ones then (docs/format.md 11.7; truncation
/// stops at the records it has not shipped, which the next mount replays).
pub fn on_unmount_with(fs: &mut Fs, durable: impl FnOnce()) -> FsResult<()> {
    fs.transact_on("unmount", 0, |op| put(&mut op.tx, field::MOUNTED, &0u32))?;
    fs.rvm.flush()?;
    durable();
    fs.rvm.truncate()?;
    fs.discard_now();
    // Everything is in the log and applied: the spool in /dev/shm has nothing left to keep.
    fs.rvm.remove_spool()?;
    Ok(())
}
