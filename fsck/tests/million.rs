//! How long `fsck.rvmfs -n` takes on an image holding 1,000,000 files (issue 5's note).
//! Ignored by default (it builds a multi-GiB sparse image); run with
//!
//!     cargo test --release -p fsck --test million -- --ignored --nocapture
//!
//! `MILLION_FILES=N` sets the file count (default 1,000,000), `MILLION_DIR=PATH` where the
//! image goes (default a temporary directory; the image is removed at the end).
//! The image is populated through the library (no FUSE): 1,000 directories of 1,000 files,
//! every 10th file holding 4 KiB of data, every 50th with an xattr, every 100th hard-linked.

mod common;

use rvmfs::layout::geometry::Plan;
use rvmfs::ops::{file, namespace, xattr};
use std::process::Command;
use std::time::Instant;

#[test]
#[ignore]
fn fsck_time_on_a_million_files() {
    let files: u64 = std::env::var("MILLION_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir_in(std::env::var("MILLION_DIR").unwrap_or("/tmp".into())).unwrap();
    let path = tmp.path().join("million.img");
    let size: u64 = 8 << 30;
    let mut fs = common::file_image(
        &path,
        Plan {
            size,
            inodes: Some(files + files / 10 + 1000),
            log: Some(64 << 20),
        },
        [3; 16],
    );
    let started = Instant::now();
    let per_dir = 1000u64;
    let block = vec![0xa5u8; 4096];
    let mut made = 0u64;
    let mut d = 0u64;
    while made < files {
        let (dir, _) = fs
            .transact(|op| {
                namespace::create(
                    op,
                    1,
                    format!("d{d}").as_bytes(),
                    common::new_inode(libc::S_IFDIR | 0o755),
                    None,
                )
            })
            .unwrap();
        for i in 0..per_dir.min(files - made) {
            let name = format!("file-{i:06}");
            let (ino, _) = fs
                .transact(|op| {
                    namespace::create(
                        op,
                        dir,
                        name.as_bytes(),
                        common::new_inode(libc::S_IFREG | 0o644),
                        None,
                    )
                })
                .unwrap();
            if made % 10 == 0 {
                fs.transact(|op| file::write(op, ino, 0, &block, false))
                    .unwrap();
            }
            if made % 50 == 0 {
                fs.transact(|op| xattr::set(op, ino, b"user.n", name.as_bytes(), 0))
                    .unwrap();
            }
            if made % 100 == 0 {
                fs.transact(|op| namespace::link(op, ino, 1, format!("l{made}").as_bytes()))
                    .unwrap();
            }
            made += 1;
        }
        d += 1;
        if d % 50 == 0 {
            fs.rvm.flush().unwrap();
            eprintln!("{made} files ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    fs.rvm.flush().unwrap();
    fs.rvm.truncate().unwrap();
    drop(fs);
    let populate = started.elapsed();
    let meta = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    eprintln!(
        "populated {made} files in {d} directories in {:.1} s; image {} GiB apparent, {:.2} GiB allocated",
        populate.as_secs_f64(),
        meta.len() >> 30,
        (meta.blocks() * 512) as f64 / (1u64 << 30) as f64
    );
    // Cold-ish and warm runs of the real binary.
    for run in 0..2 {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_fsck-rvmfs"))
            .args(["-n", "-f", "-v"])
            .arg(&path)
            .output()
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "fsck.rvmfs -n (run {run}): {secs:.2} s, exit {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
