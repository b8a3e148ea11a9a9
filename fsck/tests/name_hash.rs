//! The keyed name hash (issue 11, item 5; docs/format.md section 7.1).
//!
//! Under the unkeyed FNV-1a hash of older images anyone can compute, offline, names whose
//! kept hash bits collide; 256 of them in one directory make it refuse every further name with
//! that hash (ENOSPC). Crafting collisions in all 54 kept bits by brute force costs about 2^54
//! hashes per name, too much for a test, so the test crafts them at a reduced width: 300 names
//! whose top 16 FNV-1a bits are equal (about 300 x 2^16 = 20 million hashes). The same names
//! are then shown to spread under the image's keyed hash (SipHash-1-3 under the random key
//! mkfs chose): the attacker, who does not know the key, cannot aim at one bucket. At width 16
//! 300 random names land at most a handful to a bucket; at 54 bits the chance that even two
//! share one is about 300^2 / 2^55. Then all 300 names go into one directory of a keyed image
//! and are found again; fsck finds the directory clean, and finds (and re-files) an entry
//! whose key is not its name's hash.

mod common;

use common::{new_inode, open_sim};
use fsck::check::{check, Fix};
use rvm_core::sim::SimStorage;
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::namespace;
use rvmfs::store::dentry::{self, DENTRIES};
use rvmfs::store::name_hash::{fnv1a, NameHash};
use std::collections::HashMap;
use std::sync::Arc;

const IMAGE: u64 = 8 << 20;
/// The reduced width: how many top hash bits the crafted names share.
const WIDTH: u32 = 16;
const NAMES: usize = 300;

/// `NAMES` names whose FNV-1a hashes agree in their top `WIDTH` bits, by brute force.
fn fnv_colliding_names() -> Vec<Vec<u8>> {
    let bucket = |n: &[u8]| fnv1a(n) >> (64 - WIDTH);
    let target = bucket(b"crafted-0");
    let mut names = Vec::with_capacity(NAMES);
    for i in 0u64.. {
        let name = format!("crafted-{i}").into_bytes();
        if bucket(&name) == target {
            names.push(name);
            if names.len() == NAMES {
                break;
            }
        }
    }
    names
}

/// The largest number of `names` sharing one top-`WIDTH`-bit bucket of `hash`.
fn fullest_bucket(names: &[Vec<u8>], hash: impl Fn(&[u8]) -> u64) -> usize {
    let mut buckets = HashMap::new();
    for n in names {
        *buckets.entry(hash(n) >> (64 - WIDTH)).or_insert(0usize) += 1;
    }
    buckets.values().copied().max().unwrap_or(0)
}

#[test]
fn names_colliding_under_fnv_spread_under_the_keyed_hash() {
    let disk = Arc::new(SimStorage::new(IMAGE as usize));
    let plan = Plan {
        size: IMAGE,
        inodes: Some(1024),
        log: Some(1 << 20),
    };
    format(disk.clone(), plan, [9; 16], (0, 0)).unwrap();
    let mut fs = open_sim(disk, IMAGE).unwrap();
    let keyed = NameHash::of(fs.bytes()).unwrap();
    assert!(
        matches!(keyed, NameHash::SipHash13(k) if k != [0; 16]),
        "mkfs chose a key: {keyed:?}"
    );

    let names = fnv_colliding_names();
    assert_eq!(fullest_bucket(&names, fnv1a), NAMES, "crafted under FNV-1a");
    let spread = fullest_bucket(&names, |n| keyed.hash(n));
    assert!(spread <= 8, "{spread} of them share a keyed bucket");

    // One directory takes every name, and finds each again.
    let (dir, _) = fs
        .transact(|op| {
            namespace::create(op, ROOT_INO, b"d", new_inode(libc::S_IFDIR | 0o755), None)
        })
        .unwrap();
    for n in &names {
        fs.transact(|op| namespace::create(op, dir, n, new_inode(libc::S_IFREG | 0o644), None))
            .unwrap_or_else(|e| panic!("create {}: {e}", String::from_utf8_lossy(n)));
    }
    for n in &names {
        assert!(dentry::lookup(fs.bytes(), dir, n).unwrap().is_some());
    }
    let report = check(fs.bytes(), &|_, _, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // File one entry under a wrong key: lookups miss it, fsck says so and re-files it.
    let victim = &names[7];
    fs.transact(|op| {
        let d = dentry::lookup(op.bytes(), dir, victim)?.unwrap();
        let v = DENTRIES.remove(&mut op.tx, d.key)?.unwrap();
        DENTRIES.insert(&mut op.tx, (dir, dentry::FIRST_KEY | 0x1234_5600), v)
    })
    .unwrap();
    assert!(dentry::lookup(fs.bytes(), dir, victim).unwrap().is_none());
    let report = check(fs.bytes(), &|_, _, _| {}).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let fix = &report.problems[0].fix;
    assert!(matches!(fix, Fix::RekeyEntry { .. }), "{fix:?}");
    fsck::repair::apply(&mut fs, fix).unwrap();
    assert!(dentry::lookup(fs.bytes(), dir, victim).unwrap().is_some());
    let report = check(fs.bytes(), &|_, _, _| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
