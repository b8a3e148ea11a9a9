//! Orphans: inodes whose last name is gone while a handle still holds them open
//! (design-notes §2). They are freed at the last release, or, after a crash, by the next
//! mount or fsck. The list's format is `store::orphan`.

use super::{inode, Op};
use crate::error::FsResult;
use crate::store::orphan as orphan_list;

/// Put `ino` on the orphan list.
pub fn add(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    orphan_list::add(&mut op.tx, ino)
}

/// Free orphan `ino` and take it off the list.
pub fn reclaim(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    orphan_list::remove(&mut op.tx, ino)?;
    inode::free(op, ino)
}

/// Drop one name of `ino` (already removed from its directory): free the inode when no name
/// and no open handle is left, make it an orphan when handles remain.
pub fn drop_link(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    let mut node = op.inode(ino)?;
    node.nlink = if node.is_dir() {
        0
    } else {
        node.nlink.saturating_sub(1)
    };
    if node.nlink > 0 {
        inode::touch(&mut node, false);
        return op.put_inode(ino, &node);
    }
    if op.open.get(&ino).copied().unwrap_or(0) > 0 {
        inode::touch(&mut node, false);
        op.put_inode(ino, &node)?;
        return add(op, ino);
    }
    inode::free(op, ino)
}
