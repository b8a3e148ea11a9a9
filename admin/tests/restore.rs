//! The redo log streamed to a real SeaweedFS and restored from it (issue 14 item 2): a real
//! image driven through the rvmfs library with shipping on (creates, mkdirs, renames,
//! unlinks, xattrs), shipped, then `rvmfs-admin restore` into a fresh directory: the
//! restored metadata region is byte-identical to the source's at that Lsn, fsck finds it
//! clean, an earlier Lsn gives the earlier state, a gap or a corrupt segment refuses the
//! restore, and a writer whose lease was taken over ships nothing more while the new
//! writer's keys (another epoch) never collide with its.
//!
//! Local-data mode: file data is not in the bucket, so the files here hold no data; only
//! the metadata is restored (with the data tier, the extents will point at objects).

#[macro_use]
mod common;

use bytes::Bytes;
use common::*;
use objstore::ship::{self, listing, ShipConfig, Shipper, Until};
use objstore::{Keeper, Lease, Put};
use rvm_core::{FileStorage, Rvm};
use rvmfs::layout::header::Header;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::store::dentry;
use rvmfs_tests::require_seaweed;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn restore_gives_the_source_region_at_the_latest_and_at_an_earlier_lsn() {
    let (s, dir, mut src, b) = ship_setup!("latest");
    let shipper = start(&b, &src, 1, always());
    churn(&mut src.fs, "a", 3, 60);
    // The first sync also takes the base snapshot (at or before what it shipped).
    let base = shipper.sync(WAIT).unwrap();
    churn(&mut src.fs, "c", 3, 60);
    let l1 = shipper.sync(WAIT).unwrap();
    assert!(shipper.status().last_snapshot.is_some_and(|b| b <= base));
    assert_eq!(l1, src.fs.rvm.durable_lsn());
    let early = src.fs.bytes().to_vec();
    // Truncation goes up to the shipped floor; an incremental snapshot there, then more
    // changes and a late file.
    src.fs.rvm.truncate().unwrap();
    assert_eq!(src.fs.rvm.applied_lsn(), l1);
    let snap = shipper.snapshot_now(WAIT).unwrap();
    assert_eq!(snap, Some(l1));
    assert!(snap.is_some());
    churn(&mut src.fs, "b", 4, 50);
    mk(&mut src.fs, ROOT_INO, "late", libc::S_IFREG | 0o600);
    src.fs.rvm.flush().unwrap();
    let t0 = Instant::now();
    let l2 = shipper.sync(WAIT).unwrap();
    eprintln!("shipping lag after the last commit: {:?}", t0.elapsed());
    let late = src.fs.bytes().to_vec();
    let st = shipper.status();
    eprintln!("status: {st:?}");
    assert!(st.snapshots >= 2 && st.segments >= 2, "{st:?}");

    let out = dir.path().join("restored");
    std::fs::create_dir(&out).unwrap();
    let latest = out.join("latest.img");
    eprintln!("{}", restore_ok(&s, "latest", &latest, &[]));
    let got = region_of(&latest);
    assert_same(&got, &late, &format!("latest region differs (Lsn {l2})"));
    assert_eq!(got.len(), late.len());
    fsck_clean(&latest);

    let older = out.join("older.img");
    let lsn = (l1 - 1).to_string();
    restore_ok(&s, "latest", &older, &["--lsn", &lsn]);
    let got = region_of(&older);
    assert_same(&got, &early, &format!("region at Lsn {lsn} differs"));
    assert!(
        dentry::lookup(&got, ROOT_INO, b"late").unwrap().is_none(),
        "late is absent"
    );
    assert!(dentry::lookup(&late, ROOT_INO, b"late").unwrap().is_some());
    fsck_clean(&older);
    // A restore over an existing file needs -f.
    let o = admin_restore(&s, "latest", &older, &[]);
    assert_eq!(o.status.code(), Some(8));
    drop(shipper);
}

#[test]
fn a_gap_a_corrupt_segment_or_no_snapshot_refuses_restore() {
    let (s, dir, mut src, b) = ship_setup!("gap");
    let shipper = start(&b, &src, 1, always());
    for round in 0..6 {
        churn(&mut src.fs, &format!("r{round}-"), 1, 20);
        shipper.sync(WAIT).unwrap();
    }
    drop(shipper);
    ship::restore(&b, Until::Latest).expect("whole bucket restores");
    let segs = listing::segments(&b).unwrap();
    assert!(segs.len() >= 4, "{segs:?}");
    let victim = &segs[segs.len() / 2];
    let (orig, _) = b.get(&victim.name).unwrap();

    let mut bad = orig.to_vec();
    let at = bad.len() - 9;
    bad[at] ^= 0x40;
    b.put(&victim.name, Bytes::from(bad), Put::Overwrite)
        .unwrap();
    let e = ship::restore(&b, Until::Latest).unwrap_err().to_string();
    assert!(
        e.contains(&victim.name) && e.contains("checksum mismatch"),
        "{e}"
    );
    let img = dir.path().join("bad.img");
    let o = admin_restore(&s, "gap", &img, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(
        !img.exists() || std::fs::metadata(&img).unwrap().len() == 0,
        "nothing written"
    );

    b.put(&victim.name, orig, Put::Overwrite).unwrap();
    ship::restore(&b, Until::Latest).expect("repaired");
    b.delete(&victim.name).unwrap();
    let e = ship::restore(&b, Until::Latest).unwrap_err().to_string();
    assert!(e.contains("lacks Lsns"), "{e}");
    // An Lsn before the gap still restores.
    let before = victim.first - 1;
    let r = ship::restore(&b, Until::Lsn(before)).unwrap();
    assert_eq!(r.next, victim.first);

    let empty = bucket(&s, "empty");
    let e = ship::restore(&empty, Until::Latest)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no complete snapshot"), "{e}");
}

#[test]
fn a_superseded_writer_ships_nothing_more_and_the_new_writers_keys_never_collide() {
    let (s, dir, mut src, b) = ship_setup!("epochs");
    let ttl = Duration::from_millis(1500);
    let lease = Lease::acquire(&b, "writer-a", ttl).unwrap();
    assert_eq!(lease.epoch(), 1);
    let keeper = Arc::new(Keeper::start(b.clone(), lease, Duration::from_millis(200)));
    let k = keeper.clone();
    let shipper = start(&b, &src, 1, Arc::new(move || k.may_commit()));
    churn(&mut src.fs, "a", 2, 20);
    let shipped = shipper.sync(WAIT).unwrap();

    // Writer B takes over and restores the state shipped so far.
    let b2 = bucket(&s, "epochs");
    let lease_b = Lease::take_over(&b2, "writer-b", ttl).unwrap();
    assert_eq!(lease_b.epoch(), 2);
    let until = Instant::now() + WAIT;
    while keeper.may_commit() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!keeper.may_commit(), "A learns it lost the lease");
    churn(&mut src.fs, "late-a", 1, 10);
    let e = shipper.sync(WAIT).unwrap_err().to_string();
    assert!(e.contains("lease"), "A's shipper refuses to put: {e}");
    assert_eq!(
        shipper.status().shipped,
        shipped,
        "nothing of A's after the takeover"
    );

    let r = ship::restore(&b2, Until::Latest).unwrap();
    assert_eq!(r.next, shipped);
    let st = new_file(&dir.path().join("b.img"), r.image_len);
    st.write_at(&r.header_block, 0).unwrap();
    let header = Header::decode(&r.header_block, r.image_len).unwrap();
    Rvm::create_log_at(&*st, header.log_area(), r.next).unwrap();
    st.write_at(&r.region, r.segment_offset).unwrap();
    let Source { fs: mut fs_b, info } = open_image(st, r.image_len);
    let ship_b = Shipper::start(b2.clone(), fs_b.rvm.clone(), info, 2, always(), quick()).unwrap();
    churn(&mut fs_b, "b", 2, 20);
    ship_b.sync(WAIT).unwrap();
    let b_state = fs_b.bytes().to_vec();

    let segs = listing::segments(&b2).unwrap();
    let (a, bb): (Vec<_>, Vec<_>) = segs.iter().partition(|s| s.epoch == 1);
    assert!(!a.is_empty() && !bb.is_empty());
    assert!(a.iter().all(|s| s.name.starts_with("log/00000001/")));
    assert!(bb.iter().all(|s| s.name.starts_with("log/00000002/")));
    assert!(
        bb.iter().all(|s| s.first >= shipped),
        "B continues A's Lsns"
    );
    let got = ship::restore(&b2, Until::Latest).unwrap();
    assert_same(&got.region, &b_state, "the restore follows the new writer");
    drop(ship_b);
    drop(shipper);
}

fn median(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// The figures of README "Streaming the log" (not a test of speed: it asserts nothing about
/// time): shipping lag with the default 1 s interval, bytes shipped per create, restore time
/// of a 10,000-file image. `cargo test --release -p admin --test restore -- --ignored
/// --nocapture figures`.
#[test]
#[ignore]
fn figures() {
    let (s, dir, mut src, b) = ship_setup!("figures", 256 * MIB, 16384);
    let cfg = ShipConfig::default();
    let shipper = start_with(&b, &src, 1, always(), cfg);
    shipper.snapshot_now(WAIT).unwrap();
    // Lag: one create committed durably, then the time until the bucket has it.
    let mut lags = Vec::new();
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(137 * (i % 7) + 50));
        mk(
            &mut src.fs,
            ROOT_INO,
            &format!("lag{i}"),
            libc::S_IFREG | 0o644,
        );
        src.fs.rvm.flush().unwrap();
        let want = src.fs.rvm.durable_lsn();
        let t = Instant::now();
        while shipper.status().shipped < want {
            std::thread::sleep(Duration::from_millis(2));
        }
        lags.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (lo, mid, hi) = median(&mut lags);
    eprintln!("shipping lag (commit durable -> segment in the bucket), 20 commits, interval 1 s: median {mid:.0} ms, min {lo:.0}, max {hi:.0}");
    // Bytes per create: 10,000 files in 100 directories, committed without fsync.
    let before = shipper.sync(WAIT).map(|_| shipper.status()).unwrap();
    let logged0 = src.fs.rvm.stats().bytes_logged;
    let t = Instant::now();
    for d in 0..100 {
        let dino = mk(
            &mut src.fs,
            ROOT_INO,
            &format!("d{d}"),
            libc::S_IFDIR | 0o755,
        );
        for f in 0..100 {
            mk(
                &mut src.fs,
                dino,
                &format!("file{f}"),
                libc::S_IFREG | 0o644,
            );
        }
        src.fs.rvm.flush().unwrap();
    }
    let after = shipper.sync(WAIT).map(|_| shipper.status()).unwrap();
    let ops = 10_100.0;
    eprintln!(
        "10,100 creates in {:.2} s: shipped {:.0} bytes/op in {} segments (the log: {:.0} bytes/op)",
        t.elapsed().as_secs_f64(),
        (after.segment_bytes - before.segment_bytes) as f64 / ops,
        after.segments - before.segments,
        (src.fs.rvm.stats().bytes_logged - logged0) as f64 / ops
    );
    // Restore time: from the snapshot before the creates and every segment since, then
    // from a snapshot after them.
    let out = dir.path().join("r");
    std::fs::create_dir(&out).unwrap();
    for (name, snap) in [("replay", false), ("snapshot", true)] {
        if snap {
            src.fs.rvm.truncate().unwrap();
            shipper.snapshot_now(WAIT).unwrap();
        }
        let img = out.join(format!("{name}.img"));
        let t = Instant::now();
        let out = restore_ok(&s, "figures", &img, &[]);
        eprintln!(
            "restore of the 10,000-file image ({name}): {:.2} s wall: {}",
            t.elapsed().as_secs_f64(),
            out.trim()
        );
        assert_same(&region_of(&img), src.fs.bytes(), "the restored region");
    }
    eprintln!("snapshot bytes: {}", shipper.status().snapshot_bytes);
}

/// Reopen the image of `src` after its daemon died (nothing dropped cleanly): a new Rvm
/// recovers the log, a new Fs on it.
fn reopen(dir: &Path, len: u64) -> Source {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("src.img"))
        .unwrap();
    open_image(Arc::new(FileStorage::new(file)), len)
}

#[test]
fn after_a_crash_the_shipper_resumes_from_the_bucket_reading_the_rest_from_the_log() {
    let (_s, dir, src, b) = ship_setup!("resume");
    let shipped = {
        let mut src = src;
        let shipper = start(&b, &src, 1, always());
        churn(&mut src.fs, "a", 2, 30);
        let shipped = shipper.sync(WAIT).unwrap();
        // Stop shipping (the thread dies with the daemon), then commit more: durable in
        // the log, never shipped; the daemon dies without unmounting.
        drop(shipper);
        churn(&mut src.fs, "b", 2, 30);
        assert!(src.fs.rvm.durable_lsn() > shipped);
        std::mem::forget(src);
        shipped
    };
    let mut src = reopen(dir.path(), LEN);
    assert!(
        src.fs.rvm.applied_lsn() <= shipped,
        "nothing unshipped was truncated"
    );
    let shipper = start(&b, &src, 2, always());
    let after = shipper.sync(WAIT).unwrap();
    assert!(after > shipped);
    let segs = listing::segments(&b).unwrap();
    let resumed = segs.iter().find(|s| s.epoch == 2).expect("epoch 2 shipped");
    assert_eq!(
        resumed.first, shipped,
        "resumed at the bucket's last shipped Lsn"
    );
    let got = ship::restore(&b, Until::Latest).unwrap();
    assert_same(&got.region, src.fs.bytes(), "the restored region");
    assert!(dentry::lookup(&got.region, ROOT_INO, b"b1")
        .unwrap()
        .is_some());
    churn(&mut src.fs, "c", 1, 5);
    drop(shipper);
}

#[test]
fn retention_keeps_the_newest_snapshot_and_what_follows_it() {
    let (_s, _dir, mut src, b) = ship_setup!("retain");
    let cfg = ShipConfig {
        keep_snapshots: 1,
        ..quick()
    };
    let shipper = start_with(&b, &src, 1, always(), cfg);
    let mut snaps = Vec::new();
    // The base at start, 8 incremental snapshots on it, then a full one (worker.rs
    // MAX_CHAIN): while the chain grows every link is kept; once the full one is complete,
    // everything before it goes.
    let mut saw_full = false;
    for round in 0..10 {
        churn(&mut src.fs, &format!("r{round}-"), 1, 8);
        shipper.sync(WAIT).unwrap();
        src.fs.rvm.truncate().unwrap();
        snaps.push(shipper.snapshot_now(WAIT).unwrap().unwrap());
        let all = listing::snapshots(&b).unwrap();
        let complete: Vec<_> = all.iter().filter(|s| s.complete).collect();
        let newest = complete.last().unwrap();
        assert_eq!(newest.lsn, *snaps.last().unwrap());
        let full = listing::manifest(&b, &newest.dir).unwrap().base.is_none();
        if full && complete.len() > 1 {
            panic!("round {round}: a full snapshot leaves nothing before it: {complete:?}");
        }
        if !full {
            assert!(
                complete.len() >= 2,
                "round {round}: the chain is kept whole"
            );
        }
        saw_full |= full && round > 0;
        if saw_full {
            break;
        }
    }
    assert!(saw_full, "a full snapshot after 8 incremental ones");
    let newest = *snaps.last().unwrap();
    let segs = listing::segments(&b).unwrap();
    assert!(segs.len() <= 2, "older segments deleted: {segs:?}");
    assert!(segs.iter().skip(1).all(|s| s.first >= newest), "{segs:?}");
    let got = ship::restore(&b, Until::Latest).unwrap();
    assert_same(&got.region, src.fs.bytes(), "the restored region");
    let e = ship::restore(&b, Until::Lsn(snaps[0] - 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no complete snapshot at or before"), "{e}");
    assert!(ship::restore(&b, Until::Time(u64::MAX)).is_ok());
    let e = ship::restore(&b, Until::Time(0)).unwrap_err().to_string();
    assert!(e.contains("no complete snapshot taken at or before"), "{e}");
    drop(shipper);
}
