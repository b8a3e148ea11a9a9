//! The external log device (issue 13 item 2): `mkfs-rvmfs -J device=LOG` puts the redo log
//! on another file, bound to the image by UUID. Mounted for real: what was fsynced survives a
//! `kill -9`; fsck and dump find the log; a log of another image, a missing log, and an old
//! build (unknown incompat bit, compat.rs) are refused; `-o logdev=` / `fsck -l` find a log
//! that moved.

use rvmfs_tests::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An unmounted image of `dir` with its log at `log`.
fn mkfs_external(m: &Mounted, log: &Path) {
    let dev = format!("device={}", log.display());
    mkfs(m.image(), &["-s", "256M", "-J", &dev]).ok("mkfs-rvmfs -J device=");
}

/// Run the daemon in the foreground with `-o OPTS` and expect it to refuse the mount.
fn mount_refused(m: &Mounted, opts: &str) -> Outcome {
    let mut c = cmd(bin(RVMFS), &["-f"]);
    if !opts.is_empty() {
        c.arg("-o").arg(opts);
    }
    let o = run_timeout(c.arg(m.image()).arg(m.mnt()), Duration::from_secs(20));
    if o.timed_out || is_fuse_mounted(m.mnt()) {
        fusermount_u(m.mnt(), true);
        panic!("the mount was not refused: {}", o.output());
    }
    assert!(!o.success(), "rvmfs exited 0: {}", o.output());
    o
}

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = fs::File::create(path).expect("create");
    f.write_all(data).expect("write");
    f.sync_all().expect("fsync");
}

fn log_in(m: &Mounted, name: &str) -> PathBuf {
    m.dir().join(name)
}

#[test]
fn kill9_and_remount_keep_fsynced_data_fsck_and_dump_find_the_log() {
    let mut m = Mounted::empty();
    let log = log_in(&m, "ext.log");
    mkfs_external(&m, &log);
    assert!(fs::metadata(&log).expect("log file").len() >= 4 << 20);
    m.mount();
    let data = pattern(7, (1 << 20) + 123);
    write_synced(&m.path("big"), &data);
    fs::create_dir(m.path("dir")).expect("mkdir");
    write_synced(&m.path("dir/small"), b"small file\n");
    m.kill9();
    m.mount();
    assert_file(m.path("big"), &data);
    assert_file(m.path("dir/small"), b"small file\n");
    m.unmount_ok();
    m.assert_fsck_clean();
    let dump = admin_on(m.image(), &["dump"]).ok("dump");
    let out = dump.output();
    assert!(out.contains("external_log"), "features: {out}");
    assert!(
        out.contains(&format!("External log:               {}", log.display())),
        "{out}"
    );
    let json = admin_on(m.image(), &["dump", "--json"])
        .ok("dump --json")
        .output();
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let x = &v["header"]["external_log"];
    assert_eq!(x["path"], log.display().to_string());
    assert_eq!(x["log_uuid"].as_str().map(str::len), Some(36), "{x}");
    // logdump reads the records where they are: on the log device, not in the image.
    let logdump = admin_on(m.image(), &["logdump"]).ok("logdump").output();
    assert!(
        logdump.contains(&format!("Log of {}:", log.display())),
        "{logdump}"
    );
    assert!(logdump.contains("end of the written log"), "{logdump}");
}

#[test]
fn a_log_of_another_image_is_refused() {
    let m = Mounted::empty();
    mkfs_external(&m, &log_in(&m, "a.log"));
    let other = Mounted::empty();
    let other_log = log_in(&other, "b.log");
    mkfs_external(&other, &other_log);
    let before = fs::read(&other_log).expect("read log");
    let o = mount_refused(&m, &format!("logdev={}", other_log.display()));
    assert!(
        o.output().contains("is not this image's external log"),
        "{}",
        o.output()
    );
    let (code, out) = m.fsck(&["-n", "-l", other_log.to_str().expect("utf-8")]);
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("is not this image's external log"), "{out}");
    assert_eq!(
        fs::read(&other_log).expect("read log"),
        before,
        "the foreign log was written"
    );
    // Its own log still works.
    m.assert_fsck_clean();
}

#[test]
fn a_missing_log_is_refused_and_logdev_finds_a_moved_one() {
    let mut m = Mounted::empty();
    let log = log_in(&m, "ext.log");
    mkfs_external(&m, &log);
    m.mount();
    write_synced(&m.path("f"), b"before the move\n");
    m.kill9(); // the record stays in the log: the moved log must be replayed
    let moved = log_in(&m, "moved.log");
    fs::rename(&log, &moved).expect("move the log");
    let o = mount_refused(&m, "");
    assert!(o.output().contains("does not exist"), "{}", o.output());
    let (code, out) = m.fsck(&["-n"]);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains("external log") && out.contains("does not exist"),
        "{out}"
    );
    let (code, out) = m.fsck(&["-n", "--logdev", moved.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}");
    let mut m = m;
    m.set_mount_options(&[&format!("logdev={}", moved.display())]);
    m.mount();
    assert_file(m.path("f"), b"before the move\n");
    write_synced(&m.path("g"), b"after the move\n");
    m.unmount_ok();
    let (code, out) = m.fsck(&["-f", "-n", "-l", moved.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_log_path_must_not_be_the_image_and_a_used_log_needs_force() {
    let m = Mounted::empty();
    let log = log_in(&m, "ext.log");
    mkfs_external(&m, &log);
    let other = m.dir().join("other.img");
    let dev = format!("device={}", log.display());
    let o = mkfs(&other, &["-s", "64M", "-J", &dev]);
    assert!(
        !o.success() && o.output().contains("use -f"),
        "{}",
        o.output()
    );
    let own = format!("device={}", other.display());
    let o = mkfs(&other, &["-f", "-s", "64M", "-J", &own]);
    assert!(
        !o.success() && o.output().contains("the image itself"),
        "{}",
        o.output()
    );
}

#[test]
fn a_small_external_log_wraps_through_truncations_and_recovers() {
    let mut m = Mounted::empty();
    let log = log_in(&m, "small.log");
    let dev = format!("size=2M,device={}", log.display());
    mkfs(m.image(), &["-s", "256M", "-J", &dev]).ok("mkfs -J size=2M,device=");
    assert_eq!(fs::metadata(&log).expect("log").len(), 2 << 20);
    m.mount();
    // Several times the log's capacity in fsynced commits: truncations must apply them to
    // the image and let the external log wrap.
    for i in 0..300u64 {
        write_synced(&m.path(format!("f{i}")), &pattern(i, 16 << 10));
    }
    m.kill9();
    m.mount();
    for i in 0..300u64 {
        assert_file(m.path(format!("f{i}")), pattern(i, 16 << 10));
    }
    m.unmount_ok();
    m.assert_fsck_clean();
}
