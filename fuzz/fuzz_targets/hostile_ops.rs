//! Fuzz the filesystem library on hostile images: the fuzzer's bytes choose how to corrupt a
//! small populated image (superblock, bitmaps, inode table, heap and B+tree nodes, log) and
//! then a sequence of 32 operations (lookup, readdir, getattr, read, readlink, getxattr,
//! write, create, unlink, rmdir, rename, setxattr, truncate, link, open/release, SEEK_DATA,
//! fallocate, flush + truncation), run on the image opened without fsck. A panic is a crash;
//! the checking storage must see no write outside the log, the segment and the data area, and
//! no data write on a block only another inode owns. The harness is the one of
//! `fs/tests/hostile.rs` (1,000 seeded images in CI).
#![no_main]

#[path = "../../fs/tests/hostile_lib/mod.rs"]
mod hostile_lib;

use hostile_lib::{corrupt, pristine, run, Bytes, Pristine};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static PRISTINE: OnceLock<Pristine> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let p = PRISTINE.get_or_init(pristine);
    let mut draw = Bytes(data);
    let (image, what) = corrupt(p, &mut draw);
    let report = run(p, image, &mut draw, 32);
    assert!(
        report.violations.is_empty(),
        "{what}: {:?}",
        report.violations
    );
});
