//! Collecting dead data objects (issue 14; docs/format.md 11.6) against a real SeaweedFS: a
//! removed file's object stays while a retained snapshot's state points into it (fsck -n is
//! clean and counts it kept), and the daemon deletes it once retention has dropped every
//! such snapshot; a restore of the latest state then has the live file and not the removed
//! one. Snapshots every 0.3 s and one kept, so the test sees in seconds what takes
//! `snapshot_interval` (10 min) by default.

use objstore::ship::listing;
use objstore::{Bucket, ObjectId};
use rvmfs_tests::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const OPTS: [&str; 3] = [
    "upload_interval=0.2",
    "snapshot_interval=0.3",
    "keep_snapshots=1",
];

fn data_objects(b: &Bucket) -> BTreeSet<ObjectId> {
    b.list("data")
        .expect("listing data/")
        .iter()
        .filter_map(|l| ObjectId::parse(&l.name))
        .collect()
}

fn complete_snapshots(b: &Bucket) -> BTreeSet<String> {
    listing::snapshots(b)
        .expect("listing snap/")
        .into_iter()
        .filter(|s| s.complete)
        .map(|s| s.dir)
        .collect()
}

/// Wait (at most 30 s) until `done` holds, polling; panics with `what` otherwise.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Mount `m` and wait for its shipper's first snapshot (a complete one not in the bucket
/// before the mount).
fn mount_and_snapshot(m: &mut Mounted, b: &Bucket) {
    let before = complete_snapshots(b);
    m.mount();
    wait_until("the mount's first snapshot", || {
        !complete_snapshots(b).is_subset(&before)
    });
}

#[test]
fn a_removed_files_object_stays_while_a_snapshot_needs_it_then_goes() {
    require_fuse!();
    let s = require_seaweed!("objgc");
    let b = open_bucket(&s, "img");
    let mut m = mounted_data(&s, ("256M", "img"), None, &OPTS);
    let (a, bee) = (pattern(1, 300_000), pattern(2, 300_000));
    std::fs::write(m.path("a"), &a).unwrap();
    m.unmount_ok(); // uploaded and repointed; truncation applies it
    let objects = data_objects(&b);
    assert_eq!(objects.len(), 1, "{objects:?}");
    let oa = *objects.first().unwrap();

    // A snapshot of the state where `a` lives, then `a` removed and `b` written.
    mount_and_snapshot(&mut m, &b);
    std::fs::remove_file(m.path("a")).unwrap();
    std::fs::write(m.path("b"), &bee).unwrap();
    m.unmount_ok();
    assert!(
        data_objects(&b).contains(&oa),
        "a retained snapshot needs it"
    );
    let (code, out) = fsck_data(&s, m.image(), &["-n", "-f"]).code_and_output();
    assert_eq!(code, 0, "an object a snapshot needs is no leak:\n{out}");
    assert!(
        out.contains("1 data objects") && out.contains("are kept") && out.contains(" 0 leaked"),
        "{out}"
    );

    // The next mount's snapshot is of the state without `a`: retention drops the one with
    // it, and the daemon deletes `a`'s object.
    mount_and_snapshot(&mut m, &b);
    wait_until("the removed file's object deleted", || {
        !data_objects(&b).contains(&oa)
    });
    assert_eq!(data_objects(&b).len(), 1, "`b`'s object stays");
    m.unmount_ok();
    let (code, out) = fsck_data(&s, m.image(), &["-n", "-f"]).code_and_output();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(", 0 kept for restore, 0 leaked"), "{out}");

    // The bucket alone gives the latest state: `b`, not `a`.
    let mut r = Mounted::empty();
    restore_data(&s, &s.url("img"), r.image()).ok("restore");
    with_env(&s, &mut r);
    r.mount();
    assert_file(r.path("b"), &bee);
    assert!(!r.path("a").exists());
    r.unmount_ok();
}
