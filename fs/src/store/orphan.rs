//! The orphan list: the orphan B+tree (root: superblock field `orphan_root`).
//!
//! ```text
//! key   = (inode, 0)     2 x u64
//! value = [0, 0, 0]      3 x u64 (unused)
//! ```
//! An orphan is an inode whose last name is gone while a handle still holds it open
//! (design-notes §2); `ops::orphan` adds and frees them.

use super::btree::Tree;
use crate::error::FsResult;
use crate::layout::superblock::field;
use rvm_core::Transaction;

/// The orphan tree.
pub const ORPHANS: Tree = Tree(field::ORPHAN_ROOT);

/// Put `ino` on the orphan list.
pub fn add(tx: &mut Transaction<'_>, ino: u64) -> FsResult<()> {
    ORPHANS.insert(tx, (ino, 0), [0; 3])?;
    Ok(())
}

/// Take `ino` off the orphan list.
pub fn remove(tx: &mut Transaction<'_>, ino: u64) -> FsResult<()> {
    ORPHANS.remove(tx, (ino, 0))?;
    Ok(())
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
