//! Transaction semantics: abort, errors, coalescing, spool, group commit, timer.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use rvm_core::*;

#[test]
fn abort_restores_old_bytes() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.write(100, b"committed").unwrap();
    t.end(CommitMode::Flush).unwrap();
    let orig = r.bytes().to_vec();

    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.write(100, b"XXXXXXXXX").unwrap();
    t.set_range(104, 10).unwrap().fill(7); // overlaps the first range
    t.write(5000, b"yy").unwrap();
    assert_eq!(&t.bytes()[100..104], b"XXXX");
    t.abort().unwrap();
    assert_eq!(r.bytes(), &orig[..]);

    // drop = abort
    {
        let mut t = r.begin_transaction(RestoreMode::Restore);
        t.write(100, b"dropped!!").unwrap();
    }
    assert_eq!(r.bytes(), &orig[..]);

    // nothing of the aborted transactions reaches the log
    drop(r);
    drop(rvm);
    let rvm = open(&st, LOG);
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &orig[..]);
}

#[test]
fn abort_no_restore_is_an_error() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    t.write(0, b"abc").unwrap();
    assert!(matches!(t.abort(), Err(RvmError::NoRestore)));
}

#[test]
fn out_of_bounds_and_too_large() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let mut r = rvm.map(SEG).unwrap();
    let len = r.len();
    let mut t = r.begin_transaction(RestoreMode::Restore);
    assert!(matches!(
        t.set_range(len, 1),
        Err(RvmError::OutOfBounds { .. })
    ));
    assert!(matches!(
        t.set_range(1, usize::MAX),
        Err(RvmError::OutOfBounds { .. })
    ));
    assert!(t.set_range(len, 0).is_ok());
    // one record larger than the 4 KiB log
    t.set_range(0, 5000).unwrap().fill(1);
    assert!(matches!(
        t.end(CommitMode::Flush),
        Err(RvmError::RecordTooLarge { .. })
    ));
    assert!(
        r.bytes()[..5000].iter().all(|&b| b == 0),
        "restored after RecordTooLarge"
    );
    // mapping errors
    assert!(rvm.map(SEG).is_err(), "overlapping region");
    assert!(rvm.map(LOG).is_err(), "log area");
    assert!(
        rvm.map(Area {
            offset: SEG.end(),
            len: 100
        })
        .is_err(),
        "unaligned"
    );
    drop(r);
    assert!(rvm.map(SEG).is_ok(), "unmapped on drop");
}

#[test]
fn coalesced_ranges_log_once() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    for i in 0..64 {
        t.set_range(i * 8, 16).unwrap().fill(i as u8); // overlapping and adjacent
    }
    t.end(CommitMode::Flush).unwrap();
    let s = rvm.stats();
    // one range of 520 bytes: 40 header + 16 range header + 520
    assert_eq!(s.bytes_logged, 40 + 16 + 520);
    let want = r.bytes()[..520].to_vec();
    drop(r);
    drop(rvm);
    let rvm = open(&st, LOG);
    assert_eq!(&rvm.map(SEG).unwrap().bytes()[..520], &want[..]);
}

#[test]
fn no_flush_without_spool_is_lost_on_crash_but_flush_keeps_it() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    t.write(0, b"durable").unwrap();
    t.end(CommitMode::NoFlush).unwrap();
    rvm.flush().unwrap();
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    t.write(100, b"volatile").unwrap();
    t.end(CommitMode::NoFlush).unwrap();
    drop(r);
    drop(rvm); // crash
    let rvm = open(&st, LOG);
    let r = rvm.map(SEG).unwrap();
    assert_eq!(&r.bytes()[0..7], b"durable");
    assert_eq!(&r.bytes()[100..108], &[0u8; 8]);
}

#[test]
fn spool_survives_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("test.spool");
    let st = fresh(SIZE, LOG);
    let o = || RvmOptions {
        log: LOG,
        spool: Some(spool.clone()),
        spool_size: 1 << 20,
        ..Default::default()
    };
    let mut model = vec![0u8; SEG.len as usize];
    let mut rng = Rng(42);
    for round in 0..4 {
        let rvm = Rvm::initialize(st.clone(), o()).unwrap();
        let mut r = rvm.map(SEG).unwrap();
        assert_eq!(r.bytes(), &model[..], "round {round}");
        for i in 0..50 {
            let len = 1 + rng.below(300) as usize;
            let off = rng.below(SEG.len - len as u64) as usize;
            let mut t = r.begin_transaction(RestoreMode::NoRestore);
            t.set_range(off, len)
                .unwrap()
                .fill(i + 1 + round as u8 * 50);
            t.end(CommitMode::NoFlush).unwrap();
            model[off..off + len].fill(i + 1 + round as u8 * 50);
            if round == 2 && i == 25 {
                rvm.flush().unwrap(); // half in the log, half in the spool
            }
        }
        assert_eq!(r.bytes(), &model[..]);
        // simulated kill -9: no flush
    }
    let rvm = Rvm::initialize(st.clone(), o()).unwrap();
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &model[..]);
    assert!(rvm.stats().records_recovered >= 50);
    drop(rvm);
    // a spool of another log is ignored
    let other = fresh(SIZE, LOG);
    let rvm2 = Rvm::initialize(other.clone(), o()).unwrap();
    assert_eq!(rvm2.stats().records_recovered, 0);
}

/// Two live instances given one spool path (rvmfs names it by the image's UUID, which a
/// restored copy keeps): the second neither replays the first's records nor writes into its
/// spool; its no-flush commits wait in memory. The first's records still survive a crash.
#[test]
fn a_spool_held_by_a_live_instance_is_not_shared() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("shared.spool");
    let o = || RvmOptions {
        log: LOG,
        spool: Some(spool.clone()),
        spool_size: 1 << 20,
        ..Default::default()
    };
    let (first, copy) = (fresh(SIZE, LOG), fresh(SIZE, LOG));
    let a = Rvm::initialize(first.clone(), o()).unwrap();
    let mut ra = a.map(SEG).unwrap();
    let commit = |r: &mut Region, at: usize, fill: u8| {
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        t.set_range(at, 64).unwrap().fill(fill);
        t.end(CommitMode::NoFlush).unwrap();
    };
    commit(&mut ra, 0, 1);
    let spooled = std::fs::read(&spool).unwrap();

    let b = Rvm::initialize(copy.clone(), o()).unwrap();
    assert_eq!(
        b.stats().records_recovered,
        0,
        "the copy replays none of A's records"
    );
    let mut rb = b.map(SEG).unwrap();
    commit(&mut rb, 128, 2);
    assert_eq!(
        std::fs::read(&spool).unwrap(),
        spooled,
        "B left A's spool alone"
    );
    assert!(!b.remove_spool().unwrap(), "B has no spool file to remove");

    commit(&mut ra, 64, 3);
    drop((ra, a, rb, b)); // kill -9 of both: no flush
    let a = Rvm::initialize(first, o()).unwrap();
    let back = a.map(SEG).unwrap();
    assert_eq!(
        &back.bytes()[..64],
        &[1u8; 64][..],
        "A's spooled commits survive"
    );
    assert_eq!(&back.bytes()[64..128], &[3u8; 64][..]);
    drop((back, a));
    let b = Rvm::initialize(copy, o()).unwrap();
    assert_eq!(
        &b.map(SEG).unwrap().bytes()[128..192],
        &[0u8; 64][..],
        "B's were in memory"
    );
}

#[test]
fn spool_overflow_and_tiny_log() {
    // a spool smaller than the pending records and a log smaller than them: commits force
    // flushes and truncations, never fail, lose nothing
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("s");
    let st = fresh(SIZE, LOG);
    let o = RvmOptions {
        log: LOG,
        spool: Some(spool),
        spool_size: 4096,
        ..Default::default()
    };
    let rvm = Rvm::initialize(st.clone(), o.clone()).unwrap();
    let mut r = rvm.map(SEG).unwrap();
    let mut model = vec![0u8; SEG.len as usize];
    for i in 0..300u32 {
        let off = (i as usize * 97) % (SEG.len as usize - 3000);
        let len = if i % 50 == 0 {
            3000
        } else {
            50 + (i as usize % 200)
        };
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        t.set_range(off, len).unwrap().fill(i as u8);
        t.end(CommitMode::NoFlush).unwrap();
        model[off..off + len].fill(i as u8);
    }
    drop(r);
    drop(rvm);
    let rvm = Rvm::initialize(st, o).unwrap();
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &model[..]);
}

#[test]
fn concurrent_flushers_group_commit() {
    concurrent(
        Area {
            offset: 0,
            len: 1 << 20,
        },
        None,
    );
}

#[test]
fn concurrent_flushers_small_log_background_truncation() {
    concurrent(
        Area {
            offset: 0,
            len: 16 << 10,
        },
        Some(30),
    );
    concurrent(
        Area {
            offset: 0,
            len: 16 << 10,
        },
        None,
    );
}

fn concurrent(big_log: Area, threshold: Option<u8>) {
    const THREADS: u64 = 4;
    const PER: u64 = 200;
    let size = (1 << 20) + THREADS as usize * 4096;
    let st = fresh(size, big_log);
    let st_file: Arc<MemStorage> = st.clone();
    let rvm = open(&st, big_log);
    if threshold.is_some() {
        rvm.set_truncate_threshold(threshold);
    }
    let handles: Vec<_> = (0..THREADS)
        .map(|k| {
            let rvm = rvm.clone();
            std::thread::spawn(move || {
                let seg = Area {
                    offset: (1 << 20) + k * 4096,
                    len: 4096,
                };
                let mut r = rvm.map(seg).unwrap();
                let mut last = 0;
                for i in 0..PER {
                    let mut t = r.begin_transaction(RestoreMode::NoRestore);
                    t.write((i as usize % 500) * 8, &(i + 1).to_le_bytes())
                        .unwrap();
                    let mode = if i % 2 == 0 {
                        CommitMode::Flush
                    } else {
                        CommitMode::NoFlush
                    };
                    let lsn = t.end(mode).unwrap();
                    assert!(lsn > last);
                    last = lsn;
                    if mode == CommitMode::Flush {
                        assert!(rvm.stats().durable_lsn > lsn);
                    }
                    if i % 37 == 0 {
                        rvm.flush().unwrap();
                    }
                }
                rvm.flush().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = rvm.stats();
    // every transaction is logged, alone or merged into another's record (LRVM §5.2)
    assert_eq!(s.records_logged + s.records_merged, THREADS * PER);
    assert!(s.log_writes <= s.records_logged);
    if big_log.len < 1 << 20 {
        assert!(s.truncations > 0);
    }
    drop(rvm);
    let rvm = open(&st_file, big_log);
    for k in 0..THREADS {
        let r = rvm
            .map(Area {
                offset: (1 << 20) + k * 4096,
                len: 4096,
            })
            .unwrap();
        for i in 0..PER {
            let o = (i as usize % 500) * 8;
            let v = u64::from_le_bytes(r.bytes()[o..o + 8].try_into().unwrap());
            assert_eq!(v, i + 1);
        }
    }
}

#[test]
fn commit_interval_flushes_in_background() {
    let st = fresh(SIZE, LOG);
    let rvm = Rvm::initialize(
        st.clone(),
        RvmOptions {
            log: LOG,
            commit_interval: Some(Duration::from_millis(20)),
            ..Default::default()
        },
    )
    .unwrap();
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    t.write(0, b"timer").unwrap();
    let lsn = t.end(CommitMode::NoFlush).unwrap();
    let start = std::time::Instant::now();
    while rvm.stats().durable_lsn <= lsn {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timer never flushed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(r);
    drop(rvm);
    let rvm = open(&st, LOG);
    assert_eq!(&rvm.map(SEG).unwrap().bytes()[..5], b"timer");
}

#[test]
fn file_storage_ordered_and_types() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Rvm>();
    assert_send::<Region>();
    let f = tempfile::tempfile().unwrap();
    f.set_len(SIZE as u64).unwrap();
    let st: Arc<dyn Storage> = Arc::new(FileStorage::new(f));
    Rvm::create_log(&*st, LOG).unwrap();
    let o = || RvmOptions {
        log: LOG,
        ordered: true,
        checked: true,
        ..Default::default()
    };
    let rvm = Rvm::initialize(st.clone(), o()).unwrap();
    let mut r = rvm.map(SEG).unwrap();
    for i in 0..100u32 {
        let mut t = r.begin_transaction(RestoreMode::Restore);
        t.write((i as usize * 40) % 10000, &i.to_le_bytes())
            .unwrap();
        t.end(if i % 3 == 0 {
            CommitMode::Flush
        } else {
            CommitMode::NoFlush
        })
        .unwrap();
    }
    let want = r.bytes().to_vec();
    rvm.close().unwrap();
    drop(r);
    let rvm = Rvm::initialize(st, o()).unwrap();
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &want[..]);
}

#[test]
fn remapping_shows_committed_values() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    rvm.set_truncate_threshold(None);
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    t.write(8, b"flushed").unwrap();
    t.end(CommitMode::Flush).unwrap();
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    t.write(100, b"pending").unwrap();
    t.end(CommitMode::NoFlush).unwrap();
    drop(r);
    let r = rvm.map(SEG).unwrap();
    assert_eq!(&r.bytes()[8..15], b"flushed");
    assert_eq!(&r.bytes()[100..107], b"pending");
}

/// LRVM §5.2 inter-transaction optimization: no-flush records rewriting the same bytes are
/// merged into one record at flush; the statistics show what both optimizations saved.
#[test]
fn inter_transaction_merging_saves_log_bytes() {
    let run = |intra: bool, inter: bool| {
        let st = fresh(SIZE, LOG);
        let rvm = open(&st, LOG);
        rvm.set_optimizations(intra, inter);
        let mut r = rvm.map(SEG).unwrap();
        let mut lsns = Vec::new();
        for i in 0..20u8 {
            let mut t = r.begin_transaction(RestoreMode::NoRestore);
            t.write(100, &[i; 64]).unwrap();
            t.write(120, &[i ^ 0x55; 8]).unwrap(); // overlaps the first range
            t.write(1000 + i as usize * 8, &[i; 8]).unwrap();
            lsns.push(t.end(CommitMode::NoFlush).unwrap());
        }
        for w in lsns.windows(2) {
            assert_eq!(w[1], w[0] + 1, "Lsns grow by one per transaction");
        }
        rvm.flush().unwrap();
        let want = r.bytes().to_vec();
        let s = rvm.stats();
        // the next Lsn continues the merged run
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        t.write(0, b"after").unwrap();
        let l = t.end(CommitMode::Flush).unwrap();
        assert_eq!(l, lsns[19] + 1);
        let want2 = r.bytes().to_vec();
        drop(r);
        drop(rvm);
        let rvm = open(&st, LOG);
        assert_eq!(rvm.map(SEG).unwrap().bytes(), &want2[..]);
        let _ = want;
        s
    };
    let opt = run(true, true);
    let none = run(false, false);
    assert_eq!(opt.commits_no_flush, 20);
    assert!(opt.records_merged >= 15); // runs are capped at a quarter of this small log
    assert_eq!(opt.records_merged + opt.records_logged, 20);
    assert!(opt.bytes_saved_intra > 0);
    assert!(opt.bytes_saved_inter > 0);
    assert_eq!(none.bytes_saved_intra + none.bytes_saved_inter, 0);
    assert_eq!(none.records_merged, 0);
    // the unoptimized log holds exactly what the optimized one saved, plus its own bytes
    assert_eq!(
        none.bytes_logged,
        opt.bytes_logged + opt.bytes_saved_intra + opt.bytes_saved_inter
    );
    assert!(opt.bytes_logged * 2 < none.bytes_logged, "{opt:?} {none:?}");
}

/// A kill -9 after a merged record reached the log but before the spool was reset: the
/// spool's records (all Lsns of the merged record) are skipped, later ones replayed.
#[test]
fn merged_record_and_stale_spool_recover_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("m.spool");
    let st = fresh(SIZE, LOG);
    let o = || RvmOptions {
        log: LOG,
        spool: Some(spool.clone()),
        spool_size: 1 << 20,
        ..Default::default()
    };
    let rvm = Rvm::initialize(st.clone(), o()).unwrap();
    let mut r = rvm.map(SEG).unwrap();
    for i in 0..10u8 {
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        t.write(i as usize * 3, &[i + 1; 16]).unwrap();
        t.end(CommitMode::NoFlush).unwrap();
    }
    let saved_spool = std::fs::read(&spool).unwrap();
    rvm.flush().unwrap();
    let want = r.bytes().to_vec();
    assert_eq!(rvm.stats().records_merged, 9);
    drop(r);
    drop(rvm);
    std::fs::write(&spool, &saved_spool).unwrap(); // the spool as it was before the reset
    let rvm = Rvm::initialize(st.clone(), o()).unwrap();
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &want[..]);
}

#[test]
fn stats_count_aborts_truncations_recovery() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let mut r = rvm.map(SEG).unwrap();
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.write(0, b"x").unwrap();
    t.abort().unwrap();
    {
        let mut t = r.begin_transaction(RestoreMode::Restore);
        t.write(0, b"y").unwrap();
    }
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.write(0, b"z").unwrap();
    t.end(CommitMode::Flush).unwrap();
    rvm.truncate().unwrap();
    let s = rvm.stats();
    assert_eq!(s.aborts, 2);
    assert_eq!(s.commits_flush, 1);
    assert_eq!(s.truncations, 1);
    assert!(s.truncation_time_max > std::time::Duration::ZERO);
    assert!(s.truncation_time >= s.truncation_time_max);
    assert!(s.recovery_time > std::time::Duration::ZERO);
}
