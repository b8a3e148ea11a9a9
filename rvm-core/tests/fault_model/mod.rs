//! The model and the checks of `tests/faults.rs`: the layout of the simulated disk, a
//! random workload recording each commit point and which ones were reported durable, the
//! checks that a failed instance refuses everything, and the restart checks.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::Rng;
use rvm_core::*;

pub const LOG: Area = Area {
    offset: 0,
    len: 16 * 1024,
}; // 8 KiB of records: the log wraps and truncates often
pub const SEG: Area = Area {
    offset: 16 * 1024,
    len: 16 * 1024,
};
/// External ranges and unlogged data (outside every region and the log).
pub const DATA: Area = Area {
    offset: 32 * 1024,
    len: 16 * 1024,
};
pub const SIZE: usize = 48 * 1024;
/// External-range slots of 64 bytes in DATA (the first 4 KiB).
pub const SLOTS: usize = 64;

pub type Faulty = FaultStorage<SimStorage>;

pub fn opts(spool: Option<&Path>) -> RvmOptions {
    RvmOptions {
        log: LOG,
        spool: spool.map(Path::to_path_buf),
        spool_size: 1 << 20,
        truncate_threshold: None,
        ..Default::default()
    }
}

/// A fresh log on a simulated disk, and an instance over it through a fault injector
/// (no fault armed yet).
pub fn setup(o: &RvmOptions) -> (Arc<SimStorage>, Arc<Faulty>, Rvm) {
    let sim = Arc::new(SimStorage::new(SIZE));
    Rvm::create_log(&*sim, LOG).unwrap();
    let fault = Arc::new(FaultStorage::new(sim.clone()));
    let rvm = Rvm::initialize(fault.clone(), o.clone()).unwrap();
    (sim, fault, rvm)
}

pub fn errno_of(case: u64) -> i32 {
    if case.is_multiple_of(2) {
        libc::EIO
    } else {
        libc::ENOSPC
    }
}

pub fn is_failed<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(RvmError::Failed(_)))
}

/// One commit point: the region and the version in each external slot.
#[derive(Clone)]
pub struct Point {
    pub seg: Vec<u8>,
    pub ext: Vec<u64>,
}

pub struct Model {
    pub points: Vec<Point>,
    /// The last point a flush or `end(Flush)` reported durable.
    pub durable: usize,
    /// The last point whose `end` returned Ok.
    pub committed: usize,
    pub ext: Vec<u64>,
    pub version: u64,
    /// The instance failed (a storage error): its spool is poisoned, so a process crash
    /// keeps only what was durable (`spool`: records after a failure are not replayed).
    pub failed: bool,
}

impl Model {
    pub fn new() -> Model {
        Model {
            points: vec![Point {
                seg: vec![0; SEG.len as usize],
                ext: vec![0; SLOTS],
            }],
            durable: 0,
            committed: 0,
            ext: vec![0; SLOTS],
            version: 0,
            failed: false,
        }
    }
    pub fn push(&mut self, r: &Region) -> usize {
        self.points.push(Point {
            seg: r.bytes().to_vec(),
            ext: self.ext.clone(),
        });
        self.points.len() - 1
    }
}

/// Random flush / no-flush commits (some with an external range), flushes and (with
/// `truncate`) explicit truncations, until the first error, which is returned.
pub fn workload(
    rvm: &Rvm,
    r: &mut Region,
    rng: &mut Rng,
    nops: usize,
    truncate: bool,
    m: &mut Model,
) -> Option<RvmError> {
    for _ in 0..nops {
        match rng.below(10) {
            0 => match rvm.flush() {
                Ok(()) => m.durable = m.committed,
                Err(e) => return Some(e),
            },
            1 if truncate => {
                if let Err(e) = rvm.truncate() {
                    return Some(e);
                }
            }
            _ => {
                let mut t = r.begin_transaction(RestoreMode::Restore);
                for _ in 0..1 + rng.below(3) {
                    let len = 1 + rng.below(120) as usize;
                    let off = rng.below(SEG.len - len as u64) as usize;
                    t.set_range(off, len).unwrap().fill(rng.next() as u8);
                }
                if rng.below(4) == 0 {
                    let slot = rng.below(SLOTS as u64) as usize;
                    m.version += 1;
                    let bytes: Vec<u8> = m.version.to_le_bytes().repeat(8);
                    if let Err(e) = t.log_external(DATA.offset + slot as u64 * 64, &bytes) {
                        drop(t);
                        return Some(e);
                    }
                    m.ext[slot] = m.version;
                }
                let flush = rng.below(2) == 0;
                let mode = if flush {
                    CommitMode::Flush
                } else {
                    CommitMode::NoFlush
                };
                let res = t.end(mode);
                let at = m.push(r);
                match res {
                    Ok(_) => {
                        m.committed = at;
                        if flush {
                            m.durable = at;
                        }
                    }
                    Err(e) => return Some(e),
                }
            }
        }
    }
    None
}

/// The instance failed with `errno`: every later modifying request is refused with
/// `Failed`, a refused commit is undone, mapped bytes stay readable, and no I/O happens.
pub fn assert_refused(rvm: &Rvm, r: Option<&mut Region>, fault: &Faulty, errno: i32) {
    let f = rvm.failure().expect("the instance has failed");
    assert_eq!(f.errno, Some(errno), "the first error is kept: {f}");
    assert_eq!(f.errno_or_eio(), errno);
    // Let a truncation that was running when another thread failed see the failure.
    std::thread::sleep(Duration::from_millis(2));
    while rvm.is_truncating() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = fault.counts();
    assert!(is_failed(rvm.flush()), "flush after the failure");
    assert!(is_failed(rvm.truncate()), "truncate after the failure");
    if let Some(r) = r {
        let bytes = r.bytes().to_vec();
        for mode in [CommitMode::Flush, CommitMode::NoFlush] {
            let mut t = r.begin_transaction(RestoreMode::Restore);
            t.write(0, &[0xAB; 8]).unwrap();
            assert!(is_failed(t.end(mode)), "{mode:?} commit after the failure");
            assert_eq!(r.bytes(), &bytes[..], "a refused commit is undone");
        }
        let mut t = r.begin_transaction(RestoreMode::Restore);
        assert!(is_failed(t.log_external(DATA.offset, &[1; 8])));
        drop(t);
        let t = r.begin_transaction(RestoreMode::Restore);
        assert!(is_failed(t.end(CommitMode::Flush)), "empty commit");
    }
    let after = fault.counts();
    assert_eq!(
        (before.writes, before.durable_writes, before.syncs),
        (after.writes, after.durable_writes, after.syncs),
        "a failed instance does no I/O"
    );
}

/// Restart from what survives on `sim` (a power loss: the durable image, the spool lost;
/// else a process crash: every write and the spool) and check every commit point the
/// model must keep is there: the region equals a point at or after it, and each external
/// slot holds at least that point's version.
pub fn check_restart(
    sim: &SimStorage,
    power_loss: bool,
    spool: Option<&Path>,
    m: &Model,
    what: &str,
) {
    let img = if power_loss {
        if let Some(p) = spool {
            let _ = std::fs::remove_file(p);
        }
        sim.durable_image()
    } else {
        sim.image()
    };
    let must = if !power_loss && spool.is_some() && !m.failed {
        m.committed
    } else {
        m.durable
    };
    let st = Arc::new(SimStorage::from_bytes(img));
    let rvm = Rvm::initialize(st.clone(), opts(spool)).expect("recovery after the fault");
    let r = rvm.map(SEG).unwrap();
    let k = (must..m.points.len()).find(|&k| m.points[k].seg == r.bytes());
    assert!(
        k.is_some(),
        "{what}: recovered region is no commit point at or after {must} (of {}), power loss {power_loss}",
        m.points.len()
    );
    for slot in 0..SLOTS {
        let mut b = [0u8; 8];
        st.read_at(&mut b, DATA.offset + slot as u64 * 64).unwrap();
        let v = u64::from_le_bytes(b);
        assert!(
            v >= m.points[must].ext[slot],
            "{what}: external slot {slot} holds version {v} < {}",
            m.points[must].ext[slot]
        );
    }
}

/// Both restarts of one failed run (power loss first: the process-crash restart resets
/// the spool).
pub fn check_both(sim: &SimStorage, spool: Option<&Path>, m: &Model, what: &str) {
    let saved = spool.and_then(|p| std::fs::read(p).ok());
    check_restart(sim, true, spool, m, what);
    if let (Some(p), Some(bytes)) = (spool, saved) {
        std::fs::write(p, bytes).unwrap();
    }
    check_restart(sim, false, spool, m, what);
}
