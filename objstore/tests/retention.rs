//! Retention against a real S3 server (SeaweedFS; Ceph RGW in the long mode): with
//! `keep_snapshots = 1` it deletes the older snapshot and the segments wholly before the kept
//! one, and a writer whose lease is gone (`may_write` false) deletes nothing more: the new
//! holder's bucket is not its to prune (CI once saw the takeover test race on this).

#[macro_use]
mod common;

use bytes::Bytes;
use objstore::ship::listing;
use objstore::ship::retention::retain;
use objstore::ship::segment::segment_key;
use objstore::ship::snapshot::{snapshot_dir, Manifest};
use objstore::{Bucket, Put};
use std::cell::Cell;

/// A complete full snapshot at `lsn` of epoch 1: one part and its manifest.
fn put_snapshot(b: &Bucket, lsn: u64) {
    let dir = snapshot_dir(lsn, 1);
    let manifest = Manifest {
        version: 1,
        lsn,
        epoch: 1,
        base: None,
        created_unix_ms: 0,
        image_len: 1 << 20,
        segment_offset: 0,
        segment_len: 4096,
        header_block: String::new(),
        parts: Vec::new(),
        objects: None,
    };
    let json = serde_json::to_vec(&manifest).unwrap();
    b.put(
        &format!("{dir}/part-00000000"),
        Bytes::from_static(b"p"),
        Put::Create,
    )
    .unwrap();
    b.put(&format!("{dir}/manifest"), Bytes::from(json), Put::Create)
        .unwrap();
}

/// Two snapshots (Lsn 100 and 200) and segments from Lsn 1, 50, 150 and 250.
fn bucket_with_history(s: &common::Server, dir: &std::path::Path, prefix: &str) -> Bucket {
    let b = common::bucket(s, dir, prefix);
    put_snapshot(&b, 100);
    put_snapshot(&b, 200);
    for first in [1, 50, 150, 250] {
        b.put(
            &segment_key(1, first),
            Bytes::from_static(b"s"),
            Put::Create,
        )
        .unwrap();
    }
    b
}

fn segment_firsts(b: &Bucket) -> Vec<u64> {
    listing::segments(b)
        .unwrap()
        .iter()
        .map(|s| s.first)
        .collect()
}

fn snapshot_lsns(b: &Bucket) -> Vec<u64> {
    listing::snapshots(b)
        .unwrap()
        .iter()
        .map(|s| s.lsn)
        .collect()
}

#[test]
fn retention_keeps_the_newest_snapshot_and_what_follows_it_and_a_fenced_writer_deletes_nothing() {
    let s = require_s3!("retention");
    let dir = tempfile::tempdir().unwrap();

    let b = bucket_with_history(&s, dir.path(), "holder");
    retain(&b, 1, &|| true).unwrap();
    assert_eq!(snapshot_lsns(&b), vec![200], "the older snapshot goes");
    // 1 and 50 end before 200; 150 holds Lsns up to 250, so a restore from 200 needs it.
    assert_eq!(segment_firsts(&b), vec![150, 250]);

    let b = bucket_with_history(&s, dir.path(), "fenced");
    retain(&b, 1, &|| false).unwrap();
    assert_eq!(
        snapshot_lsns(&b),
        vec![100, 200],
        "nothing deleted without the lease"
    );
    assert_eq!(segment_firsts(&b), vec![1, 50, 150, 250]);

    // The lease lost part way: the deletes stop at once.
    let b = bucket_with_history(&s, dir.path(), "midway");
    let asked = Cell::new(0);
    retain(&b, 1, &|| {
        asked.set(asked.get() + 1);
        asked.get() <= 2 // the old snapshot's manifest and part
    })
    .unwrap();
    assert_eq!(snapshot_lsns(&b), vec![200]);
    assert_eq!(
        segment_firsts(&b),
        vec![1, 50, 150, 250],
        "no segment after the loss"
    );
}
