//! The orphan list: inodes whose last name is gone while a handle still holds them open
//! (design-notes §2). They are freed at the last release, or, after a crash, by the next
//! mount or fsck.

use super::{inode, Op};
use crate::error::FsResult;
use crate::layout::superblock::field;
use crate::store::btree::Tree;

/// The orphan tree: key (inode, 0), empty value.
pub const ORPHANS: Tree = Tree(field::ORPHAN_ROOT);

pub fn add(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    ORPHANS.insert(&mut op.tx, (ino, 0), [0; 3])?;
    Ok(())
}

/// Free orphan `ino` and take it off the list.
pub fn reclaim(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    ORPHANS.remove(&mut op.tx, (ino, 0))?;
    inode::free(op, ino)
}

/// Every inode on the orphan list.
pub fn list(bytes: &[u8]) -> FsResult<Vec<u64>> {
    let mut out = Vec::new();
    ORPHANS.scan(bytes, (0, 0), (u64::MAX, u64::MAX), |k, _| {
        out.push(k.0);
        Ok(true)
    })?;
    Ok(out)
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
