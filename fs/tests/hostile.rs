//! Hostile images never crash the filesystem library: 1,000 seeded corruptions of a small
//! populated image (superblock, bitmaps, inode table, heap with its B+tree nodes, log), each
//! opened without fsck and given 40 operations (lookup, readdir, getattr, read, readlink,
//! getxattr, write, create, unlink, rmdir, rename, setxattr, truncate, link, open/release,
//! SEEK_DATA, fallocate, flush + truncation). Every image must finish within the watchdog
//! (10 s), without a panic, with no write outside the log, the segment and the data area, and
//! no data write on a block only another inode owns (see `hostile_lib`).
//!
//! `HOSTILE_SEEDS=N` sets the number of images (default 1000), `HOSTILE_SEED=S` the first one.

mod hostile_lib;

use hostile_lib::{corrupt, pristine, run, Pristine, Report, Rng};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Operations per image.
const OPS: usize = 40;
/// Longest an image may take (a hang = failure).
const WATCHDOG: Duration = Duration::from_secs(10);

/// Corrupt and run one seed in its own thread: Ok(report), or why it failed (panic, hang).
fn one_seed(p: &Arc<Pristine>, seed: u64) -> Result<(Report, &'static str), String> {
    let (tx, rx) = mpsc::channel();
    let p = p.clone();
    let worker = std::thread::spawn(move || {
        let mut rng = Rng::seeded(seed);
        let (image, what) = corrupt(&p, &mut rng);
        let report = run(&p, image, &mut rng, OPS);
        let _ = tx.send((report, what));
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(r) => {
            let _ = worker.join();
            Ok(r)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let why = match worker.join() {
                Err(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
                Ok(()) => String::new(),
            };
            Err(format!("seed {seed}: panic: {why}"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("seed {seed}: hung > {WATCHDOG:?}")),
    }
}

#[test]
fn hostile_images_never_crash_the_library() {
    let p = Arc::new(pristine());
    // The pristine image itself runs clean.
    let clean = run(&p, p.bytes.clone(), &mut Rng::seeded(0), OPS);
    assert!(
        !clean.refused && clean.violations.is_empty() && clean.eio == 0,
        "{clean:?}"
    );
    let count = env("HOSTILE_SEEDS", 1000);
    let first = env("HOSTILE_SEED", 1);
    let mut failures = Vec::new();
    let (mut refused, mut ops, mut eio, mut cross) = (0, 0, 0, 0);
    for seed in first..first + count {
        match one_seed(&p, seed) {
            Ok((r, what)) => {
                refused += r.refused as u64;
                ops += r.ops;
                eio += r.eio;
                cross += r.cross_links;
                for v in r.violations {
                    failures.push(format!("seed {seed} ({what}): {v}"));
                }
            }
            Err(e) => {
                let hung = e.contains("hung");
                failures.push(e);
                if hung {
                    break; // the hung thread keeps a core busy: stop here
                }
            }
        }
    }
    eprintln!(
        "{count} corrupted images: {refused} refused at open, {ops} operations, {eio} answered \
         EIO, {cross} cross-linked data blocks written (corrupt bitmap), {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
