//! Pass 1: inodes. Each inode's bitmap bit must agree with its table entry; the root must be a
//! directory (else it is made again, empty); an inode of no known type is cleared. Counts
//! files and directories.

use crate::problem::Fix;
use crate::state::State;
use rvmfs::layout::inode::{Inode, INODE_SIZE};
use rvmfs::layout::pod;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::Op;
use rvmfs::store::bitmap;
use rvmfs::FsResult;

/// Run pass 1; fills `s.inodes` with the inodes in use.
pub(crate) fn check(s: &mut State, progress: &dyn Fn(&str, u64, u64)) -> FsResult<()> {
    scan_table(s, progress)?;
    match s.inodes.get(&ROOT_INO) {
        Some(root) if root.is_dir() => {}
        _ => s.report.add(
            "the root directory (inode 1) is missing or not a directory: make a new one".into(),
            Fix::RecreateRoot,
        ),
    }
    clear_unknown(s);
    for node in s.inodes.values() {
        if node.is_dir() {
            s.report.dirs += 1;
        } else {
            s.report.files += 1;
        }
    }
    Ok(())
}

/// Read every inode and its bitmap bit; keep those the table says are in use.
fn scan_table(s: &mut State, progress: &dyn Fn(&str, u64, u64)) -> FsResult<()> {
    let sb = &s.sb;
    for ino in 1..=sb.inode_count {
        if ino % 65536 == 0 {
            progress("Pass 1: inodes", ino, sb.inode_count);
        }
        let used = bitmap::test(s.bytes, sb.inode_bitmap, ino - 1)?;
        let node: Inode = pod::get(s.bytes, sb.inode_table + (ino - 1) * INODE_SIZE)?;
        match (used, node.is_free()) {
            (true, true) => s.report.add(
                format!("inode {ino} is marked in use but is free"),
                Fix::InodeBit { ino, used: false },
            ),
            (false, false) => {
                s.report.add(
                    format!("inode {ino} is in use but not marked in the inode bitmap"),
                    Fix::InodeBit { ino, used: true },
                );
                s.inodes.insert(ino, node);
            }
            (true, false) => {
                s.inodes.insert(ino, node);
            }
            (false, true) => {}
        }
    }
    Ok(())
}

/// An inode of no known type is cleared (e2fsck does the same); the later passes treat it as
/// free, so its entries and extents go too.
fn clear_unknown(s: &mut State) {
    let unknown: Vec<u64> = s
        .inodes
        .iter()
        .filter(|(_, n)| !n.has_known_type())
        .map(|(&i, _)| i)
        .collect();
    for ino in unknown {
        if let Some(node) = s.inodes.remove(&ino) {
            s.report.add(
                format!("inode {ino} has an unknown file type {:o}", node.mode),
                Fix::ClearInode(ino),
            );
        }
    }
}

/// Repair [`Fix::InodeBit`]: set or clear inode `ino`'s bitmap bit.
pub(crate) fn set_bit(op: &mut Op<'_>, ino: u64, used: bool) -> FsResult<()> {
    let at = op.geo.inode_bitmap;
    bitmap::set_run(&mut op.tx, at, ino - 1, 1, used)
}

/// Repair [`Fix::ClearInode`]: zero inode `ino` and clear its bitmap bit.
pub(crate) fn clear(op: &mut Op<'_>, ino: u64) -> FsResult<()> {
    op.put_inode(ino, &Inode::default())?;
    set_bit(op, ino, false)
}

/// Repair [`Fix::RecreateRoot`]: a new root directory (mode 0755, owned by root, its own
/// parent) in inode 1, marked in the bitmap. Whatever inode 1 held is lost (its extents and
/// xattrs, now a directory's, go in the next round); the names filed under inode 1 stay.
pub(crate) fn recreate_root(op: &mut Op<'_>) -> FsResult<()> {
    let sb = op.superblock()?;
    let root = Inode {
        parent_or_target: ROOT_INO,
        ..Inode::new(libc::S_IFDIR | 0o755, 0, 0, 0, sb.next_generation)
    };
    op.put_inode(ROOT_INO, &root)?;
    match bitmap::test(op.bytes(), op.geo.inode_bitmap, ROOT_INO - 1)? {
        true => Ok(()),
        false => set_bit(op, ROOT_INO, true),
    }
}
