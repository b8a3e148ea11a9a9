//! fsck on slotted B+tree leaves (incompat feature `slotted_leaves`, docs/format.md sections 6
//! and 8): a fresh image has the feature and its directories' leaves are slotted; a sound one
//! checks clean; a leaf slot damaged in each way pass 0 knows (naming no entry of the leaf,
//! naming an entry another slot names, out of key order) is found and the dentry tree
//! rebuilt with every name still there, after which the image checks clean.

mod common;

use common::{new_inode, open_sim, snapshot};
use fsck::check::{check, Fix};
use rvm_core::sim::SimStorage;
use rvmfs::format::format;
use rvmfs::layout::features::INCOMPAT_SLOTTED_LEAVES;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::{field, ROOT_INO};
use rvmfs::ops::{namespace, Fs};
use rvmfs::store::superblock;
use std::sync::Arc;

const IMAGE: u64 = 16 << 20;
const FILES: usize = 400;

/// A fresh image holding one directory of `FILES` files (several dentry leaves).
fn populated() -> Fs {
    let disk = Arc::new(SimStorage::new(IMAGE as usize));
    let plan = Plan {
        size: IMAGE,
        inodes: Some(1024),
        log: Some(2 << 20),
    };
    format(disk.clone(), plan, [5; 16], (0, 0)).unwrap();
    let mut fs = open_sim(disk, IMAGE).unwrap();
    let sb = superblock(fs.bytes()).unwrap();
    assert!(
        sb.features.has_incompat(INCOMPAT_SLOTTED_LEAVES),
        "mkfs sets slotted_leaves"
    );
    let (dir, _) = fs
        .transact(|op| {
            namespace::create(op, ROOT_INO, b"d", new_inode(libc::S_IFDIR | 0o755), None)
        })
        .unwrap();
    for i in 0..FILES {
        let name = format!("file-{i}");
        fs.transact(|op| {
            namespace::create(
                op,
                dir,
                name.as_bytes(),
                new_inode(libc::S_IFREG | 0o644),
                None,
            )
        })
        .unwrap();
    }
    fs
}

/// The region offset of the dentry tree's leftmost leaf, which must be slotted (kind 3).
fn leftmost_leaf(fs: &Fs) -> u64 {
    let mut at: u64 = pod::get(fs.bytes(), field::DENTRY_ROOT).unwrap();
    loop {
        let kind: u16 = pod::get(fs.bytes(), at).unwrap();
        match kind {
            2 => at = pod::get(fs.bytes(), at + 8).unwrap(), // child 0
            _ => {
                assert_eq!(kind, 3, "leaf {at} is slotted");
                return at;
            }
        }
    }
}

/// Damage the leftmost dentry leaf with `damage(leaf, slot 0, slot 1)`: (slot index, value)
/// pairs written over its slot array.
fn damaged_and_repaired(damage: impl Fn(u16, u16, u16) -> Vec<(u64, u16)>, want: &str) {
    let mut fs = populated();
    let before = snapshot(&fs).unwrap();
    let report = check(fs.bytes(), &|_, _, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let leaf = leftmost_leaf(&fs);
    let count: u16 = pod::get(fs.bytes(), leaf + 2).unwrap();
    let slot = |i: u64| -> u16 { pod::get(fs.bytes(), leaf + 16 + 2 * i).unwrap() };
    let writes = damage(count, slot(0), slot(1));
    fs.transact(|op| {
        for (i, v) in &writes {
            pod::put_bytes(&mut op.tx, leaf + 16 + 2 * i, &v.to_le_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    let report = check(fs.bytes(), &|_, _, _| {}).unwrap();
    let found = report.problems.iter().find(|p| p.what.contains(want));
    let Some(problem) = found else {
        panic!("no problem naming {want:?}: {:?}", report.problems);
    };
    assert!(
        matches!(problem.fix, Fix::RebuildTree(field::DENTRY_ROOT)),
        "{:?}",
        problem.fix
    );
    fsck::repair::apply(&mut fs, &problem.fix).unwrap();
    let report = check(fs.bytes(), &|_, _, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        snapshot(&fs).unwrap(),
        before,
        "the rebuilt tree lost or changed names"
    );
}

#[test]
fn a_slot_naming_no_entry_is_repaired() {
    // Entry j lies at node offset 216 + 40 j: one past the last entry names none.
    damaged_and_repaired(
        |count, _, _| vec![(1, 216 + 40 * count)],
        "not the offset of",
    );
}

#[test]
fn two_slots_naming_one_entry_are_repaired() {
    damaged_and_repaired(|_, s0, _| vec![(1, s0)], "as an earlier slot does");
}

#[test]
fn slots_out_of_key_order_are_repaired() {
    damaged_and_repaired(|_, s0, s1| vec![(0, s1), (1, s0)], "keys out of order");
}
