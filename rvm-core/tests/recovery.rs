//! Crash recovery: torn and corrupt tails, idempotence, wrap-around, read-only.
mod common;

use std::sync::Arc;

use common::*;
use rvm_core::*;

/// Commit `n` transactions (deterministic contents) and return the model image after each
/// (index 0 = before any).
fn run_txns(rvm: &Rvm, n: usize, size: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut r = rvm.map(SEG).unwrap();
    let mut rng = Rng(seed);
    let mut images = vec![r.bytes().to_vec()];
    for i in 0..n {
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        // two overlapping ranges and one separate one
        let off = rng.below((SEG.len as usize - size - 100) as u64) as usize;
        let a = t.set_range(off, size / 2).unwrap();
        a.fill(i as u8 + 1);
        let b = t.set_range(off + size / 4, size / 2).unwrap();
        b.fill(i as u8 + 101);
        let o2 = rng.below(SEG.len - 8) as usize;
        t.write(o2, &(i as u64).to_le_bytes()).unwrap();
        t.end(CommitMode::Flush).unwrap();
        images.push(r.bytes().to_vec());
    }
    images
}

fn recovered_image(image: Vec<u8>) -> Vec<u8> {
    let st = Arc::new(MemStorage::from_bytes(image));
    let rvm = open(&st, LOG);
    let r = rvm.map(SEG).unwrap();
    r.bytes().to_vec()
}

/// Cut the last record at every byte and flip every bit of it: recovery yields exactly the
/// committed prefix.
fn torn_tail(n_before: usize, size: usize, seed: u64) -> bool {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    rvm.set_truncate_threshold(None); // deterministic snapshots
    let images = run_txns(&rvm, n_before, size, seed);
    let before = st.snapshot();
    let tail0 = rvm.stats().log_tail;
    let mut r = rvm
        .map(Area {
            offset: SEG.offset + SEG.len,
            len: 4096,
        })
        .unwrap();
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.set_range(0, size).unwrap().fill(0xEE);
    t.end(CommitMode::Flush).unwrap();
    let tail1 = rvm.stats().log_tail;
    let after = st.snapshot();
    let rec_len = (tail1 - tail0) as usize;
    assert!(rec_len > 0);
    let prev = images.last().unwrap().clone();
    let extra = Area {
        offset: SEG.offset + SEG.len,
        len: 4096,
    };
    let check = |image: Vec<u8>, complete: bool| {
        let st = Arc::new(MemStorage::from_bytes(image));
        let rvm = open(&st, LOG);
        let seg = rvm.map(SEG).unwrap();
        assert_eq!(seg.bytes(), &prev[..], "segment state differs");
        let x = rvm.map(extra).unwrap();
        if complete {
            assert!(x.bytes()[..size].iter().all(|&b| b == 0xEE));
        } else {
            assert!(
                x.bytes()[..size].iter().all(|&b| b == 0),
                "partial transaction visible"
            );
        }
    };
    let byte_at = |i: usize| phys(LOG, tail0 + i as u64) as usize;
    for cut in 0..=rec_len {
        let mut img = after.clone();
        for i in cut..rec_len {
            img[byte_at(i)] = before[byte_at(i)];
        }
        // A cut inside the zero padding may leave the record intact.
        let intact = (0..rec_len).all(|i| img[byte_at(i)] == after[byte_at(i)]);
        check(img, intact);
        assert!(intact || cut < rec_len);
    }
    for i in 0..rec_len {
        for bit in 0..8 {
            let mut img = after.clone();
            img[byte_at(i)] ^= 1 << bit;
            check(img, false);
        }
    }
    tail0 % (LOG.len - 8192) + rec_len as u64 > LOG.len - 8192
}

#[test]
fn torn_tail_simple() {
    torn_tail(5, 200, 1);
}

#[test]
fn torn_tail_straddling_the_end() {
    // 6 records of ~ (40 + 16+208 + 16+8) = 288 bytes... pick sizes so the last one wraps
    let mut straddled = 0;
    for n in [9, 10, 11, 12, 13] {
        straddled += torn_tail(n, 300, 7 + n as u64) as u32;
    }
    assert!(straddled > 0, "no case straddled the physical end");
}

#[test]
fn cut_recovery_never_partial_with_stale_lap() {
    // Fill the log several laps so stale records from earlier laps lie beyond the tail.
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let images = run_txns(&rvm, 60, 100, 3);
    drop(rvm);
    assert_eq!(recovered_image(st.snapshot()), *images.last().unwrap());
}

#[test]
fn recovery_twice_same_image_and_crash_during_recovery() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let images = run_txns(&rvm, 8, 120, 11);
    drop(rvm);
    let crashed = st.snapshot();
    let want = images.last().unwrap().clone();

    // clean recovery, twice: lazy, so the segment is not written; the mapping shows it
    let st1 = Arc::new(MemStorage::from_bytes(crashed.clone()));
    let seg = |img: &[u8]| img[SEG.offset as usize..SEG.end() as usize].to_vec();
    let rvm = open(&st1, LOG);
    rvm.set_truncate_threshold(None);
    assert_eq!(
        seg(&st1.snapshot()),
        seg(&crashed),
        "recovery wrote the segment"
    );
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &want[..]);
    drop(rvm);
    let rvm = open(&st1, LOG);
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &want[..]);
    // the later truncation applies the log to the segment
    rvm.truncate().unwrap();
    assert_eq!(seg(&st1.snapshot()), want);
    drop(rvm);
    let rvm = open(&st1, LOG);
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &want[..]);
    drop(rvm);

    // crash after k writes of recovery, then recover again
    for k in 0..20 {
        let mem = Arc::new(MemStorage::from_bytes(crashed.clone()));
        let faulty = Arc::new(FaultyStorage::new(mem.clone(), k));
        let res = Rvm::initialize(faulty, opts(LOG));
        drop(res);
        let rvm = open(&mem, LOG);
        assert_eq!(
            rvm.map(SEG).unwrap().bytes(),
            &want[..],
            "crash after {k} writes"
        );
    }
}

#[test]
fn wrap_around_keeps_every_committed_value() {
    let st = fresh(SIZE, LOG);
    let mut model = vec![0u8; SEG.len as usize];
    let mut rng = Rng(99);
    for round in 0..5 {
        let rvm = open(&st, LOG);
        let mut r = rvm.map(SEG).unwrap();
        assert_eq!(r.bytes(), &model[..], "round {round}");
        for i in 0..200 {
            let len = 1 + rng.below(700) as usize;
            let off = rng.below(SEG.len - len as u64) as usize;
            let v = (i + round * 7) as u8;
            let mut t = r.begin_transaction(RestoreMode::Restore);
            t.set_range(off, len).unwrap().fill(v);
            let mode = if rng.below(3) == 0 {
                CommitMode::Flush
            } else {
                CommitMode::NoFlush
            };
            t.end(mode).unwrap();
            model[off..off + len].fill(v);
            assert_eq!(r.bytes(), &model[..]);
        }
        rvm.flush().unwrap();
        assert!(rvm.stats().truncations > 0);
        if round % 2 == 0 {
            rvm.truncate().unwrap();
        }
    }
    let rvm = open(&st, LOG);
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &model[..]);
}

#[test]
fn read_only_recovery_writes_nothing() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let images = run_txns(&rvm, 7, 150, 5);
    drop(rvm);
    let before = st.snapshot();
    let faulty = Arc::new(FaultyStorage::new(st.clone(), 0));
    let rvm = Rvm::initialize(
        faulty.clone(),
        RvmOptions {
            log: LOG,
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut r = rvm.map(SEG).unwrap();
    assert_eq!(r.bytes(), &images.last().unwrap()[..]);
    let mut t = r.begin_transaction(RestoreMode::Restore);
    t.write(0, b"x").unwrap();
    t.end(CommitMode::Flush).unwrap();
    rvm.flush().unwrap();
    rvm.truncate().unwrap();
    drop(r);
    drop(rvm);
    assert_eq!(faulty.writes.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(st.snapshot(), before);
}

#[test]
fn corrupt_status_blocks() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    let images = run_txns(&rvm, 3, 64, 2);
    drop(rvm);
    let img = st.snapshot();
    // the older copy bad: still fine
    let newest = (0..2)
        .max_by_key(|&c| u64::from_le_bytes(img[c * 4096 + 8..c * 4096 + 16].try_into().unwrap()))
        .unwrap();
    let mut bad = img.clone();
    bad[(1 - newest) * 4096 + 20] ^= 0xFF;
    assert_eq!(recovered_image(bad), *images.last().unwrap());
    // both bad
    let mut bad = img.clone();
    bad[20] ^= 0xFF;
    bad[4096 + 20] ^= 0xFF;
    let st = Arc::new(MemStorage::from_bytes(bad));
    match Rvm::initialize(st, opts(LOG)) {
        Err(RvmError::CorruptStatus(_)) => {}
        other => panic!("expected CorruptStatus, got {other:?}"),
    }
    // wrong log area length
    let st = Arc::new(MemStorage::from_bytes(img));
    let bigger = Area {
        offset: 0,
        len: LOG.len + 4096,
    };
    assert!(matches!(
        Rvm::initialize(st, opts(bigger)),
        Err(RvmError::CorruptStatus(_))
    ));
}

#[test]
fn recreating_the_log_forgets_old_records() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    run_txns(&rvm, 3, 64, 2);
    let seg_before = st.snapshot()[SEG.offset as usize..SEG.end() as usize].to_vec();
    drop(rvm);
    Rvm::create_log(&*st, LOG).unwrap();
    let rvm = open(&st, LOG);
    assert_eq!(rvm.stats().records_recovered, 0);
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &seg_before[..]);
}

#[test]
fn torn_status_write_during_truncation() {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    rvm.set_truncate_threshold(None);
    let images = run_txns(&rvm, 6, 100, 4);
    let before = st.snapshot();
    rvm.truncate().unwrap();
    let after = st.snapshot();
    drop(rvm);
    let changed: Vec<usize> = (0..2)
        .filter(|&c| before[c * 4096..(c + 1) * 4096] != after[c * 4096..(c + 1) * 4096])
        .collect();
    assert_eq!(changed.len(), 1);
    let c = changed[0] * 4096;
    for cut in [0, 8, 16, 30, 47, 50, 51] {
        let mut img = after.clone();
        img[c + cut..c + 4096].copy_from_slice(&before[c + cut..c + 4096]);
        assert_eq!(recovered_image(img), *images.last().unwrap(), "cut {cut}");
    }
}
