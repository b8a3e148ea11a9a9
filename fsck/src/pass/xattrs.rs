//! The heap chunks inodes own: symlink targets and extended attributes, claimed for the heap
//! pass's overlap check. Inodes with no name are skipped (they are being relinked or freed).

use crate::pass::links;
use crate::problem::Fix;
use crate::state::{Chunk, State};
use rvmfs::ops::Op;
use rvmfs::store::xattr::{self, XATTRS};
use rvmfs::FsResult;

/// Claim the target of every named symlink and the chunks of every named inode's xattrs.
pub(crate) fn claim_chunks(s: &mut State) -> FsResult<()> {
    let mut claimed = Vec::new();
    for (&ino, node) in &s.inodes {
        if links::unnamed(s, ino, node) {
            continue;
        }
        if node.is_symlink() {
            claimed.push(Chunk::new(
                node.parent_or_target,
                node.size,
                format!("target of symlink {ino}"),
                Fix::ClearInode(ino),
                1,
            ));
        }
        for (at, len, key) in xattr::chunks(s.bytes, ino)? {
            claimed.push(Chunk::new(
                at,
                len,
                format!("extended attribute of inode {ino}"),
                Fix::RemoveXattr { ino, key },
                1,
            ));
        }
    }
    s.heap_chunks.extend(claimed);
    Ok(())
}

/// Repair [`Fix::RemoveXattr`]: remove the xattr entry at `key`.
pub(crate) fn remove(op: &mut Op<'_>, key: (u64, u64)) -> FsResult<()> {
    XATTRS.remove(&mut op.tx, key).map(|_| ())
}
