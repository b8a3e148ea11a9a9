//! Crash simulation (issue 3): random transaction mixes on a [`SimStorage`] that loses power
//! at a random I/O operation (in a commit, a flush, a truncation, or during recovery), leaving
//! any prefix / subset of the unsynced writes, torn or garbage. Recovery must give the image
//! of some commit point at or after the last one known durable.
mod common;

use std::path::Path;
use std::sync::Arc;

use common::{crash_during_recovery, must_survive, poisoned, Rng};
use proptest::prelude::*;
use rvm_core::sim::{Crash, SimStorage};
use rvm_core::*;

const LOG: Area = Area {
    offset: 0,
    len: 16 * 1024,
}; // 8 KiB of records: the log wraps and truncates often
const SEG: Area = Area {
    offset: 16 * 1024,
    len: 16 * 1024,
};
const SIZE: usize = 32 * 1024;

fn opts(spool: Option<&Path>, threshold: u8) -> (RvmOptions, u8) {
    (
        RvmOptions {
            log: LOG,
            spool: spool.map(Path::to_path_buf),
            spool_size: 1 << 20,
            ..Default::default()
        },
        threshold,
    )
}

fn init(st: &Arc<SimStorage>, o: &(RvmOptions, u8)) -> Result<Rvm> {
    let rvm = Rvm::initialize(st.clone(), o.0.clone())?;
    rvm.set_truncate_threshold(Some(o.1));
    Ok(rvm)
}

/// Commit points of the workload: `images[i]` is the segment after the i-th commit.
struct Model {
    images: Vec<Vec<u8>>,
    /// Index of the last commit point whose flush returned (durable across power loss).
    durable: usize,
    /// Index of the last commit point whose `end` returned Ok (survives a process crash
    /// when a spool is used).
    committed: usize,
}

fn workload(rvm: &Rvm, sim: &SimStorage, rng: &mut Rng, nops: usize, m: &mut Model) {
    let Ok(mut r) = rvm.map(SEG) else { return };
    for _ in 0..nops {
        if sim.is_crashed() {
            return;
        }
        match rng.below(12) {
            0 => {
                if rvm.flush().is_err() {
                    return;
                }
                m.durable = m.images.len() - 1;
            }
            1 => {
                if rvm.truncate().is_err() {
                    return;
                }
            }
            _ => {
                let restore = rng.below(2) == 0;
                let mode = if restore {
                    RestoreMode::Restore
                } else {
                    RestoreMode::NoRestore
                };
                let mut t = r.begin_transaction(mode);
                for _ in 0..1 + rng.below(4) {
                    let len = 1 + rng.below(200) as usize;
                    let off = rng.below(SEG.len - len as u64) as usize;
                    t.set_range(off, len).unwrap().fill(rng.next() as u8);
                }
                match rng.below(6) {
                    0 if restore => t.abort().unwrap(),
                    1 if restore => drop(t),
                    2 | 3 => {
                        let res = t.end(CommitMode::NoFlush);
                        m.images.push(r.bytes().to_vec());
                        if res.is_err() {
                            return;
                        }
                        m.committed = m.images.len() - 1;
                    }
                    _ => {
                        let res = t.end(CommitMode::Flush);
                        m.images.push(r.bytes().to_vec());
                        if res.is_err() {
                            return; // queued: maybe durable, maybe not
                        }
                        m.committed = m.images.len() - 1;
                        m.durable = m.committed;
                    }
                }
            }
        }
    }
}

fn check(
    seed: u64,
    nops: usize,
    crash_at: u64,
    use_spool: bool,
    threshold: u8,
    recovery_crash: bool,
    after_recovery: bool,
) -> std::result::Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("sim.spool");
    let o = opts(use_spool.then_some(spool.as_path()), threshold);
    let mut rng = Rng(seed | 1);
    let sim = Arc::new(SimStorage::new(SIZE));
    Rvm::create_log(&*sim, LOG).unwrap();
    sim.crash_after(Some(crash_at));
    let mut m = Model {
        images: vec![vec![0; SEG.len as usize]],
        durable: 0,
        committed: 0,
    };
    if let Ok(rvm) = init(&sim, &o) {
        workload(&rvm, &sim, &mut rng, nops, &mut m);
    } // dropping joins the background threads: nothing runs after this point
      // The simulated crash fails I/O first: an instance that met the error (in a request or
      // in a background flush, also one still running while it was dropped) poisoned its
      // spool, so only what was durable survives even a process crash.
    if poisoned(&spool) {
        m.committed = m.durable;
    }
    sim.crash_now();
    // The crash: a power loss (unsynced writes dropped/torn, spool gone) or a process crash.
    let (crash, img) = sim.random_crash(rng.next());
    let mut must = must_survive(&crash, use_spool, &spool, m.committed, m.durable);
    let mut img = img;
    if after_recovery {
        // Recover lazily (the log stays live), check, then crash later: during the
        // truncation that applies the recovered log, or in more work after it.
        let sim2 = Arc::new(SimStorage::from_bytes(img.clone()));
        sim2.crash_after(Some(rng.below(60)));
        let mut m2 = None;
        if let Ok(rvm) = init(&sim2, &o) {
            if let Ok(r) = rvm.map(SEG) {
                let got = r.bytes().to_vec();
                prop_assert!(
                    m.images[must..].contains(&got),
                    "lazily recovered image is no commit point at or after #{must}"
                );
                drop(r);
                let mut model = Model {
                    images: vec![got],
                    durable: 0,
                    committed: 0,
                };
                // A crash before this truncation is "after lazy recovery, before truncation".
                if rng.below(2) == 0 && rvm.truncate().is_ok() {
                    let seg = &sim2.durable_image()[SEG.offset as usize..SEG.end() as usize];
                    prop_assert_eq!(
                        seg,
                        &model.images[0][..],
                        "truncation applied a wrong image"
                    );
                }
                workload(&rvm, &sim2, &mut rng, nops / 2, &mut model);
                m2 = Some(model);
            }
        }
        if let Some(model) = m2.as_mut().filter(|_| poisoned(&spool)) {
            model.committed = model.durable; // as after the first session
        }
        sim2.crash_now();
        let (crash2, img2) = sim2.random_crash(rng.next());
        match m2 {
            Some(model) => {
                // The first recovery completed: the new session's model applies.
                m = model;
                must = must_survive(&crash2, use_spool, &spool, m.committed, m.durable);
            }
            None => {
                if crash2 != Crash::All {
                    let _ = std::fs::remove_file(&spool);
                    must = must.min(m.durable);
                }
            }
        }
        img = img2;
    } else if recovery_crash {
        // Crash again during recovery, at a random I/O operation.
        let (power_loss, img2) = crash_during_recovery(img, &mut rng, &spool, |sim2| {
            drop(init(sim2, &o));
        });
        if power_loss {
            must = must.min(m.durable);
        }
        img = img2;
    }
    let sim3 = Arc::new(SimStorage::from_bytes(img));
    let rvm = init(&sim3, &o).expect("recovery");
    let got = rvm.map(SEG).unwrap().bytes().to_vec();
    let at = m.images[must..].iter().position(|im| *im == got);
    prop_assert!(
        at.is_some(),
        "recovered image is no commit point at or after #{must} of {} ({crash:?})",
        m.images.len() - 1
    );
    // Recovering again changes nothing (idempotent).
    drop(rvm);
    let rvm = init(&sim3, &o).expect("second recovery");
    let again = rvm.map(SEG).unwrap().bytes().to_vec();
    prop_assert_eq!(again, got);
    Ok(())
}

fn cases() -> u32 {
    std::env::var("RVM_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    // RVM_CRASH_CASES=N runs more cases (a longer hunt).
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Power loss or process crash at any I/O operation of a random workload.
    #[test]
    fn crash_at_any_point_recovers_a_commit_point(
        seed in any::<u64>(),
        nops in 1usize..80,
        crash_at in 0u64..400,
        use_spool in any::<bool>(),
        threshold in prop_oneof![Just(0u8), Just(30u8), Just(60u8)],
    ) {
        check(seed, nops, crash_at, use_spool, threshold, false, false)?;
    }

    /// The same, with a second crash during the recovery from the first.
    #[test]
    fn crash_during_recovery_recovers_a_commit_point(
        seed in any::<u64>(),
        nops in 1usize..80,
        crash_at in 0u64..400,
        use_spool in any::<bool>(),
    ) {
        check(seed, nops, crash_at, use_spool, 30, true, false)?;
    }

    /// Lazy recovery completes (nothing applied to the segment), then a crash: before the
    /// truncation that applies the recovered log, during it, or in later work; then recovery
    /// (twice, the second must change nothing).
    #[test]
    fn crash_after_lazy_recovery_recovers_a_commit_point(
        seed in any::<u64>(),
        nops in 1usize..80,
        crash_at in 0u64..400,
        use_spool in any::<bool>(),
        threshold in prop_oneof![Just(0u8), Just(30u8), Just(60u8)],
    ) {
        check(seed, nops, crash_at, use_spool, threshold, false, true)?;
    }
}

const NT: u64 = 3;

fn area(k: u64) -> Area {
    Area {
        offset: SEG.offset + k * 4096,
        len: 4096,
    }
}

/// One thread's commits: (Lsn, or None when `end` failed, the region after it).
type History = Vec<(Option<Lsn>, Vec<u8>)>;

/// Several threads commit (flush and no-flush, each on its own region, sharing the log and
/// group commit) until the simulated power fails; the recovered regions must be one cut of
/// the global commit order (every Lsn below some L present, none at or above it), with L
/// past every Lsn whose flush returned.
fn check_mt(
    seed: u64,
    crash_at: u64,
    use_spool: bool,
    threshold: u8,
) -> std::result::Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("mt.spool");
    let o = opts(use_spool.then_some(spool.as_path()), threshold);
    let sim = Arc::new(SimStorage::new(SIZE));
    Rvm::create_log(&*sim, LOG).unwrap();
    sim.crash_after(Some(crash_at));
    let mut hist: Vec<History> = vec![Vec::new(); NT as usize];
    let mut durable: Option<Lsn> = None;
    let mut committed: Option<Lsn> = None;
    if let Ok(rvm) = init(&sim, &o) {
        let handles: Vec<_> = (0..NT)
            .map(|k| {
                let rvm = rvm.clone();
                let sim = sim.clone();
                std::thread::spawn(move || {
                    let mut h: History = Vec::new();
                    let (mut dur, mut com) = (None::<Lsn>, None::<Lsn>);
                    let Ok(mut r) = rvm.map(area(k)) else {
                        return (h, dur, com);
                    };
                    let mut rng = Rng((seed ^ (k + 1).wrapping_mul(0x9E37_79B9)) | 1);
                    for _ in 0..40 {
                        if sim.is_crashed() {
                            break;
                        }
                        let restore = rng.below(2) == 0;
                        let mut t = r.begin_transaction(if restore {
                            RestoreMode::Restore
                        } else {
                            RestoreMode::NoRestore
                        });
                        for _ in 0..1 + rng.below(3) {
                            let len = 1 + rng.below(100) as usize;
                            let off = rng.below(4096 - len as u64) as usize;
                            t.set_range(off, len).unwrap().fill(rng.next() as u8);
                        }
                        if restore && rng.below(5) == 0 {
                            t.abort().unwrap();
                            continue;
                        }
                        let flush = rng.below(2) == 0;
                        let res = t.end(if flush {
                            CommitMode::Flush
                        } else {
                            CommitMode::NoFlush
                        });
                        match res {
                            Ok(lsn) => {
                                h.push((Some(lsn), r.bytes().to_vec()));
                                com = com.max(Some(lsn));
                                if flush {
                                    dur = dur.max(Some(lsn));
                                }
                            }
                            Err(_) => {
                                h.push((None, r.bytes().to_vec()));
                                break;
                            }
                        }
                    }
                    (h, dur, com)
                })
            })
            .collect();
        for (k, hd) in handles.into_iter().enumerate() {
            let (h, d, c) = hd.join().unwrap();
            hist[k] = h;
            durable = durable.max(d);
            committed = committed.max(c);
        }
    }
    if poisoned(&spool) {
        committed = durable; // as in `check`
    }
    sim.crash_now();
    let mut rng = Rng(seed | 1);
    let (crash, img) = sim.random_crash(rng.next());
    let floor = if use_spool && crash == Crash::All {
        committed
    } else {
        let _ = std::fs::remove_file(&spool);
        durable
    };
    let sim2 = Arc::new(SimStorage::from_bytes(img));
    let rvm = init(&sim2, &o).expect("recovery");
    let got: Vec<Vec<u8>> = (0..NT)
        .map(|k| rvm.map(area(k)).unwrap().bytes().to_vec())
        .collect();
    // Per thread, the intervals [lo, hi] of L under which it shows each matching image.
    let mut intervals: Vec<Vec<(u64, u64)>> = Vec::new();
    for k in 0..NT as usize {
        let h = &hist[k];
        let mut iv = Vec::new();
        let zeros = vec![0u8; 4096];
        let lsn_at = |i: usize| h.get(i).map(|e| e.0);
        for i in 0..=h.len() {
            let image = if i == 0 { &zeros } else { &h[i - 1].1 };
            if *image != got[k] {
                continue;
            }
            // image i: after commit i-1 (index in h), before commit i
            let lo = if i == 0 {
                0
            } else {
                // an unknown Lsn is above the previous known one
                (0..i).rev().find_map(|j| h[j].0).map_or(0, |l| l + 1)
            };
            let hi = match lsn_at(i) {
                Some(Some(l)) => l,
                _ => u64::MAX,
            };
            iv.push((lo, hi));
        }
        prop_assert!(
            !iv.is_empty(),
            "thread {k}: recovered region is none of its commit points"
        );
        intervals.push(iv);
    }
    let min_l = floor.map_or(0, |d| d + 1);
    let mut cands: Vec<u64> = intervals
        .iter()
        .flatten()
        .map(|iv| iv.0.max(min_l))
        .collect();
    cands.push(min_l);
    let ok = cands.iter().any(|&l| {
        intervals
            .iter()
            .all(|iv| iv.iter().any(|&(lo, hi)| lo <= l && l <= hi))
    });
    prop_assert!(
        ok,
        "recovered regions are no cut of the commit order at or after {floor:?} ({crash:?})"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 2, ..ProptestConfig::default() })]

    /// Multi-threaded committers (flush and no-flush, group commit, background truncation)
    /// lose power at a random I/O operation.
    #[test]
    fn crash_with_concurrent_committers_recovers_a_cut(
        seed in any::<u64>(),
        crash_at in 0u64..300,
        use_spool in any::<bool>(),
        threshold in prop_oneof![Just(0u8), Just(30u8), Just(60u8)],
    ) {
        check_mt(seed, crash_at, use_spool, threshold)?;
    }
}
