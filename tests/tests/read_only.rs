//! Read-only means read-only (issue 11, item 3): `-o ro` and `fsck -n` leave the image
//! byte-identical, also when its log holds records to replay (a daemon killed with `kill -9`)
//! and when the image file is not writable; no spool is written for a read-only mount; the
//! clean-unmount housekeeping runs exactly once, and never on a read-only mount.

use rvmfs_tests::*;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The log line the daemon writes once its clean-unmount housekeeping is done.
const HOUSEKEEPING: &str = "clean unmount: image marked clean, log applied";

/// Files (relative path, contents) a test writes and later expects.
fn contents() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("small-synced", pattern(1, 3000)),
        ("d/nested-synced", pattern(2, 700)),
        ("big", pattern(3, 3 << 20)),
        ("d/unsynced", pattern(4, 5000)),
    ]
}

/// Write `contents()` into the mount (the two "synced" files with fsync, so their data is
/// logged with their metadata; the last one only committed to the spool).
fn write_contents(m: &Mounted) {
    fs::create_dir(m.path("d")).unwrap();
    for (rel, data) in contents() {
        let mut f = File::create(m.path(rel)).unwrap();
        f.write_all(&data).unwrap();
        if rel.ends_with("synced") && !rel.ends_with("unsynced") {
            f.sync_all().unwrap();
        }
    }
    fs::rename(m.path("big"), m.path("d/big")).unwrap();
    fs::rename(m.path("d/big"), m.path("big")).unwrap();
}

#[track_caller]
fn assert_contents(m: &Mounted) {
    for (rel, data) in contents() {
        assert_file(m.path(rel), &data);
    }
}

/// The files under /dev/shm the daemon `pid` has open or mapped (its spool, if any).
fn shm_files_of(pid: u32) -> Vec<String> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut found: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with("/dev/shm/"))
        .map(str::to_string)
        .collect();
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            if let Ok(t) = fs::read_link(e.path()) {
                let t = t.display().to_string();
                if t.starts_with("/dev/shm/") {
                    found.push(t);
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The access mode (`O_RDONLY`, `O_RDWR`...) of every descriptor of `pid` open on `path`.
fn access_modes(pid: u32, path: &Path) -> Vec<i32> {
    let want = fs::canonicalize(path).unwrap();
    let mut modes = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        if fs::read_link(e.path()).ok().as_deref() != Some(want.as_path()) {
            continue;
        }
        let fd = e.file_name().to_string_lossy().to_string();
        let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|v| i32::from_str_radix(v.trim(), 8).ok())
            .unwrap_or(-1);
        modes.push(flags & libc::O_ACCMODE);
    }
    modes
}

/// Mount read-only, check what a read-only mount must (contents, O_RDONLY, no spool,
/// changes refused, no housekeeping), unmount cleanly.
fn ro_mount_and_check(m: &mut Mounted) {
    m.set_mount_options(&["ro"]);
    m.mount();
    let pid = m.daemon_pid().unwrap();
    assert_contents(m);
    let modes = access_modes(pid, m.image());
    assert!(
        !modes.is_empty(),
        "the daemon has no descriptor on the image"
    );
    assert!(
        modes.iter().all(|&a| a == libc::O_RDONLY),
        "a read-only mount opened the image for writing: {modes:?}"
    );
    assert_eq!(
        shm_files_of(pid),
        Vec::<String>::new(),
        "spool of a ro mount"
    );
    let e = File::create(m.path("new")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "create on a ro mount");
    m.unmount_ok();
    m.set_mount_options(&[]);
}

/// A mounted image with `contents()` whose daemon was killed with `kill -9`: its log (and
/// spool) hold records that no clean unmount applied. Returns the spool path it used.
fn crashed_image(m: &mut Mounted) -> Option<PathBuf> {
    write_contents(m);
    let spool = shm_files_of(m.daemon_pid().unwrap()).into_iter().next();
    m.kill9();
    spool.map(PathBuf::from)
}

/// A new 32 MiB image mounted by a daemon that logs at level info.
fn logged_mount() -> Mounted {
    let mut m = Mounted::unmounted(&["-s", "32M"]);
    m.set_daemon_env("RUST_LOG", "info");
    m.mount();
    m
}

#[test]
fn ro_mount_of_a_clean_image_leaves_it_byte_identical() {
    require_fuse!();
    let mut m = logged_mount();
    write_contents(&m);
    m.unmount_ok();
    let before = sha256_file(m.image());
    ro_mount_and_check(&mut m);
    assert_eq!(sha256_file(m.image()), before, "ro mount changed the image");
    let log = m.daemon_log();
    assert_eq!(
        log.matches(HOUSEKEEPING).count(),
        1,
        "housekeeping: once for the rw mount, never for the ro mount:\n{log}"
    );
}

#[test]
fn ro_mount_replays_a_killed_daemons_log_in_memory_only() {
    require_fuse!();
    let mut m = logged_mount();
    let spool = crashed_image(&mut m).expect("the rw daemon had no spool in /dev/shm");
    let before = sha256_file(m.image());
    let spool_before = sha256_file(&spool);
    ro_mount_and_check(&mut m);
    assert_eq!(sha256_file(m.image()), before, "ro mount changed the image");
    // The crashed daemon's spool is left as it was, for the next read-write mount.
    assert_eq!(sha256_file(&spool), spool_before, "spool");
    let log = m.daemon_log();
    assert!(
        log.contains("read-only: log replayed in memory"),
        "no in-memory replay logged:\n{log}"
    );
    // The fsynced small files' data was logged: reads overlay it (`ReadOnlyStorage`).
    assert!(
        !log.contains(" 0 ranges of file data"),
        "no logged file data overlaid:\n{log}"
    );
    // A second ro mount sees the same; then a rw mount recovers for real.
    ro_mount_and_check(&mut m);
    assert_eq!(
        sha256_file(m.image()),
        before,
        "second ro mount changed the image"
    );
    m.mount();
    assert_contents(&m);
    m.unmount_ok();
    assert_ne!(sha256_file(m.image()), before, "rw mount replayed nothing");
    m.assert_fsck_clean();
    let log = m.daemon_log();
    assert_eq!(log.matches(HOUSEKEEPING).count(), 1, "housekeeping:\n{log}");
}

#[test]
fn fsck_n_on_an_image_with_a_log_to_replay_leaves_it_byte_identical() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "32M"]);
    crashed_image(&mut m);
    let before = sha256_file(m.image());
    let (code, out) = m.fsck(&["-n", "-f"]);
    assert_eq!(code, 0, "fsck -n -f:\n{out}");
    assert!(out.contains("replay"), "fsck -n replayed nothing:\n{out}");
    assert_eq!(sha256_file(m.image()), before, "fsck -n changed the image");
}

#[test]
fn ro_mount_of_a_0444_image_works_and_rw_fails_clearly() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "32M"]);
    crashed_image(&mut m);
    fs::set_permissions(m.image(), fs::Permissions::from_mode(0o444)).unwrap();
    let before = sha256_file(m.image());
    let o = m.try_mount_at(m.mnt(), Duration::from_secs(20));
    assert!(
        !o.success() && !o.stderr.contains("MOUNTED"),
        "a rw mount of a 0444 image: {}",
        o.output()
    );
    assert!(
        o.stderr.contains("for writing") && o.stderr.contains("-o ro"),
        "unclear message for a rw mount of a 0444 image: {}",
        o.output()
    );
    ro_mount_and_check(&mut m);
    assert_eq!(
        sha256_file(m.image()),
        before,
        "ro mount changed a 0444 image"
    );
    let (code, out) = m.fsck(&["-n", "-f"]);
    assert_eq!(code, 0, "fsck -n -f of a 0444 image:\n{out}");
    assert_eq!(
        sha256_file(m.image()),
        before,
        "fsck -n changed a 0444 image"
    );
}

#[test]
fn housekeeping_runs_once_on_signal_and_on_fusermount() {
    require_fuse!();
    let mut m = logged_mount();
    write_contents(&m);
    m.unmount_ok();
    m.mount();
    let st = m.signal_and_wait(libc::SIGTERM);
    assert!(
        st.success(),
        "rvmfs after SIGTERM: {st}\n{}",
        m.daemon_log()
    );
    let log = m.daemon_log();
    assert_eq!(log.matches(HOUSEKEEPING).count(), 2, "two mounts:\n{log}");
    m.assert_fsck_clean();
}
