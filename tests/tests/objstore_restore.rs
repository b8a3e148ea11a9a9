//! Restore from the bucket alone (issue 14 items 2 and 6; docs/format.md 11.7, 11.8), end to
//! end against a real SeaweedFS: a mounted object-store image ships its redo log and
//! snapshots while a real tree is copied in; after a clean unmount, `rvmfs-admin restore`
//! builds a new image in a fresh directory from nothing but the bucket, fsck finds it clean,
//! and every file reads back byte-exact (its data from the bucket's objects).

use rvmfs_tests::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `mkfs-rvmfs -s 256M --data URL IMAGE` with the server's environment.
fn mkfs_data(s: &Seaweed, image: &Path, url: &str) {
    let mut c = cmd(bin(MKFS), &["-s", "256M", "--data", url]);
    c.arg(image).envs(s.env());
    run_timeout(&mut c, Duration::from_secs(60)).ok("mkfs-rvmfs --data");
}

/// `rvmfs-admin restore URL IMAGE` with the server's environment.
fn restore(s: &Seaweed, url: &str, image: &Path) -> Outcome {
    let mut c = cmd(bin(ADMIN), &["restore", "-f", url]);
    c.arg(image).envs(s.env());
    run_timeout(&mut c, Duration::from_secs(120))
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
    let out = restore(&s, &url, r.image());
    assert_eq!(out.code(), 0, "restore:\n{}", out.output());
    let (code, fsck_out) = {
        let mut c = cmd(bin(FSCK), &["-n", "-f"]);
        c.arg(r.image()).envs(s.env());
        let o = run_timeout(&mut c, Duration::from_secs(120));
        (o.code(), o.output())
    };
    assert_eq!(code, 0, "fsck -n of the restored image:\n{fsck_out}");
    with_env(&s, &mut r);
    r.mount();
    assert_same_tree(&src, &r.path("linux"), Compare::CONTENT);
    assert_eq!(
        std::fs::read(r.path("later/note")).expect("read"),
        b"after the copy"
    );
    r.unmount_ok();
}
