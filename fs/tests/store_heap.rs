//! Property tests of the recoverable heap (`store::heap`, segregated fits after Coda's RDS):
//! random allocations of every size class and of sizes between classes, frees, frees outside
//! the heap, some in aborted transactions, against a model of the live chunks. After every
//! step: no two chunks (live or free) overlap, each lies inside the heap and is aligned, the
//! contents written into a live chunk survive, the free lists walk without a cycle and hold
//! as many chunks of their class as the model freed, and the live, free and never-allocated
//! bytes plus the alignment padding add up to the heap. Each case ends with a crash and
//! recovery, frees everything, and allocates every freed chunk again without growing the heap.
mod common;

use common::{cases, MemRegion};
use proptest::prelude::*;
use rvmfs::layout::pod;
use rvmfs::layout::superblock::HEAP_CLASSES;
use rvmfs::store::heap::{self, MAX_CHUNK, MIN_CHUNK};
use rvmfs::store::superblock;
use rvmfs::FsError;
use std::collections::HashSet;

/// A small heap, so that the 64 KiB class runs out (ENOSPC) within a case.
const HEAP_LEN: u64 = 512 << 10;

#[derive(Clone, Debug)]
enum Op {
    /// Allocate `size` bytes and fill them with a pattern from `fill`.
    Alloc { size: u64, fill: u8 },
    /// Free the live chunk `pick % live` (nothing when none is live).
    Free { pick: usize },
    /// Free an offset outside [heap_start, heap_top): must be refused as corruption.
    FreeOutside { pick: u64 },
}

/// A request size: exact classes, sizes between classes, 0, and too large.
fn size() -> impl Strategy<Value = u64> {
    let class = 0..HEAP_CLASSES;
    prop_oneof![
        4 => class.clone().prop_map(|c| MIN_CHUNK << c),
        4 => class.prop_flat_map(|c| (MIN_CHUNK << c) / 2 + 1..=MIN_CHUNK << c),
        2 => 0..=MIN_CHUNK,
        1 => MAX_CHUNK + 1..=3 * MAX_CHUNK,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (size(), any::<u8>()).prop_map(|(size, fill)| Op::Alloc { size, fill }),
        4 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => any::<u64>().prop_map(|pick| Op::FreeOutside { pick }),
    ]
}

/// A live chunk: offset, bytes asked for, chunk size, fill seed.
#[derive(Clone, Copy, Debug)]
struct Live {
    at: u64,
    size: u64,
    chunk: u64,
    fill: u8,
}

/// What the heap should look like.
#[derive(Clone, Debug, Default)]
struct Model {
    live: Vec<Live>,
    /// Chunks on each class's free list.
    free: [usize; HEAP_CLASSES],
    /// Bytes skipped to align bump allocations (never reusable).
    padding: u64,
    /// The bump pointer.
    top: u64,
}

/// The bytes written into a chunk of `len` bytes with seed `fill`.
fn pattern(fill: u8, len: u64) -> Vec<u8> {
    (0..len)
        .map(|j| fill.wrapping_add((j % 251) as u8))
        .collect()
}

/// The free list of `class`, walked with a cycle and bounds check.
fn free_list(bytes: &[u8], class: usize) -> Result<Vec<u64>, TestCaseError> {
    let sb = superblock(bytes)?;
    let chunk = MIN_CHUNK << class;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut at = sb.heap_free[class];
    while at != 0 {
        prop_assert!(seen.insert(at), "free list {} has a cycle at {}", class, at);
        prop_assert!(
            at >= sb.heap_start && at + chunk <= sb.heap_top,
            "free chunk {} of class {} outside the heap",
            at,
            class
        );
        out.push(at);
        at = pod::get(bytes, at)?;
    }
    Ok(out)
}

/// Every invariant of the heap against the model.
fn check(bytes: &[u8], model: &Model) -> Result<(), TestCaseError> {
    let sb = superblock(bytes)?;
    prop_assert_eq!(sb.heap_top, model.top, "bump pointer");
    prop_assert!(sb.heap_start <= sb.heap_top && sb.heap_top <= sb.heap_end);
    // (offset, chunk size, live?) of every chunk the heap handed out.
    let mut spans: Vec<(u64, u64, bool)> =
        model.live.iter().map(|l| (l.at, l.chunk, true)).collect();
    let mut free_bytes = 0;
    for class in 0..HEAP_CLASSES {
        let list = free_list(bytes, class)?;
        prop_assert_eq!(list.len(), model.free[class], "free list {} length", class);
        let chunk = MIN_CHUNK << class;
        free_bytes += chunk * list.len() as u64;
        spans.extend(list.into_iter().map(|at| (at, chunk, false)));
    }
    spans.sort_unstable();
    for &(at, chunk, _) in &spans {
        prop_assert!(
            at >= sb.heap_start && at + chunk <= sb.heap_top,
            "chunk {} outside",
            at
        );
        prop_assert_eq!(
            at % chunk.min(4096),
            0,
            "chunk {} of {} bytes misaligned",
            at,
            chunk
        );
    }
    for w in spans.windows(2) {
        prop_assert!(
            w[0].0 + w[0].1 <= w[1].0,
            "chunks overlap: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    for l in &model.live {
        let got = heap::load(bytes, l.at, l.size)?;
        prop_assert!(
            got == &pattern(l.fill, l.size)[..],
            "contents of {:?} changed",
            l
        );
    }
    let live_bytes: u64 = model.live.iter().map(|l| l.chunk).sum();
    let untouched = sb.heap_end - sb.heap_top;
    prop_assert_eq!(
        live_bytes + free_bytes + model.padding + untouched,
        sb.heap_end - sb.heap_start,
        "heap accounting"
    );
    Ok(())
}

/// Allocate `size` bytes, fill them; checks the address against segregated fits and the bump
/// pointer, and returns the model after the allocation.
fn alloc(
    mem: &mut MemRegion,
    model: &Model,
    size: u64,
    fill: u8,
    abort: bool,
) -> Result<Model, TestCaseError> {
    let sb = superblock(mem.bytes())?;
    let do_alloc = |tx: &mut rvm_core::Transaction<'_>| {
        let at = heap::alloc(tx, size)?;
        pod::put_bytes(tx, at, &pattern(fill, size))?;
        Ok(at)
    };
    let got = if abort {
        mem.aborted(do_alloc)
    } else {
        mem.commit(do_alloc)
    };
    let mut after = model.clone();
    let Some((class, chunk)) = heap::class_of(size) else {
        prop_assert!(
            matches!(got, Err(FsError::Errno(libc::E2BIG))),
            "{} bytes: {:?}",
            size,
            got
        );
        return Ok(model.clone());
    };
    let align = chunk.min(4096);
    let bump = model.top.div_ceil(align) * align;
    let at = match got {
        Ok(at) if model.free[class] > 0 => {
            // LIFO: the head of the class's list (any member would do for segregated fits).
            prop_assert_eq!(at, sb.heap_free[class], "not from free list {}", class);
            after.free[class] -= 1;
            at
        }
        Ok(at) => {
            prop_assert_eq!(at, bump, "bump allocation of {} bytes", chunk);
            after.padding += bump - model.top;
            after.top = bump + chunk;
            at
        }
        Err(FsError::Errno(libc::ENOSPC)) => {
            prop_assert!(
                model.free[class] == 0 && bump + chunk > sb.heap_end,
                "ENOSPC with room"
            );
            return Ok(model.clone());
        }
        Err(e) => return Err(TestCaseError::fail(format!("alloc of {size} bytes: {e}"))),
    };
    after.live.push(Live {
        at,
        size,
        chunk,
        fill,
    });
    Ok(if abort { model.clone() } else { after })
}

/// Free live chunk `i`.
fn free(mem: &mut MemRegion, model: &Model, i: usize, abort: bool) -> Result<Model, TestCaseError> {
    let l = model.live[i];
    let do_free = |tx: &mut rvm_core::Transaction<'_>| heap::free(tx, l.at, l.size);
    if abort {
        mem.aborted(do_free)?;
        return Ok(model.clone());
    }
    mem.commit(do_free)?;
    let mut after = model.clone();
    after.live.swap_remove(i);
    let (class, _) = heap::class_of(l.size).expect("a live chunk has a class");
    after.free[class] += 1;
    Ok(after)
}

/// Run one op (committed, or in an aborted transaction that must leave the region as it was).
fn step(mem: &mut MemRegion, model: &Model, op: &Op, abort: bool) -> Result<Model, TestCaseError> {
    let before = abort.then(|| mem.bytes().to_vec());
    let after = match *op {
        Op::Alloc { size, fill } => alloc(mem, model, size, fill, abort)?,
        Op::Free { pick } if !model.live.is_empty() => {
            free(mem, model, pick % model.live.len(), abort)?
        }
        Op::Free { .. } => model.clone(),
        Op::FreeOutside { pick } => {
            let sb = superblock(mem.bytes())?;
            let at = if pick % 2 == 0 {
                pick % sb.heap_start
            } else {
                sb.heap_top + pick % (mem.bytes().len() as u64 - sb.heap_top + 1)
            };
            let got = mem.commit(|tx| heap::free(tx, at, 64));
            prop_assert!(
                matches!(got, Err(FsError::Corrupt(_))),
                "free of {}: {:?}",
                at,
                got
            );
            model.clone()
        }
    };
    if let Some(before) = before {
        prop_assert!(mem.bytes() == &before[..], "abort left the region changed");
    }
    Ok(after)
}

fn run_case(ops: &[(Op, bool)], seed: u64) -> Result<(), TestCaseError> {
    let mut mem = MemRegion::new(HEAP_LEN);
    let mut model = Model {
        top: superblock(mem.bytes())?.heap_top,
        ..Model::default()
    };
    for (op, abort) in ops {
        model = step(&mut mem, &model, op, *abort)?;
        check(mem.bytes(), &model)?;
    }
    let mut mem = mem.reopen();
    check(mem.bytes(), &model)?;
    // Free everything, in an order from `seed`.
    let mut x = seed | 1;
    while !model.live.is_empty() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        model = free(
            &mut mem,
            &model,
            (x % model.live.len() as u64) as usize,
            false,
        )?;
        check(mem.bytes(), &model)?;
    }
    // Everything is back on the free lists: as many chunks of each class as were ever carved
    // from the bump pointer. Allocating them all again reuses them (`alloc` checks each one
    // comes from its free list and the bump pointer stays) and empties every list.
    let freed = model.free;
    for (class, &n) in freed.iter().enumerate() {
        for i in 0..n {
            model = alloc(&mut mem, &model, MIN_CHUNK << class, i as u8, false)?;
        }
    }
    prop_assert_eq!(model.free, [0; HEAP_CLASSES]);
    check(mem.bytes(), &model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn heap_matches_model(
        ops in proptest::collection::vec((op(), proptest::bool::weighted(0.125)), 1..120),
        seed: u64,
    ) {
        run_case(&ops, seed)?;
    }
}

/// Every class, from an empty heap: the first chunk of each lies at the aligned bump pointer.
#[test]
fn one_chunk_of_each_class() -> Result<(), TestCaseError> {
    let ops: Vec<(Op, bool)> = (0..HEAP_CLASSES)
        .map(|c| {
            (
                Op::Alloc {
                    size: MIN_CHUNK << c,
                    fill: c as u8,
                },
                false,
            )
        })
        .collect();
    run_case(&ops, 1)
}

/// The heap holds exactly `HEAP_LEN / 64 KiB` largest chunks; the next one is ENOSPC. Chunks
/// never split, so a 32-byte request fails too once the bump area is used up; a freed 64 KiB
/// chunk is reused by the next 64 KiB request.
#[test]
fn exhausting_the_heap_gives_enospc() -> Result<(), TestCaseError> {
    let mut mem = MemRegion::new(HEAP_LEN);
    let mut model = Model {
        top: superblock(mem.bytes())?.heap_top,
        ..Model::default()
    };
    let fits = HEAP_LEN / MAX_CHUNK;
    for fill in 0..=fits as u8 {
        let op = Op::Alloc {
            size: MAX_CHUNK,
            fill,
        };
        model = step(&mut mem, &model, &op, false)?;
        check(mem.bytes(), &model)?;
    }
    prop_assert_eq!(model.live.len() as u64, fits, "one chunk too many fit");
    let small = Op::Alloc { size: 1, fill: 9 };
    model = step(&mut mem, &model, &small, false)?;
    prop_assert_eq!(
        model.live.len() as u64,
        fits,
        "a 32-byte chunk fit in a full heap"
    );
    model = step(&mut mem, &model, &Op::Free { pick: 0 }, false)?;
    model = step(
        &mut mem,
        &model,
        &Op::Alloc {
            size: MAX_CHUNK,
            fill: 1,
        },
        false,
    )?;
    prop_assert_eq!(
        model.live.len() as u64,
        fits,
        "a freed 64 KiB chunk is reused"
    );
    check(mem.bytes(), &model)
}
