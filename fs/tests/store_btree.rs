//! Property tests of the region's B+tree (`store::btree`) against `std::collections::BTreeMap`:
//! random inserts, overwrites, removes, lookups, seeks and range scans, with keys drawn so that
//! leaves split and empty (a small key space, long ascending and descending runs, the extreme
//! keys). After every step the tree must equal the model and keep its shape invariants
//! (`Tree::check_invariants`), and every node the heap handed out must be either in the tree
//! or on the 4 KiB free list, never both. Some steps run in an aborted transaction and must
//! leave the region byte for byte as it was; each case ends with a crash and recovery, and
//! must read back what it committed. Every case runs twice: with sorted leaves (an image
//! without `slotted_leaves`) and with slotted ones, whose leaves must all be slotted.
mod common;

use common::{cases, MemRegion};
use proptest::prelude::*;
use rvmfs::layout::features::INCOMPAT_SLOTTED_LEAVES;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::field;
use rvmfs::store::btree::{Key, Tree, Value, INTERNAL_CAPACITY, LEAF_CAPACITY};
use rvmfs::store::{heap, superblock};
use rvmfs::FsResult;
use std::collections::{BTreeMap, HashSet};

type Model = BTreeMap<Key, Value>;

const MAX_KEY: Key = (u64::MAX, u64::MAX);
/// Bytes of a B+tree node (a heap chunk of this size).
const NODE: u64 = 4096;
/// Heap for the tree: room for 4096 nodes (at least 200000 entries).
const HEAP_LEN: u64 = 16 << 20;

/// One step of a case.
#[derive(Clone, Debug)]
enum Op {
    Insert(Key, Value),
    Remove(Key),
    Get(Key),
    Seek(Key),
    /// Scan [from, to], stopping after `limit` entries.
    Scan {
        from: Key,
        to: Key,
        limit: usize,
    },
    /// Insert `len` keys `(start.0, start.1 ± i * step)`, ascending or descending.
    InsertRun {
        start: Key,
        len: u64,
        step: u64,
        down: bool,
    },
    /// Remove the keys of such a run.
    RemoveRun {
        start: Key,
        len: u64,
        step: u64,
        down: bool,
    },
    /// Remove every key of the model, in an order shuffled by `seed`.
    Clear {
        seed: u64,
    },
}

/// A key: mostly from a small space (collisions, dense leaves), sometimes the extremes.
fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        12 => (0u64..3, 0u64..600),
        1 => Just((0, 0)),
        1 => Just(MAX_KEY),
        1 => (Just(u64::MAX), u64::MAX - 50..=u64::MAX),
        1 => any::<Key>(),
    ]
}

fn op(max_run: u64) -> impl Strategy<Value = Op> {
    let run = || (key(), 1..=max_run, 1u64..4, any::<bool>());
    prop_oneof![
        6 => (key(), any::<Value>()).prop_map(|(k, v)| Op::Insert(k, v)),
        4 => key().prop_map(Op::Remove),
        2 => key().prop_map(Op::Get),
        2 => key().prop_map(Op::Seek),
        2 => (key(), key(), 1usize..300).prop_map(|(a, b, limit)| Op::Scan {
            from: a.min(b),
            to: a.max(b),
            limit
        }),
        3 => run().prop_map(|(start, len, step, down)| Op::InsertRun { start, len, step, down }),
        2 => run().prop_map(|(start, len, step, down)| Op::RemoveRun { start, len, step, down }),
        1 => any::<u64>().prop_map(|seed| Op::Clear { seed }),
    ]
}

/// The keys of a run, stopping at the end of the key space.
fn run_keys(start: Key, len: u64, step: u64, down: bool) -> Vec<Key> {
    (0..len)
        .map_while(|i| {
            let d = i.checked_mul(step)?;
            let low = if down {
                start.1.checked_sub(d)
            } else {
                start.1.checked_add(d)
            }?;
            Some((start.0, low))
        })
        .collect()
}

/// The model's keys in an order shuffled by `seed` (a small xorshift Fisher-Yates).
fn shuffled(model: &Model, seed: u64) -> Vec<Key> {
    let mut keys: Vec<Key> = model.keys().copied().collect();
    let mut x = seed | 1;
    for i in (1..keys.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys.swap(i, (x % (i as u64 + 1)) as usize);
    }
    keys
}

/// A change: puts (`Some`) and removes (`None`), applied in order.
type Change = Vec<(Key, Option<Value>)>;

/// The change an op makes (empty for a read).
fn change_of(op: &Op, model: &Model) -> Change {
    match op {
        Op::Insert(k, v) => vec![(*k, Some(*v))],
        Op::Remove(k) => vec![(*k, None)],
        Op::InsertRun {
            start,
            len,
            step,
            down,
        } => run_keys(*start, *len, *step, *down)
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, Some([k.1, i as u64, *len])))
            .collect(),
        Op::RemoveRun {
            start,
            len,
            step,
            down,
        } => run_keys(*start, *len, *step, *down)
            .into_iter()
            .map(|k| (k, None))
            .collect(),
        Op::Clear { seed } => shuffled(model, *seed)
            .into_iter()
            .map(|k| (k, None))
            .collect(),
        Op::Get(_) | Op::Seek(_) | Op::Scan { .. } => Vec::new(),
    }
}

/// Apply `change` to the tree inside `tx`; returns what each insert or remove returned.
fn apply(
    tree: Tree,
    tx: &mut rvm_core::Transaction<'_>,
    change: &Change,
) -> FsResult<Vec<Option<Value>>> {
    change
        .iter()
        .map(|&(k, v)| match v {
            Some(v) => tree.insert(tx, k, v),
            None => tree.remove(tx, k),
        })
        .collect()
}

/// Apply `change` to a copy of the model; returns it and what each step replaced.
fn apply_model(model: &Model, change: &Change) -> (Model, Vec<Option<Value>>) {
    let mut m = model.clone();
    let old = change
        .iter()
        .map(|&(k, v)| match v {
            Some(v) => m.insert(k, v),
            None => m.remove(&k),
        })
        .collect();
    (m, old)
}

/// Run one op on tree and model, committed or (`abort`) in an aborted transaction.
fn step(
    mem: &mut MemRegion,
    tree: Tree,
    model: &mut Model,
    op: &Op,
    abort: bool,
) -> Result<(), TestCaseError> {
    let bytes = mem.bytes();
    match *op {
        Op::Get(k) => prop_assert_eq!(tree.get(bytes, k)?, model.get(&k).copied()),
        Op::Seek(k) => prop_assert_eq!(
            tree.seek(bytes, k)?,
            model.range(k..).next().map(|(k, v)| (*k, *v))
        ),
        Op::Scan { from, to, limit } => {
            let mut got = Vec::new();
            tree.scan(bytes, from, to, |k, v| {
                got.push((k, v));
                Ok(got.len() < limit)
            })?;
            let want: Vec<_> = model
                .range(from..=to)
                .take(limit)
                .map(|(k, v)| (*k, *v))
                .collect();
            prop_assert_eq!(got, want);
        }
        _ => {
            let change = change_of(op, model);
            let (after, want_old) = apply_model(model, &change);
            if abort {
                let before = mem.bytes().to_vec();
                let old = mem.aborted(|tx| apply(tree, tx, &change))?;
                prop_assert_eq!(old, want_old);
                prop_assert!(mem.bytes() == &before[..], "abort left the region changed");
            } else {
                let old = mem.commit(|tx| apply(tree, tx, &change))?;
                prop_assert_eq!(old, want_old);
                *model = after;
            }
        }
    }
    Ok(())
}

/// The chunks on the heap's free list of `size`-byte chunks, walked with a cycle check.
fn free_list(bytes: &[u8], size: u64) -> Result<Vec<u64>, TestCaseError> {
    let (class, _) = heap::class_of(size).expect("a heap size class");
    let sb = superblock(bytes)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut at = sb.heap_free[class];
    while at != 0 {
        prop_assert!(seen.insert(at), "free list {} has a cycle at {}", class, at);
        out.push(at);
        at = pod::get(bytes, at)?;
    }
    Ok(out)
}

/// Every check of a sound tree equal to `model`, probing lookups and seeks at `probes`, some
/// of the model's keys and their neighbours.
fn check(bytes: &[u8], tree: Tree, model: &Model, probes: &[Key]) -> Result<(), TestCaseError> {
    let problems = tree.check_invariants(bytes)?;
    prop_assert!(problems.is_empty(), "tree unsound: {:?}", problems);
    let mut got = Vec::new();
    tree.scan(bytes, (0, 0), MAX_KEY, |k, v| {
        got.push((k, v));
        Ok(true)
    })?;
    let want: Vec<(Key, Value)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    let differ = got.iter().zip(&want).position(|(g, w)| g != w);
    prop_assert!(
        got == want,
        "full scan: {} entries, model {}; first difference at {:?}",
        got.len(),
        want.len(),
        differ
    );
    let stride = model.len() / 16 + 1;
    let sampled = model.keys().step_by(stride).copied();
    for k in probes.iter().copied().chain(sampled) {
        let near = [(k.0, k.1.wrapping_sub(1)), k, (k.0, k.1.wrapping_add(1))];
        for k in near {
            prop_assert_eq!(tree.get(bytes, k)?, model.get(&k).copied(), "get {:?}", k);
            let want = model.range(k..).next().map(|(k, v)| (*k, *v));
            prop_assert_eq!(tree.seek(bytes, k)?, want, "seek {:?}", k);
        }
    }
    check_nodes(bytes, tree, model)
}

/// Heap accounting: the tree's nodes and the 4 KiB free list are disjoint and together are
/// every chunk the heap handed out (the tree is the heap's only user here).
fn check_nodes(bytes: &[u8], tree: Tree, model: &Model) -> Result<(), TestCaseError> {
    let sb = superblock(bytes)?;
    let nodes = tree.nodes(bytes)?;
    let free = free_list(bytes, NODE)?;
    let handed_out = (sb.heap_top - sb.heap_start) / NODE;
    prop_assert_eq!(
        nodes.len() as u64 + free.len() as u64,
        handed_out,
        "a node leaked"
    );
    let all: HashSet<u64> = nodes.iter().chain(&free).copied().collect();
    prop_assert_eq!(
        all.len(),
        nodes.len() + free.len(),
        "a node is both in the tree and free"
    );
    for &at in &all {
        prop_assert!(
            at >= sb.heap_start && at + NODE <= sb.heap_top && at % NODE == 0,
            "node {}",
            at
        );
    }
    prop_assert_eq!(nodes.is_empty(), model.is_empty());
    // A leaf holds at most LEAF_CAPACITY entries: the tree has at least that many leaves.
    prop_assert!(nodes.len() >= model.len().div_ceil(LEAF_CAPACITY));
    // Every leaf in the image's form (node kind: docs/format.md section 6).
    let slotted = sb.features.incompat & INCOMPAT_SLOTTED_LEAVES != 0;
    for &at in &nodes {
        let kind: u16 = pod::get(bytes, at)?;
        let want = if slotted { [2, 3] } else { [2, 1] };
        prop_assert!(want.contains(&kind), "node {} of kind {}", at, kind);
    }
    Ok(())
}

/// Probes for an op: the keys it names.
fn probes(op: &Op) -> Vec<Key> {
    match *op {
        Op::Insert(k, _) | Op::Remove(k) | Op::Get(k) | Op::Seek(k) => vec![k],
        Op::Scan { from, to, .. } => vec![from, to],
        Op::InsertRun { start, .. } | Op::RemoveRun { start, .. } => vec![start],
        Op::Clear { .. } => vec![],
    }
}

/// Run `ops` on a fresh tree with sorted leaves, then on one with slotted leaves.
fn run_case(ops: &[(Op, bool)]) -> Result<(), TestCaseError> {
    run_form(ops, 0)?;
    run_form(ops, INCOMPAT_SLOTTED_LEAVES)
}

/// Run `ops` on a fresh tree in an image of incompat features `incompat`, checking after
/// each; then crash, recover and check again; then remove everything and check that every
/// node is back on the free list.
fn run_form(ops: &[(Op, bool)], incompat: u32) -> Result<(), TestCaseError> {
    let mut mem = MemRegion::with_incompat(HEAP_LEN, incompat);
    let tree = Tree(field::DENTRY_ROOT);
    let mut model = Model::new();
    for (op, abort) in ops {
        step(&mut mem, tree, &mut model, op, *abort)?;
        check(mem.bytes(), tree, &model, &probes(op))?;
    }
    let mut mem = mem.reopen();
    check(mem.bytes(), tree, &model, &[])?;
    prop_assert_eq!(
        tree.salvage(mem.bytes())?,
        model.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()
    );
    step(&mut mem, tree, &mut model, &Op::Clear { seed: 7 }, false)?;
    check(mem.bytes(), tree, &model, &[])?;
    prop_assert_eq!(pod::get::<u64>(mem.bytes(), field::DENTRY_ROOT)?, 0);
    Ok(())
}

/// An op, and whether to run it in an aborted transaction (one in eight).
fn ops(max_run: u64, n: usize) -> impl Strategy<Value = Vec<(Op, bool)>> {
    proptest::collection::vec((op(max_run), proptest::bool::weighted(0.125)), 1..n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// Small and medium trees (up to a few thousand entries, depth 2): every kind of op.
    #[test]
    fn tree_matches_model(ops in ops(700, 40)) {
        run_case(&ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48) / 8 + 1, ..ProptestConfig::default() })]

    /// Deep trees: long runs (thousands of keys, over a wide key space) split internal nodes,
    /// then removes and clears empty them again.
    #[test]
    fn deep_tree_matches_model(
        ops in proptest::collection::vec(
            (prop_oneof![
                3 => ((0u64..2, 0u64..40_000), 1000u64..6000, 1u64..3, any::<bool>())
                    .prop_map(|(start, len, step, down)| Op::InsertRun { start, len, step, down }),
                1 => ((0u64..2, 0u64..40_000), 1000u64..6000, 1u64..3, any::<bool>())
                    .prop_map(|(start, len, step, down)| Op::RemoveRun { start, len, step, down }),
                2 => op(700),
            ], proptest::bool::weighted(0.1)),
            1..16,
        )
    ) {
        run_case(&ops)?;
    }
}

/// Long runs in both directions build three levels: more keys than a root of full leaves
/// can hold split an internal node.
#[test]
fn long_runs_build_three_levels() -> Result<(), TestCaseError> {
    let n = ((INTERNAL_CAPACITY + 1) * LEAF_CAPACITY + 1) as u64;
    for down in [false, true] {
        let start = (1, if down { n } else { 0 });
        run_case(&[(
            Op::InsertRun {
                start,
                len: n,
                step: 1,
                down,
            },
            false,
        )])?;
    }
    Ok(())
}
