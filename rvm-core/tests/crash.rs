//! Crash simulation (issue 3): random transaction mixes on a [`SimStorage`] that loses power
//! at a random I/O operation (in a commit, a flush, a truncation, or during recovery), leaving
//! any prefix / subset of the unsynced writes, torn or garbage. Recovery must give the image
//! of some commit point at or after the last one known durable.
mod common;

use std::path::Path;
use std::sync::Arc;

use common::Rng;
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
    sim.crash_now();
    // The crash: a power loss (unsynced writes dropped/torn, spool gone) or a process crash.
    let (crash, img) = sim.random_crash(rng.next());
    let mut must = if use_spool && crash == Crash::All {
        m.committed
    } else {
        let _ = std::fs::remove_file(&spool);
        m.durable
    };
    let mut img = img;
    if recovery_crash {
        // Crash again during recovery, at a random I/O operation.
        let sim2 = Arc::new(SimStorage::from_bytes(img));
        sim2.crash_after(Some(rng.below(24)));
        drop(init(&sim2, &o));
        sim2.crash_now();
        let (crash2, img2) = sim2.random_crash(rng.next());
        if crash2 != Crash::All {
            let _ = std::fs::remove_file(&spool);
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
        check(seed, nops, crash_at, use_spool, threshold, false)?;
    }

    /// The same, with a second crash during the recovery from the first.
    #[test]
    fn crash_during_recovery_recovers_a_commit_point(
        seed in any::<u64>(),
        nops in 1usize..80,
        crash_at in 0u64..400,
        use_spool in any::<bool>(),
    ) {
        check(seed, nops, crash_at, use_spool, 30, true)?;
    }
}

