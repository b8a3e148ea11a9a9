//! Pass 0: the B+trees themselves. A damaged index makes every later pass see ghosts, so a
//! damaged tree is rebuilt first and the check starts over.

use crate::problem::Fix;
use crate::state::State;
use rvmfs::ops::Op;
use rvmfs::store::btree::Tree;
use rvmfs::store::dentry::DENTRIES;
use rvmfs::store::extent_map::EXTENTS;
use rvmfs::store::orphan::ORPHANS;
use rvmfs::store::xattr::XATTRS;
use rvmfs::FsResult;

/// The four B+trees and their names in messages.
pub const TREES: [(Tree, &str); 4] = [
    (DENTRIES, "directory"),
    (EXTENTS, "extent"),
    (XATTRS, "extended attribute"),
    (ORPHANS, "orphan"),
];

/// Verify every tree's structure; report each damaged one with [`Fix::RebuildTree`].
/// Returns whether all are sound (the later passes run only then).
pub(crate) fn check(s: &mut State) -> FsResult<bool> {
    for (tree, name) in TREES {
        let damage = tree.verify(s.bytes)?;
        if let Some(first) = damage.first() {
            s.report.add(
                format!(
                    "the {name} index is damaged ({first}; {} problems)",
                    damage.len()
                ),
                Fix::RebuildTree(tree.0),
            );
        }
    }
    Ok(s.report.problems.is_empty())
}

/// Repair [`Fix::RebuildTree`]: rebuild a damaged tree from what its leaves still hold. Old
/// nodes that still decode and sit on a node boundary go back to the heap; anything else is
/// left allocated (leaked) rather than risk freeing bytes that belong to another chunk.
pub(crate) fn rebuild(op: &mut Op<'_>, tree: Tree) -> FsResult<()> {
    let entries = tree.salvage(op.bytes())?;
    let nodes: Vec<u64> = tree
        .reachable_nodes(op.bytes())?
        .into_iter()
        .filter(|n| n % 4096 == 0)
        .collect();
    tree.rebuild(&mut op.tx, &nodes, &entries)
}
