//! Readahead follows the access pattern (issue 12 item 4): random 4 KiB reads of a file not
//! in the page cache cost one 4 KiB READ each (the kernel's adaptive readahead, mm/readahead.c,
//! reads a lone random miss as it is; the daemon reads exactly what a READ asks), while a
//! sequential read is served in large READs (the 1 MiB readahead the mount asks for).
//!
//! The file's page cache is dropped with `posix_fadvise(POSIX_FADV_DONTNEED)` on the mounted
//! file, so only this file is cold and other processes' caches are left alone.

#[path = "posix_common.rs"]
mod common;
use common::*;
use rvmfs_tests::*;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

const FILE: u64 = 64 << 20;
const BLOCK: u64 = 4096;

/// A 64 MiB file of known bytes, synced, with its pages dropped from the page cache.
fn cold_file(m: &Mounted) -> File {
    let f = File::create(m.path("f")).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    for i in 0..FILE >> 20 {
        f.write_all_at(&chunk, i << 20).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    let f = File::open(m.path("f")).unwrap();
    drop_cache(&f);
    f
}

fn drop_cache(f: &File) {
    // SAFETY: a valid descriptor; the advice only affects the page cache.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise DONTNEED");
}

/// READ requests and bytes the daemon read for them since `base` (requests, counters).
fn reads_since(m: &Mounted, base: &(u64, u64)) -> (u64, u64) {
    let now = (requests(m.mnt())["read"], counters(m.mnt())["read_bytes"]);
    (now.0 - base.0, now.1 - base.1)
}

fn reads_now(m: &Mounted) -> (u64, u64) {
    reads_since(m, &(0, 0))
}

#[test]
fn random_reads_fetch_only_the_blocks_asked_for() {
    require_fuse!();
    let m = Mounted::new();
    let f = cold_file(&m);
    let n = 300u64;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let base = reads_now(&m);
    let mut buf = [0u8; BLOCK as usize];
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % (FILE / BLOCK)) * BLOCK;
        f.read_exact_at(&mut buf, at).unwrap();
        assert_eq!(buf[1] as u64, (at + 1) % (1 << 20) % 251, "bytes at {at}");
    }
    let (reads, bytes) = reads_since(&m, &base);
    // A miss next to an earlier one may start a small window (4 pages); 1 MiB readahead
    // per read would be 256 times the bytes.
    assert!(reads <= n, "{reads} READs for {n} random reads");
    assert!(
        bytes <= n * 4 * BLOCK,
        "{bytes} bytes read for {n} random 4 KiB reads"
    );
}

#[test]
fn sequential_reads_come_in_large_requests() {
    require_fuse!();
    let m = Mounted::new();
    let mut f = cold_file(&m);
    let base = reads_now(&m);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let got = f.read(&mut buf).unwrap();
        if got == 0 {
            break;
        }
        total += got as u64;
    }
    assert_eq!(total, FILE);
    let (reads, bytes) = reads_since(&m, &base);
    assert_eq!(bytes, FILE, "the daemon read the file once");
    // The mount asks for 1 MiB readahead; 128 KiB READs (the kernel's smallest default
    // readahead window) would already be 512 requests for 64 MiB.
    assert!(
        reads <= FILE / (128 << 10),
        "{reads} READs for a 64 MiB sequential read"
    );
}

/// (region's file offset, heap start in the region, bytes of heap used) from `rvmfs-admin
/// dump -h` of the mounted image.
fn heap_of(m: &Mounted) -> (u64, u64, u64) {
    let out = admin_on(m.image(), &["dump", "-h"]);
    assert_eq!(out.code(), 0, "dump -h:\n{}", out.output());
    let field = |label: &str| {
        let line = out.stdout.lines().find(|l| l.starts_with(label));
        line.unwrap_or_else(|| panic!("no {label} in:\n{}", out.stdout))
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .map(|w| w.parse::<u64>().unwrap())
            .collect::<Vec<_>>()
    };
    let region = field("Metadata region:");
    let heap = field("Heap:");
    (region[0], heap[0], heap[2] - heap[0])
}

/// The `VmFlags` of the daemon's mapping of `image` that starts at file offset `offset`.
fn flags_at(pid: u32, image: &std::path::Path, offset: u64) -> Option<String> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let image = std::fs::canonicalize(image).unwrap();
    let mut here = false;
    for line in smaps.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 6 && words[0].contains('-') {
            here = u64::from_str_radix(words[2], 16) == Ok(offset)
                && std::path::Path::new(words[5]) == image;
        } else if let Some(flags) = line.strip_prefix("VmFlags:").filter(|_| here) {
            return Some(flags.trim().to_string());
        }
    }
    None
}

/// The heap (B+tree nodes and names) keeps the kernel's readahead while it is small, which
/// makes cold lookups cheap, and is advised `MADV_RANDOM` (the `rr` flag on its mapping) once
/// its used part passes 4 MiB (`fs/src/ops/heap_advice.rs`), so a fault in a big heap maps
/// one page, not a large folio.
#[test]
fn the_heap_is_read_ahead_until_it_outgrows_4_mib() {
    require_fuse!();
    let m = Mounted::new();
    let pid = m.daemon_pid().expect("the daemon's pid");
    let (region, heap_start, used) = heap_of(&m);
    assert!(
        used < 4 << 20,
        "a fresh image's heap is small ({used} bytes)"
    );
    let heap_mapping = || flags_at(pid, m.image(), region + heap_start);
    // A fresh mount advises nothing: no mapping starts at the heap (the region is one).
    assert!(
        heap_mapping().is_none_or(|f| !f.split(' ').any(|w| w == "rr")),
        "a small heap is advised random: {:?}",
        heap_mapping()
    );
    // Long names fill the heap: about 8 MiB of it used.
    std::fs::create_dir(m.path("d")).unwrap();
    let long = "n".repeat(200);
    let mut i = 0;
    while heap_of(&m).2 < 8 << 20 {
        for _ in 0..2000 {
            std::fs::write(m.path(format!("d/{long}{i:06}")), b"").unwrap();
            i += 1;
        }
    }
    let flags = heap_mapping().expect("the advised heap is a mapping of its own");
    assert!(
        flags.split(' ').any(|w| w == "rr"),
        "after {i} creates the heap is not advised random: {flags}"
    );
}
