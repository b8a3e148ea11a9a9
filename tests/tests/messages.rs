//! Messages users read (issue 13, item 12): fsck's summary line gives the percentage of files
//! that are non-contiguous, as e2fsck's does (it once printed "9/262144 files (120733.3%
//! non-contiguous)" after random writes on four files: it counted extents); every error line
//! of the daemon names the image, the operation and the inode.

use rvmfs_tests::*;
use std::fs;
use std::io::{Seek, SeekFrom, Write};

/// "N/M files (P% non-contiguous)" of fsck's summary → (N, P).
fn summary(out: &str) -> (u64, f64) {
    let line = out
        .lines()
        .find(|l| l.contains("non-contiguous"))
        .expect("summary line");
    let files = line
        .split(": ")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap();
    let pct = line
        .split('(')
        .nth(1)
        .and_then(|s| s.split('%').next())
        .unwrap();
    (files.parse().unwrap(), pct.parse().unwrap())
}

#[test]
fn fsck_percentage_counts_non_contiguous_files() {
    require_fuse!();
    let mut m = Mounted::with_mkfs(&["-s", "256M"]);
    let mut files: Vec<fs::File> = (0..4)
        .map(|i| fs::File::create(m.path(format!("f{i}"))).unwrap())
        .collect();
    fs::write(m.path("contiguous"), pattern(9, 1 << 20)).unwrap();
    // Random 64 KiB writes, taking turns between the four files: their blocks interleave.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..400 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = &mut files[round % 4];
        f.seek(SeekFrom::Start((x % 256) * 65536)).unwrap();
        f.write_all(&pattern(round as u64, 65536)).unwrap();
    }
    drop(files);
    m.unmount_ok();
    let (code, out) = m.fsck(&["-n", "-f"]);
    assert_eq!(code, 0, "{out}");
    let (inodes, pct) = summary(&out);
    assert_eq!(inodes, 6, "root, four files, one contiguous file: {out}");
    assert!(
        (pct - 100.0 * 4.0 / 6.0).abs() < 0.1,
        "4 of 6 inodes non-contiguous: {out}"
    );
}

#[test]
fn error_lines_name_the_image_the_operation_and_the_inode() {
    require_fuse!();
    let mut m = Mounted::unmounted(&["-s", "64M"]);
    m.set_mount_options(&["sync", "inject_fault=write:0"]);
    m.mount();
    let mut f = fs::File::create(m.path("big")).unwrap();
    assert!(
        f.write_all(&vec![7u8; 1 << 20]).is_err(),
        "the injected fault fails the write"
    );
    drop(f);
    let ino = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(m.path("big")).unwrap().ino()
    };
    m.unmount();
    let log = m.daemon_log();
    let image = fs::canonicalize(m.image()).unwrap_or(m.image().to_path_buf());
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(!errors.is_empty(), "no error logged:\n{log}");
    for line in &errors {
        assert!(
            line.contains(&m.image().display().to_string())
                || line.contains(&image.display().to_string()),
            "error line without the image: {line}"
        );
    }
    let want = format!("write (inode {ino})");
    assert!(
        errors.iter().any(|l| l.contains(&want)),
        "no line names {want:?}:\n{log}"
    );
}
