//! Log shipping hooks (`rvm_core::ship`): the flush tap sees exactly the records the log
//! holds, `read_log` reads them back from any record boundary, truncation never frees a
//! record at or above the shipped floor, and a writer facing a log full of unshipped
//! records waits until the floor moves, losing nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvm_core::*;

const LOG: Area = Area {
    offset: 0,
    len: 16 * 1024,
};
const SEG: Area = Area {
    offset: 16 * 1024,
    len: 64 * 1024,
};

fn open(st: &Arc<MemStorage>) -> Rvm {
    let opts = RvmOptions {
        log: LOG,
        ship: true,
        ..Default::default()
    };
    Rvm::initialize(st.clone(), opts).unwrap()
}

fn commit(r: &mut Region, i: usize) -> Lsn {
    let mut t = r.begin_transaction(RestoreMode::NoRestore);
    t.write((i * 512) % (SEG.len as usize - 600), &[i as u8 | 1; 500])
        .unwrap();
    t.end(CommitMode::Flush).unwrap()
}

#[test]
fn the_tap_sees_what_read_log_reads_and_the_floor_holds_truncation() {
    let st = Arc::new(MemStorage::new(128 * 1024));
    Rvm::create_log(&*st, LOG).unwrap();
    let rvm = open(&st);
    let tapped: Arc<Mutex<Vec<(Lsn, Lsn, Vec<u8>)>>> = Arc::default();
    let t = tapped.clone();
    rvm.set_flush_tap(Some(Box::new(move |f: &Flushed<'_>| {
        t.lock()
            .unwrap()
            .push((f.first, f.next, f.records.to_vec()))
    })))
    .unwrap();
    let mut r = rvm.map(SEG).unwrap();
    let start = rvm.shipped_lsn().unwrap();
    assert_eq!(
        start,
        rvm.applied_lsn(),
        "the floor starts at the recovered head"
    );
    let first = commit(&mut r, 0);
    for i in 1..10 {
        commit(&mut r, i);
    }
    rvm.set_flush_tap(None).unwrap();
    commit(&mut r, 10); // not tapped, still in the log
    rvm.truncate().unwrap();
    assert_eq!(
        rvm.applied_lsn(),
        start,
        "nothing shipped: truncation frees nothing"
    );
    // What the tap saw is what the log holds, from the first record on.
    let tapped = tapped.lock().unwrap().clone();
    let seen: Vec<u8> = tapped.iter().flat_map(|t| t.2.clone()).collect();
    assert_eq!(tapped[0].0, first);
    let chunk = rvm.read_log(start, 1 << 20).unwrap();
    let tapped_at = chunk
        .records
        .windows(seen.len())
        .position(|w| w == &seen[..]);
    assert!(
        tapped_at.is_some(),
        "the log holds the tapped bytes as they were tapped"
    );
    assert_eq!(chunk.next, rvm.durable_lsn());
    // Ship half: truncation goes exactly to the floor.
    let half = tapped[5].0;
    rvm.set_shipped_lsn(half).unwrap();
    rvm.truncate().unwrap();
    assert_eq!(rvm.applied_lsn(), half);
    assert!(
        rvm.read_log(start, 1 << 20).is_err(),
        "truncated records are gone"
    );
    assert_eq!(rvm.read_log(half, 1 << 20).unwrap().next, rvm.durable_lsn());
    assert!(
        rvm.set_shipped_lsn(rvm.durable_lsn() + 5).is_err(),
        "cannot ship the future"
    );
    let plain = Arc::new(MemStorage::new(128 * 1024));
    Rvm::create_log(&*plain, LOG).unwrap();
    let off = Rvm::initialize(
        plain,
        RvmOptions {
            log: LOG,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        off.set_flush_tap(None).is_err() && off.shipped_lsn().is_none(),
        "shipping off"
    );
}

#[test]
fn a_log_full_of_unshipped_records_makes_the_writer_wait_and_loses_nothing() {
    let st = Arc::new(MemStorage::new(128 * 1024));
    Rvm::create_log(&*st, LOG).unwrap();
    let rvm = Arc::new(open(&st));
    let mut r = rvm.map(SEG).unwrap();
    let writer = {
        let rvm = rvm.clone();
        std::thread::spawn(move || {
            // 40 records of ~560 bytes: more than the 8 KiB of record space holds.
            let lsns: Vec<Lsn> = (0..40).map(|i| commit(&mut r, i)).collect();
            drop(rvm);
            (lsns, r.bytes().to_vec())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!writer.is_finished(), "the writer waits for the shipper");
    assert!(rvm.stats().log_ship_waits > 0);
    // The "shipper": ship whatever is durable until the writer is done.
    while !writer.is_finished() {
        rvm.set_shipped_lsn(rvm.durable_lsn()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let (lsns, bytes) = writer.join().unwrap();
    assert_eq!(lsns.len(), 40);
    rvm.set_shipped_lsn(rvm.durable_lsn()).unwrap();
    drop(rvm);
    let again = open(&st);
    let r = again.map(SEG).unwrap();
    assert_eq!(r.bytes(), &bytes[..], "every committed record survived");
}
