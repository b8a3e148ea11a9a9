//! `rvm_core::inspect`: the records an inspector lists are the ones recovery replays, with
//! their ranges, and the walk says why it stopped: the end of the written log, a torn last
//! record, a damaged record with valid ones after it, a sequence gap.
mod common;

use std::sync::Arc;

use common::*;
use rvm_core::inspect::{LogEnd, LogRecord, LogRecords};
use rvm_core::*;

/// A log holding recovery's jump record and three flushed transactions, each writing
/// `8 * (i + 1)` bytes at segment offset `100 * i`.
fn three_records() -> Arc<MemStorage> {
    let st = fresh(SIZE, LOG);
    let rvm = open(&st, LOG);
    rvm.set_truncate_threshold(None);
    let mut r = rvm.map(SEG).unwrap();
    for i in 0..3usize {
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        t.set_range(100 * i, 8 * (i + 1)).unwrap().fill(i as u8 + 1);
        t.end(CommitMode::Flush).unwrap();
    }
    std::mem::forget(r);
    std::mem::forget(rvm); // as a crash: no truncation at close
    st
}

fn walk(st: &Arc<MemStorage>) -> (Vec<LogRecord>, LogEnd, u64) {
    let recs = LogRecords::open(st.clone(), LOG).unwrap();
    let stop = recs.stop().clone();
    (recs.collect(), stop.reason, stop.offset)
}

fn recovered(st: &Arc<MemStorage>) -> u64 {
    let copy = Arc::new(MemStorage::from_bytes(st.snapshot()));
    open(&copy, LOG).stats().records_recovered
}

#[test]
fn lists_the_records_recovery_replays_with_their_ranges() {
    let st = three_records();
    let (recs, end, _) = walk(&st);
    assert_eq!(end, LogEnd::Unwritten);
    assert_eq!(recs.len(), 4, "{recs:?}");
    assert!(recs[0].ranges.is_empty(), "the first is recovery's jump");
    for (i, rec) in recs[1..].iter().enumerate() {
        let r = rec.ranges[0];
        assert_eq!(
            (r.offset, r.len, r.external),
            (SEG.offset + 100 * i as u64, 8 * (i as u64 + 1), false)
        );
        assert_eq!(rec.header.seq, recs[i].header.next_seq());
        assert_eq!(rec.offset, phys(LOG, rec.pos));
    }
    assert_eq!(recovered(&st), 3);
}

#[test]
fn a_torn_last_record_ends_the_log_at_its_offset() {
    let st = three_records();
    let (recs, _, _) = walk(&st);
    let last = recs.last().unwrap();
    let len = last.header.total_len as u64;
    st.write_at(&vec![0u8; (len / 2) as usize], last.offset + len - len / 2)
        .unwrap();
    let (after, end, offset) = walk(&st);
    assert!(
        matches!(end, LogEnd::Torn { header, .. } if header.seq == last.header.seq),
        "{end:?}"
    );
    assert_eq!(offset, last.offset);
    assert_eq!(after.len(), 3);
    assert_eq!(recovered(&st), 2, "recovery stops where the inspector does");
}

#[test]
fn a_damaged_record_with_valid_ones_after_it_is_corrupt_not_torn() {
    let st = three_records();
    let (recs, _, _) = walk(&st);
    let mid = &recs[2];
    let mut b = [0u8; 1];
    let at = mid.offset + mid.header.total_len as u64 - 4;
    st.read_at(&mut b, at).unwrap();
    st.write_at(&[b[0] ^ 0x40], at).unwrap();
    let (after, end, offset) = walk(&st);
    assert!(
        matches!(
            end,
            LogEnd::Corrupt {
                error: record::RecordError::Checksum { .. },
                ..
            }
        ),
        "{end:?}"
    );
    assert_eq!((offset, after.len()), (mid.offset, 2));
    assert_eq!(recovered(&st), 1);
}

#[test]
fn a_record_from_the_future_is_a_sequence_gap() {
    let st = three_records();
    let (recs, _, _) = walk(&st);
    let last = &recs[3];
    let log_id = status::read_status(&*st, LOG).unwrap().log_id;
    let data = [9u8; 24];
    let rec = record::encode(last.header.seq + 5, log_id, &[(SEG.offset + 200, &data)]);
    assert_eq!(rec.len() as u32, last.header.total_len);
    st.write_at(&rec, last.offset).unwrap();
    let (after, end, _) = walk(&st);
    assert_eq!(
        end,
        LogEnd::SequenceGap {
            found: last.header.seq + 5
        }
    );
    assert_eq!(after.len(), 3);
}
