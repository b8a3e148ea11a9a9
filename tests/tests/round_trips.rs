//! FUSE round trips: the daemon counts every request by opcode (virtual attributes
//! `rvmfs.requests` and `rvmfs.latency`), and the kernel features that save requests
//! (FUSE_HANDLE_KILLPRIV_V2) send fewer of them while the semantics hold.

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;

#[test]
fn every_request_is_counted_by_opcode() {
    require_fuse!();
    let m = Mounted::new();
    let base = requests(m.mnt());
    assert!(base.contains_key("lookup") && base.contains_key("copy_file_range"));
    let f = File::create(m.path("f")).unwrap();
    for i in 0..3u64 {
        f.write_all_at(&[7u8; 4096], i * 4096).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    fs::create_dir(m.path("d")).unwrap();
    fs::remove_file(m.path("f")).unwrap();
    let d = requests_since(m.mnt(), &base);
    let n = |k: &str| d.get(k).copied().unwrap_or(0);
    assert_eq!(
        (n("create"), n("write"), n("fsync"), n("mkdir"), n("unlink")),
        (1, 3, 1, 1, 1),
        "{d:?}"
    );
    assert_eq!((n("flush"), n("release")), (1, 1), "{d:?}");
    // Reading the counters is not counted: two readings in a row differ in nothing.
    let again = requests(m.mnt());
    assert_eq!(requests_since(m.mnt(), &again), Default::default());
    // The old durability counters keep their format.
    assert_eq!(counters(m.mnt())["fsync"], 1);
    // Latency per opcode: one line per opcode received, with its count.
    let (lat, _) = getxattr_cap(m.mnt(), "rvmfs.latency", 1 << 16).unwrap();
    let lat = String::from_utf8(lat).unwrap();
    let write = lat.lines().find(|l| l.starts_with("write ")).expect(&lat);
    assert!(write.starts_with("write n=3 p50_ns="), "{lat}");
    assert_eq!(write.split("hist=").nth(1).unwrap().split(',').count(), 40);
}
