//! Allocating and freeing inodes.

use super::{extent, xattr, Op};
use crate::error::{errno, FsResult};
use crate::layout::inode::{now, Inode};
use crate::layout::pod;
use crate::layout::superblock::field;
use crate::store::{bitmap, heap};

/// What a new inode starts with.
pub struct NewInode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
}

/// Allocate and initialize an inode (nlink 1, or 2 for a directory); ENOSPC when none is free.
/// A slot the bitmap calls free but that holds a live inode (a damaged bitmap) is logged and
/// skipped, never overwritten: fsck repairs the bitmap.
pub fn alloc(op: &mut Op<'_>, new: NewInode) -> FsResult<(u64, Inode)> {
    let sb = op.superblock()?;
    let mut goal = op.hints.next_inode;
    let mut found = None;
    // Each round skips one live slot; more rounds than slots means none is really free.
    for _ in 0..sb.inode_count.min(1 << 20) {
        let clear = bitmap::find_clear_run(op.bytes(), sb.inode_bitmap, sb.inode_count, goal, 1)?;
        let Some((bit, _)) = clear else { break };
        let slot: Inode = pod::get(op.bytes(), op.geo.inode_offset(bit + 1)?)?;
        if slot.is_free() {
            found = Some(bit);
            break;
        }
        log::error!(
            "inode {} is in use but free in the inode bitmap (run fsck.rvmfs): not reused",
            bit + 1
        );
        goal = bit + 1;
    }
    let Some(bit) = found else {
        return errno(libc::ENOSPC);
    };
    bitmap::set_run(&mut op.tx, sb.inode_bitmap, bit, 1, true)?;
    pod::put(
        &mut op.tx,
        field::INODES_USED,
        &sb.inodes_used.saturating_add(1),
    )?;
    pod::put(
        &mut op.tx,
        field::NEXT_GENERATION,
        &sb.next_generation.wrapping_add(1),
    )?;
    op.hints.next_inode = bit + 1;
    let inode = Inode::new(new.mode, new.uid, new.gid, new.rdev, sb.next_generation);
    let ino = bit + 1;
    op.put_inode(ino, &inode)?;
    Ok((ino, inode))
}

/// Free inode `ino` and everything it owns: data blocks, xattrs, symlink target, its slot.
pub fn free(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    let inode = op.inode(ino)?;
    if inode.is_reg() {
        extent::punch(op, ino, 0, u64::MAX)?;
    }
    if inode.is_symlink() && inode.parent_or_target != 0 {
        heap::free(&mut op.tx, inode.parent_or_target, inode.size)?;
    }
    xattr::remove_all(op, ino)?;
    let sb = op.superblock()?;
    op.put_inode(ino, &Inode::default())?;
    bitmap::set_run(&mut op.tx, sb.inode_bitmap, ino - 1, 1, false)?;
    pod::put(
        &mut op.tx,
        field::INODES_USED,
        &sb.inodes_used.saturating_sub(1),
    )?;
    Ok(())
}

/// Set ctime (and mtime with `modified`) to now.
pub fn touch(inode: &mut Inode, modified: bool) {
    let (sec, ns) = now();
    inode.ctime = sec;
    inode.ctime_ns = ns;
    if modified {
        inode.mtime = sec;
        inode.mtime_ns = ns;
    }
}
