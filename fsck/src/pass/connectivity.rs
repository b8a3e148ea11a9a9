//! Pass 3: connectivity. Every directory but the root is named exactly once, by the directory
//! its '..' points to, and walking up its names reaches the root (no cycles). Unreachable
//! inodes are repaired by linking them into /lost+found, made if missing (as e2fsck does).

use crate::pass::orphans;
use crate::problem::Fix;
use crate::repair::update;
use crate::state::State;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{namespace, Op};
use rvmfs::store::dentry;
use rvmfs::FsResult;

const LOST_FOUND: &[u8] = b"lost+found";

/// Run pass 3; loads the orphan list into `s.orphans` first (orphans may be unnamed).
pub(crate) fn check(s: &mut State, progress: &dyn Fn(&str, u64, u64)) -> FsResult<()> {
    progress("Pass 3: connectivity", 0, 1);
    orphans::load(s)?;
    check_names(s);
    check_cycles(s);
    Ok(())
}

/// Each directory is named once, by its '..'; an unnamed one not on the orphan list is lost.
fn check_names(s: &mut State) {
    for (&ino, node) in &s.inodes {
        if !node.is_dir() || ino == ROOT_INO {
            continue;
        }
        match s.named_in.get(&ino).map(Vec::as_slice) {
            None | Some([]) if s.orphans.contains(&ino) => {}
            None | Some([]) => s.report.add(
                format!("directory {ino} is not reachable from the root"),
                Fix::LostFound { ino },
            ),
            Some([p]) if *p != node.parent_or_target => s.report.add(
                format!(
                    "directory {ino}: '..' is {} but it is in directory {p}",
                    node.parent_or_target
                ),
                Fix::SetParent { ino, parent: *p },
            ),
            Some([_]) => {}
            Some(many) => s.report.add(
                format!(
                    "directory {ino} has {} names (hard-linked directory)",
                    many.len()
                ),
                Fix::None,
            ),
        }
    }
}

/// Cycles: walk up from every directory; the root must be reached.
fn check_cycles(s: &mut State) {
    for (&ino, node) in &s.inodes {
        if !node.is_dir() || s.orphans.contains(&ino) {
            continue;
        }
        let mut at = ino;
        let mut steps = 0u64;
        while at != ROOT_INO && steps <= s.inodes.len() as u64 {
            match s.named_in.get(&at).and_then(|v| v.first()) {
                Some(&p) => at = p,
                None => break,
            }
            steps += 1;
        }
        if steps > s.inodes.len() as u64 {
            s.report.add(
                format!("directory {ino} is part of a directory cycle"),
                Fix::None,
            );
        }
    }
}

/// Repair [`Fix::SetParent`]: set directory `ino`'s parent pointer ('..').
pub(crate) fn set_parent(op: &mut Op<'_>, ino: u64, parent: u64) -> FsResult<()> {
    update(op, ino, |n| n.parent_or_target = parent)
}

/// Repair [`Fix::LostFound`]: link unreachable inode `ino` into /lost+found as "#ino" (made if
/// missing, as e2fsck does).
pub(crate) fn lost_found(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    let lf = match dentry::lookup(op.bytes(), ROOT_INO, LOST_FOUND)? {
        Some(d) if d.kind == libc::S_IFDIR => d.ino,
        _ => {
            let new = NewInode {
                mode: libc::S_IFDIR | 0o700,
                uid: 0,
                gid: 0,
                rdev: 0,
            };
            namespace::create(op, ROOT_INO, LOST_FOUND, new, None)?.0
        }
    };
    let mut node = op.inode(ino)?;
    let name = format!("#{ino}");
    dentry::add(&mut op.tx, lf, name.as_bytes(), ino, node.kind())?;
    if node.is_dir() {
        node.parent_or_target = lf;
        node.nlink = node.nlink.max(2);
        update(op, lf, |p| p.nlink += 1)?;
    } else {
        node.nlink = 1;
    }
    op.put_inode(ino, &node)
}
