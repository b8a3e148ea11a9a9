//! `-o writeback` (the kernel's writeback cache, issue 12 item 3): the kernel merges writes
//! and holds them until close or fsync; it owns a written file's size, mtime and ctime and
//! sends them in a SETATTR, which must be what a remount shows; a close needs no FLUSH
//! request to be close-to-open; `sync` and `writeback`
//! together are refused. The promise after `kill -9` is checked by tests/torture_writeback.

#[path = "posix_common.rs"]
mod posix_common;

use rvmfs_tests::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// The daemon's requests of opcode `op` so far (its `rvmfs.requests` counters).
fn requests(m: &Mounted, op: &str) -> u64 {
    posix_common::requests(m.mnt())
        .get(op)
        .copied()
        .unwrap_or(0)
}

#[test]
fn small_writes_are_merged_and_the_kernels_times_are_kept() {
    require_fuse!();
    let mut m = Mounted::unmounted(&["-s", "256M"]);
    m.set_mount_options(&["writeback"]);
    m.mount();
    // 256 appends of 4 KiB through O_WRONLY (the kernel opens it O_RDWR), then close.
    let want = pattern(1, 1 << 20);
    let before = requests(&m, "write");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("f"))
        .unwrap();
    for chunk in want.chunks(4096) {
        f.write_all(chunk).unwrap();
    }
    // The kernel's size while the pages are dirty.
    assert_eq!(f.metadata().unwrap().len(), 1 << 20);
    drop(f);
    let writes = requests(&m, "write") - before;
    assert!(
        writes <= 16,
        "256 write calls of 4 KiB reached the daemon as {writes} WRITE requests: not merged"
    );
    let seen = fs::metadata(m.path("f")).unwrap();
    // The file the kernel wrote back, then a clean remount: the same contents and times.
    m.remount();
    assert_file(m.path("f"), &want);
    let after = fs::metadata(m.path("f")).unwrap();
    assert_eq!(
        (
            after.mtime(),
            after.mtime_nsec(),
            after.ctime(),
            after.ctime_nsec()
        ),
        (
            seen.mtime(),
            seen.mtime_nsec(),
            seen.ctime(),
            seen.ctime_nsec()
        ),
        "mtime and ctime as the kernel showed them before the remount"
    );
    // Closed, then kill -9: every file is intact (close-to-open), though after the first
    // close the kernel sends no FLUSH any more (the daemon answered ENOSYS): the close
    // itself writes the dirty pages back.
    for i in 0..10 {
        fs::write(m.path(format!("g{i}")), &want[..30_000 * (i + 1)]).unwrap();
    }
    let flushes = requests(&m, "flush");
    assert!(
        flushes <= 1,
        "{flushes} FLUSH requests for 10 closes since the remount"
    );
    m.kill9();
    m.mount();
    for i in 0..10 {
        assert_file(m.path(format!("g{i}")), &want[..30_000 * (i + 1)]);
    }
    m.unmount_ok();
    m.assert_fsck_clean();
}

#[test]
fn sync_and_writeback_are_refused_together() {
    require_fuse!();
    let m = Mounted::unmounted(&["-s", "64M"]);
    let o = run_timeout(
        cmd(bin("rvmfs"), &["-o", "sync,writeback"])
            .arg(m.image())
            .arg(m.mnt()),
        Duration::from_secs(20),
    );
    assert_eq!(o.code(), 1, "{}", o.output());
    assert!(
        o.stderr.contains("sync and writeback conflict"),
        "{}",
        o.output()
    );
    assert!(!is_fuse_mounted(m.mnt()));
}

/// SEEK_DATA and SEEK_HOLE on a file whose data is still only in the kernel's page cache
/// must still see it (the daemon's extent map does not have it yet).
#[test]
fn seek_data_sees_data_not_yet_written_back() {
    require_fuse!();
    let mut m = Mounted::unmounted(&["-s", "64M"]);
    m.set_mount_options(&["writeback"]);
    m.mount();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("sparse"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &pattern(3, 4096), 1 << 20).unwrap();
    let data = posix_common::lseek(&f, 0, libc::SEEK_DATA).expect("SEEK_DATA from 0");
    let hole = posix_common::lseek(&f, 0, libc::SEEK_HOLE).expect("SEEK_HOLE from 0");
    assert!(
        data <= 1 << 20,
        "SEEK_DATA from 0 answered {data}, the data is at 1 MiB"
    );
    // Either precise (the hole at 0, the data at 1 MiB) or all data up to the end.
    assert!(
        (data == 1 << 20 && hole == 0) || hole == (1 << 20) + 4096,
        "SEEK_HOLE from 0 answered {hole}"
    );
    drop(f);
    m.unmount_ok();
}
