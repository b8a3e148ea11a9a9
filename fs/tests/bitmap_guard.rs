//! The data bitmap checked against the extents at mount (`ops::bitmap_guard`): blocks files
//! own that a damaged bitmap calls free are found and never allocated; and what the check
//! costs on an image of many files (ignored by default):
//!
//!     cargo test --release -p rvmfs --test bitmap_guard -- --ignored --nocapture
//!
//! `GUARD_FILES=N` sets the file count of the timing (default 100,000: one extent each).

use rvm_core::{FileStorage, Storage};
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::space::fallocate;
use rvmfs::ops::{extent, file, namespace, Fs};
use std::sync::Arc;
use std::time::Instant;

mod mem_image;

const FILE: NewInode = NewInode {
    mode: libc::S_IFREG | 0o644,
    uid: 0,
    gid: 0,
    rdev: 0,
};

/// A sparse image file of `size` bytes for `inodes` inodes, formatted and opened.
fn image(dir: &std::path::Path, size: u64, inodes: u64) -> (Fs, Arc<dyn Storage>) {
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("img"))
        .unwrap();
    f.set_len(size).unwrap();
    let disk: Arc<dyn Storage> = Arc::new(FileStorage::new(f));
    let plan = Plan {
        size,
        inodes: Some(inodes),
        log: Some(16 << 20),
    };
    format(disk.clone(), plan, [5; 16], (0, 0)).unwrap();
    (mem_image::open(disk.clone(), size), disk)
}

/// `n` files in the root, each preallocated `blocks` blocks (one unwritten extent each).
fn make_files(fs: &mut Fs, n: u64, blocks: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            fs.transact(|op| {
                let (ino, _) =
                    namespace::create(op, ROOT_INO, format!("f{i}").as_bytes(), FILE, None)?;
                fallocate(op, ino, 0, blocks * 4096, 0)?;
                Ok(ino)
            })
            .unwrap()
        })
        .collect()
}

/// Clear data bitmap bits [start, start + len) in one transaction (the damage).
fn clear_bits(fs: &mut Fs, start: u64, len: u64) {
    fs.transact(|op| {
        let sb = op.superblock()?;
        rvmfs::store::bitmap::set_run(&mut op.tx, sb.data_bitmap, start, len, false)
    })
    .unwrap();
}

#[test]
fn owned_blocks_a_bitmap_calls_free_are_never_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let (mut fs, _) = image(dir.path(), 64 << 20, 256);
    let inos = make_files(&mut fs, 4, 8);
    assert_eq!(fs.guard_data_bitmap(), 0, "a sound bitmap");
    // Files 0 and 2 own blocks 0..8 and 16..24; the bitmap now calls them free.
    clear_bits(&mut fs, 0, 8);
    clear_bits(&mut fs, 16, 8);
    assert_eq!(fs.guard_data_bitmap(), 16);
    assert_eq!(fs.geo.unmarked.runs, vec![(0, 8), (16, 8)]);
    let (ino, _) = fs
        .transact(|op| namespace::create(op, ROOT_INO, b"new", FILE, None))
        .unwrap();
    for _ in 0..4 {
        let got = fs.transact(|op| extent::alloc_blocks(op, 32)).unwrap();
        assert!(
            fs.geo.unmarked.first_in(got.0, got.1).is_none(),
            "allocated {got:?}, owned by files {inos:?}"
        );
    }
    fs.transact(|op| file::write(op, ino, 0, &[7u8; 40960], false))
        .unwrap();
    let record = fs.errors.record.as_ref().expect("the damage is recorded");
    assert!(
        record.message.contains("calls free 16 blocks"),
        "{}",
        record.message
    );
}

#[test]
#[ignore]
fn what_the_check_costs_on_many_files() {
    let files: u64 = std::env::var("GUARD_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let size = (files * 4096 * 2 + (files * 1500)).max(256 << 20);
    let (mut fs, _) = image(dir.path(), size, files + 100);
    let started = Instant::now();
    make_files(&mut fs, files, 1);
    eprintln!(
        "{files} files made in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(fs.guard_data_bitmap(), 0);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    eprintln!(
        "data bitmap checked against {} extents: median {:.1} ms (min {:.1}, max {:.1}) of 5",
        fs.geo.unmarked.extents, times[2], times[0], times[4]
    );
}
