//! Reads of a checksummed file at any offset and length (the kernel asks for whole pages,
//! the tools that open an image, `rvmfs-admin debug cat` and `rdump`, for any range): the
//! bytes come back right, and a flipped bit in a block the read touches, even one it only
//! partly covers, answers EIO while the blocks around it still read.

use rvm_core::{MemStorage, Storage};
use rvmfs::ops::{file, read, Fs};
use std::sync::Arc;

mod mem_image;

const IMAGE: u64 = 8 << 20;
const BLOCK: u64 = 4096;

/// A fresh image holding one checksummed file of `data`; the file's inode.
fn with_file(disk: &Arc<MemStorage>, data: &[u8]) -> (Fs, u64) {
    let (mut fs, ino) = mem_image::with_empty_file(disk, IMAGE);
    assert!(
        fs.geo.csums.is_some(),
        "images are made with data checksums"
    );
    fs.transact(|op| file::write(op, ino, 0, data, false))
        .unwrap();
    (fs, ino)
}

fn errno(r: rvmfs::error::FsResult<Vec<u8>>) -> Option<i32> {
    r.err().map(|e| e.errno())
}

#[test]
fn reads_at_any_offset_verify_every_block_they_touch() {
    let disk = Arc::new(MemStorage::new(IMAGE as usize));
    let data: Vec<u8> = (0..10 * BLOCK as u32 + 123)
        .map(|i| (i % 251) as u8)
        .collect();
    let (fs, ino) = with_file(&disk, &data);
    let rd = |off: u64, len: u64| read::read(&fs.geo, fs.bytes(), ino, off, len);
    let ranges = [
        (0, 10 * BLOCK + 123),
        (100, 5000),
        (4095, 2),
        (9 * BLOCK + 7, 1000),
    ];
    for (off, len) in ranges {
        let end = (off + len).min(data.len() as u64);
        assert_eq!(
            rd(off, len).unwrap(),
            data[off as usize..end as usize],
            "{off}+{len}"
        );
        let plan = read::plan_read(&fs.geo, fs.bytes(), ino, off, len).unwrap();
        assert!(
            plan.sums.iter().all(|s| s.is_some()),
            "every piece is checksummed"
        );
    }

    // Flip one bit of block 3 in the image, then read around it.
    let plan = read::plan_read(&fs.geo, fs.bytes(), ino, 3 * BLOCK, BLOCK).unwrap();
    let at = plan.pieces[0].1 + 99;
    let mut b = [0u8; 1];
    disk.read_at(&mut b, at).unwrap();
    disk.write_at(&[b[0] ^ 0x04], at).unwrap();
    assert_eq!(
        errno(rd(3 * BLOCK + 10, 20)),
        Some(libc::EIO),
        "inside the block"
    );
    assert_eq!(
        errno(rd(2 * BLOCK + 4000, 200)),
        Some(libc::EIO),
        "across its start"
    );
    assert_eq!(
        errno(rd(0, 10 * BLOCK)),
        Some(libc::EIO),
        "a whole-block read"
    );
    assert_eq!(
        rd(2 * BLOCK + 1, 4095).unwrap(),
        data[8193..12288],
        "the block before"
    );
    assert_eq!(
        rd(4 * BLOCK, 100).unwrap(),
        data[16384..16484],
        "the block after"
    );

    // The two halves a FUSE read runs apart (copy under the read gate, verify with no lock)
    // give what read gives.
    let plan = read::plan_read(&fs.geo, fs.bytes(), ino, 5 * BLOCK - 1, 3).unwrap();
    let copied = read::copy_planned(&*fs.geo.image, &plan).unwrap();
    assert_eq!(
        read::verify_copied(&plan, copied).unwrap(),
        data[20479..20482]
    );
}

/// Flip one bit of the image at `at`.
fn flip(disk: &MemStorage, at: u64) {
    let mut b = [0u8; 1];
    disk.read_at(&mut b, at).unwrap();
    disk.write_at(&[b[0] ^ 0x10], at).unwrap();
}

#[test]
fn a_long_read_is_verified_in_every_part() {
    // 1 MiB + 3 blocks: read in parts of 512 KiB, each verified by the checksum worker while
    // the next is read, the last after the copy (`read::copy_planned`).
    let disk = Arc::new(MemStorage::new(IMAGE as usize));
    let len = (256 + 3) * BLOCK;
    let data: Vec<u8> = (0..len as u32).map(|i| (i % 249) as u8).collect();
    let (fs, ino) = with_file(&disk, &data);
    let rd = |off: u64, len: u64| read::read(&fs.geo, fs.bytes(), ino, off, len);
    assert_eq!(rd(0, len).unwrap(), data, "the whole file reads right");
    let plan = read::plan_read(&fs.geo, fs.bytes(), ino, 0, len).unwrap();
    assert_eq!(plan.pieces.len(), 1, "one extent");
    let base = plan.pieces[0].1;
    // A block of the first part (checked by the worker) and of the last (after the copy).
    for block in [5, 256 + 1] {
        flip(&disk, base + block * BLOCK + 7);
        assert_eq!(errno(rd(0, len)), Some(libc::EIO), "block {block}");
        let from = (block / 128) * 128 * BLOCK;
        assert_eq!(
            errno(rd(from, len - from)),
            Some(libc::EIO),
            "from its part"
        );
        flip(&disk, base + block * BLOCK + 7);
        assert_eq!(rd(0, len).unwrap(), data, "mended: block {block}");
    }
    // Damage in the second part only: the first part still reads.
    flip(&disk, base + 130 * BLOCK);
    assert_eq!(rd(0, 128 * BLOCK).unwrap(), data[..128 * BLOCK as usize]);
    assert_eq!(errno(rd(0, len)), Some(libc::EIO));
}
