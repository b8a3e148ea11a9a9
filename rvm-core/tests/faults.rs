//! Storage faults (issue 11): errors are sticky and honest. A [`FaultStorage`] over a
//! [`SimStorage`] fails the Nth write, durable write or sync (EIO or ENOSPC, once or from
//! then on) in a commit, a group commit, the commit timer's flush, an explicit or
//! background truncation, the ordered data sync, an external-range write, or recovery.
//! Then every later commit, flush and truncation must fail with `RvmError::Failed` and do
//! no I/O, and after a restart (a power loss: only the durable image; or a process crash:
//! every write, and the spool) every commit reported durable before the fault must be
//! there, and no recovered record may point at data whose sync failed.
mod common;
mod fault_model;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Rng;
use fault_model::*;
use rvm_core::*;

/// One run of the single-thread workload with a fault armed after setup.
fn single_thread_case(op: FaultOp, n: u64, case: u64, truncate: bool) {
    let dir = tempfile::tempdir().unwrap();
    let spool_path = dir.path().join("faults.spool");
    let spool = case.is_multiple_of(3).then_some(spool_path.as_path());
    let o = opts(spool);
    let (sim, fault, rvm) = setup(&o);
    let mut r = rvm.map(SEG).unwrap();
    let errno = errno_of(case);
    fault.fail_after(op, n, errno, case % 4 < 2);
    let mut rng = Rng(case.wrapping_mul(0x9E37_79B9) | 1);
    let mut m = Model::new();
    let what = format!("{op:?} fault after {n}, case {case}");
    match workload(&rvm, &mut r, &mut rng, 120, truncate, &mut m) {
        None => assert!(!fault.fired(), "{what}: an injected fault went unreported"),
        Some(e) => {
            assert!(matches!(e, RvmError::Failed(_)), "{what}: {e}");
            assert_refused(&rvm, Some(&mut r), &fault, errno);
            m.failed = true;
        }
    }
    drop(r);
    drop(rvm);
    check_both(&sim, spool, &m, &what);
}

#[test]
fn commit_and_flush_faults_are_sticky() {
    let mut case = 0;
    for (op, range) in [
        (FaultOp::DurableWrite, 0..40),
        (FaultOp::Write, 0..20),
        (FaultOp::Sync, 0..10),
        (FaultOp::Any, 0..60),
    ] {
        for n in range {
            single_thread_case(op, n, case, false);
            case += 1;
        }
    }
}

#[test]
fn explicit_truncation_faults_are_sticky() {
    // Arm the fault right before a truncation: each of its reads, writes and syncs fails
    // in turn; nothing committed is lost (the head does not move).
    for n in 0..12u64 {
        for op in [FaultOp::Any, FaultOp::Write, FaultOp::Sync] {
            let (sim, fault, rvm) = setup(&opts(None));
            let mut r = rvm.map(SEG).unwrap();
            let mut m = Model::new();
            let mut rng = Rng(n + 7);
            for _ in 0..20 {
                let mut t = r.begin_transaction(RestoreMode::Restore);
                let off = rng.below(SEG.len - 300) as usize;
                t.set_range(off, 300).unwrap().fill(rng.next() as u8);
                t.end(CommitMode::Flush).unwrap();
                m.committed = m.push(&r);
                m.durable = m.committed;
            }
            let errno = errno_of(n);
            fault.fail_after(op, n, errno, n % 2 == 0);
            match rvm.truncate() {
                Ok(()) => assert!(!fault.fired()),
                Err(e) => {
                    assert!(matches!(&e, RvmError::Failed(f) if f.op == FailedOp::Truncation));
                    assert_refused(&rvm, Some(&mut r), &fault, errno);
                }
            }
            drop(r);
            drop(rvm);
            check_both(
                &sim,
                None,
                &m,
                &format!("truncation {op:?} fault after {n}"),
            );
        }
    }
}

#[test]
fn truncation_faults_in_the_workload_are_sticky() {
    for n in 0..40u64 {
        single_thread_case(FaultOp::Any, n * 7, 1000 + n, true);
        single_thread_case(FaultOp::Sync, n % 8, 2000 + n, true);
    }
}

#[test]
fn background_truncation_faults_are_sticky() {
    // Without ordered data or external ranges, only truncation syncs and writes in place:
    // a Sync or Write fault hits the background truncator (or a committer finding the
    // log full, which truncates itself).
    for n in 0..16u64 {
        let op = if n % 2 == 0 {
            FaultOp::Sync
        } else {
            FaultOp::Write
        };
        let (sim, fault, rvm) = setup(&opts(None));
        rvm.set_truncate_threshold(Some(10));
        let mut r = rvm.map(SEG).unwrap();
        let errno = errno_of(n / 2);
        fault.fail_after(op, n / 2, errno, n % 4 < 2);
        let mut m = Model::new();
        let mut rng = Rng(n + 3);
        let started = Instant::now();
        let mut err = None;
        while err.is_none() && started.elapsed() < Duration::from_secs(10) {
            let mut t = r.begin_transaction(RestoreMode::Restore);
            let off = rng.below(SEG.len - 200) as usize;
            t.set_range(off, 200).unwrap().fill(rng.next() as u8);
            let res = t.end(CommitMode::Flush);
            let at = m.push(&r);
            match res {
                Ok(_) => {
                    m.committed = at;
                    m.durable = at;
                }
                Err(e) => err = Some(e),
            }
        }
        let e = err.expect("the background truncation fault is reported");
        assert!(matches!(e, RvmError::Failed(_)), "{e}");
        assert_eq!(rvm.failure().unwrap().op, FailedOp::Truncation);
        assert_refused(&rvm, Some(&mut r), &fault, errno);
        drop(r);
        drop(rvm);
        check_both(&sim, None, &m, &format!("background truncation {op:?} {n}"));
    }
}

#[test]
fn commit_timer_faults_are_sticky() {
    // No-flush commits made durable by the commit timer only; the timer's write fails.
    for n in 0..8u64 {
        let mut o = opts(None);
        o.commit_interval = Some(Duration::from_millis(1));
        let (sim, fault, rvm) = setup(&o);
        let mut r = rvm.map(SEG).unwrap();
        let errno = errno_of(n);
        fault.fail_after(FaultOp::DurableWrite, n, errno, n % 2 == 0);
        let mut m = Model::new();
        let mut lsns = vec![0u64]; // Lsn of each point
        let started = Instant::now();
        let mut err = None;
        let mut i = 0u64;
        while err.is_none() && started.elapsed() < Duration::from_secs(10) {
            i += 1;
            let mut t = r.begin_transaction(RestoreMode::Restore);
            t.write(((i * 8) % SEG.len) as usize, &i.to_le_bytes())
                .unwrap();
            let res = t.end(CommitMode::NoFlush);
            let at = m.push(&r);
            match res {
                Ok(lsn) => {
                    lsns.push(lsn);
                    m.committed = at;
                }
                Err(e) => err = Some(e),
            }
            // What the timer made durable so far (durable_lsn only moves after success).
            let d = rvm.durable_lsn();
            if let Some(k) = (1..lsns.len()).rev().find(|&k| lsns[k] < d) {
                m.durable = m.durable.max(k);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let e = err.expect("the timer's failure refuses later commits");
        assert!(matches!(e, RvmError::Failed(_)), "{e}");
        assert_eq!(rvm.failure().unwrap().op, FailedOp::LogWrite);
        assert_refused(&rvm, Some(&mut r), &fault, errno);
        drop(r);
        drop(rvm);
        check_both(&sim, None, &m, &format!("commit timer fault after {n}"));
    }
}

#[test]
fn group_commit_followers_get_the_leaders_error() {
    const THREADS: usize = 4;
    for n in 0..24u64 {
        let (sim, fault, rvm) = setup(&opts(None));
        let regions: Vec<Region> = (0..THREADS)
            .map(|i| {
                rvm.map(Area {
                    offset: SEG.offset + i as u64 * 4096,
                    len: 4096,
                })
                .unwrap()
            })
            .collect();
        let errno = errno_of(n);
        fault.fail_after(FaultOp::DurableWrite, n, errno, n % 2 == 0);
        // Each thread commits (Flush) its counter into its own 4 KiB region.
        let handles: Vec<_> = regions
            .into_iter()
            .map(|mut r| {
                std::thread::spawn(move || {
                    let mut acked = 0u64;
                    for c in 1..=200u64 {
                        let mut t = r.begin_transaction(RestoreMode::Restore);
                        t.write(0, &c.to_le_bytes()).unwrap();
                        t.write(8 + (c as usize * 24) % 4000, &[c as u8; 24])
                            .unwrap();
                        match t.end(CommitMode::Flush) {
                            Ok(_) => acked = c,
                            Err(e) => {
                                assert!(matches!(e, RvmError::Failed(_)), "{e}");
                                // Every later commit of this thread is refused too.
                                let t = r.begin_transaction(RestoreMode::Restore);
                                assert!(is_failed(t.end(CommitMode::Flush)));
                                return (acked, true);
                            }
                        }
                    }
                    (acked, false)
                })
            })
            .collect();
        let results: Vec<(u64, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        if fault.fired() {
            assert!(
                results.iter().all(|r| r.1),
                "fault {n}: every thread saw the error"
            );
            assert_refused(&rvm, None, &fault, errno);
        }
        drop(rvm);
        // Power loss: every counter a commit reported durable is there.
        let st = Arc::new(SimStorage::from_bytes(sim.durable_image()));
        let rvm = Rvm::initialize(st, opts(None)).unwrap();
        for (i, (acked, _)) in results.iter().enumerate() {
            let r = rvm
                .map(Area {
                    offset: SEG.offset + i as u64 * 4096,
                    len: 4096,
                })
                .unwrap();
            let got = u64::from_le_bytes(r.bytes()[..8].try_into().unwrap());
            assert!(
                got >= *acked,
                "fault {n}, thread {i}: counter {got} < acked {acked}"
            );
        }
    }
}

/// Ordered data: each step writes a fresh 64-byte data block in place (not logged), notes
/// it, and commits an entry pointing at it with the block's version. After a power loss no
/// recovered entry may point at a block that is not on disk.
fn ordered_case(n: u64, on_demand: bool, op: FaultOp) {
    let mut o = opts(None);
    o.ordered = true;
    let (sim, fault, rvm) = setup(&o);
    rvm.set_ordered_on_demand(on_demand);
    let mut r = rvm.map(SEG).unwrap();
    let errno = errno_of(n);
    fault.fail_after(op, n, errno, n.is_multiple_of(3));
    let mut rng = Rng(n * 31 + 5);
    let (mut acked, mut retry) = (0u64, None);
    for step in 1..=(DATA.len / 64) {
        let block = DATA.offset + (step - 1) * 64;
        if rvm
            .storage()
            .write_at(&step.to_le_bytes().repeat(8), block)
            .is_err()
        {
            break; // the filesystem's own data write failed: not RVM's to report
        }
        rvm.note_unlogged_data();
        let mut t = r.begin_transaction(RestoreMode::Restore);
        t.write(((step - 1) * 8) as usize, &step.to_le_bytes())
            .unwrap();
        let flush = rng.below(3) == 0;
        let mode = if flush {
            CommitMode::Flush
        } else {
            CommitMode::NoFlush
        };
        let res = match t.end(mode) {
            Ok(_) if !flush && rng.below(4) == 0 => rvm.flush(),
            Ok(_) if !flush => continue,
            other => other.map(|_| ()),
        };
        match res {
            Ok(()) => acked = step,
            Err(e) => {
                assert!(matches!(e, RvmError::Failed(_)), "{e}");
                // Retry at once, with no new data noted: a retry that skipped the data sync
                // would make records durable that point at lost data (fsyncgate).
                retry = Some(rvm.flush());
                break;
            }
        }
    }
    // Power loss now: only the durable image survives.
    let st = Arc::new(SimStorage::from_bytes(sim.durable_image()));
    let (rvm0, mut r0) = (rvm, r);
    let rvm = Rvm::initialize(st.clone(), opts(None)).unwrap();
    let r = rvm.map(SEG).unwrap();
    for step in 1..=(DATA.len / 64) {
        let at = ((step - 1) * 8) as usize;
        let entry = u64::from_le_bytes(r.bytes()[at..at + 8].try_into().unwrap());
        if step <= acked {
            assert_eq!(entry, step, "ordered {op:?} {n}: acked entry {step} lost");
        }
        if entry == step {
            let mut b = vec![0u8; 64];
            st.read_at(&mut b, DATA.offset + (step - 1) * 64).unwrap();
            assert_eq!(
                b,
                step.to_le_bytes().repeat(8),
                "ordered {op:?} {n} (on demand {on_demand}): entry {step} points at data \
                 that is not on disk"
            );
        }
    }
    if let Some(retry) = retry {
        assert!(is_failed(retry), "a retried flush is refused");
        assert_refused(&rvm0, Some(&mut r0), &fault, errno);
    }
}

#[test]
fn ordered_data_sync_faults_never_leave_records_pointing_at_lost_data() {
    for n in 0..24u64 {
        for on_demand in [true, false] {
            ordered_case(n, on_demand, FaultOp::Sync);
        }
        ordered_case(n, true, FaultOp::DurableWrite);
    }
}

#[test]
fn recovery_write_faults_lose_nothing() {
    // A crashed instance with a spool of no-flush commits (with external ranges) and a
    // log to recover; recovery fails at its Nth write or sync, then a restart (with the
    // faults off) must still find everything.
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("rec.spool");
    let o = opts(Some(&spool));
    let (sim, _fault, rvm) = setup(&o);
    let mut r = rvm.map(SEG).unwrap();
    let mut m = Model::new();
    let mut rng = Rng(77);
    assert!(workload(&rvm, &mut r, &mut rng, 60, false, &mut m).is_none());
    drop(r);
    drop(rvm); // a process crash: no flush, the spool stays
    let base = sim.image();
    let spooled = std::fs::read(&spool).unwrap();
    let mut ok_at = None;
    for n in 0..40u64 {
        std::fs::write(&spool, &spooled).unwrap();
        let sim2 = Arc::new(SimStorage::from_bytes(base.clone()));
        let fault = Arc::new(FaultStorage::new(sim2.clone()));
        fault.fail_after(FaultOp::Any, n, errno_of(n), n % 2 == 0);
        match Rvm::initialize(fault.clone(), o.clone()) {
            Ok(rvm) => {
                assert!(!fault.fired());
                drop(rvm);
                ok_at = Some(n);
            }
            Err(e) => assert!(matches!(e, RvmError::Io(_)), "{e}"),
        }
        // After a failed recovery every no-flush commit is still in the spool
        // (process crash), and every flushed one in the log (power loss).
        check_both(
            &sim2,
            Some(&spool),
            &m,
            &format!("recovery fault after {n}"),
        );
        if ok_at.is_some() {
            break;
        }
    }
    assert!(
        ok_at.is_some(),
        "recovery needs fewer than 40 I/O operations"
    );
}

#[test]
fn a_callers_data_write_failure_fails_the_instance() {
    let (_sim, fault, rvm) = setup(&opts(None));
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.write(0, b"durable").unwrap();
    t.end(CommitMode::Flush).unwrap();
    let e = rvm.fail(std::io::Error::from_raw_os_error(libc::ENOSPC));
    assert!(matches!(&e, RvmError::Failed(f) if f.op == FailedOp::DataWrite));
    assert_refused(&rvm, Some(&mut r), &fault, libc::ENOSPC);
    // A second report keeps the first failure.
    let e = rvm.fail(std::io::Error::from_raw_os_error(libc::EIO));
    assert!(matches!(&e, RvmError::Failed(f) if f.errno == Some(libc::ENOSPC)));
    assert_eq!(&r.bytes()[..7], b"durable", "reads go on");
}

/// A failed data sync poisons the spool (fsyncgate): the records left in it may point at
/// file data the kernel dropped, so the next recovery does not replay them (it counts them
/// in `Stats::spool_records_discarded`). The same run without the fault replays them.
#[test]
fn a_failed_data_sync_poisons_the_spool() {
    for fail in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("poison.spool");
        let mut o = opts(Some(&spool));
        o.ordered = true;
        let (sim, fault, rvm) = setup(&o);
        rvm.set_ordered_on_demand(true);
        let mut r = rvm.map(SEG).unwrap();
        // File data in place (not logged), then a no-flush record pointing at it.
        rvm.storage()
            .write_at(&7u64.to_le_bytes().repeat(8), DATA.offset)
            .unwrap();
        rvm.note_unlogged_data();
        let mut t = r.begin_transaction(RestoreMode::Restore);
        t.write(0, &7u64.to_le_bytes()).unwrap();
        t.end(CommitMode::NoFlush).unwrap();
        if fail {
            fault.fail_after(FaultOp::Sync, 0, libc::EIO, false);
            let e = rvm.flush().expect_err("the data sync fails");
            assert!(
                matches!(&e, RvmError::Failed(f) if f.op == FailedOp::DataSync),
                "{e}"
            );
        }
        // kill -9: the spool survives; the failed sync's data never reached the disk. The
        // leaked instance still holds its spool's lock (a dead process would not): recover
        // from a copy of the file, the bytes the dead process left.
        std::mem::forget(r);
        std::mem::forget(rvm);
        let left = dir.path().join("left.spool");
        std::fs::copy(&spool, &left).unwrap();
        let spool = left;
        let img = if fail {
            sim.durable_image()
        } else {
            sim.image()
        };
        let st = Arc::new(SimStorage::from_bytes(img));
        let rvm = Rvm::initialize(st.clone(), opts(Some(&spool))).unwrap();
        let r = rvm.map(SEG).unwrap();
        let entry = u64::from_le_bytes(r.bytes()[..8].try_into().unwrap());
        let discarded = rvm.stats().spool_records_discarded;
        if fail {
            assert_eq!(entry, 0, "a record of the poisoned spool was replayed");
            assert_eq!(discarded, 1);
        } else {
            assert_eq!((entry, discarded), (7, 0), "a healthy spool is replayed");
        }
        // The next recovery finds a fresh spool: nothing more to replay or discard.
        drop(r);
        drop(rvm);
        let rvm = Rvm::initialize(st, opts(Some(&spool))).unwrap();
        assert_eq!(rvm.stats().spool_records_discarded, 0);
    }
}
