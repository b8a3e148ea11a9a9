//! Pass 4: link counts. A directory has two links ('.' and its name) plus one per
//! subdirectory; any other inode one per name. An inode with no name that is not on the orphan
//! list is lost (directories were reported by pass 3).

use crate::problem::Fix;
use crate::repair::update;
use crate::state::State;
use rvmfs::layout::inode::Inode;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::Op;
use rvmfs::FsResult;

/// Run pass 4.
pub(crate) fn check(s: &mut State, progress: &dyn Fn(&str, u64, u64)) {
    progress("Pass 4: link counts", 0, 1);
    for (&ino, node) in &s.inodes {
        let expected = expected(s, ino, node);
        if expected == 0 && ino != ROOT_INO {
            if s.orphans.contains(&ino) {
                continue; // reclaimed by the orphan pass
            }
            if !node.is_dir() {
                s.report.add(
                    format!("inode {ino} has no name (unreachable)"),
                    Fix::LostFound { ino },
                );
            }
            continue;
        }
        if node.nlink != expected {
            s.report.add(
                format!(
                    "inode {ino}: link count {} should be {expected}",
                    node.nlink
                ),
                Fix::SetLinks {
                    ino,
                    nlink: expected,
                },
            );
        }
    }
}

/// The link count inode `ino` should have from the names pass 2 counted.
fn expected(s: &State, ino: u64, node: &Inode) -> u32 {
    if node.is_dir() {
        if s.named_in.get(&ino).is_none_or(|v| v.is_empty()) && ino != ROOT_INO {
            0
        } else {
            2 + s.subdirs.get(&ino).copied().unwrap_or(0)
        }
    } else {
        s.links.get(&ino).copied().unwrap_or(0)
    }
}

/// Whether inode `ino` (not the root) has no name at all.
pub(crate) fn unnamed(s: &State, ino: u64, node: &Inode) -> bool {
    expected(s, ino, node) == 0 && ino != ROOT_INO
}

/// Repair [`Fix::SetLinks`]: set inode `ino`'s link count.
pub(crate) fn set_links(op: &mut Op<'_>, ino: u64, nlink: u32) -> FsResult<()> {
    update(op, ino, |n| n.nlink = nlink)
}
