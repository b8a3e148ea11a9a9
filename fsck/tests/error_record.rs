//! fsck and the error record (issue 11, item 1): an image whose daemon met a storage error
//! (injected with `FaultStorage` over the image file) carries an error record; `fsck.rvmfs -n`
//! reports it ("filesystem had errors") and exits 4 without clearing it; `-p` checks fully,
//! clears it after the clean check and exits 1; then `-n` is clean (0). A damaged record is
//! reported and cleared the same way.

mod common;

use common::{file_image, new_inode};
use rvm_core::{FaultOp, FaultStorage, FileStorage, Storage};
use rvmfs::layout::error_record::{ErrorRecord, ERROR_RECORD_OFFSET};
use rvmfs::layout::geometry::Plan;
use rvmfs::ops::{namespace, Durability};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const IMAGE: u64 = 8 << 20;

/// Run fsck with `args`: (exit code, stdout).
fn fsck(image: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsck-rvmfs"))
        .args(args)
        .arg(image)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().expect("fsck ended by a signal"), stdout)
}

/// An image at `path` whose filesystem failed in a commit after creating "a".
fn failed_image(path: &Path) {
    let plan = Plan {
        size: IMAGE,
        inodes: Some(64),
        log: Some(1 << 20),
    };
    drop(file_image(path, plan, [3; 16]));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let fault = Arc::new(FaultStorage::new(Arc::new(FileStorage::new(file))));
    let storage: Arc<dyn Storage> = fault.clone();
    let mut fs = common::open_storage(storage.clone(), IMAGE).unwrap();
    fs.durability = Durability::Sync;
    let create = |fs: &mut rvmfs::ops::Fs, name: &[u8]| {
        fs.transact_on("create", 1, |op| {
            namespace::create(op, 1, name, new_inode(libc::S_IFREG | 0o644), None)
        })
    };
    create(&mut fs, b"a").unwrap();
    fault.fail_after(FaultOp::DurableWrite, 0, libc::EIO, false);
    let e = create(&mut fs, b"b").expect_err("the commit fails");
    assert_eq!(e.errno(), libc::EIO);
    assert_eq!(create(&mut fs, b"c").unwrap_err().errno(), libc::EIO);
    let rec = ErrorRecord::read(&*storage).unwrap().expect("recorded");
    assert_eq!((rec.count, rec.op.as_str(), rec.errno), (1, "create", 5));
}

#[test]
fn fsck_reports_and_clears_the_error_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    failed_image(&path);
    let (code, out) = fsck(&path, &["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("filesystem had errors: 1 error(s), the first: create"),
        "{out}"
    );
    assert!(
        out.contains("log write failed") && out.contains(" UTC"),
        "{out}"
    );
    let (code, out) = fsck(&path, &["-p"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error record cleared"), "{out}");
    let (code, out) = fsck(&path, &["-n"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("had errors"), "{out}");
}

#[test]
fn fsck_clears_a_damaged_error_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let plan = Plan {
        size: IMAGE,
        inodes: Some(64),
        log: Some(1 << 20),
    };
    drop(file_image(&path, plan, [4; 16]));
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"garbage", ERROR_RECORD_OFFSET).unwrap();
    drop(file);
    let (code, out) = fsck(&path, &["-n"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("bad magic"), "{out}");
    let (code, out) = fsck(&path, &["-y"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(fsck(&path, &["-n"]).0, 0);
}
