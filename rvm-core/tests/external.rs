//! External ranges (`Transaction::log_external`: data logging outside every region) under
//! crashes: recovery makes the external bytes of every recovered record visible in storage,
//! a torn or lost record drops them, truncation keeps them, and `ordered` on demand with
//! logged data needs one sync per flush. Half the slots are written deferred
//! (`Transaction::log_deferred`: in place only by truncation or recovery), so their bytes
//! are exactly those of the recovered commit point: a lost commit never shows, not even in
//! part.
mod common;

use std::path::Path;
use std::sync::Arc;

use common::{crash_during_recovery, must_survive, poisoned, Rng};
use proptest::prelude::*;
use rvm_core::sim::SimStorage;
use rvm_core::*;

const LOG: Area = Area {
    offset: 0,
    len: 16 * 1024,
};
const SEG: Area = Area {
    offset: 16 * 1024,
    len: 4096,
};
/// External slots: 16 x 64 bytes after the segment.
const EXT: u64 = 20 * 1024;
const SLOT: usize = 64;
const SLOTS: u64 = 16;
/// Slots from this one on are always written deferred (a deferred slot's later writes must
/// be deferred too while its record is live; writing it deferred always keeps that rule).
const DEFERRED_SLOTS: u64 = 8;
const SIZE: usize = 24 * 1024;

fn opts(spool: Option<&Path>) -> RvmOptions {
    RvmOptions {
        log: LOG,
        spool: spool.map(Path::to_path_buf),
        spool_size: 1 << 20,
        ordered: true,
        ..Default::default()
    }
}

fn init(st: &Arc<SimStorage>, o: &RvmOptions, threshold: u8) -> Result<Rvm> {
    let rvm = Rvm::initialize(st.clone(), o.clone())?;
    rvm.set_truncate_threshold(Some(threshold));
    rvm.set_ordered_on_demand(true);
    Ok(rvm)
}

/// Commit `i` (1-based) writes i at segment offset 0 and 64 bytes of `i as u8` to one slot.
struct Model {
    /// slot written by commit i (index i-1)
    slots: Vec<u64>,
    durable: usize,
    committed: usize,
}

fn workload(rvm: &Rvm, sim: &SimStorage, rng: &mut Rng, nops: usize, m: &mut Model) {
    let Ok(mut r) = rvm.map(SEG) else { return };
    for _ in 0..nops {
        if sim.is_crashed() {
            return;
        }
        match rng.below(8) {
            0 => {
                if rvm.flush().is_err() {
                    return;
                }
                m.durable = m.slots.len();
            }
            1 => {
                if rvm.truncate().is_err() {
                    return;
                }
            }
            _ => {
                let i = m.slots.len() as u64 + 1;
                let slot = rng.below(SLOTS);
                let mut t = r.begin_transaction(RestoreMode::Restore);
                t.write(0, &i.to_le_bytes()).unwrap();
                let (at, data) = (EXT + slot * SLOT as u64, [i as u8; SLOT]);
                let logged = match slot >= DEFERRED_SLOTS {
                    true => t.log_deferred(at, &data),
                    false => t.log_external(at, &data),
                };
                if logged.is_err() {
                    return;
                }
                let flush = rng.below(3) == 0;
                let res = t.end(if flush {
                    CommitMode::Flush
                } else {
                    CommitMode::NoFlush
                });
                m.slots.push(slot);
                if res.is_err() {
                    return;
                }
                m.committed = m.slots.len();
                if flush {
                    m.durable = m.committed;
                }
            }
        }
    }
}

/// The recovered state: the commit point (segment) and every slot whose last write is at or
/// before it holds that write; a deferred slot holds exactly its last write before it (or
/// zeros), whatever came after.
fn verify(
    sim: &Arc<SimStorage>,
    o: &RvmOptions,
    m: &Model,
    must: usize,
) -> std::result::Result<usize, TestCaseError> {
    let rvm = init(sim, o, 50).expect("recovery");
    let seg = rvm.map(SEG).unwrap().bytes().to_vec();
    let k = u64::from_le_bytes(seg[..8].try_into().unwrap()) as usize;
    prop_assert!(
        k >= must && k <= m.slots.len(),
        "commit point {k}, must be >= {must}"
    );
    let img = sim.image();
    for slot in 0..SLOTS {
        let last_before = m.slots[..k].iter().rposition(|&s| s == slot);
        let written_after = m.slots[k..].contains(&slot);
        let at = (EXT + slot * SLOT as u64) as usize;
        let got = &img[at..at + SLOT];
        let exact = !written_after || slot >= DEFERRED_SLOTS;
        match last_before {
            Some(j) if exact => prop_assert!(
                got.iter().all(|&b| b == (j + 1) as u8),
                "slot {slot}: want commit {} got {:?} (point {k})",
                j + 1,
                &got[..4]
            ),
            None if exact => prop_assert!(
                got.iter().all(|&b| b == 0),
                "slot {slot}: a lost commit's bytes show (point {k})"
            ),
            _ => {} // a later, unrecovered commit's in-place write may have survived
        }
    }
    Ok(k)
}

fn check(
    seed: u64,
    nops: usize,
    crash_at: u64,
    use_spool: bool,
    threshold: u8,
    recovery_crash: bool,
) -> std::result::Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("sim.spool");
    let o = opts(use_spool.then_some(spool.as_path()));
    let mut rng = Rng(seed | 1);
    let sim = Arc::new(SimStorage::new(SIZE));
    Rvm::create_log(&*sim, LOG).unwrap();
    sim.crash_after(Some(crash_at));
    let mut m = Model {
        slots: Vec::new(),
        durable: 0,
        committed: 0,
    };
    if let Ok(rvm) = init(&sim, &o, threshold) {
        workload(&rvm, &sim, &mut rng, nops, &mut m);
    } // dropping joins the background threads
      // As in crash.rs: a poisoned spool (checked after the drop) keeps only what was durable.
    if poisoned(&spool) {
        m.committed = m.durable;
    }
    sim.crash_now();
    let (crash, mut img) = sim.random_crash(rng.next());
    let mut must = must_survive(&crash, use_spool, &spool, m.committed, m.durable);
    if recovery_crash {
        let (power_loss, img2) = crash_during_recovery(img, &mut rng, &spool, |sim2| {
            drop(init(sim2, &o, threshold));
        });
        if power_loss {
            must = must.min(m.durable);
        }
        img = img2;
    }
    let sim3 = Arc::new(SimStorage::from_bytes(img));
    let k = verify(&sim3, &o, &m, must)?;
    // Recovering again gives the same state (idempotent).
    let k2 = verify(&sim3, &o, &m, k)?;
    prop_assert_eq!(k, k2);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn external_ranges_survive_crashes(
        seed in any::<u64>(),
        nops in 1usize..80,
        crash_at in 0u64..200,
        use_spool in any::<bool>(),
        threshold in prop::sample::select(vec![0u8, 30, 80]),
        recovery_crash in any::<bool>(),
    ) {
        check(seed, nops, crash_at, use_spool, threshold, recovery_crash)?;
    }
}

#[test]
fn external_range_must_be_outside_log_and_regions() {
    let st = Arc::new(MemStorage::new(SIZE));
    Rvm::create_log(&*st, LOG).unwrap();
    let rvm = Rvm::initialize(st.clone(), opts(None)).unwrap();
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::Restore);
    assert!(t.log_external(100, &[1; 8]).is_err(), "inside the log");
    assert!(
        t.log_external(SEG.offset + 10, &[1; 8]).is_err(),
        "inside the region"
    );
    assert!(
        t.log_external(SEG.offset - 4, &[1; 8]).is_err(),
        "straddles the region"
    );
    t.log_external(EXT, &[7; 8]).unwrap();
    t.end(CommitMode::NoFlush).unwrap();
    // A record of external ranges only, merged with others, recovers.
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.log_external(EXT + 8, &[8; 8]).unwrap();
    t.end(CommitMode::NoFlush).unwrap();
    rvm.flush().unwrap();
    drop(r);
    drop(rvm);
    // Lose the in-place bytes: recovery writes them back from the log.
    st.write_at(&[0; 16], EXT).unwrap();
    let rvm = Rvm::initialize(st.clone(), opts(None)).unwrap();
    let mut got = [0u8; 16];
    st.read_at(&mut got, EXT).unwrap();
    assert_eq!(&got[..8], &[7; 8]);
    assert_eq!(&got[8..], &[8; 8]);
    // Truncation skips them (in place already) and recovery no longer replays them.
    rvm.truncate().unwrap();
    drop(rvm);
    st.write_at(&[5; 16], EXT).unwrap();
    let _rvm = Rvm::initialize(st.clone(), opts(None)).unwrap();
    st.read_at(&mut got, EXT).unwrap();
    assert_eq!(got, [5; 16]);
}

#[test]
fn ordered_on_demand_syncs_once_per_flush() {
    let st = Arc::new(MemStorage::new(SIZE));
    Rvm::create_log(&*st, LOG).unwrap();
    let rvm = Rvm::initialize(st.clone(), opts(None)).unwrap();
    rvm.set_ordered_on_demand(true);
    let mut r = rvm.map(SEG).unwrap();
    let s0 = rvm.stats().flush_syncs;
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.write(0, &[1; 8]).unwrap();
    t.log_external(EXT, &[1; 8]).unwrap();
    t.end(CommitMode::NoFlush).unwrap();
    rvm.flush().unwrap();
    assert_eq!(rvm.stats().flush_syncs - s0, 1, "logged data: one sync");
    st.write_at(&[2; 8], EXT + 64).unwrap();
    rvm.note_unlogged_data();
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.write(0, &[2; 8]).unwrap();
    t.end(CommitMode::NoFlush).unwrap();
    rvm.flush().unwrap();
    assert_eq!(
        rvm.stats().flush_syncs - s0,
        3,
        "unlogged data: sync before the records"
    );
}

#[test]
fn deferred_ranges_are_written_by_truncation_only() {
    let st = Arc::new(MemStorage::new(SIZE));
    Rvm::create_log(&*st, LOG).unwrap();
    let rvm = Rvm::initialize(st.clone(), opts(None)).unwrap();
    rvm.set_truncate_threshold(None);
    let mut r = rvm.map(SEG).unwrap();
    let mut got = [0u8; 16];
    for (i, at) in [(1u8, EXT), (2, EXT + 8), (3, EXT)] {
        // Two records, then a third deferred over the first: later wins.
        let mut t = r.begin_transaction(RestoreMode::Restore);
        t.write(0, &[i; 8]).unwrap();
        t.log_deferred(at, &[i; 8]).unwrap();
        t.end(CommitMode::NoFlush).unwrap();
    }
    rvm.flush().unwrap();
    st.read_at(&mut got, EXT).unwrap();
    assert_eq!(got, [0; 16], "nothing in place before truncation");
    rvm.truncate().unwrap();
    st.read_at(&mut got, EXT).unwrap();
    assert_eq!(&got[..8], &[3; 8]);
    assert_eq!(&got[8..], &[2; 8]);
    // Recovered deferred ranges are written and their records applied at once.
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.log_deferred(EXT, &[4; 8]).unwrap();
    t.end(CommitMode::Flush).unwrap();
    drop(r);
    drop(rvm);
    let rvm = Rvm::initialize(st.clone(), opts(None)).unwrap();
    st.read_at(&mut got, EXT).unwrap();
    assert_eq!(&got[..8], &[4; 8]);
    let s = rvm.stats();
    assert_eq!(s.log_head, s.log_tail, "applied at recovery: nothing live");
}
