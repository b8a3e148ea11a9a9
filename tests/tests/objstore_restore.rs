//! Restore from the bucket alone (issue 14 items 2 and 6; docs/format.md 11.7, 11.8), end to
//! end against a real SeaweedFS: a mounted object-store image ships its redo log and
//! snapshots while a real tree is copied in; after a clean unmount, `rvmfs-admin restore`
//! builds a new image in a fresh directory from nothing but the bucket, fsck finds it clean,
//! and every file reads back byte-exact (its data from the bucket's objects). After a kill
//! -9 with one file's data never uploaded, restore stops at the newest state whose file data
//! is all in the bucket (docs/format.md 11.8), unless told `--allow-local-data`.

use rvmfs_tests::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `mkfs-rvmfs -s 256M --data URL IMAGE` with the server's environment.
fn mkfs_data(s: &Seaweed, image: &Path, url: &str) {
    let mut c = cmd(bin(MKFS), &["-s", "256M", "--data", url]);
    c.arg(image).envs(s.env());
    run_timeout(&mut c, Duration::from_secs(60)).ok("mkfs-rvmfs --data");
}

/// `rvmfs-admin restore [extra] URL IMAGE` with the server's environment.
fn restore(s: &Seaweed, url: &str, image: &Path, extra: &[&str]) -> Outcome {
    let mut c = cmd(bin(ADMIN), &["restore", "-f"]);
    c.args(extra).arg(url).arg(image).envs(s.env());
    run_timeout(&mut c, Duration::from_secs(120))
}

/// `fsck-rvmfs -n -f IMAGE` must find it clean.
fn fsck_clean(s: &Seaweed, image: &Path) {
    let mut c = cmd(bin(FSCK), &["-n", "-f"]);
    c.arg(image).envs(s.env());
    let o = run_timeout(&mut c, Duration::from_secs(120));
    assert_eq!(
        o.code(),
        0,
        "fsck -n of the restored image:\n{}",
        o.output()
    );
}

/// `mnt`'s daemon gets the server's environment (endpoint, credentials).
fn with_env(s: &Seaweed, m: &mut Mounted) {
    for (k, v) in s.env() {
        m.set_daemon_env(k, &v);
    }
}

#[test]
fn an_image_restored_from_the_bucket_alone_reads_every_file() {
    require_fuse!();
    let src = PathBuf::from("/usr/include/linux");
    if !src.is_dir() {
        eprintln!("SKIPPED: no /usr/include/linux");
        return;
    }
    let s = require_seaweed!("restore");
    let url = s.url("img");
    let mut m = Mounted::empty();
    mkfs_data(&s, m.image(), &url);
    with_env(&s, &mut m);
    m.set_mount_options(&["upload_interval=0.2"]);
    m.mount();
    cp_a(std::slice::from_ref(&src), m.mnt()).ok("cp -a");
    std::fs::create_dir(m.path("later")).expect("mkdir");
    std::fs::write(m.path("later/note"), b"after the copy").expect("write");
    // A clean unmount uploads what is dirty, ships the last records, releases the lease.
    m.unmount_ok();

    // Another directory, nothing of the first image: the bucket alone.
    let mut r = Mounted::empty();
    assert!(!r.image().exists());
    let out = restore(&s, &url, r.image(), &[]);
    assert_eq!(out.code(), 0, "restore:\n{}", out.output());
    fsck_clean(&s, r.image());
    with_env(&s, &mut r);
    r.mount();
    assert_same_tree(&src, &r.path("linux"), Compare::CONTENT);
    assert_eq!(
        std::fs::read(r.path("later/note")).expect("read"),
        b"after the copy"
    );
    r.unmount_ok();
}

/// Create `path` with `data` and fsync it (under `upload=sync`: its blocks uploaded, their
/// repointing committed and the log shipped up to it when fsync returns).
fn write_synced(path: &Path, data: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(data).expect("write");
    f.sync_all().expect("fsync");
}

/// Read every regular file under `dir` to its end: the first that fails, with its error.
fn unreadable_file(dir: &Path) -> Option<(PathBuf, std::io::Error)> {
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)
            .expect("readdir")
            .map(|e| e.expect("dirent"))
        {
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                if let Err(err) = std::fs::read(e.path()) {
                    return Some((e.path(), err));
                }
            }
        }
    }
    None
}

/// `rvmfs-admin restore` of `url` into a fresh image, mounted read-only (no lease: the
/// killed writer's is still held), with restore's report.
fn restored(s: &Seaweed, url: &str, extra: &[&str]) -> (Mounted, String) {
    let mut r = Mounted::empty();
    let out = restore(s, url, r.image(), extra);
    assert_eq!(out.code(), 0, "restore {extra:?}:\n{}", out.output());
    fsck_clean(s, r.image());
    with_env(s, &mut r);
    r.set_mount_options(&["ro"]);
    r.mount();
    (r, out.stdout)
}

#[test]
fn restore_stops_before_file_data_that_never_reached_the_bucket() {
    require_fuse!();
    let s = require_seaweed!("held");
    let url = s.url("held");
    let mut m = Mounted::empty();
    mkfs_data(&s, m.image(), &url);
    with_env(&s, &mut m);
    // The uploader idles: only an fsync uploads (upload=sync), and only its file's blocks.
    m.set_mount_options(&["upload_interval=3600", "upload=sync"]);
    m.mount();
    let first = pattern(1, 300_000);
    write_synced(&m.path("first"), &first);
    // Answered, never uploaded: the machine is lost with its data.
    let second = pattern(2, 200_000);
    std::fs::write(m.path("second"), &second).expect("write");
    // An empty file fsync'd: nothing to upload, the log shipped up to its create, the
    // second file's records with it.
    write_synced(&m.path("marker"), b"");
    m.kill9();

    let (mut r, report) = restored(&s, &url, &[]);
    eprintln!("{report}");
    assert!(
        report.contains("Stopped at Lsn") && report.contains("never reached the bucket"),
        "{report}"
    );
    assert_file(r.path("first"), &first);
    let len = std::fs::metadata(r.path("second")).map(|m| m.len());
    assert!(
        len.as_ref().map_or(true, |&len| len == 0),
        "the second file is absent or empty: {len:?}"
    );
    assert!(
        !r.path("marker").exists(),
        "the marker came after the second's data"
    );
    assert!(
        unreadable_file(r.mnt()).is_none(),
        "{:?}",
        unreadable_file(r.mnt())
    );
    r.unmount_ok();

    // --allow-local-data: everything shipped, the second file without its data.
    let (mut all, report) = restored(&s, &url, &["--allow-local-data"]);
    assert!(!report.contains("Stopped at"), "{report}");
    assert_file(all.path("first"), &first);
    assert!(all.path("marker").exists());
    let len = std::fs::metadata(all.path("second")).expect("second").len();
    assert_eq!(len, second.len() as u64);
    let read = std::fs::read(all.path("second"));
    assert!(
        read.as_ref()
            .map_or_else(|e| e.raw_os_error() == Some(libc::EIO), |d| *d != second),
        "the second file's data never reached the bucket: {:?}",
        read.map(|d| d.len())
    );
    all.unmount_ok();
}

/// An object-store image made with its redo log on another file (`mkfs -J device=`) ships
/// that log like any other. Restore needs `--logdev` for it (and says so), then gives the
/// restored image a new log there: fsck finds it clean, every file reads back, and the
/// restored image ships on from its new log (a second restore has what it wrote).
#[test]
fn an_image_with_an_external_log_ships_it_and_restores_onto_a_new_log() {
    require_fuse!();
    let s = require_seaweed!("xlog");
    let url = s.url("xlog");
    let mut m = Mounted::empty();
    let dev = format!("device={}", m.dir().join("log").display());
    let mut c = cmd(bin(MKFS), &["-s", "256M", "--data", &url, "-J", &dev]);
    c.arg(m.image()).envs(s.env());
    run_timeout(&mut c, Duration::from_secs(60)).ok("mkfs-rvmfs --data -J device=");
    with_env(&s, &mut m);
    m.set_mount_options(&["upload_interval=0.2"]);
    m.mount();
    let files: Vec<(String, Vec<u8>)> = (0..20u64)
        .map(|i| (format!("f{i}"), pattern(i, 40_000 + 1_000 * i as usize)))
        .collect();
    for (name, data) in &files {
        std::fs::write(m.path(name), data).expect("write");
    }
    m.unmount_ok();

    let mut r = Mounted::empty();
    let out = restore(&s, &url, r.image(), &[]);
    assert_eq!(out.code(), 1, "restore without --logdev:\n{}", out.output());
    assert!(out.output().contains("--logdev"), "{}", out.output());
    assert!(!r.image().exists(), "a refused restore writes no image");
    let log = r.dir().join("new.log");
    let log_arg = log.to_str().expect("utf-8");
    let out = restore(&s, &url, r.image(), &["--logdev", log_arg]);
    assert_eq!(out.code(), 0, "restore --logdev:\n{}", out.output());
    fsck_clean(&s, r.image());
    with_env(&s, &mut r);
    r.mount();
    for (name, data) in &files {
        assert_file(r.path(name), data);
    }
    std::fs::write(r.path("after"), b"written on the restored image").expect("write");
    r.unmount_ok();

    let again = Mounted::empty();
    let log = again.dir().join("again.log");
    let out = restore(
        &s,
        &url,
        again.image(),
        &["-l", log.to_str().expect("utf-8")],
    );
    assert_eq!(out.code(), 0, "second restore:\n{}", out.output());
    fsck_clean(&s, again.image());
    let mut again = again;
    with_env(&s, &mut again);
    again.set_mount_options(&["ro"]);
    again.mount();
    assert_eq!(
        std::fs::read(again.path("after")).expect("read"),
        b"written on the restored image"
    );
    assert_file(again.path("f7"), &files[7].1);
    again.unmount_ok();
}
