//! Sparse and large files, preallocation and hole punching, SEEK_DATA/SEEK_HOLE,
//! copy_file_range, files unlinked while open (also across a crash), and fsync/fdatasync/
//! fsyncdir reaching the daemon, and flush not (FOPEN_NOFLUSH), counted by its
//! `rvmfs.counters` virtual attribute.

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};

const GIB: u64 = 1 << 30;
const BLK: u64 = 4096;

fn rw(p: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .unwrap()
}

fn read_at(f: &File, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, off).unwrap();
    v
}

#[test]
fn large_sparse_file_and_seek() {
    require_fuse!();
    let mut m = Mounted::new(); // a 1 GiB image: a 6 GiB file must be sparse to fit
    let p = m.path("big");
    let f = rw(&p);
    let (free0, _) = statfs_free(m.mnt());
    let tail = pattern(1, 10_000);
    f.write_all_at(&tail, 5 * GIB + 123).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    let md = f.metadata().unwrap();
    assert_eq!(md.len(), 5 * GIB + 123 + 10_000);
    assert!(
        md.blocks() <= 8 * 5,
        "holes take blocks: st_blocks {}",
        md.blocks()
    );
    let (free1, _) = statfs_free(m.mnt());
    assert!(
        free0 - free1 <= 5,
        "free blocks went from {free0} to {free1}"
    );
    // Holes read as zeros; data past 4 GiB reads back.
    assert!(read_at(&f, 4 * GIB - 5000, 10_000).iter().all(|&b| b == 0));
    assert_eq!(read_at(&f, 5 * GIB + 123, 10_000), tail);
    assert_eq!(read_at(&f, 0, 4), b"head");
    // SEEK_DATA / SEEK_HOLE.
    assert_eq!(lseek(&f, 0, libc::SEEK_DATA).unwrap(), 0);
    assert_eq!(lseek(&f, 0, libc::SEEK_HOLE).unwrap(), BLK);
    assert_eq!(lseek(&f, 10, libc::SEEK_HOLE).unwrap(), BLK);
    assert_eq!(lseek(&f, 100, libc::SEEK_DATA).unwrap(), 100);
    assert_eq!(lseek(&f, BLK, libc::SEEK_DATA).unwrap(), 5 * GIB); // block-aligned start
    assert_eq!(lseek(&f, 5 * GIB + 200, libc::SEEK_HOLE).unwrap(), md.len());
    assert_eq!(errno(lseek(&f, md.len(), libc::SEEK_DATA)), libc::ENXIO);
    assert_eq!(errno(lseek(&f, md.len() + 1, libc::SEEK_HOLE)), libc::ENXIO);
    // ftruncate far out allocates nothing; shrinking frees the tail.
    f.set_len(9 * GIB).unwrap();
    assert_eq!(
        lseek(&f, 5 * GIB + 20_000, libc::SEEK_HOLE).unwrap(),
        5 * GIB + 20_000
    );
    assert_eq!(
        lseek(&f, 5 * GIB + 200, libc::SEEK_HOLE).unwrap(),
        5 * GIB + 3 * BLK
    );
    assert_eq!(
        errno(lseek(&f, 5 * GIB + 3 * BLK, libc::SEEK_DATA)),
        libc::ENXIO
    );
    f.set_len(2).unwrap();
    assert_eq!(f.metadata().unwrap().blocks(), 8);
    f.set_len(BLK * 3).unwrap();
    assert_eq!(
        read_at(&f, 0, 8),
        b"he\0\0\0\0\0\0",
        "bytes past a shrink must read zero"
    );
    drop(f);
    fsck_and_remount(&mut m);
    assert_eq!(fs::metadata(&p).unwrap().len(), BLK * 3);
}

#[test]
fn fallocate_modes() {
    require_fuse!();
    let mut m = Mounted::new();
    let p = m.path("f");
    let f = rw(&p);
    // Mode 0: size grows, blocks are allocated, contents read as zeros.
    fallocate(&f, 0, 0, 1 << 20).unwrap();
    let md = f.metadata().unwrap();
    assert_eq!(md.len(), 1 << 20);
    assert_eq!(md.blocks() * 512, 1 << 20);
    assert!(read_at(&f, 0, 1 << 20).iter().all(|&b| b == 0));
    // Preallocated blocks count as holes for SEEK_DATA (they hold no data yet).
    assert_eq!(errno(lseek(&f, 0, libc::SEEK_DATA)), libc::ENXIO);
    // Writing into them: the written part reads back, the rest stays zero.
    f.write_all_at(b"xyz", 5000).unwrap();
    let r = read_at(&f, 0, 3 * BLK as usize);
    assert_eq!(&r[5000..5003], b"xyz");
    assert!(r[..5000].iter().chain(&r[5003..]).all(|&b| b == 0));
    assert_eq!(lseek(&f, 0, libc::SEEK_DATA).unwrap(), BLK);
    // KEEP_SIZE past the end: blocks but no size change.
    fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20).unwrap();
    let md = f.metadata().unwrap();
    assert_eq!(md.len(), 1 << 20);
    assert_eq!(md.blocks() * 512, 2 << 20);
    // Growing into the preallocated range reads zeros.
    f.set_len(3 << 19).unwrap();
    assert!(read_at(&f, 1 << 20, 1 << 19).iter().all(|&b| b == 0));

    // PUNCH_HOLE over written data, with unaligned edges.
    let g = rw(&m.path("g"));
    let data = pattern(2, 64 * 1024);
    g.write_all_at(&data, 0).unwrap();
    let before = g.metadata().unwrap().blocks();
    assert_eq!(
        errno(fallocate(&g, libc::FALLOC_FL_PUNCH_HOLE, 0, 10)),
        libc::EOPNOTSUPP
    );
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    fallocate(&g, mode, 1000, 5 * BLK).unwrap();
    let mut want = data.clone();
    want[1000..1000 + 5 * BLK as usize].fill(0);
    assert_eq!(read_at(&g, 0, data.len()), want);
    let md = g.metadata().unwrap();
    assert_eq!(md.len(), data.len() as u64, "punch hole changed the size");
    assert_eq!(
        before - md.blocks(),
        4 * 8,
        "4 whole blocks should have been freed"
    );
    assert_eq!(lseek(&g, 0, libc::SEEK_HOLE).unwrap(), BLK);
    assert_eq!(lseek(&g, BLK, libc::SEEK_DATA).unwrap(), 5 * BLK);
    // A punch inside one block only zeroes bytes.
    fallocate(&g, mode, 40_001, 10).unwrap();
    want[40_001..40_011].fill(0);
    // ZERO_RANGE.
    fallocate(&g, libc::FALLOC_FL_ZERO_RANGE, 50_000, 20_000).unwrap();
    want[50_000..].fill(0);
    want.resize(70_000, 0);
    assert_eq!(read_at(&g, 0, want.len()), want);
    assert_eq!(g.metadata().unwrap().len(), 70_000);
    // Errors leave the file alone.
    assert_eq!(errno(fallocate(&g, 0, 0, 0)), libc::EINVAL);
    let d = File::open(m.path("")).unwrap();
    assert!(errno(fallocate(&d, 0, 0, 10)) != 0);
    drop((f, g, d));
    fsck_and_remount(&mut m);
    assert_file(m.path("g"), &want);
    fs::remove_file(m.path("f")).unwrap();
    fs::remove_file(m.path("g")).unwrap();
    m.unmount_ok();
    m.assert_fsck_clean();
}

#[test]
fn copy_file_range_copies_and_keeps_holes() {
    require_fuse!();
    let mut m = Mounted::new();
    let src = rw(&m.path("src"));
    let a = pattern(3, 300_000);
    let b = pattern(4, 200_000);
    src.write_all_at(&a, 0).unwrap();
    src.write_all_at(&b, 8 << 20).unwrap(); // a hole of ~8 MiB between
    let len = src.metadata().unwrap().len();
    let dst = rw(&m.path("dst"));
    assert_eq!(copy_range(&src, 0, &dst, 0, len).unwrap(), len);
    assert_eq!(dst.metadata().unwrap().len(), len);
    assert_eq!(
        read_at(&dst, 0, len as usize),
        read_at(&src, 0, len as usize)
    );
    assert!(
        dst.metadata().unwrap().blocks() < 2 * (600_000 / 512),
        "the source's hole was filled in the copy: {} blocks",
        dst.metadata().unwrap().blocks()
    );
    // Unaligned ranges into an existing file, and past the source's end.
    let dst2 = rw(&m.path("dst2"));
    dst2.write_all_at(&pattern(5, 100_000), 0).unwrap();
    let n = copy_range(&src, 1234, &dst2, 777, 50_000).unwrap();
    assert_eq!(n, 50_000);
    let mut want = pattern(5, 100_000);
    want[777..50_777].copy_from_slice(&a[1234..51_234]);
    assert_eq!(read_at(&dst2, 0, 100_000), want);
    assert_eq!(copy_range(&src, len - 10, &dst2, 0, 1000).unwrap(), 10);
    assert_eq!(copy_range(&src, len + 10, &dst2, 0, 1000).unwrap(), 0);
    drop((src, dst, dst2));
    fsck_and_remount(&mut m);
    assert_eq!(
        fs::read(m.path("src")).unwrap(),
        fs::read(m.path("dst")).unwrap()
    );
}

#[test]
fn unlinked_while_open_stays_usable() {
    require_fuse!();
    let mut m = Mounted::new();
    let p = m.path("doomed");
    let data = pattern(6, 3 << 20);
    fs::write(&p, &data).unwrap();
    let (free_before, _) = statfs_free(m.mnt());
    let f = rw(&p);
    let f2 = File::open(&p).unwrap();
    fs::remove_file(&p).unwrap();
    assert!(!p.exists());
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    // Still readable and writable through both handles.
    assert_eq!(read_at(&f2, 0, data.len()), data);
    f.write_all_at(b"more", data.len() as u64).unwrap();
    assert_eq!(read_at(&f2, data.len() as u64, 4), b"more");
    f.sync_all().unwrap();
    // A new file of the same name is a different file.
    fs::write(&p, b"new").unwrap();
    assert_eq!(read_at(&f2, 0, 3), &data[..3]);
    fs::remove_file(&p).unwrap();
    // Its blocks are held until the last handle goes.
    drop(f);
    let (free_mid, _) = statfs_free(m.mnt());
    assert!(
        free_mid + 700 < free_before + 768,
        "blocks freed while a handle is open"
    );
    drop(f2);
    std::thread::sleep(std::time::Duration::from_millis(100)); // release is asynchronous
    let (free_after, _) = statfs_free(m.mnt());
    assert!(
        free_after >= free_before + 768,
        "{free_after} < {free_before} + 768 after the last close"
    );
    m.unmount_ok();
    m.assert_fsck_clean();

    // A crash while an unlinked file is open: the next mount reclaims it.
    m.mount();
    let (free0, _) = statfs_free(m.mnt());
    fs::write(&p, &data).unwrap();
    let f = File::open(&p).unwrap();
    fs::remove_file(&p).unwrap();
    m.kill9();
    drop(f);
    m.mount();
    let (free1, _) = statfs_free(m.mnt());
    assert_eq!(
        free0, free1,
        "the orphan's blocks were not reclaimed at mount"
    );
    m.unmount_ok();
    m.assert_fsck_clean();
}

#[test]
fn sync_requests_reach_the_daemon() {
    require_fuse!();
    let m = Mounted::new();
    let base = counters(m.mnt());
    let mut f = File::create(m.path("f")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_all().unwrap();
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    drop(f); // no flush: files are opened FOPEN_NOFLUSH (nothing is buffered)
    let d = File::open(m.mnt()).unwrap();
    d.sync_all().unwrap(); // fsyncdir
    drop(d);
    let now = counters(m.mnt());
    let delta = |k: &str| now[k] - base.get(k).copied().unwrap_or(0);
    assert_eq!(delta("fsync"), 2, "{now:?}");
    assert_eq!(delta("fdatasync"), 1, "{now:?}");
    assert_eq!(delta("fsyncdir"), 1, "{now:?}");
    assert_eq!(delta("flush"), 0, "{now:?}");
}
