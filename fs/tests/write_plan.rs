//! A big write planned, written outside the lock, then committed (`ops::write_plan`; the
//! end-to-end test with readers running during the data write is
//! `tests/tests/lock_concurrency.rs`): the commit does not write the data again when nothing
//! changed, other operations in between never get the reserved blocks, and a plan made stale
//! by a truncate of the same file still commits the request's exact result.

use rvm_core::{MemStorage, Storage};
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{file, namespace, Fs};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod mem_image;

const IMAGE: u64 = 16 << 20;
const BIG: usize = 256 << 10;

/// A `MemStorage` counting the bytes of plain writes of at least `BIG` bytes (data writes).
#[derive(Default)]
struct Counting {
    inner: MemStorage,
    big_bytes: AtomicU64,
}

impl Storage for Counting {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if buf.len() >= BIG {
            self.big_bytes
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
}

fn setup() -> (Arc<Counting>, Fs) {
    let disk = Arc::new(Counting {
        inner: MemStorage::new(IMAGE as usize),
        ..Counting::default()
    });
    let plan = Plan {
        size: IMAGE,
        inodes: Some(64),
        log: Some(2 << 20),
    };
    format(disk.clone(), plan, [7; 16], (0, 0)).unwrap();
    let fs = mem_image::open(disk.clone(), IMAGE);
    (disk, fs)
}

fn create(fs: &mut Fs, name: &[u8]) -> u64 {
    let new = NewInode {
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
    };
    fs.transact(|op| namespace::create(op, ROOT_INO, name, new, None))
        .unwrap()
        .0
}

fn contents(fs: &Fs, ino: u64) -> Vec<u8> {
    let size = fs.inode(ino).unwrap().size;
    file::read(&fs.geo, fs.bytes(), ino, 0, size).unwrap()
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i % 251 + seed) as u8).collect()
}

#[test]
fn the_commit_of_an_unchanged_plan_writes_no_data_and_others_skip_its_blocks() {
    let (disk, mut fs) = setup();
    let (f, g) = (create(&mut fs, b"f"), create(&mut fs, b"g"));
    let (a, b) = (pattern(1, BIG), pattern(2, BIG));
    let written = || disk.big_bytes.load(Ordering::Relaxed);
    let mut plan = fs
        .plan_write(&a, |op| file::write(op, f, 0, &a, false))
        .expect("a big write into new blocks has data to write outside the lock");
    assert_eq!(plan.bytes(), BIG as u64);
    assert_eq!(written(), 0, "the plan writes nothing");
    assert_eq!(fs.inode(f).unwrap().size, 0, "nor commits anything");
    // Another write in between: it must not be given the reserved blocks.
    fs.transact(|op| file::write(op, g, 0, &b, false)).unwrap();
    let before = written();
    plan.write(&*disk);
    assert_eq!(written(), before + BIG as u64);
    fs.transact_planned("write", f, plan, |op| file::write(op, f, 0, &a, false))
        .unwrap();
    assert_eq!(
        written(),
        before + BIG as u64,
        "the commit wrote the data again"
    );
    assert!(contents(&fs, f) == a, "f holds its write");
    assert!(
        contents(&fs, g) == b,
        "g kept its data (its blocks were not f's)"
    );
}

#[test]
fn a_plan_made_stale_by_a_truncate_still_commits_the_request_exactly() {
    let (_disk, mut fs) = setup();
    let f = create(&mut fs, b"f");
    let old = pattern(3, 2 * BIG);
    fs.transact(|op| file::write(op, f, 0, &old, false))
        .unwrap();
    // An overwrite of bytes 1000.. (copy on write, its edge block read at plan time).
    let new = pattern(4, BIG);
    let request = |op: &mut rvmfs::ops::Op<'_>| file::write(op, f, 1000, &new, false);
    let mut plan = fs
        .plan_write(&new, request)
        .expect("copy on write has data to write");
    fs.transact(|op| file::truncate(op, f, 500)).unwrap();
    plan.write(&*fs.geo.image);
    fs.transact_planned("write", f, plan, request).unwrap();
    let mut want = old[..500].to_vec();
    want.resize(1000, 0);
    want.extend_from_slice(&new);
    assert!(contents(&fs, f) == want, "the write after the truncate");
    // The blocks of the stale plan are free again: the whole data area can still be used.
    let g = create(&mut fs, b"g");
    let fill = pattern(5, 4 * BIG);
    fs.transact(|op| file::write(op, g, 0, &fill, false))
        .unwrap();
    assert!(contents(&fs, g) == fill && contents(&fs, f) == want);
}

#[test]
fn a_commit_writing_other_bytes_than_the_plan_writes_them_itself() {
    let (disk, mut fs) = setup();
    let written = || disk.big_bytes.load(Ordering::Relaxed);
    for (seed, same_bytes) in [(6, true), (7, false)] {
        let f = create(&mut fs, format!("f{seed}").as_bytes());
        let planned = pattern(seed, BIG);
        // Equal bytes in another buffer, or other bytes: either is not what step 2 wrote
        // from the planned request's own buffer, so the commit writes its data again.
        let other = if same_bytes {
            planned.clone()
        } else {
            pattern(seed + 10, BIG)
        };
        let mut plan = fs
            .plan_write(&planned, |op| file::write(op, f, 0, &planned, false))
            .expect("a big write into new blocks has data to write outside the lock");
        plan.write(&*disk);
        let before = written();
        fs.transact_planned("write", f, plan, |op| file::write(op, f, 0, &other, false))
            .unwrap();
        assert_eq!(written(), before + BIG as u64, "the commit wrote its data");
        assert!(contents(&fs, f) == other, "f holds the commit's bytes");
    }
}
