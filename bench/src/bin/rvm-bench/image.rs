//! The bench's files: a preallocated image (| log | segment |) with its spool, and the small
//! helpers every measurement uses (a xorshift generator, the median).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rvm_core::{Area, FileStorage, Rvm, RvmOptions};

pub const MIB: u64 = 1 << 20;

/// xorshift64: a fast, reproducible generator of offsets.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A file of `len` bytes really written (zeros) and synced, so later writes allocate nothing.
pub fn prealloc(path: &Path, len: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("create bench file");
    let zeros = vec![0u8; 4 * MIB as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], at).unwrap();
        at += n as u64;
    }
    f.sync_all().unwrap();
    f
}

/// Geometry of the bench image: | log | segment |.
pub struct Image {
    pub path: PathBuf,
    pub spool: PathBuf,
    pub log: Area,
    pub seg: Area,
}

impl Image {
    pub fn create(dir: &Path, name: &str, log_len: u64, seg_len: u64, prealloc_it: bool) -> Image {
        let path = dir.join(format!("rvm-bench-{name}.img"));
        let log = Area {
            offset: 0,
            len: log_len,
        };
        let seg = Area {
            offset: log_len,
            len: seg_len,
        };
        let f = if prealloc_it {
            prealloc(&path, log_len + seg_len)
        } else {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            f.set_len(log_len + seg_len).unwrap();
            f
        };
        Rvm::create_log(&FileStorage::new(f), log).unwrap();
        let shm = Path::new("/dev/shm");
        let sdir = if shm.is_dir() { shm } else { dir };
        let spool = sdir.join(format!("rvm-bench-{name}-{}.spool", std::process::id()));
        let _ = std::fs::remove_file(&spool);
        Image {
            path,
            spool,
            log,
            seg,
        }
    }

    pub fn open(&self, spool_size: u64) -> Rvm {
        self.open_with(spool_size, Some(rvm_core::DEFAULT_TRUNCATE_THRESHOLD))
    }

    pub fn open_with(&self, spool_size: u64, truncate_threshold: Option<u8>) -> Rvm {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .unwrap();
        Rvm::initialize(
            Arc::new(FileStorage::new(f)),
            RvmOptions {
                log: self.log,
                spool: Some(self.spool.clone()),
                spool_size,
                truncate_threshold,
                ..Default::default()
            },
        )
        .unwrap()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(&self.spool);
    }
}
