//! Storage errors under the filesystem (issue 11, item 1): the filesystem library on
//! rvm-core's `FaultStorage` over `SimStorage`, with EIO (or ENOSPC) injected at the Nth
//! durable write (the commit), write (file data, external ranges, truncation) or sync (the
//! ordered data sync of a flush), and in an explicit truncation. After the fault: every
//! modifying operation answers EIO without any I/O, reads go on, the error record is written.
//! After a restart (power loss: only durable writes kept; process crash: every write kept):
//! the tree is the state after some operation, no earlier than the last one answered durable,
//! fsck finds nothing to fix, and the error record names the error. Also: a data write that
//! meets ENOSPC answers ENOSPC and fails nothing; `errors=continue` goes on after a failed
//! data write.

mod common;

use common::{new_inode, snapshot, Tree};
use fsck::check::check;
use rvm_core::sim::SimStorage;
use rvm_core::{FailedOp, FaultOp, FaultStorage, Storage};
use rvmfs::format::format;
use rvmfs::layout::error_record::ErrorRecord;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::attr::SetAttr;
use rvmfs::ops::{attr, file, lookup, namespace, space, statfs, xattr};
use rvmfs::ops::{Durability, ErrorPolicy, Fs};
use rvmfs::FsResult;
use std::sync::Arc;

const IMAGE: u64 = 4 << 20;
type Faulty = FaultStorage<SimStorage>;

/// A formatted simulated disk, every byte durable.
fn disk() -> Arc<SimStorage> {
    let disk = Arc::new(SimStorage::new(IMAGE as usize));
    let plan = Plan {
        size: IMAGE,
        inodes: Some(64),
        log: Some(1 << 20),
    };
    format(disk.clone(), plan, [7; 16], (0, 0)).unwrap();
    disk
}

/// Open the filesystem on `storage` (recovering its log), as the daemon does.
fn open(storage: Arc<dyn Storage>, durability: Durability, policy: ErrorPolicy) -> Fs {
    let mut fs = common::open_storage(storage, IMAGE).expect("the image opens");
    fs.durability = durability;
    fs.errors.policy = policy;
    fs.errors.source = "sim".into();
    fs
}

/// One operation of the workload (paths under the root).
#[derive(Clone, Copy, Debug)]
enum Step {
    Mkdir(&'static str),
    Create(&'static str),
    /// Write `len` bytes (pattern `seed`) at `offset`.
    Write(&'static str, u64, usize, u8),
    Setxattr(&'static str),
    Symlink(&'static str),
    Link(&'static str, &'static str),
    Rename(&'static str, &'static str),
    Truncate(&'static str, u64),
    Fallocate(&'static str),
    Unlink(&'static str),
    Rmdir(&'static str),
}

const WORKLOAD: &[Step] = &[
    Step::Mkdir("d"),
    Step::Create("d/f"),
    Step::Write("d/f", 0, 100_000, 1),
    Step::Write("d/f", 100_000, 3000, 2),
    Step::Setxattr("d/f"),
    Step::Symlink("l"),
    Step::Link("d/f", "d/g"),
    Step::Rename("d/f", "h"),
    Step::Write("h", 4096, 5000, 3),
    Step::Truncate("h", 50_000),
    Step::Create("e"),
    Step::Write("e", 0, 200_000, 4),
    Step::Unlink("d/g"),
    Step::Fallocate("e"),
    Step::Mkdir("x"),
    Step::Rmdir("x"),
    Step::Write("e", 10, 70_000, 5),
];

/// (parent, name) of `path`.
fn parent(fs: &Fs, path: &str) -> FsResult<(u64, Vec<u8>)> {
    match path.rsplit_once('/') {
        Some((dir, name)) => Ok((ino(fs, dir)?, name.as_bytes().to_vec())),
        None => Ok((ROOT_INO, path.as_bytes().to_vec())),
    }
}

fn ino(fs: &Fs, path: &str) -> FsResult<u64> {
    let (p, name) = parent(fs, path)?;
    Ok(lookup::lookup(&fs.geo, fs.bytes(), p, &name)?.0)
}

fn apply(fs: &mut Fs, step: Step) -> FsResult<()> {
    match step {
        Step::Mkdir(p) | Step::Create(p) | Step::Symlink(p) => {
            let (dir, name) = parent(fs, p)?;
            let (mode, target) = match step {
                Step::Mkdir(_) => (libc::S_IFDIR | 0o755, None),
                Step::Create(_) => (libc::S_IFREG | 0o644, None),
                _ => (libc::S_IFLNK | 0o777, Some(&b"d/f"[..])),
            };
            fs.transact_on("create", dir, |op| {
                namespace::create(op, dir, &name, new_inode(mode), target)
            })?;
        }
        Step::Write(p, offset, len, seed) => {
            let i = ino(fs, p)?;
            let data: Vec<u8> = (0..len)
                .map(|k| (k as u8).wrapping_mul(seed) ^ seed)
                .collect();
            fs.transact_on("write", i, |op| file::write(op, i, offset, &data, false))?;
        }
        Step::Setxattr(p) => {
            let i = ino(fs, p)?;
            fs.transact_on("setxattr", i, |op| xattr::set(op, i, b"user.k", b"v", 0))?;
        }
        Step::Link(from, to) => {
            let (i, (dir, name)) = (ino(fs, from)?, parent(fs, to)?);
            fs.transact_on("link", i, |op| namespace::link(op, i, dir, &name))?;
        }
        Step::Rename(from, to) => {
            let ((d1, n1), (d2, n2)) = (parent(fs, from)?, parent(fs, to)?);
            fs.transact_on("rename", d1, |op| {
                namespace::rename(op, d1, &n1, d2, &n2, 0)
            })?;
        }
        Step::Truncate(p, size) => {
            let i = ino(fs, p)?;
            let set = SetAttr {
                size: Some(size),
                ..SetAttr::default()
            };
            fs.transact_on("setattr", i, |op| attr::setattr(op, i, &set))?;
        }
        Step::Fallocate(p) => {
            let i = ino(fs, p)?;
            fs.transact_on("fallocate", i, |op| space::fallocate(op, i, 0, 400_000, 0))?;
        }
        Step::Unlink(p) | Step::Rmdir(p) => {
            let (dir, name) = parent(fs, p)?;
            fs.transact_on("unlink", dir, |op| match step {
                Step::Rmdir(_) => namespace::rmdir(op, dir, &name),
                _ => namespace::unlink(op, dir, &name),
            })?;
        }
    }
    Ok(())
}

/// What a run under a fault produced.
struct Run {
    sim: Arc<SimStorage>,
    fault: Arc<Faulty>,
    fs: Fs,
    /// The model's tree after each answered operation (index 0: before any), plus, last, the
    /// state the failed operation would have made (a failed request may leave its record).
    states: Vec<Tree>,
    /// States from this index on may be what a power loss leaves (the last durable one).
    durable: usize,
    /// The failed step's errno, if one failed.
    failed: Option<i32>,
}

/// Run the workload on a faulty disk next to a model on a healthy one, stopping at the first
/// operation that fails rvm-core. `fsync`: flush after each operation (spool durability).
fn run(durability: Durability, policy: ErrorPolicy, fsync: bool, arm: impl FnOnce(&Faulty)) -> Run {
    let sim = disk();
    let fault = Arc::new(FaultStorage::new(sim.clone()));
    let mut fs = open(fault.clone(), durability, policy);
    let mut model = open(disk(), Durability::Spool, ErrorPolicy::RemountRo);
    arm(&fault);
    let mut states = vec![snapshot(&model).unwrap()];
    let mut durable = 0;
    let mut failed = None;
    for &step in WORKLOAD {
        match apply(&mut fs, step) {
            Ok(()) => {
                apply(&mut model, step).unwrap();
                states.push(snapshot(&model).unwrap());
                if durability == Durability::Sync {
                    durable = states.len() - 1;
                }
                if fsync {
                    match fs.rvm.flush() {
                        Ok(()) => durable = states.len() - 1,
                        Err(_) => {
                            fs.notice_failure("fsync", 0);
                            // The operation was answered; its fsync was not.
                            states.push(states[states.len() - 1].clone());
                            failed = Some(libc::EIO);
                            break;
                        }
                    }
                }
            }
            Err(e) if fs.rvm.failure().is_none() && fs.errors.record.is_none() => {
                // Not a storage error of rvm (ENOSPC of a data write): nothing changed.
                assert_eq!(e.errno(), libc::ENOSPC, "{step:?}: {e}");
                failed = Some(libc::ENOSPC);
            }
            Err(e) => {
                failed = Some(e.errno());
                if fs.rvm.failure().is_none() {
                    continue; // errors=continue went on after a failed data write
                }
                apply(&mut model, step).unwrap();
                states.push(snapshot(&model).unwrap());
                break;
            }
        }
    }
    Run {
        sim,
        fault,
        fs,
        states,
        durable,
        failed,
    }
}

/// After rvm-core failed: every modifying operation answers EIO without I/O, reads go on and
/// see the last answered state, statfs works.
fn check_refusals(r: &mut Run, what: &str) {
    let before = r.fault.counts();
    for &step in WORKLOAD {
        if let Err(e) = apply(&mut r.fs, step) {
            assert!(
                e.errno() == libc::EIO || e.errno() == libc::ENOENT,
                "{what}: {step:?} after the failure: {e}"
            );
        } else {
            panic!("{what}: {step:?} succeeded after the failure");
        }
    }
    assert!(r.fs.rvm.flush().is_err(), "{what}: a flush succeeded");
    let after = r.fault.counts();
    let io = |c: rvm_core::FaultCounts| (c.writes, c.durable_writes, c.syncs);
    assert_eq!(io(before), io(after), "{what}: I/O after the failure");
    // Reads see the last answered state, or the failed operation's (a commit whose log
    // write failed stays in the mapped region, as a journal abort leaves ext4's caches).
    let tree = snapshot(&r.fs).expect("reads work after the failure");
    let last = r.states.len() - 1;
    assert!(
        tree == r.states[last] || tree == r.states[last - 1],
        "{what}: reads see neither the last answered state nor the failed one"
    );
    statfs::statfs(r.fs.bytes()).expect("statfs works after the failure");
    assert!(
        r.fs.errors.record.is_some(),
        "{what}: no error record in memory"
    );
}

/// Restart from `image`: fsck clean, the tree one of the states from `durable` on, and (when
/// `recorded`) the error record on disk.
fn check_restart(image: Vec<u8>, r: &Run, recorded: bool, what: &str) {
    let sim: Arc<dyn Storage> = Arc::new(SimStorage::from_bytes(image));
    let fs = open(sim.clone(), Durability::Spool, ErrorPolicy::RemountRo);
    let report = check(fs.bytes(), &|_, _, _| {}).unwrap();
    let problems: Vec<_> = report.problems.iter().map(|p| p.what.clone()).collect();
    assert!(problems.is_empty(), "{what}: fsck found {problems:?}");
    let tree = snapshot(&fs).unwrap();
    let at = r.states.iter().rposition(|s| *s == tree);
    match at {
        Some(i) if i >= r.durable => {}
        Some(i) => panic!(
            "{what}: state {i} is older than the last durable one {}",
            r.durable
        ),
        None => panic!("{what}: the tree is no state of the model: {tree:#?}"),
    }
    let record = ErrorRecord::read(&*sim).unwrap();
    if recorded {
        let rec = record.unwrap_or_else(|| panic!("{what}: no error record on disk"));
        assert_eq!(rec.errno, libc::EIO as u32, "{what}: {rec:?}");
        assert!(rec.count >= 1 && !rec.message.is_empty(), "{what}: {rec:?}");
    }
}

/// Arm `op` to fail at its `n`th call (0 = the first) with EIO, once or from then on, and
/// check everything; returns the operation rvm-core failed in, if the fault fired inside the
/// workload.
fn fault_case(
    op: FaultOp,
    n: u64,
    every_later: bool,
    durability: Durability,
    fsync: bool,
) -> Option<FailedOp> {
    let what = format!("{op:?} #{n} every_later={every_later} {durability:?} fsync={fsync}");
    let mut r = run(durability, ErrorPolicy::RemountRo, fsync, |f| {
        f.fail_after(op, n, libc::EIO, every_later)
    });
    let Some(failure) = r.fs.rvm.failure() else {
        assert!(!r.fault.fired(), "{what}: a fault fired and nothing failed");
        return None;
    };
    assert_eq!(r.failed, Some(libc::EIO), "{what}");
    check_refusals(&mut r, &what);
    // The record's own write goes through the faulty storage: with every later call failing
    // it fails too (only logged).
    let recorded = !every_later || !matches!(op, FaultOp::DurableWrite | FaultOp::Any);
    let power_loss = format!("{what}, power loss");
    check_restart(r.sim.durable_image(), &r, recorded, &power_loss);
    check_restart(
        r.sim.image(),
        &r,
        recorded,
        &format!("{what}, process crash"),
    );
    Some(failure.op)
}

/// Run `cases`, count the faults that fired by the operation rvm-core failed in, and check
/// that at least `min` fired and that `must` was among them.
fn sweep(name: &str, cases: impl Iterator<Item = Option<FailedOp>>, min: usize, must: FailedOp) {
    let ops: Vec<FailedOp> = cases.flatten().collect();
    eprintln!("{name}: {} faults injected and checked: {ops:?}", ops.len());
    assert!(ops.len() >= min, "{name}: only {} faults fired", ops.len());
    assert!(ops.contains(&must), "{name}: no {must:?} failure");
}

#[test]
fn fault_in_commit() {
    let cases = (0..24).flat_map(|n| {
        [false, true]
            .map(|every| fault_case(FaultOp::DurableWrite, n, every, Durability::Sync, false))
    });
    sweep("commit", cases, 20, FailedOp::LogWrite);
}

#[test]
fn fault_in_data_write() {
    let cases = (0..24).flat_map(|n| {
        [
            fault_case(FaultOp::Write, n, false, Durability::Sync, false),
            fault_case(FaultOp::Write, n, false, Durability::Spool, true),
        ]
    });
    sweep("data write", cases, 10, FailedOp::DataWrite);
}

#[test]
fn fault_in_data_sync() {
    let cases = (0..16).flat_map(|n| {
        [false, true].map(|every| fault_case(FaultOp::Sync, n, every, Durability::Spool, true))
    });
    sweep("data sync", cases, 6, FailedOp::DataSync);
}
#[test]
fn fault_in_truncation() {
    for n in 0..6 {
        let what = format!("truncation fault #{n}");
        let mut r = run(Durability::Sync, ErrorPolicy::RemountRo, false, |_| {});
        assert_eq!(r.failed, None);
        r.fault.fail_after(FaultOp::Any, n, libc::EIO, false);
        let e = r.fs.rvm.truncate().expect_err("truncation must fail");
        r.fs.notice_failure("truncate", 0);
        assert!(
            matches!(r.fs.rvm.failure().map(|f| f.op), Some(FailedOp::Truncation)),
            "{what}: {e}"
        );
        r.states.push(r.states.last().unwrap().clone());
        check_refusals(&mut r, &what);
        r.durable = r.states.len() - 1;
        check_restart(
            r.sim.durable_image(),
            &r,
            true,
            &format!("{what}, power loss"),
        );
        check_restart(r.sim.image(), &r, true, &format!("{what}, process crash"));
    }
}

/// ENOSPC at a data write (a full host disk) answers ENOSPC to that write only: nothing is
/// failed or recorded, later operations work, and the image is clean after a restart.
#[test]
fn enospc_data_write_fails_nothing() {
    let mut answered_enospc = 0;
    for n in 0..24 {
        let r = run(Durability::Sync, ErrorPolicy::RemountRo, false, |f| {
            f.fail_after(FaultOp::Write, n, libc::ENOSPC, false)
        });
        match r.fs.rvm.failure() {
            None if r.failed == Some(libc::ENOSPC) => {
                answered_enospc += 1;
                assert!(r.fs.errors.record.is_none());
                let mut r = r;
                r.states.push(r.states.last().unwrap().clone());
                r.durable = r.states.len() - 1;
                check_restart(r.sim.durable_image(), &r, false, &format!("ENOSPC #{n}"));
                assert_eq!(ErrorRecord::read(&*r.sim).unwrap(), None);
            }
            // The ENOSPC met rvm-core's own write (logged data, truncation): sticky.
            Some(f) => assert!(
                matches!(f.op, FailedOp::ExternalWrite | FailedOp::Truncation),
                "ENOSPC #{n}: {f}"
            ),
            None => {}
        }
    }
    eprintln!("ENOSPC: {answered_enospc} data writes answered ENOSPC, nothing failed");
    assert!(
        answered_enospc >= 3,
        "only {answered_enospc} ENOSPC answers"
    );
}

/// errors=continue: a failed data write answers EIO and is recorded; the filesystem goes on.
#[test]
fn errors_continue_goes_on_after_a_data_write() {
    let mut continued = 0;
    for n in 0..24 {
        let mut r = run(Durability::Sync, ErrorPolicy::Continue, false, |f| {
            f.fail_after(FaultOp::Write, n, libc::EIO, false)
        });
        if r.fs.rvm.failure().is_some() || r.failed.is_none() {
            continue; // rvm-core's own write failed: sticky even with errors=continue
        }
        continued += 1;
        assert_eq!(r.failed, Some(libc::EIO));
        let rec = r.fs.errors.record.clone().expect("the error is recorded");
        assert_eq!(rec.count, 1, "{rec:?}");
        // The workload went on after the failed write.
        assert!(
            r.states.len() >= WORKLOAD.len(),
            "n={n}: {}",
            r.states.len()
        );
        r.states.push(r.states.last().unwrap().clone());
        r.durable = r.states.len() - 1;
        check_restart(r.sim.durable_image(), &r, true, &format!("continue #{n}"));
    }
    eprintln!("errors=continue: {continued} data-write errors continued");
    assert!(
        continued >= 3,
        "only {continued} continued data-write errors"
    );
}
