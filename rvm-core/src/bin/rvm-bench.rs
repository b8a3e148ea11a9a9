//! rvm-bench: rvm-core against the raw disk (issue 3).
//!
//! `cargo run --release -p rvm-core --bin rvm-bench -- [--dir DIR] [--json]`
//!
//! Every measurement runs in one invocation on files in DIR (the same disk); rates are the
//! median of `--reps` repetitions. The spool lives in /dev/shm when it exists (as the
//! filesystem uses it), else in DIR.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use rvm_core::{Area, CommitMode, FileStorage, MemStorage, RestoreMode, Rvm, RvmOptions};

#[derive(Parser, Debug)]
#[command(about = "Benchmark rvm-core against the raw fdatasync rate of the disk")]
struct Args {
    /// Directory for the test files (the disk under test).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Repetitions of each rate measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Seconds per rate measurement.
    #[arg(long, default_value_t = 1.0)]
    secs: f64,
    /// Run one measurement only and print its details: `recovery` or `stall`.
    #[arg(long)]
    only: Option<String>,
    /// Internal: measure the resident set after mapping a 4 GiB segment (child process).
    #[arg(long, hide = true)]
    rss_child: Option<PathBuf>,
}

const MIB: u64 = 1 << 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A file of `len` bytes really written (zeros) and synced, so later writes allocate nothing.
fn prealloc(path: &Path, len: u64) -> File {
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

/// (a) 4 KiB pwrite + fdatasync into a preallocated file, per second.
fn raw_fdatasync(dir: &Path, secs: f64) -> f64 {
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

/// Geometry of the bench image: | log | segment |.
struct Image {
    path: PathBuf,
    spool: PathBuf,
    log: Area,
    seg: Area,
}

impl Image {
    fn create(dir: &Path, name: &str, log_len: u64, seg_len: u64, prealloc_it: bool) -> Image {
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

    fn open(&self, spool_size: u64) -> Rvm {
        self.open_with(spool_size, Some(rvm_core::DEFAULT_TRUNCATE_THRESHOLD))
    }

    fn open_with(&self, spool_size: u64, truncate_threshold: Option<u8>) -> Rvm {
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

/// (b), (c): flush-mode transactions of one 64-byte range, `threads` committers (each on
/// its own region), per second in total.
fn flush_tx(img: &Image, threads: u64, secs: f64) -> (f64, f64) {
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
fn noflush_tx(img: &Image, n: u64) -> f64 {
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
fn log_bytes(optimized: bool) -> (f64, u64, u64) {
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

/// Fill the log of `img` to ~98% with individual records (4 random 64-byte ranges each,
/// inter-transaction merging off: the worst case for recovery), truncation off.
fn fill_log(rvm: &Rvm, img: &Image) {
    rvm.set_truncate_threshold(None);
    rvm.set_optimizations(true, false);
    let mut r = rvm.map(img.seg).unwrap();
    let slots = img.seg.len / 64;
    let mut rng = Rng(99);
    let cap = rvm.stats().log_capacity;
    let mut i = 0u64;
    loop {
        let mut tx = r.begin_transaction(RestoreMode::NoRestore);
        for _ in 0..4 {
            let off = (rng.next() % slots) as usize * 64;
            tx.set_range(off, 64).unwrap().fill(i as u8);
        }
        tx.end(CommitMode::NoFlush).unwrap();
        i += 1;
        if i.is_multiple_of(4096) {
            rvm.flush().unwrap();
            let s = rvm.stats();
            if (s.log_tail - s.log_head) as f64 > cap as f64 * 0.97 {
                break;
            }
        }
    }
}

struct Recovery {
    /// `initialize` + `map` of the whole segment (the region shows every commit).
    total: f64,
    init: f64,
    map: f64,
    records: u64,
    /// Truncation of the recovered log afterwards, MiB/s.
    truncate_mib_s: f64,
}

/// (f): recovery time of a full 64 MiB log (seconds: `initialize`, then `map` of the
/// segment) and the throughput of the truncation that applies it afterwards (MiB/s).
fn recovery_and_truncation(dir: &Path) -> Recovery {
    let img = Image::create(dir, "recovery", 64 * MIB + 8192, 64 * MIB, true);
    let rvm = img.open(64 * MIB);
    fill_log(&rvm, &img);
    drop(rvm); // a crash: the log is full and nothing is truncated
    let t = Instant::now();
    // background truncation off, so the truncation below is timed alone
    let rvm = img.open_with(64 * MIB, None);
    let init = t.elapsed().as_secs_f64();
    let r = rvm.map(img.seg).unwrap();
    let total = t.elapsed().as_secs_f64();
    let s = rvm.stats();
    let records = s.records_recovered;
    assert!(records > 0);
    let used = s.log_tail - s.log_head;
    drop(r);
    let t = Instant::now();
    rvm.truncate().unwrap();
    let truncate_mib_s = used as f64 / MIB as f64 / t.elapsed().as_secs_f64();
    Recovery {
        total,
        init,
        map: total - init,
        records,
        truncate_mib_s,
    }
}

struct Stall {
    /// Longest `end(NoFlush)` overall, and while a truncation ran (ms).
    max_ms: f64,
    max_truncating_ms: f64,
    /// Commits while a truncation ran, and the latency histogram of those commits:
    /// [<10 us, <100 us, <1 ms, <10 ms, >=10 ms].
    commits_truncating: u64,
    hist: [u64; 5],
    commits: u64,
    /// Longest commit while no truncation ran (the control).
    max_idle_ms: f64,
    max_flush_ms: f64,
    truncations: u64,
    log_full_waits: u64,
}

/// (f'): per-commit latency of no-flush commits while background truncations run (the log
/// is filled past its threshold over and over, never full), and the longest `flush()`.
fn commit_stall(dir: &Path, secs: f64) -> Stall {
    let img = Image::create(dir, "stall", 16 * MIB + 8192, 64 * MIB, true);
    let rvm = img.open(256 * MIB);
    rvm.set_truncate_threshold(Some(50));
    let mut r = rvm.map(img.seg).unwrap();
    let slots = img.seg.len / 64;
    let mut rng = Rng(5);
    let mut st = Stall {
        max_ms: 0.0,
        max_truncating_ms: 0.0,
        commits_truncating: 0,
        hist: [0; 5],
        commits: 0,
        max_idle_ms: 0.0,
        max_flush_ms: 0.0,
        truncations: 0,
        log_full_waits: 0,
    };
    let t = Instant::now();
    let mut i = 0u64;
    while t.elapsed().as_secs_f64() < secs.max(2.0) || rvm.stats().truncations < 3 {
        let before = rvm.is_truncating();
        let c = Instant::now();
        let mut tx = r.begin_transaction(RestoreMode::NoRestore);
        for _ in 0..4 {
            let off = (rng.next() % slots) as usize * 64;
            tx.set_range(off, 64).unwrap().fill(i as u8);
        }
        tx.end(CommitMode::NoFlush).unwrap();
        let ms = c.elapsed().as_secs_f64() * 1e3;
        st.max_ms = st.max_ms.max(ms);
        if before || rvm.is_truncating() {
            st.commits_truncating += 1;
            st.max_truncating_ms = st.max_truncating_ms.max(ms);
            let b = match ms {
                x if x < 0.01 => 0,
                x if x < 0.1 => 1,
                x if x < 1.0 => 2,
                x if x < 10.0 => 3,
                _ => 4,
            };
            st.hist[b] += 1;
        } else {
            st.max_idle_ms = st.max_idle_ms.max(ms);
        }
        i += 1;
        if i.is_multiple_of(2048) {
            let f = Instant::now();
            rvm.flush().unwrap();
            st.max_flush_ms = st.max_flush_ms.max(f.elapsed().as_secs_f64() * 1e3);
        }
        if t.elapsed().as_secs_f64() > 60.0 {
            break;
        }
    }
    st.commits = i;
    let s = rvm.stats();
    st.truncations = s.truncations;
    st.log_full_waits = s.log_full_waits;
    st
}

fn vm_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// (g), in a child process: map a 4 GiB segment (sparse file) and touch 1% of its pages
/// with transactions; print the resident set in MiB.
fn rss_child(dir: &Path) {
    let img = Image::create(dir, "rss", 64 * MIB + 8192, 4096 * MIB, false);
    let rvm = img.open(64 * MIB);
    let mut r = rvm.map(img.seg).unwrap();
    let pages = img.seg.len / 4096;
    let touch = pages / 100;
    let stride = pages / touch;
    for p in 0..touch {
        let mut tx = r.begin_transaction(RestoreMode::NoRestore);
        tx.set_range((p * stride * 4096) as usize, 64)
            .unwrap()
            .fill(p as u8 | 1);
        tx.end(CommitMode::NoFlush).unwrap();
    }
    rvm.flush().unwrap();
    println!("{:.1}", vm_rss_mib());
}

fn rss_4gib(dir: &Path) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--rss-child")
        .arg(dir)
        .output()
        .expect("spawn rss child");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}

fn main() {
    let a = Args::parse();
    if let Some(d) = &a.rss_child {
        rss_child(d);
        return;
    }
    std::fs::create_dir_all(&a.dir).expect("create --dir");
    match a.only.as_deref() {
        Some("recovery") => {
            for _ in 0..a.reps.max(1) {
                let r = recovery_and_truncation(&a.dir);
                println!(
                    "recovery {:.3} s (initialize {:.3} s, map {:.3} s), {} records; truncation {:.1} MiB/s",
                    r.total, r.init, r.map, r.records, r.truncate_mib_s
                );
            }
            return;
        }
        Some("stall") => {
            let s = commit_stall(&a.dir, a.secs);
            println!(
                "no-flush commits {}: max {:.3} ms; while truncating {} commits, max {:.3} ms, histogram <10us/<100us/<1ms/<10ms/>=10ms {:?}; max with no truncation running {:.3} ms; {} truncations, {} log-full waits, max flush() {:.1} ms",
                s.commits, s.max_ms, s.commits_truncating, s.max_truncating_ms, s.hist, s.max_idle_ms, s.truncations, s.log_full_waits, s.max_flush_ms
            );
            return;
        }
        Some(o) => panic!("--only {o}: expected recovery or stall"),
        None => {}
    }
    let reps = a.reps.max(1);
    let say = |s: &str| {
        if !a.json {
            eprintln!("... {s}");
        }
    };
    say("raw 4 KiB pwrite + fdatasync");
    let raw = median((0..reps).map(|_| raw_fdatasync(&a.dir, a.secs)).collect());
    let img = Image::create(&a.dir, "flush", 64 * MIB + 8192, 16 * MIB, true);
    let mut flush = [0f64; 4];
    let mut syncs = [0f64; 4];
    for (i, th) in [1u64, 2, 4, 8].into_iter().enumerate() {
        say(&format!("flush transactions, {th} thread(s)"));
        let runs: Vec<(f64, f64)> = (0..reps).map(|_| flush_tx(&img, th, a.secs)).collect();
        flush[i] = median(runs.iter().map(|r| r.0).collect());
        syncs[i] = median(runs.iter().map(|r| r.1).collect());
    }
    drop(img);
    say("no-flush transactions");
    let img = Image::create(&a.dir, "noflush", 64 * MIB + 8192, 16 * MIB, true);
    let noflush = median((0..reps).map(|_| noflush_tx(&img, 1_000_000)).collect());
    drop(img);
    say("log bytes per transaction");
    let (opt, saved_intra, saved_inter) = log_bytes(true);
    let (unopt, _, _) = log_bytes(false);
    say("recovery of a full 64 MiB log, truncation");
    let rec = recovery_and_truncation(&a.dir);
    let (recovery, truncate, nrec) = (rec.total, rec.truncate_mib_s, rec.records);
    say("commit stalls during background truncation");
    let stall_m = commit_stall(&a.dir, a.secs);
    let (stall, flush_stall, truncs) = (stall_m.max_ms, stall_m.max_flush_ms, stall_m.truncations);
    say("resident set, 4 GiB segment, 1% touched");
    let rss = rss_4gib(&a.dir);

    let j = serde_json::json!({
        "raw_fdatasync_per_s": raw.round(),
        "flush_tx_per_s": flush[0].round(),
        "flush_tx_per_s_2t": flush[1].round(),
        "flush_tx_per_s_4t": flush[2].round(),
        "flush_tx_per_s_8t": flush[3].round(),
        "noflush_tx_per_s": noflush.round(),
        "log_bytes_per_tx": (opt * 10.0).round() / 10.0,
        "log_bytes_per_tx_unoptimized": (unopt * 10.0).round() / 10.0,
        "recovery_64mib_s": (recovery * 1000.0).round() / 1000.0,
        "truncate_mib_per_s": truncate.round(),
        "max_commit_stall_ms": (stall_m.max_truncating_ms * 100.0).round() / 100.0,
        "max_commit_latency_ms": (stall * 100.0).round() / 100.0,
        "recovery_initialize_s": (rec.init * 1000.0).round() / 1000.0,
        "recovery_map_s": (rec.map * 1000.0).round() / 1000.0,
        "rss_4gib_touch1pct_mib": (rss * 10.0).round() / 10.0,
    });
    if a.json {
        println!("{j}");
        return;
    }
    let pct = |x: f64, of: f64| 100.0 * x / of;
    let ok = |b: bool| if b { "met" } else { "NOT met" };
    println!("| measurement | value | target | |");
    println!("|---|---:|---|---|");
    println!("| (a) raw 4 KiB pwrite+fdatasync | {raw:.0}/s | | |");
    println!(
        "| (b) flush tx, 1 thread | {:.0}/s ({:.0}% of raw; {:.0} syncs/s) | >= 85% of raw | {} |",
        flush[0],
        pct(flush[0], raw),
        syncs[0],
        ok(flush[0] >= 0.85 * raw)
    );
    for (i, th) in [2, 4, 8].into_iter().enumerate() {
        let v = flush[i + 1];
        let target = if th == 8 { ">= 4x (b)" } else { "" };
        let verdict = if th == 8 { ok(v >= 4.0 * flush[0]) } else { "" };
        println!(
            "| (c) flush tx, {th} threads | {v:.0}/s ({:.1}x; {:.0} syncs/s) | {target} | {verdict} |",
            v / flush[0],
            syncs[i + 1]
        );
    }
    println!(
        "| (d) no-flush tx (64 B, no_restore) | {noflush:.0}/s | >= 1,000,000/s | {} |",
        ok(noflush >= 1e6)
    );
    println!(
        "| (e) log bytes/tx, optimized vs not | {opt:.1} vs {unopt:.1} (-{:.0}%; intra saved {saved_intra} B, inter {saved_inter} B) | >= 20% less | {} |",
        100.0 - pct(opt, unopt),
        ok(opt <= 0.8 * unopt)
    );
    println!(
        "| (f) recovery of a full 64 MiB log ({nrec} records): initialize + map | {recovery:.3} s (initialize {:.3} s, map {:.3} s) | < 1 s | {} |",
        rec.init,
        rec.map,
        ok(recovery < 1.0)
    );
    println!("| (f) truncation throughput (the recovered log, applied afterwards) | {truncate:.0} MiB/s | | |");
    println!(
        "| (f) max no-flush commit latency, {} commits, {truncs} background truncations, {} log-full waits | {stall:.2} ms (while truncating: {:.2} ms over {} commits, histogram <10us/<100us/<1ms/<10ms/>=10ms {:?}; with no truncation running: {:.2} ms; max flush() {flush_stall:.1} ms) | <= 10 ms | {} |",
        stall_m.commits,
        stall_m.log_full_waits,
        stall_m.max_truncating_ms,
        stall_m.commits_truncating,
        stall_m.hist,
        stall_m.max_idle_ms,
        ok(stall_m.max_truncating_ms <= 10.0)
    );
    println!(
        "| (g) RSS, 4 GiB segment, 1% touched | {rss:.1} MiB | < 100 MiB | {} |",
        ok(rss < 100.0)
    );
    println!();
    println!("{j}");
}
