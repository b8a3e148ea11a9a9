//! Loose ends of the POSIX work (issue 11, item 8): an unanswered punch hole is all or
//! nothing after `kill -9`; S_ISGID of a file created in a set-group-ID directory by a
//! non-member is dropped; a whole workload under rvm-core's checked mode (`-o checked`);
//! `require_fuse!` fails instead of skipping when `CI=true`.

use rvmfs_tests::*;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// fallocate(PUNCH_HOLE | KEEP_SIZE) of [offset, offset + len) on `f`.
fn punch(f: &File, offset: u64, len: u64) -> std::io::Result<()> {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate on an open descriptor; no memory is passed.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, offset as i64, len as i64) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Kill the daemon while a punch hole with partial edge blocks (bytes 1000..11000 of a
/// 128 KiB file: the tail of block 0, all of block 1, the head of block 2) is in flight:
/// after remounting, the file is either untouched or punched, never with only an edge
/// zeroed (the edges are zeroed by copy on write, so nothing visible changes before the
/// commit). A test like torture's `kill9_unanswered_overwrite_is_all_or_nothing`.
#[test]
fn kill9_unanswered_punch_hole_is_all_or_nothing() {
    require_fuse!();
    let attempts = env_u64("PUNCH_KILL9_ATTEMPTS").unwrap_or(60);
    let mut m = Mounted::with_mkfs(&["-s", "64M"]);
    // One 128 KiB write: larger than the data-logging limit, so its blocks are in place.
    let old = pattern(11, 128 << 10);
    let (off, len) = (1000u64, 10_000u64);
    let mut punched = old.clone();
    punched[off as usize..(off + len) as usize].fill(0);
    let (mut applied, mut not_applied, mut answered) = (0, 0, 0);
    let mut torn = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for a in 0..attempts {
        let path = m.path("f");
        let _ = fs::remove_file(&path);
        File::create(&path).unwrap().write_all_at(&old, 0).unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_micros(rng % 120);
        let p2 = path.clone();
        let res = m.kill9_during(delay, move |started| {
            let f = OpenOptions::new().write(true).open(&p2)?;
            started();
            punch(&f, off, len)
        });
        let got = fs::read(&path).unwrap();
        if res.is_ok() {
            answered += 1;
            assert!(
                bytes_diff(&got, &punched).is_none(),
                "attempt {a}: an answered punch hole was lost"
            );
        } else if got == punched {
            applied += 1;
        } else if got == old {
            not_applied += 1;
        } else {
            torn.push(format!(
                "attempt {a} (kill {delay:?} after the punch started): {}",
                bytes_diff(&got, &old).unwrap_or_default()
            ));
        }
    }
    eprintln!(
        "punch hole under kill -9: {attempts} attempts, {answered} answered, {applied} \
         applied unanswered, {not_applied} not applied, {} torn",
        torn.len()
    );
    assert!(torn.is_empty(), "torn punch holes:\n{}", torn.join("\n"));
    m.unmount_ok();
    m.assert_fsck_clean();
}

/// Run `f` in a child process with credentials uid/gid and no supplementary groups, umask
/// 0. Returns the child's errno on failure.
fn as_user(uid: u32, gid: u32, f: impl Fn() -> std::io::Result<()> + Send + Sync + 'static) {
    let mut c = Command::new("/bin/true");
    // SAFETY: only async-signal-safe system calls run between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            libc::umask(0);
            f()
        });
    }
    let st = c
        .status()
        .unwrap_or_else(|e| panic!("as uid {uid} gid {gid}: {e}"));
    assert!(st.success(), "/bin/true as uid {uid}: {st}");
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `open(path, O_CREAT | O_EXCL | O_WRONLY, mode)` without allocating (for `pre_exec`).
fn create_raw(path: &CString, mode: u32) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path; the descriptor is closed at once.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
            mode,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: closing the descriptor just opened.
    unsafe { libc::close(fd) };
    Ok(())
}

fn mkdir_raw(path: &CString, mode: u32) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::mkdir(path.as_ptr(), mode) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Linux `inode_init_owner` / `mode_strip_sgid`: in a set-group-ID directory of group G, a
/// new file takes group G; a new directory also keeps S_ISGID; a new file asking for
/// S_ISGID|S_IXGRP loses S_ISGID when its creator is not in G (and lacks CAP_FSETID), and
/// keeps it when the creator is in G.
#[test]
fn setgid_directory_inherits_group_and_strips_sgid_of_non_members() {
    require_fuse!();
    const GROUP: u32 = 4242;
    const NOBODY: u32 = 65534;
    let m = Mounted::with_mkfs(&["-s", "64M"]);
    // The test's temporary directory is 0700: let the unprivileged creator reach the mount.
    fs::set_permissions(m.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = m.path("sg");
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(0), Some(GROUP)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o2777)).unwrap();
    let (outsider, member, subdir) = (dir.join("outsider"), dir.join("member"), dir.join("sub"));
    let (o, s) = (cpath(&outsider), cpath(&subdir));
    as_user(NOBODY, NOBODY, move || {
        create_raw(&o, 0o2755)?;
        mkdir_raw(&s, 0o755)
    });
    let mb = cpath(&member);
    as_user(NOBODY, GROUP, move || create_raw(&mb, 0o2755));
    let meta = |p: &Path| fs::metadata(p).unwrap();
    let o = meta(&outsider);
    assert_eq!(
        o.gid(),
        GROUP,
        "a new file takes the setgid directory's group"
    );
    assert_eq!(
        o.mode() & 0o7777,
        0o0755,
        "S_ISGID of a non-member's new file"
    );
    assert_eq!(
        meta(&member).mode() & 0o7777,
        0o2755,
        "S_ISGID of a member's new file"
    );
    let s = meta(&subdir);
    assert_eq!(
        (s.gid(), s.mode() & 0o7777),
        (GROUP, 0o2755),
        "new directory"
    );
}

/// A workload of every kind of metadata change, served with rvm-core's checked mode on
/// (`-o checked`): every commit compares the region with a shadow copy, so a byte changed
/// outside the ranges an operation declared fails that operation (EIO) and is logged.
#[test]
fn checked_mode_mount_serves_a_mixed_workload() {
    require_fuse!();
    let mut m = Mounted::unmounted(&["-s", "64M"]);
    m.set_mount_options(&["checked"]);
    m.set_daemon_env("RUST_LOG", "info");
    m.mount();
    let p = |r: &str| m.path(r);
    fs::create_dir_all(p("a/b/c")).unwrap();
    for i in 0..40 {
        fs::write(p(&format!("a/b/f{i}")), pattern(i, 100 + 997 * i as usize)).unwrap();
    }
    let big = pattern(99, 300 << 10);
    fs::write(p("a/big"), &big).unwrap();
    let f = OpenOptions::new().write(true).open(p("a/big")).unwrap();
    f.write_all_at(b"overwrite", 100_000).unwrap();
    punch(&f, 1000, 20_000).unwrap();
    f.set_len(200 << 10).unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::rename(p("a/b/f1"), p("a/b/c/moved")).unwrap();
    fs::rename(p("a/b/f2"), p("a/b/f3")).unwrap();
    fs::hard_link(p("a/b/f4"), p("a/link")).unwrap();
    std::os::unix::fs::symlink("b/f5", p("a/sym")).unwrap();
    fs::remove_file(p("a/b/f6")).unwrap();
    fs::set_permissions(p("a/b/f7"), fs::Permissions::from_mode(0o600)).unwrap();
    let name = CString::new("user.k").unwrap();
    let file = cpath(&p("a/b/f8"));
    // SAFETY: NUL-terminated path and name, a value of the given length.
    let r = unsafe { libc::setxattr(file.as_ptr(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0) };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::removexattr(file.as_ptr(), name.as_ptr()) },
        0
    );
    for i in 9..40 {
        fs::remove_file(p(&format!("a/b/f{i}"))).unwrap();
    }
    fs::create_dir(p("a/empty")).unwrap();
    fs::remove_dir(p("a/empty")).unwrap();
    m.unmount_ok();
    let log = m.daemon_log();
    assert!(
        log.contains("checked mode on"),
        "checked mode was not on:\n{log}"
    );
    assert!(
        !log.contains("rvm checked mode:"),
        "unrecorded change:\n{log}"
    );
    m.assert_fsck_clean();
    m.set_mount_options(&[]);
    m.mount();
    let mut want = big[..200 << 10].to_vec();
    want[100_000..100_009].copy_from_slice(b"overwrite");
    want[1000..21_000].fill(0);
    assert_file(m.path("a/big"), &want);
    assert_file(m.path("a/b/c/moved"), pattern(1, 100 + 997));
    assert_file(m.path("a/link"), pattern(4, 100 + 4 * 997));
}

/// With `CI=true`, `require_fuse!` fails a test when `fusermount3` is missing (here: not in
/// PATH) instead of skipping it; without CI it skips. Runs this binary's probe test below.
#[test]
fn require_fuse_fails_under_ci_when_fuse_is_missing() {
    let exe = std::env::current_exe().unwrap();
    let probe = |ci: Option<&str>| {
        let mut c = Command::new(&exe);
        c.args([
            "--exact",
            "probe_require_fuse",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RVMFS_REQUIRE_FUSE_PROBE", "1")
        .env("PATH", "/nonexistent");
        match ci {
            Some(v) => c.env("CI", v),
            None => c.env_remove("CI"),
        };
        run(&mut c)
    };
    let o = probe(Some("true"));
    assert!(
        !o.success(),
        "CI=true, no fusermount3: the test passed:\n{}",
        o.output()
    );
    assert!(
        o.output().contains("CI=true but FUSE is unavailable"),
        "{}",
        o.output()
    );
    let o = probe(None);
    assert!(
        o.success(),
        "without CI the test must skip:\n{}",
        o.output()
    );
    assert!(o.output().contains("SKIPPED"), "{}", o.output());
}

/// Only does something when run by `require_fuse_fails_under_ci_when_fuse_is_missing`.
#[test]
fn probe_require_fuse() {
    if std::env::var_os("RVMFS_REQUIRE_FUSE_PROBE").is_none() {
        return;
    }
    require_fuse!();
}
