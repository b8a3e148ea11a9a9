//! The spool (issue 11): a clean unmount removes `/dev/shm/rvmfs-<uuid>.spool` once every
//! record is in the log and applied; a daemon killed with `kill -9` leaves it, and the next
//! mount replays it; a read-only mount neither creates nor removes one.

use rvmfs_tests::*;
use std::fs;

#[test]
fn a_clean_unmount_removes_the_spool_and_kill_9_keeps_it() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "32M"]);
    let spool = m.spool_path();
    let data = pattern(1, 5000);
    fs::write(m.path("a"), &data).unwrap();
    assert!(spool.exists(), "a mounted image has its spool at {spool:?}");
    m.kill9();
    assert!(
        spool.exists(),
        "kill -9 must leave the spool for the next mount"
    );
    m.mount();
    assert_file(m.path("a"), &data); // its commit was only in the spool
    fs::write(m.path("b"), &data).unwrap();
    m.unmount_ok();
    assert!(!spool.exists(), "a clean unmount left {spool:?}");
    m.assert_fsck_clean();
    m.set_mount_options(&["ro"]);
    m.mount();
    assert_file(m.path("b"), &data);
    assert!(!spool.exists(), "a read-only mount created a spool");
    m.unmount_ok();
    m.set_mount_options(&[]);
}
