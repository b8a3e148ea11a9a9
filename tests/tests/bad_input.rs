//! (e) Bad input: a non-image does not mount (clear message, file untouched); a second mount of
//! a mounted image is refused; mkfs does not overwrite an image or a non-empty file without
//! -f; fsck's exit codes and its refusal of a mounted image.

use rvmfs_tests::*;
use std::fs;
use std::time::Duration;

/// A failed command must say something on stderr/stdout and not panic.
#[track_caller]
fn assert_clear_failure(o: &Outcome, what: &str) {
    assert!(
        !o.timed_out && !o.success(),
        "{what}: expected a failure, got exit {} (timed out: {}):\n{}",
        o.code(),
        o.timed_out,
        o.output()
    );
    assert!(
        o.code() < 128,
        "{what}: died by a signal (code {}):\n{}",
        o.code(),
        o.output()
    );
    assert!(
        !o.output().trim().is_empty(),
        "{what}: failed (exit {}) without any message",
        o.code()
    );
    assert!(
        !o.output().contains("panicked at"),
        "{what}: failed with a panic, not a message:\n{}",
        o.output()
    );
}

fn try_mount_non_image(content: Option<Vec<u8>>, what: &str) {
    let m = Mounted::empty();
    if let Some(c) = &content {
        fs::write(m.image(), c).unwrap();
    }
    let before = content.as_ref().map(|_| sha256_file(m.image()));
    let o = m.try_mount_at(m.mnt(), Duration::from_secs(20));
    assert!(
        !o.stderr.contains("[rvmfs-tests] MOUNTED"),
        "rvmfs MOUNTED {what}!\n{}",
        o.output()
    );
    assert_clear_failure(&o, &format!("rvmfs -f on {what}"));
    eprintln!("rvmfs on {what}: exit {}: {}", o.code(), o.output().trim());
    assert!(!is_fuse_mounted(m.mnt()));
    match before {
        Some(sum) => assert_eq!(
            sha256_file(m.image()),
            sum,
            "rvmfs changed {what} it refused to mount"
        ),
        None => assert!(!m.image().exists(), "rvmfs created the missing image file"),
    }
}

#[test]
fn mounting_random_bytes_fails_and_leaves_the_file_alone() {
    require_fuse!();
    try_mount_non_image(Some(pattern(77, 4 << 20)), "a file of random bytes");
}

#[test]
fn mounting_zeros_fails_and_leaves_the_file_alone() {
    require_fuse!();
    try_mount_non_image(Some(vec![0u8; 1 << 20]), "a file of zeros");
}

#[test]
fn mounting_an_empty_file_fails() {
    require_fuse!();
    try_mount_non_image(Some(Vec::new()), "an empty file");
}

#[test]
fn mounting_a_missing_file_fails() {
    require_fuse!();
    try_mount_non_image(None, "a missing file");
}

#[test]
fn mounting_a_truncated_image_fails() {
    require_fuse!();
    let m = Mounted::unmounted(&["-s", "256M"]);
    // Keep only the first 64 KiB: the header survives, the areas it describes do not.
    let head = fs::read(m.image()).unwrap()[..65536].to_vec();
    let m2 = Mounted::empty();
    fs::write(m2.image(), &head).unwrap();
    let o = m2.try_mount_at(m2.mnt(), Duration::from_secs(20));
    assert!(
        !o.stderr.contains("[rvmfs-tests] MOUNTED"),
        "rvmfs MOUNTED a truncated image!\n{}",
        o.output()
    );
    assert_clear_failure(&o, "rvmfs -f on a truncated image");
    assert_file(m2.image(), &head); // rvmfs must not change what it refuses to mount
}

#[test]
fn second_mount_of_a_mounted_image_is_refused() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::write(m.path("hello"), b"first mount").unwrap();
    let other = m.dir().join("mnt2");
    fs::create_dir(&other).unwrap();
    let o = m.try_mount_at(&other, Duration::from_secs(20));
    assert!(
        !o.stderr.contains("[rvmfs-tests] MOUNTED"),
        "a second rvmfs mounted the same image!\n{}",
        o.output()
    );
    assert_clear_failure(&o, "second rvmfs -f on a mounted image");
    eprintln!("second mount: exit {}: {}", o.code(), o.output().trim());
    assert!(!is_fuse_mounted(&other));
    // The first mount is unharmed.
    assert_file(m.path("hello"), b"first mount");
    fs::write(m.path("still"), b"works").unwrap();
    m.remount();
    assert_file(m.path("still"), b"works");
    m.unmount_ok();
    m.assert_fsck_clean();
}

#[test]
fn mkfs_refuses_an_existing_image_without_f() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::write(m.path("keep"), b"precious").unwrap();
    m.unmount_ok();
    let sum = sha256_file(m.image());
    let o = mkfs(m.image(), &["-s", "1G"]);
    assert_clear_failure(&o, "mkfs over an existing image without -f");
    eprintln!(
        "mkfs over an image: exit {}: {}",
        o.code(),
        o.output().trim()
    );
    assert_eq!(
        sha256_file(m.image()),
        sum,
        "mkfs without -f changed the existing image"
    );
    m.mount();
    assert_file(m.path("keep"), b"precious");
    m.unmount_ok();

    // With -f it makes a fresh, empty filesystem.
    mkfs(m.image(), &["-f", "-s", "1G"]).ok("mkfs -f over an existing image");
    m.assert_fsck_clean();
    m.mount();
    assert!(!m.path("keep").exists(), "mkfs -f kept old files");
    assert_eq!(
        fs::read_dir(m.mnt()).unwrap().count(),
        0,
        "a fresh filesystem is not empty: {:?}",
        fs::read_dir(m.mnt())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
}

#[test]
fn mkfs_refuses_a_nonempty_file_without_f() {
    require_fuse!();
    let m = Mounted::empty();
    let data = pattern(3, 1 << 20);
    fs::write(m.image(), &data).unwrap();
    let o = mkfs(m.image(), &["-s", "64M"]);
    assert_clear_failure(&o, "mkfs over a non-empty file without -f");
    assert!(
        fs::read(m.image()).unwrap() == data,
        "mkfs without -f changed a non-empty file"
    );
    mkfs(m.image(), &["-f", "-s", "64M"]).ok("mkfs -f over a non-empty file");
    assert_eq!(fs::metadata(m.image()).unwrap().len(), 64 << 20);
}

#[test]
fn mkfs_sizes_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.img");
    mkfs(&img, &["-s", "128M"]).ok("mkfs -s 128M on a new file");
    assert_eq!(
        fs::metadata(&img).unwrap().len(),
        128 << 20,
        "mkfs -s 128M made a file of another size"
    );
    let (c, out) = fsck(&img, &["-n"]);
    assert_eq!(c, 0, "fsck -n of a fresh image:\n{out}");
    // An existing empty file is extended.
    let img2 = dir.path().join("b.img");
    fs::write(&img2, b"").unwrap();
    mkfs(&img2, &["-s", "1G", "-N", "1000", "-J", "size=16M"])
        .ok("mkfs -s 1G -N 1000 -J size=16M on an empty file");
    assert_eq!(fs::metadata(&img2).unwrap().len(), 1 << 30);
    assert_eq!(fsck(&img2, &["-n"]).0, 0);
    for bad in [
        &["-s", "12Q"][..],
        &["-s", "banana"],
        &["-s", "1K"],
        &["--no-such-option"],
    ] {
        let img3 = dir.path().join("c.img");
        let o = mkfs(&img3, bad);
        assert_clear_failure(&o, &format!("mkfs {}", bad.join(" ")));
    }
}

#[test]
fn fsck_exit_codes() {
    require_fuse!();
    let mut m = Mounted::new();
    fs::write(m.path("f"), b"x").unwrap();

    // Mounted: refused, and the mount is unharmed.
    let (c, out) = m.fsck(&["-n"]);
    assert!(
        c != 0 && c != 1,
        "fsck -n of a mounted image exited {c} (it must refuse):\n{out}"
    );
    assert!(!out.trim().is_empty());
    eprintln!("fsck of a mounted image: exit {c}: {}", out.trim());
    let (c, out) = m.fsck(&["-y"]);
    assert!(
        c != 0 && c != 1,
        "fsck -y of a mounted image exited {c} (it must refuse):\n{out}"
    );
    assert_file(m.path("f"), b"x");
    m.unmount_ok();

    // Clean image: 0 in every mode.
    for args in [
        &["-n"][..],
        &["-n", "-f"],
        &["-p"],
        &["-y", "-f"],
        &["-n", "-f", "-v"],
    ] {
        let (c, out) = m.fsck(args);
        assert_eq!(
            c,
            0,
            "fsck {} of a clean image exited {c}:\n{out}",
            args.join(" ")
        );
    }
    // Usage errors: 16.
    let o = run(&mut cmd(bin(FSCK), &[] as &[&str]));
    assert_eq!(
        o.code(),
        16,
        "fsck with no arguments: exit {}:\n{}",
        o.code(),
        o.output()
    );
    let (c, out) = m.fsck(&["--no-such-option"]);
    assert_eq!(c, 16, "fsck --no-such-option: exit {c}:\n{out}");
    let (c, out) = m.fsck(&["-n", "-y"]);
    assert_eq!(c, 16, "fsck -n -y (conflicting modes): exit {c}:\n{out}");
    // Operational errors: 8.
    let (c, out) = fsck(&m.dir().join("missing.img"), &["-n"]);
    assert_eq!(c, 8, "fsck of a missing file: exit {c}:\n{out}");
    let junk = m.dir().join("junk.img");
    fs::write(&junk, pattern(1, 1 << 20)).unwrap();
    let sum = sha256_file(&junk);
    for mode in ["-n", "-y", "-p"] {
        let (c, out) = fsck(&junk, &[mode]);
        assert_eq!(
            c, 8,
            "fsck {mode} of a file that is not an image: exit {c}:\n{out}"
        );
        assert_eq!(
            sha256_file(&junk),
            sum,
            "fsck {mode} changed a file that is not an image"
        );
    }
    // Still a good image after all that.
    m.mount();
    assert_file(m.path("f"), b"x");
}
