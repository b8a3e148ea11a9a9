//! (b) What is written survives an unmount and a remount (and a SIGTERM/SIGINT shutdown, and
//! the daemon's background mode), and a cleanly unmounted image is clean for fsck.

use rvmfs_tests::*;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A varied tree: file sizes around block boundaries, a sparse file, deep directories,
/// symlinks, hard links, odd permissions and set mtimes.
fn build_tree(root: &Path) {
    for (i, len) in [
        0usize,
        1,
        511,
        4095,
        4096,
        4097,
        65536,
        1 << 20,
        (1 << 20) + 13,
        5 << 20,
    ]
    .iter()
    .enumerate()
    {
        fs::write(
            root.join(format!("size-{len}")),
            pattern(i as u64 + 1, *len),
        )
        .unwrap();
    }
    // Sparse: data at 0, a hole, data at 10 MiB + 7.
    let mut f = fs::File::create(root.join("sparse")).unwrap();
    f.write_all(b"head").unwrap();
    f.seek(SeekFrom::Start((10 << 20) + 7)).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    let mut d = root.join("deep");
    for i in 0..12 {
        d = d.join(format!("level{i}"));
    }
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("bottom.txt"), b"at the bottom\n").unwrap();
    fs::create_dir(root.join("links")).unwrap();
    symlink("../size-4096", root.join("links/rel")).unwrap();
    symlink("/nonexistent/dangling", root.join("links/dangling")).unwrap();
    symlink("x".repeat(1000), root.join("links/long")).unwrap();
    fs::hard_link(root.join("size-65536"), root.join("links/hard1")).unwrap();
    fs::hard_link(root.join("size-65536"), root.join("links/hard2")).unwrap();
    fs::write(root.join("private"), b"secret").unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("setuid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("deep"), fs::Permissions::from_mode(0o700)).unwrap();
    run(Command::new("touch")
        .args(["-m", "-d", "@1000000000"])
        .arg(root.join("size-1")))
    .ok("touch -d");
    run(Command::new("touch")
        .args(["-m", "-d", "2001-02-03 04:05:06"])
        .arg(root.join("deep")))
    .ok("touch -d dir");
    // Names that are not plain ASCII.
    fs::write(root.join("naïve café ☕"), b"utf-8 name").unwrap();
    fs::write(root.join(" leading space"), b"").unwrap();
}

#[test]
fn contents_persist_across_remounts() {
    require_fuse!();
    let mut m = Mounted::new();
    build_tree(m.mnt());
    let before = manifest(m.mnt());
    assert_file(m.path("links/hard2"), pattern(7, 65536));

    m.unmount_ok();
    m.assert_fsck_clean();
    m.mount();
    assert_manifests_equal(
        &before,
        &manifest(m.mnt()),
        Compare::EXACT,
        "after the first remount",
    );
    let sparse = fs::read(m.path("sparse")).unwrap();
    assert_eq!(sparse.len(), (10 << 20) + 11);
    assert_eq!(&sparse[..4], b"head");
    assert!(
        sparse[4..(10 << 20) + 7].iter().all(|&b| b == 0),
        "the hole of a sparse file reads non-zero bytes"
    );

    // Change things, remount again, several times.
    for round in 0..3u64 {
        let f = m.path(format!("round-{round}"));
        fs::write(&f, pattern(100 + round, 300_000)).unwrap();
        let mut a = fs::OpenOptions::new()
            .append(true)
            .open(m.path("size-4097"))
            .unwrap();
        a.write_all(&pattern(200 + round, 5000)).unwrap();
        drop(a);
        fs::rename(
            m.path(format!("size-{}", [511, 4095, 4096][round as usize])),
            m.path(format!("renamed-{round}")),
        )
        .unwrap();
        fs::remove_file(m.path("links/hard1")).ok();
        fs::remove_dir_all(m.path(
            "deep/level0/level1/level2/level3/level4/level5/level6/level7/level8/level9/level10",
        ))
        .ok();
        let snap = manifest(m.mnt());
        m.remount();
        assert_manifests_equal(
            &snap,
            &manifest(m.mnt()),
            Compare::EXACT,
            &format!("after remount {round}"),
        );
    }
    m.unmount_ok();
    m.assert_fsck_clean();
}

#[test]
fn big_file_persists() {
    require_fuse!();
    let mut m = Mounted::new();
    let data = pattern(42, 64 << 20);
    let t = Instant::now();
    fs::write(m.path("big"), &data).unwrap();
    let dt = t.elapsed();
    eprintln!(
        "wrote 64 MiB in {dt:.2?} ({:.1} MiB/s)",
        mib_per_s(64 << 20, dt)
    );
    let sum = sha256_file(&m.path("big"));
    m.remount();
    assert_eq!(
        sha256_file(&m.path("big")),
        sum,
        "64 MiB file differs after remount"
    );
    assert!(fs::read(m.path("big")).unwrap() == data);
}

fn shutdown_by_signal(sig: libc::c_int) {
    let mut m = Mounted::new();
    fs::write(m.path("before-signal"), pattern(9, 123_456)).unwrap();
    fs::create_dir(m.path("dir")).unwrap();
    let st = m.signal_and_wait(sig);
    assert!(
        st.success(),
        "rvmfs exited {st} on signal {sig} (expected a clean exit 0); output:\n{}",
        m.daemon_log()
    );
    m.assert_fsck_clean();
    m.mount();
    assert_file(m.path("before-signal"), pattern(9, 123_456));
    assert!(m.path("dir").is_dir());
}

#[test]
fn sigterm_unmounts_cleanly() {
    require_fuse!();
    shutdown_by_signal(libc::SIGTERM);
}

#[test]
fn sigint_unmounts_cleanly() {
    require_fuse!();
    shutdown_by_signal(libc::SIGINT);
}

/// PIDs of processes whose command line mentions `needle` (a unique temporary path of ours).
fn pids_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.as_os_str().as_encoded_bytes();
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cl) = fs::read(e.path().join("cmdline")) {
            if cl.split(|&b| b == 0).any(|arg| arg == needle) && pid != std::process::id() {
                v.push(pid);
            }
        }
    }
    v
}

#[test]
fn background_mode_returns_once_mounted() {
    require_fuse!();
    let m = Mounted::unmounted(&["-s", "256M"]);
    let o = run_timeout(
        Command::new(bin(RVMFS)).arg(m.image()).arg(m.mnt()),
        Duration::from_secs(30),
    );
    let mounted_on_return = is_fuse_mounted(m.mnt());
    // Whatever happens, the daemon we started (found by its unique image path) goes away.
    let cleanup = |m: &Mounted| {
        if is_fuse_mounted(m.mnt()) {
            fusermount_u(m.mnt(), false);
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            let pids = pids_mentioning(m.image());
            if pids.is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                for p in pids {
                    signal_pid(p, libc::SIGKILL);
                }
                fusermount_u(m.mnt(), true);
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    if !o.success() || !mounted_on_return {
        cleanup(&m);
        panic!(
            "rvmfs IMAGE MNT (background) exited {} with the mount {}present:\n{}",
            o.code(),
            if mounted_on_return { "" } else { "NOT " },
            o.output()
        );
    }
    fs::write(m.path("bg"), b"written in background mode").unwrap();
    assert!(
        cleanup(&m),
        "the background daemon did not exit within {EXIT_TIMEOUT:?} of fusermount3 -u"
    );
    m.assert_fsck_clean();
    let mut m = m;
    m.mount();
    assert_file(m.path("bg"), b"written in background mode");
}
