//! Corrupt images never crash fsck.rvmfs: flip random bits and zero random blocks in the
//! header, log, segment and data areas of a populated image (seeded, reproducible), then run
//! `fsck.rvmfs -n`, `-y`, `-n`. Every run must exit with an e2fsck code (no panic, no signal,
//! no hang), and once `-y` says it corrected everything, the next `-n` must find the image clean.
//!
//! `CORRUPT_IMAGES=N` sets the number of images (default 1000), `CORRUPT_SEED=S` the first seed.

mod common;

use rvmfs::layout::geometry::Plan;
use rvmfs::ops::attr::SetAttr;
use rvmfs::ops::{attr, file, namespace, xattr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// xorshift64*: a tiny seeded generator, so a failing seed replays exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A 64 MiB image holding directories, files with data, hard links, symlinks and xattrs,
/// with some transactions left in the log (not truncated) so log corruption matters too.
fn populated_image(dir: &Path) -> PathBuf {
    let path = dir.join("base.img");
    let mut fs = common::file_image(
        &path,
        Plan {
            size: 64 << 20,
            inodes: Some(4096),
            log: Some(4 << 20),
        },
        [7; 16],
    );
    let mut rng = Rng(42);
    for d in 0..20u64 {
        let (dir_ino, _) = fs
            .transact(|op| {
                namespace::create(
                    op,
                    1,
                    format!("dir{d}").as_bytes(),
                    common::new_inode(libc::S_IFDIR | 0o755),
                    None,
                )
            })
            .unwrap();
        for i in 0..15u64 {
            let name = format!("file{i}");
            let (ino, _) = fs
                .transact(|op| {
                    namespace::create(
                        op,
                        dir_ino,
                        name.as_bytes(),
                        common::new_inode(libc::S_IFREG | 0o644),
                        None,
                    )
                })
                .unwrap();
            let len = rng.below(3 * 4096 + 100) as usize;
            let data: Vec<u8> = (0..len).map(|j| (j as u64 * 31 + i) as u8).collect();
            fs.transact(|op| file::write(op, ino, 0, &data, false))
                .unwrap();
            if i % 5 == 0 {
                fs.transact(|op| namespace::link(op, ino, 1, format!("link{d}-{i}").as_bytes()))
                    .unwrap();
                fs.transact(|op| xattr::set(op, ino, b"user.test", b"value", 0))
                    .unwrap();
            }
            if i % 7 == 0 {
                let target = format!("../dir{d}/{name}");
                fs.transact(|op| {
                    namespace::create(
                        op,
                        dir_ino,
                        format!("sym{i}").as_bytes(),
                        common::new_inode(libc::S_IFLNK | 0o777),
                        Some(target.as_bytes()),
                    )
                })
                .unwrap();
            }
            if i % 4 == 3 {
                fs.transact(|op| {
                    attr::setattr(
                        op,
                        ino,
                        &SetAttr {
                            size: Some(10),
                            ..SetAttr::default()
                        },
                    )
                })
                .unwrap();
            }
        }
    }
    fs.rvm.flush().unwrap();
    fs.rvm.truncate().unwrap();
    // Leave a few committed transactions in the log.
    for i in 0..30u64 {
        fs.transact(|op| {
            namespace::create(
                op,
                1,
                format!("late{i}").as_bytes(),
                common::new_inode(libc::S_IFREG | 0o600),
                None,
            )
        })
        .unwrap();
    }
    fs.rvm.flush().unwrap();
    drop(fs);
    path
}

/// Run fsck with `args`; returns its exit code. Panics (the test fails) on a signal or a hang.
fn fsck(image: &Path, args: &[&str], what: &str) -> i32 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fsck-rvmfs"))
        .args(args)
        .arg(image)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let code = status.code();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            match code {
                Some(c @ (0 | 1 | 4 | 8)) => return c,
                _ => panic!("{what}: fsck {args:?} ended with {status}: {err}"),
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{what}: fsck {args:?} hung for 60 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn corrupt_images_never_crash_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let base = populated_image(dir.path());
    assert_eq!(
        fsck(&base, &["-n"], "pristine image"),
        0,
        "the pristine image must be clean"
    );
    let pristine = std::fs::read(&base).unwrap();
    let header = rvmfs::image::read_header(&std::fs::File::open(&base).unwrap(), &base).unwrap();
    let areas = [
        ("header", 0, 256),
        ("log", header.log_offset, 2 << 20),
        (
            "segment",
            header.segment_offset,
            header.segment_len.min(4 << 20),
        ),
        ("data", header.data_offset, 2 << 20),
    ];
    let count: u64 = std::env::var("CORRUPT_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let first: u64 = std::env::var("CORRUPT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let work = dir.path().join("c.img");
    let (mut detected, mut repaired) = (0, 0);
    for seed in first..first + count {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (area, start, len) = areas[rng.below(areas.len() as u64) as usize];
        let mut bytes = pristine.clone();
        if rng.below(4) == 0 {
            let block = (start + rng.below(len)) / 4096 * 4096;
            bytes[block as usize..block as usize + 4096].fill(0);
        } else {
            for _ in 0..1 + rng.below(16) {
                let at = (start + rng.below(len)) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        std::fs::write(&work, &bytes).unwrap();
        let what = format!("seed {seed} ({area})");
        let first_check = fsck(&work, &["-n"], &what);
        let fixed = fsck(&work, &["-y"], &what);
        let after = fsck(&work, &["-n"], &what);
        detected += (first_check != 0) as u32;
        if fixed == 1 {
            repaired += 1;
        }
        if fixed <= 1 {
            assert_eq!(
                after, 0,
                "{what}: fsck -y said it corrected everything but -n still finds problems"
            );
        }
    }
    eprintln!("{count} corrupted images: {detected} detected by fsck -n, {repaired} repaired by -y, 0 crashes");
}
