//! Property tests of the allocation bitmaps (`store::bitmap`) against a `Vec<bool>`: runs set
//! and cleared across byte and word boundaries, at the first and last bits, of bitmaps whose
//! length is or is not a multiple of 64 (the padding bits of the last word set or clear);
//! `find_clear_run` agrees with a plain scan of the model, `test` with the model, and
//! `set_run` refuses exactly the runs holding a bit that already has the value (a double
//! allocation or free), changing nothing. Some changes run in aborted transactions; each case
//! ends with a crash and recovery.
mod common;

use common::{cases, MemRegion, BITMAP_AT, BITMAP_BYTES};
use proptest::prelude::*;
use rvmfs::store::bitmap;
use rvmfs::FsError;

/// A bit position, resolved against the bitmap's length `n`.
#[derive(Clone, Copy, Debug)]
enum Pos {
    Any(u64),
    /// Near a word boundary: `word * 64 + d`.
    Word(u64, i8),
    /// Near a byte boundary: `byte * 8 + d`.
    Byte(u64, i8),
    First,
    Last,
    /// At or past the end (only goals may be there: they wrap to 0).
    Beyond(u8),
}

impl Pos {
    fn at(self, n: u64) -> u64 {
        let near = |base: u64, d: i8| base.saturating_add_signed(d as i64) % n;
        match self {
            Pos::Any(p) => p % n,
            Pos::Word(w, d) => near(w * 64, d),
            Pos::Byte(b, d) => near(b * 8, d),
            Pos::First => 0,
            Pos::Last => n - 1,
            Pos::Beyond(_) => n - 1,
        }
    }
    /// As a goal of `find_clear_run`, where a position past the end is allowed.
    fn goal(self, n: u64) -> u64 {
        match self {
            Pos::Beyond(d) => n + d as u64,
            p => p.at(n),
        }
    }
}

fn pos() -> impl Strategy<Value = Pos> {
    let words = BITMAP_BYTES / 8;
    prop_oneof![
        3 => any::<u64>().prop_map(Pos::Any),
        3 => (0..=words, -2i8..=2).prop_map(|(w, d)| Pos::Word(w, d)),
        2 => (0..=BITMAP_BYTES, -2i8..=2).prop_map(|(b, d)| Pos::Byte(b, d)),
        1 => Just(Pos::First),
        1 => Just(Pos::Last),
        1 => any::<u8>().prop_map(Pos::Beyond),
    ]
}

/// A run length: tiny, about a word or two, or anything (clamped to the bitmap's end, so
/// mostly a run to the last bit).
fn len() -> impl Strategy<Value = u64> {
    prop_oneof![2 => 1u64..=3, 3 => 1u64..=140, 1 => any::<u64>()]
}

#[derive(Clone, Debug)]
enum Op {
    /// `set_run(start, len, value)` of any run: refused if a bit already has the value.
    Run {
        start: Pos,
        len: u64,
        value: bool,
    },
    /// Allocate as the filesystem does: `find_clear_run`, then set what it found.
    Alloc {
        goal: Pos,
        want: u64,
    },
    /// Clear the set bits from `start` on (at most `len`): a valid free.
    Free {
        start: Pos,
        len: u64,
    },
    Find {
        goal: Pos,
        want: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let want = || prop_oneof![Just(1u64), 1u64..=140, Just(u64::MAX)];
    prop_oneof![
        3 => (pos(), len(), any::<bool>()).prop_map(|(start, len, value)| Op::Run { start, len, value }),
        3 => (pos(), want()).prop_map(|(goal, want)| Op::Alloc { goal, want }),
        2 => (pos(), len()).prop_map(|(start, len)| Op::Free { start, len }),
        2 => (pos(), want()).prop_map(|(goal, want)| Op::Find { goal, want }),
    ]
}

/// Bitmap length: anything that fits the area, near a multiple of 64, or small.
fn nbits() -> impl Strategy<Value = u64> {
    let max = BITMAP_BYTES * 8;
    prop_oneof![
        2 => 1..=max,
        2 => (1..=max / 64, -1i64..=1).prop_map(move |(w, d)| (w as i64 * 64 + d).clamp(1, max as i64) as u64),
        1 => 1u64..=200,
    ]
}

/// What `find_clear_run` should return, by a plain scan of the model.
fn find_model(m: &[bool], goal: u64, want: u64) -> Option<(u64, u64)> {
    let n = m.len() as u64;
    let goal = if goal >= n { 0 } else { goal };
    let start = (goal..n).chain(0..goal).find(|&i| !m[i as usize])?;
    let mut len = 1;
    while len < want && start + len < n && !m[(start + len) as usize] {
        len += 1;
    }
    Some((start, len))
}

/// The bitmap area's bytes for model `m`, padding bits of the last word set if `pad`.
fn render(m: &[bool], pad: bool) -> Vec<u8> {
    let mut out = vec![0u8; BITMAP_BYTES as usize];
    let words_end = m.len().div_ceil(64) * 64;
    for i in 0..words_end {
        if m.get(i).copied().unwrap_or(pad) {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// The bitmap equals the model: its bytes (padding included), and `test` at `probes` and at
/// spread-out positions.
fn check(bytes: &[u8], m: &[bool], pad: bool, probes: &[u64]) -> Result<(), TestCaseError> {
    let area = &bytes[BITMAP_AT as usize..(BITMAP_AT + BITMAP_BYTES) as usize];
    let want = render(m, pad);
    let differ = area.iter().zip(&want).position(|(a, b)| a != b);
    prop_assert!(
        differ.is_none(),
        "bitmap byte {:?} differs from the model",
        differ
    );
    let n = m.len() as u64;
    let spread = (0..n).step_by((n / 61).max(1) as usize);
    for i in probes.iter().copied().chain(spread).chain([0, n - 1]) {
        prop_assert_eq!(
            bitmap::test(bytes, BITMAP_AT, i)?,
            m[i as usize],
            "bit {}",
            i
        );
    }
    Ok(())
}

/// `set_run` of [start, start+len) to `value`, committed or aborted; `Ok(true)` if it was
/// accepted. The model changes only when it was and was committed.
fn set_run(
    mem: &mut MemRegion,
    m: &mut [bool],
    (start, len, value): (u64, u64, bool),
    abort: bool,
) -> Result<bool, TestCaseError> {
    let run = start as usize..(start + len) as usize;
    let conflict = m[run.clone()].contains(&value);
    let f = |tx: &mut rvm_core::Transaction<'_>| bitmap::set_run(tx, BITMAP_AT, start, len, value);
    let got = if abort { mem.aborted(f) } else { mem.commit(f) };
    match got {
        Ok(()) => prop_assert!(
            !conflict,
            "set_run({}, {}, {}) accepted a double change",
            start,
            len,
            value
        ),
        Err(FsError::Corrupt(_)) => {
            prop_assert!(conflict, "set_run({}, {}, {}) refused", start, len, value)
        }
        Err(e) => return Err(TestCaseError::fail(format!("set_run: {e}"))),
    }
    if !conflict && !abort {
        m[run].fill(value);
    }
    Ok(!conflict)
}

/// Run one op; returns the positions it touched (probes for `check`).
fn step(
    mem: &mut MemRegion,
    m: &mut [bool],
    op: &Op,
    abort: bool,
) -> Result<Vec<u64>, TestCaseError> {
    let n = m.len() as u64;
    match *op {
        Op::Run { start, len, value } => {
            let start = start.at(n);
            let len = len.clamp(1, n - start);
            set_run(mem, m, (start, len, value), abort)?;
            Ok(vec![start, start + len - 1])
        }
        Op::Alloc { goal, want } => {
            let goal = goal.goal(n);
            let found = bitmap::find_clear_run(mem.bytes(), BITMAP_AT, n, goal, want)?;
            prop_assert_eq!(
                found,
                find_model(m, goal, want),
                "find_clear_run(goal {}, want {})",
                goal,
                want
            );
            if let Some((start, len)) = found {
                prop_assert!(
                    set_run(mem, m, (start, len, true), abort)?,
                    "found run not clear"
                );
                return Ok(vec![start, start + len - 1]);
            }
            Ok(vec![])
        }
        Op::Free { start, len } => {
            let start = start.at(n);
            let Some(first) = (start..n).find(|&i| m[i as usize]) else {
                return Ok(vec![]);
            };
            let run = (first..n)
                .take_while(|&i| m[i as usize])
                .take(len.max(1) as usize)
                .count() as u64;
            prop_assert!(
                set_run(mem, m, (first, run, false), abort)?,
                "a free of set bits refused"
            );
            Ok(vec![first, first + run - 1])
        }
        Op::Find { goal, want } => {
            let goal = goal.goal(n);
            let found = bitmap::find_clear_run(mem.bytes(), BITMAP_AT, n, goal, want)?;
            prop_assert_eq!(
                found,
                find_model(m, goal, want),
                "find_clear_run(goal {}, want {})",
                goal,
                want
            );
            Ok(found.map_or(vec![], |(s, l)| vec![s, s + l - 1]))
        }
    }
}

fn run_case(n: u64, pad: bool, ops: &[(Op, bool)]) -> Result<(), TestCaseError> {
    let mut mem = MemRegion::new(4096);
    let mut m = vec![false; n as usize];
    if pad && !n.is_multiple_of(64) {
        // Set the padding bits of the last word: the bitmap must ignore them.
        let bytes = render(&m, pad);
        let from = (n / 8) as usize;
        let to = n.div_ceil(64) as usize * 8;
        mem.commit(|tx| {
            rvmfs::layout::pod::put_bytes(tx, BITMAP_AT + from as u64, &bytes[from..to])
        })?;
    }
    let pad = pad && !n.is_multiple_of(64);
    check(mem.bytes(), &m, pad, &[])?;
    for (op, abort) in ops {
        let probes = step(&mut mem, &mut m, op, *abort)?;
        check(mem.bytes(), &m, pad, &probes)?;
    }
    let mem = mem.reopen();
    check(mem.bytes(), &m, pad, &[])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(96), ..ProptestConfig::default() })]

    #[test]
    fn bitmap_matches_model(
        n in nbits(),
        pad: bool,
        ops in proptest::collection::vec((op(), proptest::bool::weighted(0.125)), 1..80),
    ) {
        run_case(n, pad, &ops)?;
    }
}

/// A full bitmap has no clear run from any goal; clearing its last bit makes that bit the
/// answer from every goal (wrapping), and clearing its first makes bit 0 the answer from any
/// goal past the last bit.
#[test]
fn full_bitmap_and_its_ends() -> Result<(), TestCaseError> {
    for n in [1u64, 7, 8, 9, 63, 64, 65, 127, 128, 129, BITMAP_BYTES * 8] {
        let full = (Pos::First, u64::MAX, true);
        let ops = [
            (
                Op::Run {
                    start: full.0,
                    len: full.1,
                    value: full.2,
                },
                false,
            ),
            (
                Op::Find {
                    goal: Pos::First,
                    want: 1,
                },
                false,
            ),
            (
                Op::Find {
                    goal: Pos::Beyond(3),
                    want: 1,
                },
                false,
            ),
            (
                Op::Free {
                    start: Pos::Last,
                    len: 1,
                },
                false,
            ),
            (
                Op::Find {
                    goal: Pos::First,
                    want: u64::MAX,
                },
                false,
            ),
            (
                Op::Find {
                    goal: Pos::Word(0, 1),
                    want: 5,
                },
                false,
            ),
            (
                Op::Free {
                    start: Pos::First,
                    len: 1,
                },
                false,
            ),
            (
                Op::Find {
                    goal: Pos::Beyond(0),
                    want: 2,
                },
                false,
            ),
            (
                Op::Alloc {
                    goal: Pos::Last,
                    want: 2,
                },
                false,
            ),
            (
                Op::Alloc {
                    goal: Pos::Last,
                    want: 2,
                },
                false,
            ),
            (
                Op::Alloc {
                    goal: Pos::Last,
                    want: 2,
                },
                false,
            ),
        ];
        for pad in [false, true] {
            run_case(n, pad, &ops)?;
        }
    }
    Ok(())
}
