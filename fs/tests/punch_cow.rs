//! Punch hole zeroes the partial edge blocks of its range by copy on write (issue 11, item
//! 8): the data-area bytes a file showed before the punch are never zeroed in place, so a
//! crash before the commit leaves the file as it was (the end-to-end kill -9 test is
//! `tests/tests/loose_ends.rs`).

use rvm_core::MemStorage;
use rvmfs::ops::file;
use rvmfs::ops::space::{fallocate, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE};
use std::sync::Arc;

mod mem_image;

const IMAGE: u64 = 8 << 20;

#[test]
fn punch_hole_never_zeroes_visible_blocks_in_place() {
    let disk = Arc::new(MemStorage::new(IMAGE as usize));
    let (mut fs, ino) = mem_image::with_empty_file(&disk, IMAGE);
    let old: Vec<u8> = (0..128u32 << 10).map(|i| (i % 251 + 1) as u8).collect();
    fs.transact(|op| file::write(op, ino, 0, &old, false))
        .unwrap();
    let before = disk.snapshot();
    // Bytes 1000..11000: the tail of block 0, all of block 1, the head of block 2.
    let mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    fs.transact(|op| fallocate(op, ino, 1000, 10_000, mode))
        .unwrap();
    let mut want = old.clone();
    want[1000..11_000].fill(0);
    let got = file::read(&fs.geo, fs.bytes(), ino, 0, old.len() as u64).unwrap();
    assert!(got == want, "the file after the punch");
    let after = disk.snapshot();
    let start = fs.geo.data_offset as usize;
    let zeroed = (start..after.len()).find(|&i| before[i] != 0 && after[i] == 0);
    assert_eq!(
        zeroed, None,
        "a data-area byte was zeroed in place (the old edge blocks must stay as they were)"
    );
}
