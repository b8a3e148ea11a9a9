//! `rvmfs::resize` through the library (the end-to-end test is tests/tests/admin_resize.rs):
//! growing into a larger storage and shrinking are visible to allocation and survive a
//! reopen; a refused or failed resize changes nothing (fault injected through `Storage`).

use rvm_core::{FaultOp, FaultStorage, MemStorage};
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::header::Header;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{file, namespace, statfs, Fs};
use rvmfs::resize::{resize, ResizeError};
use std::sync::Arc;

mod mem_image;
use mem_image::open;

const MIB: u64 = 1 << 20;

/// An 8 MiB image on a `len`-byte memory disk.
fn disk(len: u64) -> Arc<MemStorage> {
    let disk = Arc::new(MemStorage::new(len as usize));
    let plan = Plan {
        size: 8 * MIB,
        inodes: Some(64),
        log: Some(MIB),
    };
    format(disk.clone(), plan, [9; 16], (0, 0)).unwrap();
    disk
}

fn write_file(fs: &mut Fs, name: &[u8], len: usize) -> rvmfs::FsResult<u64> {
    let new = NewInode {
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
    };
    let (ino, _) = fs.transact(|op| namespace::create(op, ROOT_INO, name, new, None))?;
    let data = vec![0x5a; len];
    fs.transact(|op| file::write(op, ino, 0, &data, false))?;
    Ok(ino)
}

#[test]
fn grow_and_shrink_are_used_and_survive_a_reopen() {
    let mem = disk(32 * MIB);
    let mut fs = open(mem.clone(), 32 * MIB);
    let before = statfs::statfs(fs.bytes()).unwrap().blocks;
    assert!(
        write_file(&mut fs, b"big", 12 << 20).is_err(),
        "12 MiB fit in 8"
    );
    let c = resize(&mut fs, 24 * MIB).unwrap();
    assert_eq!((c.old_blocks, c.new_size), (before, 24 * MIB));
    assert_eq!(statfs::statfs(fs.bytes()).unwrap().blocks, c.new_blocks);
    write_file(&mut fs, b"big2", 12 << 20).expect("12 MiB fit after growing to 24");
    let err = resize(&mut fs, 8 * MIB).unwrap_err();
    assert!(matches!(err, ResizeError::InUse { .. }), "{err}");
    // 8x an 8 MiB image (its data bitmap and checksum table hold 16384 blocks) and a bit.
    let err = resize(&mut fs, 80 * MIB).unwrap_err();
    assert!(
        matches!(
            err,
            ResizeError::PastCapacity {
                capacity: 16384,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fs.geo.data_blocks, c.new_blocks, "refusals change nothing");
    fs.rvm.flush().unwrap();
    drop(fs);
    let mut fs = open(mem.clone(), 32 * MIB);
    assert_eq!(
        (fs.header.data_blocks, fs.geo.data_blocks),
        (c.new_blocks, c.new_blocks)
    );
    fs.transact(|op| namespace::unlink(op, ROOT_INO, b"big2"))
        .unwrap();
    let s = resize(&mut fs, 8 * MIB).unwrap();
    assert_eq!(s.new_blocks, before);
    drop(fs);
    let fs = open(mem, 32 * MIB);
    assert_eq!(statfs::statfs(fs.bytes()).unwrap().blocks, before);
}

#[test]
fn a_failed_header_write_changes_nothing() {
    let mem = disk(32 * MIB);
    let faulty = Arc::new(FaultStorage::new(mem.clone()));
    let mut fs = open(faulty.clone(), 32 * MIB);
    let before = fs.geo.data_blocks;
    faulty.fail_after(FaultOp::Write, 0, libc::EIO, false);
    let err = resize(&mut fs, 16 * MIB).unwrap_err();
    assert!(matches!(err, ResizeError::Header(_)), "{err}");
    assert_eq!(statfs::statfs(fs.bytes()).unwrap().blocks, before);
    assert_eq!(
        (fs.geo.data_blocks, fs.header.data_blocks),
        (before, before)
    );
    drop(fs);
    let fs = open(mem, 32 * MIB);
    assert_eq!(statfs::statfs(fs.bytes()).unwrap().blocks, before);
}

/// A grow cut short after its header write (the header counts more blocks than the
/// superblock): the image opens with the superblock's count, its layout checks, and the
/// resize asked again completes.
#[test]
fn a_grow_cut_after_the_header_opens_and_completes() {
    let mem = disk(32 * MIB);
    let fs = open(mem.clone(), 32 * MIB);
    let before = fs.geo.data_blocks;
    let header = Header {
        data_blocks: before + 1000,
        ..fs.header
    };
    rvmfs::image::write_header(&*fs.geo.image, &header).unwrap();
    drop(fs);
    let mut fs = open(mem.clone(), 32 * MIB);
    let sb = rvmfs::store::superblock(fs.bytes()).unwrap();
    rvmfs::store::check_layout(fs.bytes(), &sb, fs.header.data_blocks).unwrap();
    assert_eq!(statfs::statfs(fs.bytes()).unwrap().blocks, before);
    let size = rvmfs::resize::size_of(&fs.header, before + 1000);
    let c = resize(&mut fs, size).unwrap();
    assert_eq!((c.old_blocks, c.new_blocks), (before, before + 1000));
    drop(fs);
    let fs = open(mem, 32 * MIB);
    assert_eq!(statfs::statfs(fs.bytes()).unwrap().blocks, before + 1000);
}
