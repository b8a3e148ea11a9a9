//! One directory grown to 100,000 entries through the library (issue 12, big directories; the
//! benchmark's scaling rows go to 1,000,000 through FUSE): what a create costs must not grow
//! with the directory. Counted, not timed: the redo-log bytes per create stay those of a small
//! directory, the inode allocator hands out the next inode (no scan from the start), the
//! dentry tree keeps its shape, and every name is found again, also after a reopen.

use rvm_core::MemStorage;
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{namespace, Fs};
use rvmfs::store::btree::SLOTTED_LEAF_CAPACITY;
use rvmfs::store::dentry::{self, DENTRIES};
use std::sync::Arc;

mod mem_image;
use mem_image::open;

const MIB: u64 = 1 << 20;
const ENTRIES: u64 = 100_000;
const BATCH: u64 = 1_000;

fn name(i: u64) -> Vec<u8> {
    format!("g{i:07}").into_bytes()
}

fn new_file() -> NewInode {
    NewInode {
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
    }
}

/// Redo-log bytes of the records committed so far, before the inter-transaction merge (which
/// folds repeated changes to a small directory's few leaves and would hide a growing record).
fn record_bytes(fs: &Fs) -> u64 {
    let s = fs.rvm.stats();
    s.bytes_logged + s.bytes_saved_inter
}

/// Create entries `from..to` in directory `dir`, one transaction each, then flush: returns
/// the record bytes per create.
fn create_batch(fs: &mut Fs, dir: u64, from: u64, to: u64, next_ino: &mut u64) -> f64 {
    let before = record_bytes(fs);
    for i in from..to {
        let (ino, _) = fs
            .transact(|op| namespace::create(op, dir, &name(i), new_file(), None))
            .unwrap();
        assert_eq!(
            ino, *next_ino,
            "entry {i}: the allocator skipped or went back"
        );
        *next_ino += 1;
    }
    fs.rvm.flush().unwrap();
    (record_bytes(fs) - before) as f64 / (to - from) as f64
}

#[test]
fn a_create_costs_the_same_at_100k_entries() {
    let len = 160 * MIB;
    let disk = Arc::new(MemStorage::new(len as usize));
    let plan = Plan {
        size: len,
        inodes: Some(ENTRIES + 64),
        log: Some(16 * MIB),
    };
    format(disk.clone(), plan, [7; 16], (0, 0)).unwrap();
    let mut fs = open(disk.clone(), len);
    let mkdir = NewInode {
        mode: libc::S_IFDIR | 0o755,
        ..new_file()
    };
    let (dir, _) = fs
        .transact(|op| namespace::create(op, ROOT_INO, b"big", mkdir, None))
        .unwrap();
    let mut next_ino = dir + 1;
    let mut per_create = Vec::new();
    for from in (0..ENTRIES).step_by(BATCH as usize) {
        per_create.push(create_batch(
            &mut fs,
            dir,
            from,
            from + BATCH,
            &mut next_ino,
        ));
    }
    // A leaf insert logs the new entry and the slots after it (the image has slotted_leaves)
    // plus the inode and the name: the same at any size. The first batches (a tree of a few
    // leaves, fuller on average than a tree of halved leaves) bound it.
    let small = per_create[1];
    let big = per_create[per_create.len() - 1];
    assert!(
        big <= small * 1.5,
        "record bytes per create grew with the directory: {small:.0} at 2,000 entries, {big:.0} at 100,000"
    );
    eprintln!("record bytes per create: {small:.0} at 2,000 entries, {big:.0} at 100,000");
    let problems = DENTRIES.check_invariants(fs.bytes()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    // Leaves split in half and nothing was removed: at least half full on average.
    let nodes = DENTRIES.nodes(fs.bytes()).unwrap().len() as u64;
    let most = ENTRIES.div_ceil(SLOTTED_LEAF_CAPACITY as u64 / 2) * 102 / 100 + 2;
    assert!(nodes <= most, "{nodes} nodes for {ENTRIES} entries");
    drop(fs);
    let fs = open(disk, len);
    for i in (0..ENTRIES).step_by(97) {
        let d = dentry::lookup(fs.bytes(), dir, &name(i)).unwrap();
        assert_eq!(d.map(|d| d.ino), Some(dir + 1 + i), "entry {i}");
    }
    assert!(dentry::lookup(fs.bytes(), dir, &name(ENTRIES))
        .unwrap()
        .is_none());
}
