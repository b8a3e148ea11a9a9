//! How rvmfs scales with concurrent requests (issue 12): readers share the filesystem lock,
//! and `-o sync` writers share log flushes (group commit). Two rows, each "N threads vs 1 on
//! the same image", the configurations alternating pass by pass (AB BA ...) because this
//! disk's speed swings within minutes:
//! - cold stats: 20,000 files; each pass remounts and drops the page cache, then stats every
//!   file (each name a LOOKUP and the inode a cold read of the region) from 1 or 2 threads,
//!   each thread its own share of the names;
//! - sync writers: a `-o sync` mount; 1 or 8 threads each overwrite 4 KiB blocks of their own
//!   file, every write durable before it returns.
//!
//! The daemon serves with `threads=` one more than the client threads, so the daemon's own
//! thread count does not cap the comparison. Each pass also records how many of the machine's
//! cores the daemon and the client threads kept busy (their CPU time over the wall time): when
//! one thread already keeps every core busy (the client, the daemon and the kernel's FUSE path
//! between them), N threads cannot go faster than `cores / busy` times, whatever the
//! filesystem's locking.

use crate::datasum::{proc_stat, Summary};
use crate::mounts::Rvmfs;
use crate::report::fmt_spread;
use crate::workloads as w;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Files the cold-stat row creates and stats.
const STAT_FILES: usize = 20_000;
/// Reader threads of the cold-stat row (against one).
pub const STAT_THREADS: usize = 2;
/// Writer threads of the sync row (against one).
pub const SYNC_THREADS: usize = 8;
/// 4 KiB sync writes per pass, shared among the threads.
const SYNC_WRITES: usize = 800;
/// Targets (issue 12): speed-up of the many-thread configuration.
pub const STAT_TARGET: f64 = 1.6;
pub const SYNC_TARGET: f64 = 4.0;

/// One row: ops/s per pass with one thread and with `threads`.
#[derive(Serialize)]
pub struct Row {
    pub label: &'static str,
    pub threads: usize,
    pub target: f64,
    pub one: Vec<f64>,
    pub many: Vec<f64>,
    /// Cores the daemon and the client kept busy (their CPU time over wall time) in each pass.
    pub one_busy: Vec<f64>,
    pub many_busy: Vec<f64>,
}

impl Row {
    fn new(label: &'static str, threads: usize, target: f64) -> Row {
        Row {
            label,
            threads,
            target,
            one: Vec::new(),
            many: Vec::new(),
            one_busy: Vec::new(),
            many_busy: Vec::new(),
        }
    }

    /// Record a pass: `rate` ops/s with `threads` threads, `busy` cores busy.
    fn push(&mut self, threads: usize, rate: f64, busy: f64) {
        if threads == 1 {
            self.one.push(rate);
            self.one_busy.push(busy);
        } else {
            self.many.push(rate);
            self.many_busy.push(busy);
        }
    }

    /// Median of the many-thread rate over the median of the one-thread rate.
    pub fn speedup(&self) -> Option<f64> {
        Some(Summary::of(&self.many)?.median / Summary::of(&self.one)?.median)
    }
}

/// Both rows.
#[derive(Serialize)]
pub struct Parallel {
    pub rows: Vec<Row>,
}

/// Run `pairs` pairs of passes of each row on fresh images in `work`.
pub fn measure(bin: &Path, work: &Path, pairs: usize) -> Result<Parallel> {
    let stat = cold_stats(bin, work, pairs)?;
    let sync = sync_writers(bin, work, pairs)?;
    Ok(Parallel {
        rows: vec![stat, sync],
    })
}

/// The order of pass `pair`'s two configurations: AB, BA, AB, ...
fn order(pair: usize, many: usize) -> [usize; 2] {
    if pair % 2 == 0 {
        [1, many]
    } else {
        [many, 1]
    }
}

struct Setup<'a> {
    bin: &'a Path,
    image: PathBuf,
    mnt: PathBuf,
    log: PathBuf,
}

impl<'a> Setup<'a> {
    fn new(bin: &'a Path, work: &Path, name: &str) -> Result<Setup<'a>> {
        let s = Setup {
            bin,
            image: work.join(format!("rvmfs-{name}.img")),
            mnt: work.join(format!("mnt-rvmfs-{name}")),
            log: work.join(format!("rvmfs-{name}.log")),
        };
        Rvmfs::mkfs(bin, &s.image, "4G", None)?;
        Ok(s)
    }
    fn mount(&self, opts: &str) -> Result<Rvmfs> {
        Ok(Rvmfs::mount(self.bin, &self.image, &self.mnt, &self.log, Some(opts))?.0)
    }
}

/// Run `f(t)` on threads t = 0..n at once; returns when all are done.
fn on_threads(n: usize, f: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    let f = &f;
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n).map(|t| s.spawn(move || f(t))).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| anyhow::bail!("a thread panicked"))
            })
            .collect()
    })
}

fn cold_stats(bin: &Path, work: &Path, pairs: usize) -> Result<Row> {
    let setup = Setup::new(bin, work, "stats")?;
    let opts = format!("threads={}", STAT_THREADS + 1);
    let m = setup.mount(&opts)?;
    let names: Vec<_> = (0..STAT_FILES).map(|i| format!("d/f{i:06}")).collect();
    fs::create_dir(m.mnt.join("d"))?;
    for n in &names {
        fs::write(m.mnt.join(n), b"")?;
    }
    m.unmount()?;
    let mut row = Row::new(
        "cold stat + lookup of 20,000 files",
        STAT_THREADS,
        STAT_TARGET,
    );
    for pair in 0..pairs.max(1) {
        for threads in order(pair, STAT_THREADS) {
            let m = setup.mount(&opts)?;
            w::drop_caches()?;
            let faults = proc_stat(m.pid()).majflt;
            let t = Instant::now();
            let r = busy_during(m.pid(), || {
                on_threads(threads, |k| {
                    for n in names.iter().skip(k).step_by(threads) {
                        fs::metadata(m.mnt.join(n)).with_context(|| format!("stat {n}"))?;
                    }
                    Ok(())
                })
            });
            let rate = STAT_FILES as f64 / t.elapsed().as_secs_f64();
            let faults = proc_stat(m.pid()).majflt - faults;
            m.unmount()?;
            let ((), busy) = r?;
            eprintln!(
                "  cold stats, {threads} thread(s): {rate:.0}/s, {busy:.2} cores busy, \
                 {faults:.0} major faults in the daemon"
            );
            row.push(threads, rate, busy);
        }
    }
    fs::remove_file(&setup.image)?;
    Ok(row)
}

fn sync_writers(bin: &Path, work: &Path, pairs: usize) -> Result<Row> {
    let setup = Setup::new(bin, work, "syncw")?;
    let m = setup.mount(&format!("sync,threads={}", SYNC_THREADS + 1))?;
    let files: Vec<_> = (0..SYNC_THREADS)
        .map(|t| {
            let p = m.mnt.join(format!("w{t}"));
            let f = OpenOptions::new().create(true).write(true).open(&p)?;
            f.set_len(1 << 20)?;
            f.sync_all()?;
            Ok(f)
        })
        .collect::<Result<_>>()?;
    let mut row = Row::new("4 KiB writes on a -o sync mount", SYNC_THREADS, SYNC_TARGET);
    let block = vec![0x5au8; 4096];
    for pair in 0..pairs.max(1) {
        for threads in order(pair, SYNC_THREADS) {
            let per = SYNC_WRITES / threads;
            let t = Instant::now();
            let ((), busy) = busy_during(m.pid(), || {
                on_threads(threads, |k| {
                    for i in 0..per {
                        // Spread over the file's 256 blocks: overwrites, each a durable commit.
                        let at = ((i * 97 + pair) % 256) as u64 * 4096;
                        files[k].write_all_at(&block, at)?;
                    }
                    Ok(())
                })
            })?;
            let rate = (per * threads) as f64 / t.elapsed().as_secs_f64();
            eprintln!("  sync writes, {threads} thread(s): {rate:.0}/s, {busy:.2} cores busy");
            row.push(threads, rate, busy);
        }
    }
    drop(files);
    m.unmount()?;
    fs::remove_file(&setup.image)?;
    Ok(row)
}

/// Run `f`, returning its result and the cores the daemon `pid` and this process (the client
/// threads, with the kernel's FUSE path they run in) kept busy meanwhile: their CPU time over
/// the wall time, so other jobs on the machine do not count.
fn busy_during<T>(pid: u32, f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let cpu = || proc_stat(pid).cpu_s + proc_stat(std::process::id()).cpu_s;
    let (c0, t) = (cpu(), Instant::now());
    let out = f()?;
    let busy = (cpu() - c0) / t.elapsed().as_secs_f64();
    Ok((out, if busy.is_finite() { busy } else { 0.0 }))
}

/// The markdown table: per row the two configurations' median (min–max) and the speed-up.
pub fn table(s: &mut String, p: &Parallel) {
    let spread = |v: &[f64]| fmt_spread(Summary::of(v));
    let _ = writeln!(s, "\n## rvmfs: concurrent requests (N threads vs 1)\n");
    let _ = writeln!(
        s,
        "The two configurations interleaved (AB BA ...) on one image; ops/s, median (min–max).\n"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cols = [
        ("workload", false),
        ("1 thread", true),
        ("N threads", true),
        ("N", true),
        ("speed-up", true),
        ("target", true),
        ("cores busy, 1 / N threads", true),
        ("speed-up the idle cores allow", true),
    ];
    let rows = p.rows.iter().map(|r| {
        let busy = |v: &[f64]| Summary::of(v).map(|x| x.median);
        let (b1, bn) = (busy(&r.one_busy), busy(&r.many_busy));
        vec![
            r.label.to_string(),
            spread(&r.one),
            spread(&r.many),
            r.threads.to_string(),
            r.speedup().map_or("–".into(), |x| format!("{x:.2}x")),
            format!(">= {:.1}x", r.target),
            format!(
                "{} / {} of {cores}",
                b1.map_or("–".into(), |x| format!("{x:.2}")),
                bn.map_or("–".into(), |x| format!("{x:.2}"))
            ),
            b1.filter(|&x| x > 0.0)
                .map_or("–".into(), |x| format!("<= {:.2}x", cores / x)),
        ]
    });
    crate::table::write(s, &cols, rows);
    let _ = writeln!(
        s,
        "\nThe last column is the machine's cores over the cores one thread keeps busy (client, daemon \
         and the kernel's FUSE path together): N threads cannot beat it, however the daemon locks."
    );
}

/// The targets: (what, wanted, measured, met).
pub fn checks(p: &Parallel) -> Vec<(String, String, String, Option<bool>)> {
    p.rows
        .iter()
        .map(|r| {
            let x = r.speedup();
            (
                format!("{} threads vs 1: {}", r.threads, r.label),
                format!(">= {:.1}x", r.target),
                x.map_or("–".into(), |x| format!("{x:.2}x")),
                x.map(|x| x >= r.target),
            )
        })
        .collect()
}
