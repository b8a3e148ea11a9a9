//! The stopping rule of restore (docs/format.md 11.8) on real shipped records: with the
//! judge of `object_data` images (`rvmfs::store::local_data`), `objstore::ship::
//! restore_where` gives the newest shipped state in which no written extent points at a
//! local block, byte for byte the source's region at that Lsn; when the newest snapshot is
//! itself such a state, it starts over from an older one; with none left, it refuses,
//! naming the Lsns of the refused states. The source is a real image driven
//! through the rvmfs library and shipped to a real SeaweedFS; its file data is local (as an
//! `object_data` image's before the upload), and "the upload" is the uploader's commit
//! (the extent repointed to a data object, flag REMOTE) made by hand.

#[macro_use]
mod common;

use common::*;
use objstore::ship::{self, Until};
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::file;
use rvmfs::store::extent_map::{self, Extent, REMOTE};
use rvmfs::store::local_data::LocalData;
use rvmfs_tests::require_seaweed;
use std::ops::Range;
use std::time::Instant;

/// A virtual block of a data object of epoch 1 (docs/format.md 11.4).
const VBLOCK: u64 = 1 << 42;

/// Create the file `name`, then write `len` bytes to it (its data on a local block): two
/// records (each transaction flushed alone, not merged with the next). Its inode.
fn write_local(src: &mut Source, name: &str, len: usize) -> u64 {
    let ino = mk(&mut src.fs, ROOT_INO, name, libc::S_IFREG | 0o644);
    src.fs.rvm.flush().unwrap();
    let data = vec![ino as u8; len];
    src.fs
        .transact(|op| file::write(op, ino, 0, &data, false))
        .unwrap();
    src.fs.rvm.flush().unwrap();
    ino
}

/// What the uploader commits once the data of `ino` (one extent of `blocks` blocks from
/// block 0) is in an object: the extent repointed to virtual block `vblock` (one record).
fn repoint(src: &mut Source, ino: u64, blocks: u64, vblock: u64) {
    let e = Extent {
        first: 0,
        last: blocks - 1,
        phys: vblock,
        flags: REMOTE,
    };
    src.fs
        .transact(|op| extent_map::put(&mut op.tx, ino, &e))
        .unwrap();
    src.fs.rvm.flush().unwrap();
}

/// Restore the latest state with the judge of object_data images; also how many scans it
/// made.
fn restore_judged(b: &objstore::Bucket, until: Until) -> (ship::Restored, u64) {
    let mut local = LocalData::new();
    let mut judge =
        |r: &[u8], t: &[Range<usize>]| local.all_remote(r, t).map_err(|e| e.to_string());
    let r = ship::restore_where(b, until, Some(&mut judge)).unwrap();
    (r, local.scans())
}

#[test]
fn restore_stops_at_the_newest_state_without_local_data() {
    let (_s, _dir, mut src, b) = ship_setup!("localdata");
    let shipper = start(&b, &src, 1, always());
    churn(&mut src.fs, "a", 2, 30);
    let base = shipper.sync(WAIT).unwrap();
    // Uploaded: acceptable again once repointed.
    let up = write_local(&mut src, "uploaded", 9000);
    repoint(&mut src, up, 3, VBLOCK);
    // The newest acceptable state: a second file created, no data written yet.
    let second = mk(&mut src.fs, ROOT_INO, "second", libc::S_IFREG | 0o644);
    src.fs.rvm.flush().unwrap();
    let (good, good_next) = (src.fs.bytes().to_vec(), src.fs.rvm.durable_lsn());
    // Written but never uploaded, then more metadata: every later state is refused.
    src.fs
        .transact(|op| file::write(op, second, 0, b"never uploaded", false))
        .unwrap();
    src.fs.rvm.flush().unwrap();
    churn(&mut src.fs, "b", 2, 30);
    let latest = shipper.sync(WAIT).unwrap();
    assert!(latest > good_next && base < good_next);

    let (r, _) = restore_judged(&b, Until::Latest);
    assert_eq!((r.next, r.shipped), (good_next, latest));
    assert_eq!(r.region.len(), good.len());
    assert_same(
        &r.region,
        &good,
        "the region at the newest acceptable state",
    );
    // A target past the refused write gives the same; one before it, that one (records
    // are flushed one by one up to here: each Lsn is a record of its own).
    let (r, _) = restore_judged(&b, Until::Lsn(good_next + 1));
    assert_eq!((r.next, r.shipped), (good_next, good_next + 1));
    let (r, _) = restore_judged(&b, Until::Lsn(good_next - 2));
    assert_eq!((r.next, r.shipped), (good_next - 1, good_next - 1));
    // Without a judge: everything shipped, the local data included.
    let all = ship::restore(&b, Until::Latest).unwrap();
    assert_same(&all.region, src.fs.bytes(), "the latest region");

    // A snapshot of a refused state: the restore starts over from the snapshot before it.
    src.fs.rvm.truncate().unwrap();
    let snap = shipper.snapshot_now(WAIT).unwrap().unwrap();
    let (r, _) = restore_judged(&b, Until::Latest);
    assert!(r.snapshot_lsn < snap, "{} < {snap}", r.snapshot_lsn);
    assert_eq!((r.next, r.shipped), (good_next, latest));
    assert_same(&r.region, &good, "the region from the older snapshot");
    drop(shipper);
}

#[test]
fn judging_thousands_of_records_costs_little() {
    let (_s, _dir, mut src, b) = ship_setup!("localcost");
    let shipper = start(&b, &src, 1, always());
    shipper.sync(WAIT).unwrap();
    // Per file: a create, a write (a local extent: refused), its upload (accepted).
    let files = 1000u64;
    for i in 0..files {
        let ino = write_local(&mut src, &format!("f{i}"), 4096);
        repoint(&mut src, ino, 1, VBLOCK + i);
    }
    churn(&mut src.fs, "c", 4, 100);
    src.fs.rvm.flush().unwrap();
    let latest = shipper.sync(WAIT).unwrap();
    let t = Instant::now();
    let plain = ship::restore(&b, Until::Latest).unwrap();
    let plain_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (judged, scans) = restore_judged(&b, Until::Latest);
    let judged_s = t.elapsed().as_secs_f64();
    eprintln!(
        "restore of {} records: {plain_s:.3} s, judged {judged_s:.3} s ({scans} scans of the extent tree)",
        plain.records
    );
    assert_eq!(judged.next, latest, "the latest state has no local data");
    assert_same(&judged.region, &plain.region, "judged and plain");
    // Only the records that wrote the extent tree (two per file) cost a scan.
    assert!(scans <= 2 * files + 1, "{scans} scans");
    assert!(plain.records > 3 * files, "{} records", plain.records);
    drop(shipper);
}

#[test]
fn no_acceptable_state_refuses_the_restore_naming_the_lsns() {
    let (_s, _dir, mut src, b) = ship_setup!("localnone");
    let shipper = start(&b, &src, 1, always());
    write_local(&mut src, "early", 5000);
    let snap = shipper.sync(WAIT).unwrap();
    // A snapshot of a refused state, then more refused states.
    src.fs.rvm.truncate().unwrap();
    assert_eq!(shipper.snapshot_now(WAIT).unwrap(), Some(snap));
    churn(&mut src.fs, "a", 1, 10);
    let latest = shipper.sync(WAIT).unwrap();
    // The segments from the base snapshot to the new one are gone: no earlier state can be
    // rebuilt.
    for seg in objstore::ship::listing::segments(&b).unwrap() {
        if seg.first < snap {
            b.delete(&seg.name).unwrap();
        }
    }
    let mut local = LocalData::new();
    let mut judge =
        |r: &[u8], t: &[Range<usize>]| local.all_remote(r, t).map_err(|e| e.to_string());
    match ship::restore_where(&b, Until::Latest, Some(&mut judge)) {
        Err(objstore::ship::ShipError::Unacceptable { from, to }) => {
            assert_eq!((from, to), (snap - 1, latest - 1));
        }
        Err(e) => panic!("{e}"),
        Ok(r) => panic!("restored up to Lsn {}", r.next),
    }
    // Without the judge the latest state restores.
    let r = ship::restore(&b, Until::Latest).unwrap();
    assert_eq!(r.next, latest);
    drop(shipper);
}
