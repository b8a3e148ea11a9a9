//! Helpers shared by the fsck integration tests: images on a real file or on rvm-core's
//! `SimStorage`, and a snapshot of the whole tree to compare states.
#![allow(dead_code)] // each test file uses a part

use fsck::check::check;
use rvm_core::sim::SimStorage;
use rvm_core::{FileStorage, Storage};
use rvmfs::format::format;
use rvmfs::image::{self, ImageError, OpenMode};
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{file, namespace, xattr, Fs};
use rvmfs::store::dentry;
use rvmfs::FsResult;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// path -> (mode, nlink, contents or symlink target, xattr names) of every name under the root.
pub type Tree = BTreeMap<String, (u32, u32, Vec<u8>, Vec<u8>)>;

/// The whole tree of `fs`, see [`Tree`].
pub fn snapshot(fs: &Fs) -> FsResult<Tree> {
    let mut out = Tree::new();
    let mut stack = vec![(ROOT_INO, String::new())];
    while let Some((d, path)) = stack.pop() {
        let mut entries = Vec::new();
        dentry::list(fs.bytes(), d, 0, |e| {
            entries.push((
                e.ino,
                String::from_utf8_lossy(e.name(fs.bytes())?).into_owned(),
            ));
            Ok(true)
        })?;
        for (ino, name) in entries {
            let node = fs.inode(ino)?;
            let p = format!("{path}/{name}");
            let body = if node.is_reg() {
                file::read(&fs.geo, fs.bytes(), ino, 0, node.size)?
            } else if node.is_symlink() {
                rvmfs::store::heap::load(fs.bytes(), node.parent_or_target, node.size)?.to_vec()
            } else {
                Vec::new()
            };
            out.insert(
                p.clone(),
                (node.mode, node.nlink, body, xattr::list(fs.bytes(), ino)?),
            );
            if node.is_dir() {
                stack.push((ino, p));
            }
        }
    }
    Ok(out)
}

/// A new inode of `mode` owned by root.
pub fn new_inode(mode: u32) -> NewInode {
    NewInode {
        mode,
        uid: 0,
        gid: 0,
        rdev: 0,
    }
}

/// Open the filesystem on a simulated disk of `image_len` bytes (recovering its log), or None
/// if the simulated power fails meanwhile.
pub fn open_sim(storage: Arc<SimStorage>, image_len: u64) -> Option<Fs> {
    open_storage(storage, image_len)
}

/// Open the filesystem on any storage holding an image of `image_len` bytes (recovering its
/// log), or None if the storage fails meanwhile.
pub fn open_storage(dynstore: Arc<dyn Storage>, image_len: u64) -> Option<Fs> {
    let img = match image::open_on(dynstore, image_len, OpenMode::default()) {
        Err(e @ ImageError::Header { .. }) => panic!("the header never changes after mkfs: {e}"),
        opened => opened.ok()?,
    };
    Fs::new(img.region, img.rvm, img.header, img.storage).ok()
}

/// Make an image file at `path` laid out by `plan`, and open it read-write.
pub fn file_image(path: &Path, plan: Plan, uuid: [u8; 16]) -> Fs {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(plan.size).unwrap();
    format(
        Arc::new(FileStorage::new(f.try_clone().unwrap())),
        plan,
        uuid,
        (0, 0),
    )
    .unwrap();
    drop(f);
    let img = image::open(
        path,
        OpenMode {
            read_only: false,
            ..OpenMode::default()
        },
    )
    .unwrap();
    Fs::new(img.region, img.rvm, img.header, img.storage).unwrap()
}

/// A fresh simulated image of `len` bytes (64 inodes, a 1 MiB log, UUID `uuid`) holding `/x`
/// with `body`, all durable: the image's bytes and /x's inode.
pub fn durable_file_image(len: u64, body: &[u8], uuid: [u8; 16]) -> (Vec<u8>, u64) {
    let disk = Arc::new(SimStorage::new(len as usize));
    let plan = Plan {
        size: len,
        inodes: Some(64),
        log: Some(1 << 20),
    };
    format(disk.clone(), plan, uuid, (0, 0)).expect("mkfs");
    let mut fs = open_sim(disk.clone(), len).expect("open");
    let (ino, _) = fs
        .transact(|op| namespace::create(op, ROOT_INO, b"x", new_inode(0o100644), None))
        .expect("create");
    fs.transact(|op| file::write(op, ino, 0, body, false))
        .expect("write");
    fs.rvm.flush().expect("flush");
    drop(fs);
    (disk.durable_image(), ino)
}

/// Recover crash image `image` (`len` bytes): fsck must find nothing (`what` names the case);
/// returns /x's contents, every block read back (its checksum verified).
pub fn recovered_x(image: Vec<u8>, len: u64, what: &str) -> Vec<u8> {
    let fs = open_sim(Arc::new(SimStorage::from_bytes(image)), len).expect("recover");
    let report = check(fs.bytes(), &|_, _, _| {}).expect("fsck reads the image");
    assert!(
        report.problems.is_empty(),
        "{what}: fsck: {:?}",
        report.problems
    );
    let mut tree = snapshot(&fs).expect("every block reads back: no checksum mismatch");
    tree.remove("/x").expect("/x is there").2
}
