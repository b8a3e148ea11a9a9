//! A damaged inode bitmap never makes the daemon overwrite a live inode (issue 11, hostile
//! images; found by tests/tests/hostile_mounts.rs seeds 8, 15 and 16, where a create after a
//! zeroed bitmap page reused inode 1, the root): the allocator skips a slot the bitmap calls
//! free that holds an inode, and fsck repairs the bitmap.

mod common;

use common::{new_inode, open_sim};
use rvm_core::sim::SimStorage;
use rvm_core::Storage;
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::namespace;
use rvmfs::store::dentry;
use std::sync::Arc;

const IMAGE: u64 = 4 << 20;

#[test]
fn a_create_after_a_zeroed_inode_bitmap_reuses_no_live_inode() {
    let disk = Arc::new(SimStorage::new(IMAGE as usize));
    let plan = Plan {
        size: IMAGE,
        inodes: Some(64),
        log: Some(1 << 20),
    };
    format(disk.clone(), plan, [3; 16], (0, 0)).expect("mkfs");
    let mut fs = open_sim(disk.clone(), IMAGE).expect("open");
    let file = new_inode(libc::S_IFREG | 0o644);
    let (a, _) = fs
        .transact(|op| namespace::create(op, ROOT_INO, b"a", file, None))
        .expect("create a");
    fs.rvm.flush().expect("flush");
    fs.rvm.truncate().expect("truncate");
    let sb = rvmfs::store::superblock(fs.bytes()).expect("superblock");
    let at = fs.header.segment_offset + sb.inode_bitmap;
    drop(fs);
    // The damage: the inode bitmap's first bytes zeroed (inodes 1 and `a` look free).
    disk.write_at(&[0u8; 8], at).expect("damage the bitmap");
    let mut fs = open_sim(disk, IMAGE).expect("reopen");
    let file = new_inode(libc::S_IFREG | 0o644);
    let (b, _) = fs
        .transact(|op| namespace::create(op, ROOT_INO, b"b", file, None))
        .expect("create b");
    assert!(b != ROOT_INO && b != a, "the create reused live inode {b}");
    assert!(fs.inode(ROOT_INO).expect("root").is_dir(), "the root");
    let found = dentry::lookup(fs.bytes(), ROOT_INO, b"a").expect("lookup");
    assert_eq!(found.map(|d| d.ino), Some(a));
    assert!(fs.inode(a).expect("a").is_reg());
}
