//! Freed data blocks are not reused before their free is durable (issue 11): a transaction
//! that frees blocks (unlink, truncate, punch, copy-on-write overwrite) commits without a
//! flush; if a later one wrote another file's data into the same blocks, a power cut that
//! loses the free's record would give the old file back holding someone else's bytes.
//! On rvm-core's `SimStorage`: free + reallocate + write, cut the power before any flush
//! with every data write kept (the page cache wrote the data back, the log never got the
//! records), recover, and check that the old file reads its own bytes.

mod common;

use common::{new_inode, open_sim, snapshot};
use fsck::check::check;
use rvm_core::sim::SimStorage;
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::layout::BLOCK_SIZE;
use rvmfs::ops::{file, namespace, Fs};
use std::sync::Arc;

const IMAGE: u64 = 4 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(37) | 1)
        .collect()
}

fn create(fs: &mut Fs, name: &str) -> u64 {
    let mode = new_inode(libc::S_IFREG | 0o644);
    let (ino, _) = fs
        .transact(|op| namespace::create(op, ROOT_INO, name.as_bytes(), mode, None))
        .expect("create");
    ino
}

fn write(fs: &mut Fs, ino: u64, data: &[u8]) {
    fs.transact(|op| file::write(op, ino, 0, data, false))
        .expect("write");
}

/// A fresh image holding /x (`len` bytes of pattern 1), all durable.
fn base(len: usize) -> Vec<u8> {
    let disk = Arc::new(SimStorage::new(IMAGE as usize));
    let plan = Plan {
        size: IMAGE,
        inodes: Some(64),
        log: Some(1 << 20),
    };
    format(disk.clone(), plan, [5; 16], (0, 0)).expect("mkfs");
    let mut fs = open_sim(disk.clone(), IMAGE).expect("open");
    let ino = create(&mut fs, "x");
    write(&mut fs, ino, &pattern(len, 1));
    fs.rvm.flush().expect("flush");
    drop(fs);
    disk.durable_image()
}

/// Unlink /x, then create /y and write `len` bytes of pattern 2 into it, without a flush
/// in between (the default no-flush commits); returns the disk as a power cut leaves it with
/// every write kept (Crash::All), and whether the write succeeded.
fn free_then_reuse(image: Vec<u8>, len: usize) -> (Vec<u8>, bool) {
    let disk = Arc::new(SimStorage::from_bytes(image));
    let mut fs = open_sim(disk.clone(), IMAGE).expect("open");
    fs.transact(|op| namespace::unlink(op, ROOT_INO, b"x"))
        .expect("unlink");
    let ino = create(&mut fs, "y");
    let data = pattern(len, 2);
    let wrote = fs
        .transact(|op| file::write(op, ino, 0, &data, false))
        .is_ok();
    drop(fs);
    (disk.image(), wrote)
}

/// Recover `image`, check it with fsck, and check /x: absent, or holding its own bytes.
/// Returns whether /x is there.
fn old_file_is_whole(image: Vec<u8>, len: usize) -> bool {
    let fs = open_sim(Arc::new(SimStorage::from_bytes(image)), IMAGE).expect("recover");
    let report = check(fs.bytes(), &|_, _, _| {}).expect("fsck reads the image");
    assert!(report.problems.is_empty(), "fsck: {:?}", report.problems);
    let tree = snapshot(&fs).expect("read every file (no checksum error)");
    match tree.get("/x") {
        None => false,
        Some((_, _, body, _)) => {
            assert!(
                *body == pattern(len, 1),
                "/x came back holding bytes that are not its own (another file's data)"
            );
            true
        }
    }
}

#[test]
fn blocks_freed_by_an_unflushed_unlink_are_not_reused() {
    // Larger than a small write (data logging): the data goes in place, before the commit.
    let len = 40 * BLOCK_SIZE as usize;
    let (image, wrote) = free_then_reuse(base(len), len);
    assert!(wrote, "the write into a filesystem with room failed");
    assert!(
        old_file_is_whole(image, len),
        "the unlink was never flushed: /x must come back"
    );
}

#[test]
fn when_only_unflushed_frees_remain_the_allocator_flushes_first() {
    // Fill the data area with /x, then free it and write as much into /y: the allocator has
    // only blocks whose free is not durable, so it must flush (no false ENOSPC).
    let probe = Arc::new(SimStorage::from_bytes(base(BLOCK_SIZE as usize)));
    let fs = open_sim(probe, IMAGE).expect("open");
    let sb = rvmfs::store::superblock(fs.bytes()).expect("superblock");
    let len = ((sb.data_blocks - sb.blocks_used + 1) * BLOCK_SIZE) as usize;
    drop(fs);
    let (image, wrote) = free_then_reuse(base(len), len);
    assert!(
        wrote,
        "ENOSPC although the freed blocks could be made reusable"
    );
    assert!(
        !old_file_is_whole(image, len),
        "the allocator's flush made the unlink durable"
    );
}
