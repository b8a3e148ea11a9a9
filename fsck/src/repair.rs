//! Repairs: each fix is one RVM transaction, so a crash during fsck leaves an image that
//! recovers to a state between two fixes. The repair code of each `Fix` sits in the pass that
//! reports it (`pass/`); this file only dispatches.

use crate::pass::{
    connectivity, dentries, extents, free_space, heap, inodes, links, orphans, trees, xattrs,
};
use crate::problem::Fix;
use rvmfs::layout::inode::Inode;
use rvmfs::ops::{Fs, Op};
use rvmfs::store::btree::Tree;
use rvmfs::FsResult;

/// Apply one fix, in one transaction.
pub fn apply(fs: &mut Fs, fix: &Fix) -> FsResult<()> {
    fs.transact(|op| match *fix {
        Fix::ReclaimOrphan(ino) => orphans::reclaim(op, ino),
        Fix::SetLinks { ino, nlink } => links::set_links(op, ino, nlink),
        Fix::SetBlocks { ino, blocks } => extents::set_blocks(op, ino, blocks),
        Fix::SetSize { ino, size } => extents::set_size(op, ino, size),
        Fix::SetParent { ino, parent } => connectivity::set_parent(op, ino, parent),
        Fix::InodeBit { ino, used } => inodes::set_bit(op, ino, used),
        Fix::DataBits { start, len, used } => free_space::set_data_bits(op, start, len, used),
        Fix::Counters {
            inodes_used,
            blocks_used,
        } => free_space::set_counters(op, inodes_used, blocks_used),
        Fix::RemoveEntry { key, .. } => dentries::remove(op, key),
        Fix::RekeyEntry { key, .. } => dentries::rekey(op, key),
        Fix::RemoveExtent { ino, last } => extents::remove(op, ino, last),
        Fix::LostFound { ino } => connectivity::lost_found(op, ino),
        Fix::ClearInode(ino) => inodes::clear(op, ino),
        Fix::RecreateRoot => inodes::recreate_root(op),
        Fix::RemoveXattr { key, .. } => xattrs::remove(op, key),
        Fix::ResetFreeList(class) => heap::reset_free_list(op, class),
        Fix::RebuildTree(root_field) => trees::rebuild(op, Tree(root_field)),
        Fix::None => Ok(()),
    })
}

/// Read inode `ino`, change it with `f`, write it back (in `op`'s transaction).
pub(crate) fn update(op: &mut Op<'_>, ino: u64, f: impl FnOnce(&mut Inode)) -> FsResult<()> {
    let mut node = op.inode(ino)?;
    f(&mut node);
    op.put_inode(ino, &node)
}
