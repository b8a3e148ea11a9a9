//! Unit tests of `ops::discard`: the queue, spare runs, punching, and the ordering rule
//! punching under the lock keeps.

use super::*;

fn runs(d: &Discard) -> Vec<(u64, u64, Lsn)> {
    d.queue.iter().map(|(&s, &(l, n))| (s, l, n)).collect()
}

fn on() -> Discard {
    Discard {
        file: std::fs::File::open("/dev/null").ok(),
        ..Discard::default()
    }
}

#[test]
fn allocation_cuts_queued_runs() {
    let mut d = on();
    d.note_commit(
        Some(5),
        vec![RunEvent::Freed(10, 10), RunEvent::Freed(30, 5)],
    );
    d.note_commit(Some(6), vec![RunEvent::Allocated(12, 3)]);
    assert_eq!(runs(&d), vec![(10, 2, 5), (15, 5, 5), (30, 5, 5)]);
    d.note_commit(Some(7), vec![RunEvent::Allocated(0, 100)]);
    assert!(runs(&d).is_empty());
}

#[test]
fn freed_then_allocated_in_one_transaction_is_not_queued() {
    let mut d = on();
    d.note_commit(
        Some(3),
        vec![RunEvent::Freed(1, 4), RunEvent::Allocated(1, 4)],
    );
    assert!(runs(&d).is_empty());
    d.note_commit(None, vec![RunEvent::Freed(1, 4)]);
    assert!(runs(&d).is_empty(), "a failed commit frees nothing");
}

#[test]
fn runs_are_held_until_their_free_is_durable_discard_on_or_off() {
    for mut d in [on(), Discard::default()] {
        d.note_commit(
            Some(4),
            vec![RunEvent::Freed(10, 5), RunEvent::Freed(30, 2)],
        );
        d.note_commit(Some(7), vec![RunEvent::Freed(20, 5)]);
        assert_eq!(d.first_held(0, 12, 4), Some((10, 5)));
        assert_eq!(
            d.first_held(12, 100, 5),
            Some((20, 5)),
            "10+5 and 30+2 durable"
        );
        assert_eq!(d.first_held(15, 5, 4), None);
        assert!(d.any_held(7) && !d.any_held(8));
    }
    let mut off = Discard::default();
    off.note_commit(Some(4), vec![RunEvent::Freed(10, 5)]);
    off.note_commit(Some(7), vec![RunEvent::Freed(20, 5)]);
    assert_eq!(off.punch_ready(5, 5, &DataLog::default(), false), 0);
    assert_eq!(
        runs(&off),
        vec![(20, 5, 7)],
        "discard off: durable runs are let go"
    );
}

#[test]
fn first_queued_finds_queued_and_spare_blocks_durable_or_not() {
    let mut d = on();
    d.note_commit(Some(2), vec![RunEvent::Freed(10, 5)]);
    d.spare.insert(40, 3);
    assert_eq!(d.first_queued(0, 10), None);
    assert_eq!(d.first_queued(0, 11), Some(10));
    assert_eq!(d.first_queued(12, 100), Some(12), "inside a queued run");
    assert_eq!(d.first_queued(15, 30), Some(40), "a spare run");
    assert_eq!(d.first_queued(41, 1), Some(41));
    assert_eq!(d.first_queued(43, 10), None);
    assert_eq!(
        d.first_queued(15, 25),
        None,
        "the spare run starts at the end"
    );
}

#[test]
fn adjacent_runs_merge_with_the_later_lsn() {
    let mut d = on();
    d.note_commit(Some(3), vec![RunEvent::Freed(0, 4)]);
    d.note_commit(Some(8), vec![RunEvent::Freed(4, 4)]);
    assert_eq!(runs(&d), vec![(0, 8, 8)]);
    // Freed before the run it precedes, as `rm -rf` frees files out of block order.
    d.note_commit(Some(9), vec![RunEvent::Freed(20, 4)]);
    d.note_commit(Some(6), vec![RunEvent::Freed(12, 8)]);
    d.note_commit(Some(7), vec![RunEvent::Freed(8, 4)]);
    assert_eq!(runs(&d), vec![(0, 24, 9)]);
}

#[test]
fn ready_runs_join_the_spare_runs_beside_them_and_are_punched_once_long_enough() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("img");
    std::fs::write(&path, vec![7u8; (64 * BLOCK_SIZE) as usize]).expect("write");
    let mut d = Discard::open(&path, 0, 0).expect("open");
    let none = DataLog::default();
    d.note_commit(Some(1), vec![RunEvent::Freed(0, 6)]);
    d.note_commit(Some(2), vec![RunEvent::Freed(10, 6)]);
    assert_eq!(
        d.punch_ready(5, 5, &none, false),
        0,
        "short runs wait as spare"
    );
    assert_eq!(d.spare_runs(1).collect::<Vec<_>>(), vec![(0, 6), (10, 6)]);
    // Blocks 6..10 (a file between them) freed later: one run of 16 blocks, one punch.
    d.note_commit(Some(6), vec![RunEvent::Freed(6, 4)]);
    assert_eq!(d.punch_ready(7, 7, &none, false), SMALL_RUN);
    assert_eq!(d.spare_runs(1).count(), 0);
}

#[test]
fn only_durable_runs_no_live_record_carries_are_punched() {
    use std::os::unix::fs::MetadataExt;
    const K: u64 = SMALL_RUN; // runs this long or longer are punched at once
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("img");
    std::fs::write(&path, vec![7u8; (32 * K * BLOCK_SIZE) as usize]).expect("write");
    let mut d = Discard::open(&path, 0, 2).expect("open");
    d.note_commit(Some(1), vec![RunEvent::Freed(30 * K, K)]);
    assert_eq!(
        d.punch_ready(5, 1, &DataLog::default(), true),
        0,
        "below the floor"
    );
    d.note_commit(
        Some(3),
        vec![RunEvent::Freed(0, 4 * K), RunEvent::Freed(10 * K, 2 * K)],
    );
    d.note_commit(Some(9), vec![RunEvent::Freed(20 * K, 2 * K)]);
    let mut hot = DataLog::default();
    hot.hot.insert(11 * K, 4); // a live record (lsn 4 >= applied 2) carries a block of 10K+2K
    assert_eq!(
        d.punch_ready(5, 2, &hot, false),
        5 * K,
        "runs 0+4K and 30K+K"
    );
    assert_eq!(d.punch_ready(5, 2, &hot, false), 0, "durable did not move");
    assert_eq!(
        d.punch_ready(10, 5, &hot, true),
        4 * K,
        "record applied, 20K+2K durable"
    );
    assert_eq!(d.pending(), 0);
    let blocks = std::fs::metadata(&path).expect("stat").blocks() * 512 / BLOCK_SIZE;
    if blocks == 32 * K {
        return; // a host without holes: discard turned itself off
    }
    assert_eq!(blocks, 32 * K - 9 * K);
    let bytes = std::fs::read(&path).expect("read");
    assert!(bytes[..(4 * K * BLOCK_SIZE) as usize]
        .iter()
        .all(|&b| b == 0));
    assert_eq!(bytes[(5 * K * BLOCK_SIZE) as usize], 7);
}

/// `n` single-block runs freed at Lsn 1 in a fresh image file of 2n blocks.
fn small_runs(n: u64) -> (tempfile::TempDir, Discard) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("img");
    std::fs::write(&path, vec![1u8; (2 * n * BLOCK_SIZE) as usize]).expect("write");
    let mut d = Discard::open(&path, 0, 0).expect("open");
    d.note_commit(Some(1), (0..n).map(|i| RunEvent::Freed(2 * i, 1)).collect());
    (dir, d)
}

/// Fill data blocks [start, start+len) of the image file at `path` with `byte`, as a
/// plan's step 2 does without the lock.
fn write_blocks(path: &Path, start: u64, len: u64, byte: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    let data = vec![byte; (len * BLOCK_SIZE) as usize];
    f.write_all_at(&data, start * BLOCK_SIZE).expect("write");
}

fn block_bytes(path: &Path, start: u64, len: u64) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read");
    bytes[(start * BLOCK_SIZE) as usize..((start + len) * BLOCK_SIZE) as usize].to_vec()
}

/// The ordering rule punching under the lock keeps (module docs, "why punching stays
/// under the lock"): a run a planned write's dry run took (no commit cuts it from the
/// queue) is punched by the dry run's own `punch_ready`, before the call returns; once
/// the plan has reserved it (`forget`), no later call punches it, so the data written
/// into it without the lock stays. A ready run and a spare one of an overflow alike.
#[test]
fn a_run_a_dry_run_took_is_punched_before_its_data_is_written_never_after() {
    const K: u64 = SMALL_RUN;
    let n = SPARE_MAX as u64 + 1 + PUNCH_BATCH as u64; // small runs at 4K + 2i
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("img");
    std::fs::write(&path, vec![1u8; ((4 * K + 2 * n) * BLOCK_SIZE) as usize]).expect("write");
    let mut d = Discard::open(&path, 0, 0).expect("open");
    let hot = DataLog::default();
    d.note_commit(Some(1), vec![RunEvent::Freed(0, 2 * K)]);
    d.note_commit(
        Some(1),
        (0..n).map(|i| RunEvent::Freed(4 * K + 2 * i, 1)).collect(),
    );
    // Durable passes 1; a dry run allocates 0+2K and the spare-to-be 4K+0, aborts (no
    // note_commit), and its transaction ends with punch_ready: punched now.
    let punched = d.punch_ready(2, 0, &hot, false);
    if !d.enabled() {
        return; // a host without holes: discard turned itself off
    }
    assert_eq!(
        punched,
        2 * K + PUNCH_BATCH as u64 - 1,
        "0+2K, then a batch of spares"
    );
    assert!(block_bytes(&path, 0, 2 * K).iter().all(|&b| b == 0));
    assert_eq!(
        block_bytes(&path, 4 * K, 1)[0],
        0,
        "the lowest spare run was punched"
    );
    // plan_write reserves both; step 2 writes their data without the lock.
    d.forget(0, 2 * K);
    d.forget(4 * K, 1);
    write_blocks(&path, 0, 2 * K, 9);
    write_blocks(&path, 4 * K, 1, 9);
    // Later calls (the batch's rest, a full host) never punch them again; the commit
    // takes them.
    assert!(
        d.punch_ready(3, 0, &hot, false) > 0,
        "the rest of the overflow"
    );
    d.punch_ready(3, 0, &hot, true);
    d.note_commit(
        Some(3),
        vec![RunEvent::Allocated(0, 2 * K), RunEvent::Allocated(4 * K, 1)],
    );
    d.punch_ready(4, 0, &hot, true);
    assert!(block_bytes(&path, 0, 2 * K).iter().all(|&b| b == 9));
    assert!(block_bytes(&path, 4 * K, 1).iter().all(|&b| b == 9));
    assert_eq!(d.pending() + d.spare_runs(1).count(), 0);
}

#[test]
fn small_runs_wait_as_spare_runs_until_forced() {
    let (_dir, mut d) = small_runs(300);
    let hot = DataLog::default();
    assert_eq!(d.punch_ready(2, 0, &hot, false), 0, "spare, not punched");
    assert_eq!(d.spare_runs(1).count(), 300);
    assert_eq!(
        d.first_held(0, 600, 2),
        None,
        "spare runs are free to allocate"
    );
    d.note_commit(Some(3), vec![RunEvent::Allocated(4, 1)]);
    assert_eq!(d.spare_runs(1).count(), 299, "an allocation takes one");
    assert_eq!(
        d.punch_ready(2, 0, &hot, true),
        299,
        "a full host punches them all"
    );
    assert!(d.spare_runs(1).next().is_none());
    if d.enabled() {
        assert_eq!(d.punched(), 299);
    }
}

#[test]
fn more_than_spare_max_small_runs_are_punched_a_batch_at_a_time() {
    let n = SPARE_MAX as u64 + 10;
    let (_dir, mut d) = small_runs(n);
    let hot = DataLog::default();
    assert_eq!(d.punch_ready(2, 0, &hot, false), PUNCH_BATCH as u64);
    assert_eq!(
        d.punch_ready(2, 0, &hot, false),
        0,
        "the rest spare, under the limit"
    );
    assert_eq!(d.spare_runs(1).count() as u64, n - PUNCH_BATCH as u64);
    assert_eq!(
        d.first_held(0, 2 * n, 2),
        None,
        "spare and punched runs are free"
    );
    assert_eq!(
        d.punch_ready(2, 0, &hot, true),
        n - PUNCH_BATCH as u64,
        "a full host"
    );
    assert!(d.pending() == 0 && d.spare_runs(1).next().is_none());
}
