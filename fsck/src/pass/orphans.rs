//! Orphans: inodes unlinked while open when the daemon died. Each one on the orphan list must
//! have no links left; it is freed (as mounting would) by the repair.

use crate::problem::Fix;
use crate::state::State;
use rvmfs::ops::orphan;
use rvmfs::ops::Op;
use rvmfs::store;
use rvmfs::FsResult;

/// Read the orphan list into `s.orphans` (pass 3 needs it to tell lost from orphaned).
pub(crate) fn load(s: &mut State) -> FsResult<()> {
    s.orphans = store::orphan::list(s.bytes)?.into_iter().collect();
    Ok(())
}

/// Report every orphan to free, and every entry of the list that is not an orphan.
pub(crate) fn check(s: &mut State) {
    for &ino in &s.orphans {
        match s.inodes.get(&ino) {
            Some(n) if n.nlink == 0 => {
                s.report.orphans += 1;
                s.report.add(
                    format!("orphan inode {ino} (unlinked while open) to free"),
                    Fix::ReclaimOrphan(ino),
                );
            }
            _ => s.report.add(
                format!("orphan list names inode {ino}, which is not an orphan"),
                Fix::None,
            ),
        }
    }
}

/// Repair [`Fix::ReclaimOrphan`]: free orphan `ino` and its blocks.
pub(crate) fn reclaim(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    orphan::reclaim(op, ino)
}
