//! `rdump --lost`: the inodes in use that no path from the root reaches (their entries were
//! lost with a damaged directory node), copied to DEST/lost+found/#INO as e2fsck's pass 3/4
//! would reconnect them. Directories whose parent is reachable (or lost itself but not a
//! directory) come first, so a lost subtree is copied once, whole, under its top directory.

use super::Dumper;
use rvmfs::layout::inode::{Inode, INODE_SIZE};
use rvmfs::layout::pod;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::store::{self, dentry};
use std::collections::HashSet;
use std::path::Path;

/// The inodes reachable from the root through the directories' entries (a directory whose
/// entries cannot be read reaches what was read before the damage).
fn reachable(bytes: &[u8]) -> HashSet<u64> {
    let mut seen = HashSet::from([ROOT_INO]);
    let mut stack = vec![ROOT_INO];
    while let Some(dir) = stack.pop() {
        let _ = dentry::list(bytes, dir, 0, |d| {
            if seen.insert(d.ino) && d.kind == libc::S_IFDIR {
                stack.push(d.ino);
            }
            Ok(true)
        });
    }
    seen
}

/// Every inode in use (by its table slot) that [`reachable`] misses, by number.
fn unreachable(bytes: &[u8]) -> Vec<(u64, Inode)> {
    let Ok(sb) = store::superblock(bytes) else {
        return Vec::new();
    };
    let reached = reachable(bytes);
    (1..=sb.inode_count)
        .filter(|ino| !reached.contains(ino))
        .map_while(|ino| {
            let at = sb
                .inode_table
                .checked_add((ino - 1).checked_mul(INODE_SIZE)?)?;
            pod::get::<Inode>(bytes, at).ok().map(|n| (ino, n))
        })
        .filter(|(_, n)| !n.is_free())
        .collect()
}

/// Copy the unreachable inodes to `dest`/lost+found/#INO.
pub fn dump_lost(d: &mut Dumper<'_>, dest: &Path) -> anyhow::Result<()> {
    let lost = unreachable(d.fs.bytes());
    if lost.is_empty() {
        return Ok(());
    }
    let dirs: HashSet<u64> = lost
        .iter()
        .filter(|(_, n)| n.is_dir())
        .map(|(i, _)| *i)
        .collect();
    let top = |(ino, n): &(u64, Inode)| {
        n.is_dir() && !dirs.contains(&n.parent_or_target) || *ino == n.parent_or_target
    };
    let (first, rest): (Vec<_>, Vec<_>) = lost.into_iter().partition(top);
    let lf = dest.join("lost+found");
    std::fs::create_dir_all(&lf)?;
    for (ino, _) in first.into_iter().chain(rest) {
        if !d.seen.contains_key(&ino) {
            d.dump(ino, &lf.join(format!("#{ino}")), &format!("<{ino}>"))?;
        }
    }
    Ok(())
}
