//! The rate measurements: (a) the raw disk, (b)/(c) flush commits with 1 to 8 threads
//! (group commit), (d) no-flush commits, (e) log bytes per transaction with and without
//! the LRVM §5.2 optimizations.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rvm_core::{Area, CommitMode, MemStorage, RestoreMode, Rvm, RvmOptions};

use crate::image::{prealloc, Image, Rng, MIB};

/// (a) 4 KiB pwrite + fdatasync into a preallocated file, per second.
pub fn raw_fdatasync(dir: &Path, secs: f64) -> f64 {
    let path = dir.join("rvm-bench-raw.dat");
    let f = prealloc(&path, 16 * MIB);
    let buf = vec![0x5au8; 4096];
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        f.write_all_at(&buf, (n % 4096) * 4096).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let r = n as f64 / t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(path);
    r
}

/// (b), (c): flush-mode transactions of one 64-byte range, `threads` committers (each on
/// its own region), per second in total.
pub fn flush_tx(img: &Image, threads: u64, secs: f64) -> (f64, f64) {
    let rvm = img.open(64 * MIB);
    let part = img.seg.len / 8;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let rvm = rvm.clone();
            let area = Area {
                offset: img.seg.offset + k * part,
                len: part,
            };
            std::thread::spawn(move || {
                let mut r = rvm.map(area).unwrap();
                let mut rng = Rng(k * 7919 + 1);
                let mut n = 0u64;
                let t = Instant::now();
                while t.elapsed().as_secs_f64() < secs {
                    let off = (rng.next() % (part / 64)) as usize * 64;
                    let mut tx = r.begin_transaction(RestoreMode::NoRestore);
                    tx.set_range(off, 64).unwrap().fill(n as u8);
                    tx.end(CommitMode::Flush).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let el = start.elapsed().as_secs_f64();
    let s = rvm.stats();
    // every flush commit is durable: one sync covers many (group commit)
    assert!(s.durable_lsn >= s.next_lsn);
    (total as f64 / el, s.flush_syncs as f64 / el)
}

/// (d): no-flush transactions of one 64-byte range with no_restore, per second.
pub fn noflush_tx(img: &Image, n: u64) -> f64 {
    let rvm = img.open(n * 128 + 16 * MIB);
    rvm.set_truncate_threshold(None);
    let mut r = rvm.map(img.seg).unwrap();
    let slots = img.seg.len / 64;
    let mut rng = Rng(12345);
    let t = Instant::now();
    for i in 0..n {
        let off = (rng.next() % slots) as usize * 64;
        let mut tx = r.begin_transaction(RestoreMode::NoRestore);
        tx.set_range(off, 64).unwrap().fill(i as u8);
        tx.end(CommitMode::NoFlush).unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// (e): log bytes per transaction of a metadata-rewriting workload (like a filesystem's:
/// superblock counters, a few hot inodes, bitmap words, a directory block), no-flush with
/// a flush every 16 transactions (a commit interval), with or without LRVM §5.2.
pub fn log_bytes(optimized: bool) -> (f64, u64, u64) {
    let log = Area {
        offset: 0,
        len: 64 * MIB,
    };
    let seg = Area {
        offset: 64 * MIB,
        len: 4 * MIB,
    };
    let st = Arc::new(MemStorage::new((log.len + seg.len) as usize));
    Rvm::create_log(&*st, log).unwrap();
    let rvm = Rvm::initialize(
        st.clone(),
        RvmOptions {
            log,
            ..Default::default()
        },
    )
    .unwrap();
    rvm.set_optimizations(optimized, optimized);
    let mut r = rvm.map(seg).unwrap();
    let mut rng = Rng(777);
    let n = 20_000u64;
    for i in 0..n {
        let mut tx = r.begin_transaction(RestoreMode::NoRestore);
        tx.set_range(0, 64).unwrap()[..8].copy_from_slice(&i.to_le_bytes()); // superblock
        let ino = (rng.next() % 32) as usize; // a hot inode (128 bytes)
        let base = 4096 + ino * 128;
        tx.set_range(base, 128).unwrap()[0] = i as u8;
        tx.set_range(base + 16, 16).unwrap().fill(i as u8); // mtime/size: overlaps
        let w = (rng.next() % 64) as usize; // a bitmap word
        tx.set_range(65536 + w * 8, 8).unwrap().fill(i as u8);
        let d = (rng.next() % 8) as usize; // a directory entry in one of 8 blocks
        tx.set_range(131072 + d * 4096 + (i as usize % 16) * 64, 64)
            .unwrap()
            .fill(i as u8);
        tx.end(CommitMode::NoFlush).unwrap();
        if i % 16 == 15 {
            rvm.flush().unwrap();
        }
    }
    rvm.flush().unwrap();
    let s = rvm.stats();
    (
        s.bytes_logged as f64 / n as f64,
        s.bytes_saved_intra,
        s.bytes_saved_inter,
    )
}
