//! Shared by the library tests that format an image on rvm-core's `MemStorage` and open it as
//! a filesystem (no FUSE, no file): `punch_cow.rs`, `resize.rs`.

use rvm_core::{Rvm, RvmOptions, Storage};
use rvmfs::layout::header::{Header, HEADER_SIZE};
use rvmfs::ops::Fs;
use std::sync::Arc;

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
