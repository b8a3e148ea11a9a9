//! The judge of restore for `object_data` images (`store::local_data`): a region is accepted
//! when no written extent points at a local block; it follows the extent tree through
//! real transactions on an in-memory region (inserts that split leaves, repointing to the
//! bucket, removals), and rescans only after a commit that wrote one of the tree's nodes or
//! its root, never after the many that leave the tree alone.
mod common;

use common::{MemRegion, BITMAP_AT};
use rvmfs::layout::pod;
use rvmfs::store::extent_map::{self, Extent, REMOTE, UNWRITTEN};
use rvmfs::store::local_data::LocalData;
use std::ops::Range;

/// Heap for the tree: room for a few thousand extents.
const HEAP_LEN: u64 = 2 << 20;

/// The byte ranges where `after` differs from `before` (what a commit wrote, as the ranges
/// a restore passes).
fn changed(before: &[u8], after: &[u8]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, _) in before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
    {
        match out.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Commit `f` and ask the judge about the new state, with the ranges the commit changed.
fn step(
    mem: &mut MemRegion,
    judge: &mut LocalData,
    f: impl FnOnce(&mut rvm_core::Transaction<'_>) -> rvmfs::FsResult<()>,
) -> bool {
    let before = mem.bytes().to_vec();
    mem.commit(f).expect("commit");
    let touched = changed(&before, mem.bytes());
    judge.all_remote(mem.bytes(), &touched).expect("judging")
}

fn ext(first: u64, len: u64, phys: u64, flags: u64) -> Extent {
    Extent {
        first,
        last: first + len - 1,
        phys,
        flags,
    }
}

/// A virtual block of a data object (epoch 1): what the uploader repoints extents to.
const VBLOCK: u64 = 1 << 42;

#[test]
fn a_written_local_extent_is_refused_until_it_points_at_the_bucket() {
    let mut mem = MemRegion::new(HEAP_LEN);
    let mut judge = LocalData::new();
    let whole = 0..mem.bytes().len();
    assert!(
        judge
            .all_remote(mem.bytes(), std::slice::from_ref(&whole))
            .unwrap(),
        "no extents"
    );
    // fallocate: allocated, reads zeros, nothing to lose.
    assert!(step(&mut mem, &mut judge, |tx| extent_map::put(
        tx,
        5,
        &ext(0, 4, 100, UNWRITTEN)
    )));
    // Written, still local (not uploaded).
    assert!(!step(&mut mem, &mut judge, |tx| extent_map::put(
        tx,
        7,
        &ext(0, 2, 200, 0)
    )));
    assert_eq!(judge.first_local(), Some((7, 0)));
    // Another file, already in the bucket: inode 7 still holds the state back.
    assert!(!step(&mut mem, &mut judge, |tx| extent_map::put(
        tx,
        9,
        &ext(0, 8, VBLOCK, REMOTE)
    )));
    // The uploader repoints inode 7's extent to an object.
    let remote = ext(0, 2, VBLOCK + 8, REMOTE);
    assert!(step(&mut mem, &mut judge, |tx| extent_map::put(
        tx, 7, &remote
    )));
    assert_eq!(judge.first_local(), None);
    // A new local write, then the file is removed: accepted again.
    assert!(!step(&mut mem, &mut judge, |tx| extent_map::put(
        tx,
        11,
        &ext(3, 1, 300, 0)
    )));
    assert!(step(&mut mem, &mut judge, |tx| extent_map::remove(
        tx, 11, 3
    )));
}

#[test]
fn only_commits_that_write_the_extent_tree_cost_a_scan() {
    let mut mem = MemRegion::new(HEAP_LEN);
    let mut judge = LocalData::new();
    // Enough extents for a tree of many leaves and an internal root, all in the bucket.
    let n = 3000u64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        mem.commit(|tx| {
            for &i in chunk {
                extent_map::put(tx, 100 + i, &ext(0, 1, VBLOCK + i, REMOTE))?;
            }
            Ok(())
        })
        .unwrap();
    }
    let whole = 0..mem.bytes().len();
    assert!(judge
        .all_remote(mem.bytes(), std::slice::from_ref(&whole))
        .unwrap());
    assert_eq!(judge.scans(), 1);
    // A thousand commits elsewhere in the region (the inode bitmap): no rescan.
    for i in 0..1000u64 {
        let ok = step(&mut mem, &mut judge, |tx| {
            pod::put(tx, BITMAP_AT + (i % 512) * 8, &i)
        });
        assert!(ok);
    }
    assert_eq!(
        judge.scans(),
        1,
        "commits that leave the tree alone scan nothing"
    );
    // One local write among them: found, at the cost of one scan.
    assert!(!step(&mut mem, &mut judge, |tx| extent_map::put(
        tx,
        100 + n / 2,
        &ext(0, 1, 7, 0)
    )));
    assert_eq!(judge.scans(), 2);
    assert_eq!(judge.first_local(), Some((100 + n / 2, 0)));
    assert!(!step(&mut mem, &mut judge, |tx| pod::put(
        tx, BITMAP_AT, &1u64
    )));
    assert_eq!(judge.scans(), 2);
}
