//! Lazy recovery on a real file (MAP_PRIVATE): `initialize` leaves the log live, `map`
//! overlays it, truncation writes the segment file under live private mappings; and the
//! LRVM primitives unmap / query_options / set_options.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Rng;
use rvm_core::*;

const MIB: u64 = 1 << 20;
const LOG: Area = Area {
    offset: 0,
    len: MIB,
};
const SEG: Area = Area {
    offset: MIB,
    len: 4 * MIB,
};

fn file_storage(len: u64) -> Arc<dyn Storage> {
    let f = tempfile::tempfile().unwrap();
    f.set_len(len).unwrap();
    let st: Arc<dyn Storage> = Arc::new(FileStorage::new(f));
    Rvm::create_log(&*st, LOG).unwrap();
    st
}

fn open(st: &Arc<dyn Storage>, threshold: Option<u8>) -> Rvm {
    Rvm::initialize(
        st.clone(),
        RvmOptions {
            log: LOG,
            truncate_threshold: threshold,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Random transactions on the first half of the segment's pages; returns the image.
fn work(r: &mut Region, rng: &mut Rng, n: usize) -> Vec<u8> {
    let pages = (r.len() / 4096 / 2) as u64;
    for i in 0..n {
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        for _ in 0..3 {
            let off = (rng.below(pages) * 4096 + rng.below(4000)) as usize;
            t.set_range(off, 64).unwrap().fill(i as u8 | 1);
        }
        t.end(if i % 7 == 0 {
            CommitMode::Flush
        } else {
            CommitMode::NoFlush
        })
        .unwrap();
    }
    r.bytes().to_vec()
}

/// `n` random transactions, flushed, then a crash before any truncation; returns the image
/// the commits made.
fn flushed_then_crashed(st: &Arc<dyn Storage>, rng: &mut Rng, n: usize) -> Vec<u8> {
    let rvm = open(st, None);
    let mut r = rvm.map(SEG).unwrap();
    let w = work(&mut r, rng, n);
    rvm.flush().unwrap();
    w
}

fn seg_of(st: &Arc<dyn Storage>) -> Vec<u8> {
    seg_of_area(st, SEG)
}

#[test]
fn truncation_under_private_mappings_keeps_them_right() {
    let st = file_storage(SEG.end());
    let mut rng = Rng(42);
    let want = flushed_then_crashed(&st, &mut rng, 2000);
    let untouched = seg_of(&st);
    assert_ne!(untouched, want);

    // Lazy recovery writes nothing to the segment; the mapping shows every commit.
    let rvm = open(&st, None);
    assert!(rvm.stats().records_recovered > 0);
    assert_eq!(seg_of(&st), untouched, "recovery wrote the segment");
    let mut r = rvm.map(SEG).unwrap();
    assert_eq!(r.bytes(), &want[..]);
    // Truncation writes the file under the live private mapping: overlaid pages were
    // copied, untouched ones see only committed values.
    rvm.truncate().unwrap();
    assert_eq!(seg_of(&st), want);
    assert_eq!(r.bytes(), &want[..]);
    // More commits, some on pages never touched before (the second half), then a
    // background truncation while the region stays mapped.
    let pages = (r.len() / 4096) as u64;
    let mut model = want.clone();
    for i in 0..500u64 {
        let mut t = r.begin_transaction(RestoreMode::Restore);
        let off = (rng.below(pages) * 4096 + rng.below(4000)) as usize;
        t.set_range(off, 64).unwrap().fill(i as u8 | 0x80);
        model[off..off + 64].fill(i as u8 | 0x80);
        t.end(CommitMode::NoFlush).unwrap();
    }
    rvm.flush().unwrap();
    rvm.set_truncate_threshold(Some(1)); // background truncation now
    let t0 = std::time::Instant::now();
    while rvm.stats().log_tail != rvm.stats().log_head && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(r.bytes(), &model[..]);
    assert_eq!(seg_of(&st), model);
    drop(r);
    drop(rvm);
    let rvm = open(&st, None);
    assert_eq!(rvm.map(SEG).unwrap().bytes(), &model[..]);
}

#[test]
fn released_pages_come_back_with_every_commit() {
    let st = file_storage(SEG.end());
    let mut rng = Rng(9);
    let want = flushed_then_crashed(&st, &mut rng, 500);
    // The lazily overlaid pages hold the only copy of the recovered commits until a
    // truncation: releasing must keep them.
    let rvm = open(&st, None);
    let mut r = rvm.map(SEG).unwrap();
    assert!(r.dirty_bytes() > 0, "overlaid pages count as changed");
    assert!(r.release_clean_pages());
    assert_eq!(r.release_applied_pages(), 0);
    assert_eq!(r.bytes(), &want[..]);
    // After a truncation they are in the segment file and can go.
    rvm.truncate().unwrap();
    assert!(r.release_applied_pages() > 0);
    assert_eq!(r.dirty_bytes(), 0);
    assert!(r.release_clean_pages());
    assert_eq!(r.bytes(), &want[..]);
    // New commits (no truncation yet) survive both releases.
    let mut model = want.clone();
    for i in 0..200u64 {
        let mut t = r.begin_transaction(RestoreMode::Restore);
        let off = (rng.below(SEG.len / 4096) * 4096 + rng.below(4000)) as usize;
        t.set_range(off, 64).unwrap().fill(i as u8 | 0x40);
        model[off..off + 64].fill(i as u8 | 0x40);
        t.end(CommitMode::NoFlush).unwrap();
    }
    assert!(r.release_clean_pages());
    assert_eq!(r.release_applied_pages(), 0);
    assert_eq!(r.bytes(), &model[..]);
    rvm.flush().unwrap();
    drop(r);
    drop(rvm);
    assert_eq!(open(&st, None).map(SEG).unwrap().bytes(), &model[..]);
}

/// A 12 MiB segment after the 1 MiB log.
const BIG: Area = Area {
    offset: MIB,
    len: 12 * MIB,
};

/// A fresh file storage holding [`BIG`], and the region mapping it.
fn big_region() -> (Arc<dyn Storage>, Rvm, Region) {
    let st = file_storage(BIG.end());
    let rvm = open(&st, None);
    let r = rvm.map(BIG).unwrap();
    (st, rvm, r)
}

/// Every other page of a 12 MiB segment changed: 1,536 changed pages and as many clean runs
/// between them, more than one `process_madvise` batch (1,024 ranges) of each kind.
#[test]
fn scattered_pages_release_in_batches_and_keep_their_bytes() {
    let (st, rvm, mut r) = big_region();
    let pages = (BIG.len / 4096) as usize;
    let mut model = r.bytes().to_vec();
    for p in (0..pages).step_by(2) {
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        let off = p * 4096 + 100;
        t.set_range(off, 64).unwrap().fill(p as u8 | 1);
        model[off..off + 64].fill(p as u8 | 1);
        t.end(CommitMode::NoFlush).unwrap();
    }
    assert_eq!(r.dirty_bytes(), (pages / 2 * 4096) as u64);
    // Read every page so the clean ones are mapped, then unmap them: changes stay.
    assert_eq!(r.bytes(), &model[..]);
    assert!(r.release_clean_pages());
    assert_eq!(r.bytes(), &model[..]);
    assert_eq!(r.release_applied_pages(), 0, "nothing truncated yet");
    rvm.flush().unwrap();
    rvm.truncate().unwrap();
    assert_eq!(r.release_applied_pages(), pages / 2);
    assert_eq!(r.dirty_bytes(), 0);
    assert_eq!(r.bytes(), &model[..]);
    assert_eq!(seg_of_area(&st, BIG), model);
}

/// The `VmFlags` of every mapping of this process overlapping `[start, end)` (addresses), as
/// (first address, last address, flags) from /proc/self/smaps.
fn vm_flags(start: usize, end: usize) -> Vec<(usize, usize, String)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                cur = Some((a, b));
                continue;
            }
        }
        if let (Some(flags), Some((a, b))) = (line.strip_prefix("VmFlags:"), cur) {
            if a < end && b > start {
                out.push((a, b, flags.trim().to_string()));
            }
        }
    }
    out
}

/// `advise_random` marks exactly its pages (the kernel's `rr` flag on the split mapping), and
/// the region reads, changes and releases its pages there as anywhere.
#[test]
fn random_advice_covers_its_range_only() {
    let (st, rvm, mut r) = big_region();
    let base = r.bytes().as_ptr() as usize;
    // Not page-aligned on purpose: rounded out to pages 1024..2049.
    assert!(r.advise_random(4 * MIB as usize + 100, 4 * MIB as usize));
    let maps = vm_flags(base, base + r.len());
    let random: Vec<_> = maps
        .iter()
        .filter(|m| m.2.split(' ').any(|f| f == "rr"))
        .collect();
    assert_eq!(random.len(), 1, "{maps:?}");
    let (a, b) = (random[0].0.max(base), random[0].1.min(base + r.len()));
    assert_eq!(
        (a - base, b - base),
        (4 * MIB as usize, 8 * MIB as usize + 4096)
    );
    let mut model = r.bytes().to_vec();
    for p in (0..BIG.len as usize / 4096).step_by(7) {
        let mut t = r.begin_transaction(RestoreMode::NoRestore);
        t.set_range(p * 4096 + 8, 8).unwrap().fill(p as u8);
        model[p * 4096 + 8..p * 4096 + 16].fill(p as u8);
        t.end(CommitMode::NoFlush).unwrap();
    }
    assert!(r.release_clean_pages());
    assert_eq!(r.bytes(), &model[..]);
    rvm.flush().unwrap();
    rvm.truncate().unwrap();
    assert!(r.release_applied_pages() > 0);
    assert_eq!(r.bytes(), &model[..]);
    assert_eq!(seg_of_area(&st, BIG), model);
}

fn seg_of_area(st: &Arc<dyn Storage>, area: Area) -> Vec<u8> {
    let mut b = vec![0u8; area.len as usize];
    st.read_at(&mut b, area.offset).unwrap();
    b
}

#[test]
fn remap_after_no_flush_commits_needs_no_truncation() {
    let st = file_storage(SEG.end());
    let rvm = open(&st, None);
    let mut r = rvm.map(SEG).unwrap();
    let want = work(&mut r, &mut Rng(7), 300);
    drop(r); // dropped with pending no-flush records
    let r = rvm.map(SEG).unwrap();
    assert_eq!(r.bytes(), &want[..]);
    assert_eq!(rvm.stats().truncations, 0);
    assert_eq!(rvm.stats().durable_lsn, rvm.stats().next_lsn);
}

#[test]
fn unmap_flushes_what_the_region_committed() {
    let st = file_storage(SEG.end());
    let rvm = open(&st, None);
    let a = Area {
        offset: SEG.offset,
        len: 4096,
    };
    let b = Area {
        offset: SEG.offset + 4096,
        len: 4096,
    };
    let mut ra = rvm.map(a).unwrap();
    let rb = rvm.map(b).unwrap();
    let mut t = ra.begin_transaction(RestoreMode::Restore);
    t.write(0, b"unmapped").unwrap();
    // `rvm.unmap(ra)` here does not compile: `t` borrows `ra` until end/abort/drop.
    let lsn = t.end(CommitMode::NoFlush).unwrap();
    let info = rvm.query_region(&ra);
    assert_eq!(info.last_lsn, Some(lsn));
    assert!(!info.durable);
    assert!(rvm.query_region(&rb).last_lsn.is_none());
    rvm.unmap(ra).map_err(|e| e.0).unwrap();
    assert!(rvm.stats().durable_lsn > lsn);
    assert_eq!(rvm.stats().unmaps, 1);
    rb.unmap().map_err(|e| e.0).unwrap();
    drop(rvm); // a crash after unmap: the record is durable
    let rvm = open(&st, None);
    assert_eq!(&rvm.map(a).unwrap().bytes()[..8], b"unmapped");
}

#[test]
fn set_options_and_query_options() {
    let st = file_storage(SEG.end());
    let rvm = open(&st, Some(50));
    let t = rvm.query_options();
    assert_eq!(
        t,
        Tunables {
            commit_interval: None,
            truncate_threshold: Some(50),
            checked: false,
            intra: true,
            inter: true
        }
    );
    let mut r = rvm.map(SEG).unwrap();
    // checked mode on at run time: the next transaction is checked
    rvm.set_options(Tunables {
        checked: true,
        commit_interval: Some(Duration::from_millis(20)),
        ..t.clone()
    })
    .unwrap();
    assert!(rvm.query_options().checked);
    let mut tx = r.begin_transaction(RestoreMode::Restore);
    tx.write(100, b"ok").unwrap();
    tx.end(CommitMode::NoFlush).unwrap();
    assert!(rvm.query_region(&r).checked);
    // the commit timer (set at run time) makes it durable
    let t0 = std::time::Instant::now();
    while rvm.stats().durable_lsn < rvm.stats().next_lsn {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "commit timer did not flush"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    rvm.set_options(Tunables {
        truncate_threshold: None,
        commit_interval: None,
        ..rvm.query_options()
    })
    .unwrap();
    assert_eq!(rvm.query_options().truncate_threshold, None);
    assert!(rvm
        .set_options(Tunables {
            truncate_threshold: Some(101),
            ..t
        })
        .is_err());
    let s = rvm.stats();
    assert!(s.flush_syncs >= 1 && s.maps == 1);
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn mapping_a_4gib_segment_after_recovery_reads_nothing() {
    let seg = Area {
        offset: MIB,
        len: 4096 * MIB,
    };
    let st = file_storage(seg.end()); // sparse
    {
        let rvm = open(&st, None);
        let mut r = rvm.map(seg).unwrap();
        for i in 0..10usize {
            let mut t = r.begin_transaction(RestoreMode::NoRestore);
            t.write(i * 400 * MIB as usize, b"x").unwrap();
            t.end(CommitMode::NoFlush).unwrap();
        }
        rvm.flush().unwrap();
    }
    let rvm = open(&st, None);
    let before = vm_rss_kib();
    let r = rvm.map(seg).unwrap();
    let grown = vm_rss_kib().saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "mapping grew the resident set by {grown} KiB"
    );
    assert!((0..10).all(|i| r.bytes()[i * 400 * MIB as usize] == b'x'));
    let grown = vm_rss_kib().saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "reading 10 bytes grew the resident set by {grown} KiB"
    );
}
