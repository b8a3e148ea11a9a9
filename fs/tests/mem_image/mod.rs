//! Shared by the library tests that format an image on rvm-core's `MemStorage` and open it as
//! a filesystem (no FUSE, no file): `punch_cow.rs`, `resize.rs`, `read_sums.rs`.

use rvm_core::{MemStorage, Storage};
use rvmfs::format::format;
use rvmfs::image::{self, OpenMode};
use rvmfs::layout::geometry::Plan;
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
    let img = image::open_on(storage, len, OpenMode::default()).unwrap();
    Fs::new(img.region, img.rvm, img.header, img.storage).unwrap()
}
