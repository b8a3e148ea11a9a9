//! (issue 11, item 1) Storage errors through a real mount, with the daemon's debug option
//! `-o inject_fault=OP:N` (its image storage wrapped in rvm-core's `FaultStorage`):
//!
//! * `errors=remount-ro` (the default): a commit's log write fails; that request and every
//!   later change (create, mkdir, write, setattr, setxattr, rename, unlink, fsync) answer EIO,
//!   reads (stat, readdir, read, getxattr, statfs) go on; after unmount fsck -n reports the
//!   error record (exit 4), fsck -p clears it (exit 1); a remount shows every answered change.
//! * `errors=continue`: a failed file data write answers EIO to that write only; later writes
//!   succeed.
//! * `errors=panic`: the daemon aborts at the error (SIGABRT); the next mount recovers every
//!   answered change.

#[path = "posix_common.rs"]
mod posix_common;

use posix_common::{errno, setxattr};
use rvmfs_tests::*;
use std::fs;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;

/// A 64 MiB image mounted with `-o sync` (every commit writes the log) and `opts`.
fn mounted(opts: &[&str]) -> Mounted {
    let mut m = Mounted::unmounted(&["-s", "64M"]);
    let mut all = vec!["sync"];
    all.extend_from_slice(opts);
    m.set_mount_options(&all);
    m.mount();
    m
}

#[test]
fn remount_ro_refuses_changes_and_fsck_shows_the_error() {
    require_fuse!();
    // Two commits succeed (creating a and writing it), the third fails.
    let mut m = mounted(&["inject_fault=durable_write:2"]);
    fs::write(m.path("a"), b"hello").unwrap();
    let failed = fs::write(m.path("b"), b"x");
    assert_eq!(errno(failed), libc::EIO);
    let eio = |r: io::Result<()>, what: &str| {
        assert_eq!(errno(r), libc::EIO, "{what}");
    };
    eio(fs::create_dir(m.path("d")), "mkdir");
    eio(fs::write(m.path("a"), b"new"), "write");
    eio(
        fs::OpenOptions::new()
            .append(true)
            .open(m.path("a"))
            .and_then(|mut f| f.write_all(b"more")),
        "append",
    );
    eio(
        fs::set_permissions(
            m.path("a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        ),
        "chmod",
    );
    eio(setxattr(&m.path("a"), "user.k", b"v", 0), "setxattr");
    eio(fs::rename(m.path("a"), m.path("c")), "rename");
    eio(fs::remove_file(m.path("a")), "unlink");
    eio(
        fs::File::open(m.path("a")).and_then(|f| f.sync_all()),
        "fsync",
    );
    // Reads go on.
    assert_eq!(fs::read(m.path("a")).unwrap(), b"hello");
    let names: Vec<_> = fs::read_dir(m.mnt())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.iter().any(|n| n == "a"), "{names:?}");
    assert_eq!(fs::metadata(m.path("a")).unwrap().len(), 5);
    let log = m.daemon_log();
    assert!(log.contains("the filesystem is now read-only"), "{log}");
    // The clean unmount's commit is refused too: the daemon says so and exits.
    m.unmount();
    let (code, out) = m.fsck(&["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("filesystem had errors"), "{out}");
    let (code, out) = m.fsck(&["-p"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error record cleared"), "{out}");
    m.set_mount_options(&[]);
    m.mount();
    assert_eq!(fs::read(m.path("a")).unwrap(), b"hello");
    fs::write(m.path("e"), b"works again").unwrap();
    m.unmount_ok();
    m.assert_fsck_clean();
}

#[test]
fn errors_continue_goes_on_after_a_data_write() {
    require_fuse!();
    // The first write(2) of the image after the mount is the big file's data (1 MiB: not
    // logged, written in place).
    let mut m = mounted(&["errors=continue", "inject_fault=write:0"]);
    let mut f = fs::File::create(m.path("big")).unwrap();
    let data = vec![7u8; 1 << 20];
    assert_eq!(errno(f.write_all(&data)), libc::EIO);
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fs::read(m.path("big")).unwrap(), data);
    fs::create_dir(m.path("d")).unwrap();
    m.unmount_ok();
    let (code, out) = m.fsck(&["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("filesystem had errors: 1 error(s), the first: write"),
        "{out}"
    );
}

#[test]
fn errors_panic_aborts_and_the_next_mount_recovers() {
    require_fuse!();
    let mut m = mounted(&["errors=panic", "inject_fault=durable_write:2"]);
    fs::write(m.path("a"), b"kept").unwrap();
    assert!(
        fs::write(m.path("b"), b"x").is_err(),
        "the failing request answered"
    );
    let status = m.unmount();
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{}", m.daemon_log());
    assert!(m.daemon_log().contains("errors=panic: aborting"));
    m.set_mount_options(&[]);
    m.mount();
    assert_eq!(fs::read(m.path("a")).unwrap(), b"kept");
    m.unmount_ok();
    let (code, out) = m.fsck(&["-p"]);
    assert_eq!(code, 1, "{out}");
    m.assert_fsck_clean();
}
