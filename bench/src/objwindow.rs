//! The window of a machine loss in object-store mode (README "Object-store mode"): how long
//! after rvmfs answered an operation it is in the bucket, measured from outside the daemon
//! by watching the bucket itself.
//!
//! Each file of the workload is marked: its name holds a nonce and its number, its one
//! 4 KiB block begins with `RVMFSLAG`, the nonce and the number. A watcher thread lists the
//! image's prefix (`data/`, `log/`, `snap/`) about every 20 ms, fetches every new object and
//! looks for the marks: the name in a shipped log segment or snapshot object (the create's
//! record shipped), the block in a data object (the data uploaded, at vblock V of that
//! object, docs/format.md 11.4), and V with the flag `REMOTE` (an extent's `value[1..3]`) in
//! a later segment (the record repointing the file's extent to the object shipped: from then
//! on a restore elsewhere has the file with its data). A lag is the time from the answer (`close` returning) to the end of the
//! first listing that showed the object, so it is late by at most one listing period.
//!
//! Two mounts: the default one (upload every 1 s, commit every 5 s), files written without
//! fsync at moments spread over those intervals; and one with `-o upload=sync`, where each
//! file is fsynced and the bucket listed the moment fsync returns: is the file there?

use crate::objsystem::{rvmfs_system, System};
use crate::report::fmt_num;
use crate::table;
use anyhow::{Context, Result};
use bytes::Bytes;
use memchr::memmem;
use objstore::object::{BLOCK, TRAILER};
use objstore::object_id::DEFAULT_SHIFT;
use objstore::{Bucket, Config, ObjectId};
/// The extent flag of a block in the bucket (fs/src/store/extent_map.rs, docs/format.md 7.2).
const REMOTE: u64 = 2;
use rvmfs_tests::seaweed::Seaweed;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The first bytes of a marked block.
const MAGIC: &[u8; 8] = b"RVMFSLAG";
/// Pause between two listings of the watcher.
const POLL: Duration = Duration::from_millis(20);
/// How long after the last answer the watcher waits for the rest.
const WAIT: Duration = Duration::from_secs(30);

/// What the window workload measured (`objstore.window` in results.json).
#[derive(Serialize, Default)]
pub struct Window {
    pub files: usize,
    /// Median time from one listing's start to the next's, ms (the lags' resolution).
    pub listing_period_ms: f64,
    /// Per file, ms from the answer until the bucket had: its create's record shipped...
    pub ship_ms: Vec<f64>,
    /// ... its data block in a data object ...
    pub data_ms: Vec<f64>,
    /// ... and the record repointing its extent shipped (all three: restorable with data).
    pub restorable_ms: Vec<f64>,
    /// Files never seen within [`WAIT`] of the last answer, per measure above.
    pub unseen: [usize; 3],
    /// Under `-o upload=sync`: one fsync per file, and what the bucket had when it returned.
    pub sync: SyncCheck,
}

#[derive(Serialize, Default)]
pub struct SyncCheck {
    pub files: usize,
    pub fsync_ms: Vec<f64>,
    /// Files whose data object was listed right after their fsync returned.
    pub data_at_return: usize,
    /// ... whose create's record was in a shipped segment.
    pub shipped_at_return: usize,
    /// ... whose repointing record was in a shipped segment.
    pub repointed_at_return: usize,
    /// Per file, ms from fsync's return until its create's and repointing records were
    /// both shipped (the bucket watched on after the last fsync, up to [`WAIT`]).
    pub restorable_after_ms: Vec<f64>,
}

/// When the watcher first saw each mark of one file.
#[derive(Clone, Default)]
struct Seen {
    name: Option<Instant>,
    data: Option<Instant>,
    vblock: Option<u64>,
    repoint: Option<Instant>,
}

/// The bucket watcher: what it has fetched and seen.
struct Scanner {
    bucket: Bucket,
    nonce: u64,
    known: HashSet<String>,
    /// Log segments and snapshot objects: when first listed, their bytes.
    meta: Vec<(Instant, Bytes)>,
    files: Vec<Seen>,
    starts: Vec<Instant>,
}

fn name_mark(nonce: u64, i: usize) -> String {
    format!("lag{nonce:016x}-{i:04}")
}

fn block_mark(nonce: u64, i: usize) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&nonce.to_le_bytes());
    b[16..24].copy_from_slice(&(i as u64).to_le_bytes());
    b
}

/// The bytes of an extent's value from `value[1]` on once it points at vblock `v`: `v`, then
/// the flags `REMOTE` (docs/format.md 7.2, 11.4), 16 bytes (`v` alone, mostly zeros, can
/// match unrelated record bytes).
fn repoint_mark(v: u64) -> Vec<u8> {
    [v.to_le_bytes(), REMOTE.to_le_bytes()].concat()
}

/// The earliest listing time of the objects of `meta` holding `pat`.
fn earliest(meta: &[(Instant, Bytes)], pat: &[u8]) -> Option<Instant> {
    let hit = |m: &&(Instant, Bytes)| memmem::find(&m.1, pat).is_some();
    meta.iter().filter(hit).map(|m| m.0).min()
}

impl Scanner {
    fn new(url: &str, nonce: u64, files: usize) -> Result<Scanner> {
        let cfg = Config::from_env(url)?;
        Ok(Scanner {
            bucket: Bucket::open(&cfg)?,
            nonce,
            known: HashSet::new(),
            meta: Vec::new(),
            files: vec![Seen::default(); files],
            starts: Vec::new(),
        })
    }

    /// One listing of the prefix; fetch and search what is new.
    fn poll(&mut self) -> Result<()> {
        self.starts.push(Instant::now());
        let data = self.bucket.list("data")?;
        let mut meta = self.bucket.list("log")?;
        meta.extend(self.bucket.list("snap")?);
        let at = Instant::now();
        let mut new_vblocks = Vec::new();
        for l in data {
            if self.known.insert(l.name.clone()) {
                let (bytes, _) = self.bucket.get(&l.name)?;
                new_vblocks.extend(self.scan_data(&l.name, &bytes, at));
            }
        }
        let first_new = self.meta.len();
        for l in meta {
            if self.known.insert(l.name.clone()) {
                let (bytes, _) = self.bucket.get(&l.name)?;
                self.meta.push((at, bytes));
            }
        }
        self.match_meta(first_new, &new_vblocks);
        Ok(())
    }

    /// Marked blocks in data object `name`: note when, and at which vblock. Returns the
    /// files newly seen.
    fn scan_data(&mut self, name: &str, bytes: &[u8], at: Instant) -> Vec<usize> {
        let Some(id) = ObjectId::parse(name) else {
            return Vec::new();
        };
        let count = bytes.len().saturating_sub(TRAILER) / (BLOCK + 4);
        let mut found = Vec::new();
        for idx in 0..count {
            let b = &bytes[idx * BLOCK..idx * BLOCK + 24];
            if &b[..8] != MAGIC || b[8..16] != self.nonce.to_le_bytes() {
                continue;
            }
            let i = u64::from_le_bytes(b[16..24].try_into().unwrap_or_default()) as usize;
            if let Some(f) = self.files.get_mut(i).filter(|f| f.data.is_none()) {
                f.data = Some(at);
                f.vblock = id.vblock(idx as u32, DEFAULT_SHIFT);
                found.push(i);
            }
        }
        found
    }

    /// Search the metadata objects from `first_new` on for every mark not seen yet, and
    /// every metadata object for the vblocks of `new_vblocks`.
    fn match_meta(&mut self, first_new: usize, new_vblocks: &[usize]) {
        let fresh = &self.meta[first_new..];
        for i in 0..self.files.len() {
            let f = &mut self.files[i];
            if f.name.is_none() {
                f.name = earliest(fresh, name_mark(self.nonce, i).as_bytes());
            }
            let Some(v) = f.vblock.filter(|_| f.repoint.is_none()) else {
                continue;
            };
            let over = if new_vblocks.contains(&i) {
                &self.meta[..]
            } else {
                fresh
            };
            f.repoint = earliest(over, &repoint_mark(v));
        }
    }

    fn all_seen(&self) -> bool {
        self.files
            .iter()
            .all(|f| f.name.is_some() && f.repoint.is_some())
    }
}

/// Create `dir/NAME` (the marks of file `i`), write its block, fsync if asked. Returns the
/// moment the last call returned and the fsync's time in ms.
fn write_marked(dir: &Path, nonce: u64, i: usize, fsync: bool) -> Result<(Instant, f64)> {
    let mut f = std::fs::File::create_new(dir.join(name_mark(nonce, i)))?;
    f.write_all(&block_mark(nonce, i))?;
    let t = Instant::now();
    if fsync {
        f.sync_all()?;
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(f);
    Ok((Instant::now(), ms))
}

/// Take `m` even if the watcher panicked while holding it (it then reports the panic).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `q` quantile (0..=1) of `v` by the nearest rank; NaN when empty.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len().max(1));
    s.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// A nonce for this run's marks (the clock's nanoseconds: only needs to differ from what
/// the bucket may hold from earlier runs).
fn nonce() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    t.map_or(0x5eed, |d| d.as_nanos() as u64) | 1
}

/// The default mount: `n` files without fsync at spread moments, watched by a thread.
fn default_mount(sys: &mut System, url: &str, n: usize, w: &mut Window) -> Result<()> {
    let nonce = nonce();
    let scanner = Arc::new(Mutex::new(Scanner::new(url, nonce, n)?));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (scanner, stop) = (scanner.clone(), stop.clone());
        std::thread::spawn(move || -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                lock(&scanner).poll()?;
                std::thread::sleep(POLL);
            }
            Ok(())
        })
    };
    let dir = sys.root()?.join("window");
    std::fs::create_dir_all(&dir)?;
    let mut answered = Vec::with_capacity(n);
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(137 * (i as u64 % 7) + 50));
        answered.push(write_marked(&dir, nonce, i, false)?.0);
    }
    let last = Instant::now();
    while last.elapsed() < WAIT && !watcher.is_finished() && !lock(&scanner).all_seen() {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the bucket watcher panicked"))??;
    let s = lock(&scanner);
    let ms = |t: Instant, a: Instant| t.saturating_duration_since(a).as_secs_f64() * 1000.0;
    w.files = n;
    for (f, &a) in s.files.iter().zip(&answered) {
        let marks = [f.name, f.data, f.repoint];
        for (k, m) in marks.iter().enumerate() {
            w.unseen[k] += usize::from(m.is_none());
        }
        w.ship_ms.extend(f.name.map(|t| ms(t, a)));
        w.data_ms.extend(f.data.map(|t| ms(t, a)));
        if let (Some(x), Some(y), Some(z)) = (f.name, f.data, f.repoint) {
            w.restorable_ms.push(ms(x.max(y).max(z), a));
        }
    }
    let periods: Vec<f64> = s.starts.windows(2).map(|p| ms(p[1], p[0])).collect();
    w.listing_period_ms = percentile(&periods, 0.5);
    Ok(())
}

/// The `upload=sync` mount: `n` files, each fsynced, the bucket listed as fsync returns.
fn sync_mount(sys: &mut System, url: &str, n: usize, c: &mut SyncCheck) -> Result<()> {
    let nonce = nonce();
    let mut s = Scanner::new(url, nonce, n)?;
    let dir = sys.root()?.join("window");
    std::fs::create_dir_all(&dir)?;
    c.files = n;
    let mut returned = Vec::with_capacity(n);
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(137 * (i as u64 % 7) + 50));
        let (at, ms) = write_marked(&dir, nonce, i, true)?;
        returned.push(at);
        c.fsync_ms.push(ms);
        s.poll()?;
        let f = &s.files[i];
        c.data_at_return += usize::from(f.data.is_some());
        c.shipped_at_return += usize::from(f.name.is_some());
        c.repointed_at_return += usize::from(f.repoint.is_some());
    }
    let last = Instant::now();
    while last.elapsed() < WAIT && !s.all_seen() {
        std::thread::sleep(POLL);
        s.poll()?;
    }
    for (f, a) in s.files.iter().zip(returned) {
        if let (Some(x), Some(y)) = (f.name, f.repoint) {
            let t = x.max(y).saturating_duration_since(a);
            c.restorable_after_ms.push(t.as_secs_f64() * 1000.0);
        }
    }
    Ok(())
}

/// Both mounts, each on a fresh image of its own prefix in the server's bucket.
pub fn measure(bin: &Path, work: &Path, s: &Seaweed, quick: bool) -> Result<Window> {
    let mut w = Window::default();
    let n = if quick { 15 } else { 40 };
    eprintln!("== window: {n} files on the default mount, the bucket watched");
    let mut sys = rvmfs_system(bin, work, Some(s), "window", None)?;
    sys.mount()?;
    let r = default_mount(&mut sys, &s.url("window"), n, &mut w);
    sys.unmount()?;
    r.context("the window workload")?;
    eprintln!("== window: {n} files fsynced under upload=sync");
    let mut sys = rvmfs_system(bin, work, Some(s), "window-sync", Some("upload=sync"))?;
    sys.mount()?;
    let r = sync_mount(&mut sys, &s.url("window-sync"), n, &mut w.sync);
    sys.unmount()?;
    r.context("the upload=sync check")?;
    Ok(w)
}

/// The largest of `v`; NaN when empty.
fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn row(what: &str, v: &[f64], unseen: usize) -> Vec<String> {
    vec![
        what.to_string(),
        v.len().to_string(),
        fmt_num(percentile(v, 0.5)),
        fmt_num(max(v)),
        unseen.to_string(),
    ]
}

/// The window section of results.md.
pub fn markdown(s: &mut String, w: &Window) {
    let _ = writeln!(
        s,
        "\n### The window of a machine loss (default mount: uploads every 0.5 s, commits every 0.5 s, ships every 0.25 s)\n\n\
         {} files of 4 KiB written without fsync at moments spread over those intervals; the \
         bucket listed every {:.0} ms (median period; a lag is late by at most one period): \
         ms from the answer (`close` returned) until the bucket had\n",
        w.files, w.listing_period_ms
    );
    let cols = [
        ("what", false),
        ("files", true),
        ("median ms", true),
        ("max ms", true),
        ("not seen in 30 s", true),
    ];
    let rows = [
        row(
            "the create's record shipped (log segment or snapshot)",
            &w.ship_ms,
            w.unseen[0],
        ),
        row("the data block in a data object", &w.data_ms, w.unseen[1]),
        row(
            "the repointing record shipped too: restorable with its data",
            &w.restorable_ms,
            w.unseen[2],
        ),
    ];
    table::write(s, &cols, rows);
    let c = &w.sync;
    let _ = writeln!(
        s,
        "\nUnder `-o upload=sync`, {} files each fsynced, the bucket listed as fsync returned: \
         data object there for {}, create's record shipped for {}, repointing record shipped \
         for {}; fsync median {} ms, max {} ms. Both records shipped (restorable with its \
         data) {} ms after fsync returned (median; max {} ms, {} of {} files seen).",
        c.files,
        c.data_at_return,
        c.shipped_at_return,
        c.repointed_at_return,
        fmt_num(percentile(&c.fsync_ms, 0.5)),
        fmt_num(max(&c.fsync_ms)),
        fmt_num(percentile(&c.restorable_after_ms, 0.5)),
        fmt_num(max(&c.restorable_after_ms)),
        c.restorable_after_ms.len(),
        c.files
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scanner whose bucket is never asked (opening one makes no request).
    fn scanner(files: usize) -> Scanner {
        let cfg = Config::from_env("s3://unused/window").expect("config");
        Scanner {
            bucket: Bucket::open(&cfg).expect("bucket"),
            nonce: 0xfeed,
            known: HashSet::new(),
            meta: Vec::new(),
            files: vec![Seen::default(); files],
            starts: Vec::new(),
        }
    }

    #[test]
    fn marks_are_found_in_data_objects_and_then_in_later_segments() {
        let mut s = scanner(3);
        let id = ObjectId { epoch: 2, seq: 5 };
        let (other, mine) = (vec![7u8; BLOCK], block_mark(0xfeed, 1));
        let foreign = block_mark(0xbeef, 2);
        let blocks: Vec<&[u8; BLOCK]> = [&other, &foreign, &mine]
            .iter()
            .map(|b| b.as_slice().try_into().expect("one block"))
            .collect();
        let object = objstore::object::pack(id, &blocks);
        let t0 = Instant::now();
        assert_eq!(s.scan_data(&id.name(), &object, t0), vec![1]);
        let v = id.vblock(2, DEFAULT_SHIFT).expect("fits");
        assert_eq!(s.files[1].vblock, Some(v));
        assert!(s.files[2].data.is_none(), "another run's mark");
        // The create's record in one segment, the vblock alone in another (no match), the
        // repointing record in a later one.
        let t1 = t0 + Duration::from_millis(10);
        let mut seg = b"header".to_vec();
        seg.extend_from_slice(name_mark(0xfeed, 1).as_bytes());
        s.meta.push((t0, Bytes::from(seg)));
        s.meta.push((t0, Bytes::from(v.to_le_bytes().to_vec())));
        s.meta.push((
            t1,
            Bytes::from([b"rec".as_slice(), &repoint_mark(v)].concat()),
        ));
        s.match_meta(0, &[1]);
        let f = &s.files[1];
        assert_eq!((f.name, f.data, f.repoint), (Some(t0), Some(t0), Some(t1)));
        assert!(s.files[0].name.is_none() && !s.all_seen());
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.99), 5.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
