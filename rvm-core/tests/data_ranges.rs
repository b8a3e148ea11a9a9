//! `Storage::data_ranges` on a real file: every non-zero byte of a sparse file with
//! written blocks, a hole and an unwritten (fallocated) extent lies in a listed run, the
//! runs are ordered, disjoint and inside the asked range; the host's holes are skipped where
//! its file system reports them (ext4, xfs, tmpfs).

use rvm_core::{FileStorage, Storage};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

const MIB: u64 = 1 << 20;

#[test]
fn every_written_byte_is_in_a_listed_run_and_holes_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(16 * MIB).unwrap();
    // SAFETY: fallocate on an open descriptor with plain integer arguments.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, (4 * MIB) as i64, (4 * MIB) as i64) };
    let fallocated = r == 0;
    for (at, len) in [(MIB, 4096), (5 * MIB + 100, 10), (12 * MIB - 3, 7)] {
        file.write_all_at(&vec![0xA5u8; len], at).unwrap();
    }
    let storage = FileStorage::new(std::fs::File::open(&path).unwrap());
    let whole = {
        let mut b = vec![0u8; (16 * MIB) as usize];
        storage.read_at(&mut b, 0).unwrap();
        b
    };
    for (from, len) in [(0, 16 * MIB), (2 * MIB, 10 * MIB)] {
        let runs = storage.data_ranges(from, len).unwrap();
        let mut last_end = from;
        for &(at, n) in &runs {
            assert!(at >= last_end && n > 0 && at + n <= from + len, "{runs:?}");
            last_end = at + n;
        }
        let listed = |i: u64| runs.iter().any(|&(at, n)| at <= i && i < at + n);
        for (i, &b) in whole
            .iter()
            .enumerate()
            .skip(from as usize)
            .take(len as usize)
        {
            assert!(
                b == 0 || listed(i as u64),
                "byte {i} is written but not listed: {runs:?}"
            );
        }
        let total: u64 = runs.iter().map(|r| r.1).sum();
        eprintln!("data_ranges({from}, {len}): {runs:?}, {total} bytes (fallocated: {fallocated})");
        assert!(total <= len);
    }
}
