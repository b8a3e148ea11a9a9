//! Shared by the library tests that format an image on rvm-core's `MemStorage` and open it as
//! a filesystem (no FUSE, no file): `punch_cow.rs`, `resize.rs`, `read_sums.rs`.

use rvm_core::{MemStorage, Rvm, RvmOptions, Storage};
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::header::{Header, HEADER_SIZE};
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{namespace, Fs};
use std::sync::Arc;

/// Format `disk` (`len` bytes: 64 inodes, a 1 MiB log, the default features), open it and
/// create an empty regular file `/f`: the filesystem and the file's inode.
#[allow(dead_code)] // resize.rs formats its own
pub fn with_empty_file(disk: &Arc<MemStorage>, len: u64) -> (Fs, u64) {
    let plan = Plan {
        size: len,
        inodes: Some(64),
        log: Some(1 << 20),
    };
    format(disk.clone(), plan, [7; 16], (0, 0)).unwrap();
    let mut fs = open(disk.clone(), len);
    let new = NewInode {
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
    };
    let (ino, _) = fs
        .transact(|op| namespace::create(op, ROOT_INO, b"f", new, None))
        .unwrap();
    (fs, ino)
}

/// Open the image on `storage` (`len` bytes), recovering its log, as a mount does.
pub fn open(storage: Arc<dyn Storage>, len: u64) -> Fs {
    let mut block = vec![0u8; HEADER_SIZE as usize];
    storage.read_at(&mut block, 0).unwrap();
    let header = Header::decode(&block, len).unwrap();
    let options = RvmOptions {
        log: header.log_area(),
        ordered: true,
        ..RvmOptions::default()
    };
    let rvm = Rvm::initialize(storage.clone(), options).unwrap();
    let region = rvm.map(header.segment_area()).unwrap();
    Fs::new(region, Arc::new(rvm), header, storage).unwrap()
}
