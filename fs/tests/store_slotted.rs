//! Slotted B+tree leaves (`slotted_leaves`, docs/format.md section 6) through the library:
//! an insert logs the new entry and the shifted slots, not the shifted tail of a sorted leaf
//! (counted in redo-log bytes, in the same run as a sorted tree); and a leaf whose slots are
//! damaged (out of its entries, two naming one entry, out of key order) is refused by every
//! read and change with a corrupt-metadata error, never followed, reported by `verify` (fsck's
//! pass 0), and its entries are all saved by `salvage` and a rebuild.
mod common;

use common::MemRegion;
use rvmfs::layout::features::INCOMPAT_SLOTTED_LEAVES;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::field;
use rvmfs::store::btree::{Key, Tree, Value, SLOTTED_LEAF_CAPACITY};
use rvmfs::FsError;
use std::collections::BTreeMap;

const TREE: Tree = Tree(field::DENTRY_ROOT);
const HEAP_LEN: u64 = 16 << 20;
const MAX_KEY: Key = (u64::MAX, u64::MAX);

/// `n` distinct keys in a scattered order (an xorshift sequence, as name hashes come).
fn keys(n: usize) -> Vec<Key> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (1, x)
        })
        .collect()
}

fn value(k: Key) -> Value {
    [k.1, !k.1, 7]
}

/// Redo-log bytes of the records committed so far (before any merge).
fn logged(mem: &MemRegion) -> u64 {
    let s = mem.rvm.stats();
    s.bytes_logged + s.bytes_saved_inter
}

/// Insert `keys` one transaction each into a fresh tree of the form `incompat` selects;
/// returns the region and the redo-log bytes per insert of the second half (a tree of many
/// leaves, split ones among them).
fn grow(incompat: u32, keys: &[Key]) -> (MemRegion, f64) {
    let mut mem = MemRegion::with_incompat(HEAP_LEN, incompat);
    let half = keys.len() / 2;
    let mut before = 0;
    for (i, &k) in keys.iter().enumerate() {
        if i == half {
            before = logged(&mem);
        }
        mem.commit(|tx| TREE.insert(tx, k, value(k))).unwrap();
    }
    let per = (logged(&mem) - before) as f64 / (keys.len() - half) as f64;
    (mem, per)
}

#[test]
fn an_insert_logs_slots_not_the_tail_of_the_leaf() {
    let keys = keys(20_000);
    let (_, sorted) = grow(0, &keys);
    let (mem, slotted) = grow(INCOMPAT_SLOTTED_LEAVES, &keys);
    eprintln!("redo-log bytes per insert at 10,000..20,000 keys: sorted {sorted:.0}, slotted {slotted:.0}");
    // A sorted insert shifts half a leaf of 40-byte entries on average; a slotted one writes
    // one entry and shifts 2-byte slots: several times fewer bytes.
    assert!(
        slotted * 3.0 < sorted,
        "slotted leaves log {slotted:.0} bytes per insert, sorted {sorted:.0}"
    );
    let problems = TREE.check_invariants(mem.bytes()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    for &k in keys.iter().step_by(37) {
        assert_eq!(TREE.get(mem.bytes(), k).unwrap(), Some(value(k)));
    }
}

/// A slotted tree of a few leaves, its model, and its leftmost leaf's region offset.
fn small_tree() -> (MemRegion, BTreeMap<Key, Value>, u64) {
    let keys = keys(SLOTTED_LEAF_CAPACITY * 4);
    let (mem, _) = grow(INCOMPAT_SLOTTED_LEAVES, &keys);
    let model = keys.iter().map(|&k| (k, value(k))).collect();
    let root: u64 = pod::get(mem.bytes(), field::DENTRY_ROOT).unwrap();
    let leaf: u64 = pod::get(mem.bytes(), root + 8).unwrap(); // child 0
    let kind: u16 = pod::get(mem.bytes(), leaf).unwrap();
    assert_eq!(kind, 3, "the leftmost leaf is slotted");
    (mem, model, leaf)
}

/// Overwrite slot `i` of the leaf at `leaf` with `v` (committed, as damage on disk would be).
fn put_slot(mem: &mut MemRegion, leaf: u64, i: u64, v: u16) {
    mem.commit(|tx| pod::put_bytes(tx, leaf + 16 + 2 * i, &v.to_le_bytes()))
        .unwrap();
}

fn slot(mem: &MemRegion, leaf: u64, i: u64) -> u16 {
    pod::get(mem.bytes(), leaf + 16 + 2 * i).unwrap()
}

fn is_corrupt<T: std::fmt::Debug>(r: Result<T, FsError>) -> bool {
    matches!(r, Err(FsError::Corrupt(_)))
}

/// After damage, what fsck relies on: `verify` names the damage (`want` in some message),
/// `salvage` still returns every entry, a rebuild makes a sound tree holding all of them.
fn salvaged_whole(mut mem: MemRegion, model: &BTreeMap<Key, Value>, want: &str) {
    let problems = TREE.verify(mem.bytes()).unwrap();
    assert!(
        problems.iter().any(|p| p.contains(want)),
        "verify: {problems:?}, wanted {want:?}"
    );
    let saved = TREE.salvage(mem.bytes()).unwrap();
    let all: Vec<(Key, Value)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(saved, all, "salvage lost entries");
    let nodes = TREE.reachable_nodes(mem.bytes()).unwrap();
    mem.commit(|tx| TREE.rebuild(tx, &nodes, &saved)).unwrap();
    assert!(TREE.check_invariants(mem.bytes()).unwrap().is_empty());
    let mut got = Vec::new();
    TREE.scan(mem.bytes(), (0, 0), MAX_KEY, |k, v| {
        got.push((k, v));
        Ok(true)
    })
    .unwrap();
    assert_eq!(got, all);
}

#[test]
fn damaged_slots_are_refused_and_salvaged() {
    // A slot past the node, inside the slot array, between entries, past the live entries
    // (entry j at 216 + 40 j, section 6).
    for n in 0..5 {
        let (mut mem, model, leaf) = small_tree();
        let count: u16 = pod::get(mem.bytes(), leaf + 2).unwrap();
        let bad = [u16::MAX, 4096, 20, 217, 216 + 40 * count][n];
        put_slot(&mut mem, leaf, 3, bad);
        let first = *model.keys().next().unwrap();
        assert!(is_corrupt(TREE.get(mem.bytes(), first)), "slot {bad}");
        assert!(is_corrupt(TREE.seek(mem.bytes(), (0, 0))), "slot {bad}");
        assert!(is_corrupt(mem.commit(|tx| TREE.insert(tx, (1, 0), [0; 3]))));
        assert!(is_corrupt(mem.commit(|tx| TREE.remove(tx, first))));
        salvaged_whole(mem, &model, "not the offset of one of its");
    }
    // Two slots naming one entry.
    let (mut mem, model, leaf) = small_tree();
    let s = slot(&mem, leaf, 0);
    put_slot(&mut mem, leaf, 1, s);
    assert!(is_corrupt(TREE.get(mem.bytes(), (1, 1))));
    salvaged_whole(mem, &model, "as an earlier slot does");
    // Two slots swapped: every slot is sound, the keys are out of order.
    let (mut mem, model, leaf) = small_tree();
    let (a, b) = (slot(&mem, leaf, 0), slot(&mem, leaf, 1));
    put_slot(&mut mem, leaf, 0, b);
    put_slot(&mut mem, leaf, 1, a);
    salvaged_whole(mem, &model, "keys out of order");
}

#[test]
fn a_slotted_leaf_without_the_feature_is_reported_and_rebuilt_sorted() {
    let (mut mem, model, _) = small_tree();
    mem.commit(|tx| pod::put(tx, field::FEATURES + 8, &0u32))
        .unwrap();
    salvaged_whole(mem, &model, "slotted in an image without slotted_leaves");
}
