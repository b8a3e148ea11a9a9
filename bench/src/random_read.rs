//! Random 4 KiB reads with a cold cache: a file of `file_bytes` is written and synced
//! (untimed), the page cache dropped, then `n` 4 KiB-aligned preads at random offsets. Each
//! read that misses costs the filesystem a round trip to its storage, and on a FUSE system
//! whatever its readahead pulls in around it (issue 12: random reads must not fetch 1 MiB).
//!
//! What a read costs on rvmfs (Linux 6.18, measured with the daemon's counters and
//! /proc/PID/io): 0.96 READ requests of 4 KiB per read, and 4 KiB read from the image, the
//! same bytes ext4 reads from its disk for the same offsets. The kernel's adaptive readahead
//! (mm/readahead.c: a lone miss far from the last one is read as asked) keeps the 1 MiB
//! window for sequential readers only (tests/tests/readahead.rs), and the daemon reads no
//! more than a READ asks. So the gap to ext4 is one FUSE round trip per read, and fuse2fs,
//! with the same architecture, pays the same: neither the disk read nor the round trip can
//! be saved by readahead. (Random reads through mmap do fault 1 MiB around each miss, as on
//! ext4 with its disk's 1 MiB read_ahead_kb: that is the kernel's mmap read-around.)

use crate::requests::Phase;
use crate::workloads::{drop_caches, XorShift};
use anyhow::{bail, Result};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The workload's file size, bytes.
pub const FILE_BYTES: usize = 256 << 20;
/// Reads per pass.
pub const READS: usize = 5_000;

/// The byte offsets of the `n` reads of a `file_bytes` file, 4 KiB-aligned, the same on every
/// system and for the raw disk limit (limits.rs).
pub fn offsets(file_bytes: usize, n: usize) -> impl Iterator<Item = u64> {
    let blocks = (file_bytes / 4096) as u64;
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    (0..n).map(move |_| (rng.next() % blocks) * 4096)
}

/// The byte at offset `at` of the workload's file.
pub fn byte_at(at: u64) -> u8 {
    (at as usize % (1 << 20) % 251) as u8
}

/// Write the workload's file of `file_bytes` at `path` (1 MiB writes) and sync it.
pub fn write_file(path: &Path, file_bytes: usize) -> Result<()> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let mut chunk = vec![0u8; 1 << 20];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = byte_at(i as u64);
    }
    for _ in 0..file_bytes / chunk.len() {
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    Ok(())
}

/// `n` 4 KiB preads of `f` (a file of `file_bytes` bytes made by [`write_file`]) at
/// [`offsets`], each checked to hold the bytes written there. Errors: a read failed or
/// returned other bytes.
pub fn read_checked(f: &std::fs::File, file_bytes: usize, n: usize) -> Result<()> {
    let mut buf = [0u8; 4096];
    for at in offsets(file_bytes, n) {
        f.read_exact_at(&mut buf, at)?;
        if buf[1] != byte_at(at + 1) {
            bail!("random read at {at} returned other bytes");
        }
    }
    Ok(())
}

/// ops/s of `n` random 4 KiB reads of a `file_bytes` file, cold cache.
pub fn random_cold_read(dir: &Path, file_bytes: usize, n: usize) -> Result<f64> {
    fs::create_dir_all(dir)?;
    let path = dir.join("randr");
    write_file(&path, file_bytes)?;
    drop_caches()?;
    let f = OpenOptions::new().read(true).open(&path)?;
    let t = Phase::start();
    read_checked(&f, file_bytes, n)?;
    let r = n as f64 / t.end("randr", n).as_secs_f64();
    drop(f);
    fs::remove_dir_all(dir)?;
    Ok(r)
}
