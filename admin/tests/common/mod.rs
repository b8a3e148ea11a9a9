//! What the shipping and restore tests share: SeaweedFS clients, a source image opened with
//! shipping on, metadata churn, `rvmfs-admin restore` and the checks of its result.
#![allow(dead_code)] // each test file uses a part

use objstore::ship::{self, ImageInfo, ShipConfig, Shipper};
use objstore::{Bucket, Config};
use rvm_core::{Area, FileStorage, Storage};
use rvmfs::format::format;
use rvmfs::image::{self, OpenMode};
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::header::{Header, HEADER_SIZE};
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::inode::NewInode;
use rvmfs::ops::{namespace, xattr, Fs};
use rvmfs_tests::seaweed::{ACCESS_KEY, SECRET_KEY};
use rvmfs_tests::Seaweed;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub const MIB: u64 = 1 << 20;
pub const LEN: u64 = 64 * MIB;
pub const WAIT: Duration = Duration::from_secs(20);

pub fn config(s: &Seaweed, prefix: &str) -> Config {
    let mut c = Config::from_env(&s.url(prefix)).unwrap();
    for (k, v) in s.env() {
        if k == "AWS_ENDPOINT_URL" {
            c.endpoint = Some(v);
        }
    }
    let dir = std::env::temp_dir().join(format!("rvmfs-ship-creds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let creds = dir.join("credentials");
    std::fs::write(
        &creds,
        format!("[t]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
    )
    .unwrap();
    c.credentials_file = Some(creds);
    c.profile = "t".into();
    c
}

pub fn bucket(s: &Seaweed, prefix: &str) -> Arc<Bucket> {
    Arc::new(Bucket::open(&config(s, prefix)).unwrap())
}

pub fn quick() -> ShipConfig {
    ShipConfig {
        interval: Duration::from_millis(100),
        segment_bytes: 16 << 10,
        snapshot_interval: Duration::from_secs(3600),
        keep_snapshots: 8,
        ..ShipConfig::default()
    }
}

/// An image file formatted in `dir`, opened with shipping on.
pub struct Source {
    pub fs: Fs,
    pub info: ImageInfo,
}

/// The prologue of a shipping test: SeaweedFS (else `require_seaweed!` returns from the
/// test), a temporary directory, a source image in it (`LEN` bytes and 4,096 inodes unless
/// given) and a client for `prefix` of the bucket: `(seaweed, dir, source, bucket)`.
macro_rules! ship_setup {
    ($prefix:expr) => {
        ship_setup!($prefix, LEN, 4096)
    };
    ($prefix:expr, $len:expr, $inodes:expr) => {{
        let s = require_seaweed!("ship");
        let dir = tempfile::tempdir().unwrap();
        let src = source_sized(dir.path(), $len, $inodes);
        let b = bucket(&s, $prefix);
        (s, dir, src, b)
    }};
}

pub fn source_sized(dir: &Path, len: u64, inodes: u64) -> Source {
    let storage = new_file(&dir.join("src.img"), len);
    let plan = Plan {
        size: len,
        inodes: Some(inodes),
        log: Some(4 * MIB),
    };
    format(storage.clone(), plan, [9; 16], (0, 0)).unwrap();
    open_image(storage, len)
}

/// A new file of `len` bytes (zeros) at `path`, as a storage.
pub fn new_file(path: &Path, len: u64) -> Arc<dyn Storage> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.set_len(len).unwrap();
    Arc::new(FileStorage::new(file))
}

/// Open the image on `storage` (`len` bytes) with shipping on, recovering its log.
pub fn open_image(storage: Arc<dyn Storage>, len: u64) -> Source {
    let mode = OpenMode {
        ship: true,
        ..OpenMode::default()
    };
    let img = image::open_on(storage, len, mode).unwrap();
    let info = ImageInfo {
        header_block: img.header.encode(),
        image_len: len,
        segment: img.header.segment_area(),
    };
    let fs = Fs::new(img.region, img.rvm, img.header, img.storage).unwrap();
    Source { fs, info }
}

pub fn start(b: &Arc<Bucket>, src: &Source, epoch: u64, may: ship::MayWrite) -> Shipper {
    start_with(b, src, epoch, may, quick())
}

pub fn start_with(
    b: &Arc<Bucket>,
    src: &Source,
    epoch: u64,
    may: ship::MayWrite,
    c: ShipConfig,
) -> Shipper {
    Shipper::start(
        b.clone(),
        src.fs.rvm.clone(),
        src.info.clone(),
        epoch,
        may,
        c,
    )
    .unwrap()
}

pub fn always() -> ship::MayWrite {
    Arc::new(|| true)
}

pub fn node(mode: u32) -> NewInode {
    NewInode {
        mode,
        uid: 0,
        gid: 0,
        rdev: 0,
    }
}

/// Create `name` in `parent` with `mode` (one transaction); its inode.
pub fn mk(fs: &mut Fs, parent: u64, name: &str, mode: u32) -> u64 {
    fs.transact(|op| namespace::create(op, parent, name.as_bytes(), node(mode), None))
        .unwrap()
        .0
}

/// Many metadata changes: `dirs` directories of `files` files each, every third renamed,
/// every fifth unlinked, every fourth given an xattr.
pub fn churn(fs: &mut Fs, tag: &str, dirs: usize, files: usize) {
    for d in 0..dirs {
        let dino = mk(fs, ROOT_INO, &format!("{tag}{d}"), libc::S_IFDIR | 0o755);
        for f in 0..files {
            let name = format!("f{f}");
            let ino = mk(fs, dino, &name, libc::S_IFREG | 0o644);
            if f % 4 == 0 {
                fs.transact(|op| xattr::set(op, ino, b"user.n", name.as_bytes(), 0))
                    .unwrap();
            }
            if f % 3 == 0 {
                fs.transact(|op| {
                    namespace::rename(
                        op,
                        dino,
                        name.as_bytes(),
                        ROOT_INO,
                        format!("{tag}{d}-{f}").as_bytes(),
                        0,
                    )
                })
                .unwrap();
            } else if f % 5 == 0 {
                fs.transact(|op| namespace::unlink(op, dino, name.as_bytes()))
                    .unwrap();
            }
        }
    }
    fs.rvm.flush().unwrap();
}

pub fn admin_restore(
    s: &Seaweed,
    prefix: &str,
    image: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvmfs-admin"));
    c.arg("restore").args(extra).arg(s.url(prefix)).arg(image);
    for (k, v) in s.env() {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// [`admin_restore`], which must succeed: its standard output.
pub fn restore_ok(s: &Seaweed, prefix: &str, image: &Path, extra: &[&str]) -> String {
    let o = admin_restore(s, prefix, image, extra);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "restore {extra:?}: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The metadata region of the image at `path`.
pub fn region_of(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let h = Header::decode(&bytes[..HEADER_SIZE as usize], bytes.len() as u64).unwrap();
    let a: Area = h.segment_area();
    bytes[a.offset as usize..a.end() as usize].to_vec()
}

/// Assert that `got` and `want` hold the same bytes where both have them (else name the
/// first offset that differs).
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    let first_diff = got.iter().zip(want).position(|(x, y)| x != y);
    assert_eq!(first_diff, None, "{what}");
}

pub fn fsck_clean(image: &Path) {
    let (code, out) = rvmfs_tests::fsck(image, &["-n", "-f"]);
    assert_eq!(code, 0, "fsck -n of the restored image: {out}");
}
