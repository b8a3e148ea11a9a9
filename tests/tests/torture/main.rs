//! Issue 5 item 2: the `kill -9` torture test.
//!
//! A driver runs a random, seeded workload (create, write at random offsets and sizes,
//! truncate, rename of files and directories over existing targets, link, unlink, mkdir,
//! rmdir, symlink, setxattr/removexattr, chmod, fsync/fdatasync/fsyncdir, files held open and
//! unlinked while open) on a mounted rvmfs and keeps a model of what every *answered* request
//! did. Each request's outcome is also predicted by the model (success or errno) and must
//! agree. At a random moment of each cycle the daemon gets SIGKILL, sometimes while one more
//! operation is in flight from a second thread (that one may or may not be applied; a write in
//! flight may be torn byte by byte since data is overwritten in place before the transaction,
//! but its size is then the old one). Then: `fusermount3 -u -z`, `fsck.rvmfs -n` (exit 0, at
//! most orphans: at least the files still held open after their unlink), `fsck.rvmfs -p`
//! (1 when there were orphans, else 0), remount, and the whole tree under `w/` (names, types,
//! sizes, contents byte for byte, permission bits, link counts, hard-link identity, xattrs,
//! symlink targets) must equal the model. The workload continues on the remounted filesystem
//! (the model carries over).
//!
//! Environment: `TORTURE_SEED=S` replays a run (the seed is printed first; the kill timing of
//! in-flight operations is a race, so only those outcomes may differ), `TORTURE_CYCLES=N`
//! (default 50; the long mode is 1000), `TORTURE_VERBOSE=1` prints every operation.
//!
//! The modules, in the order a cycle uses them:
//!
//! * `rng`: the seeded random numbers (splitmix64); a seed fixes the whole workload.
//! * `ops`: the operations; `generator`: which one comes next, drawn from the model's tree.
//! * `model`: the expected tree under `w/`; `predict`: each operation's outcome and effect.
//! * `execute`: the operation on the real mount, and one in flight from a second thread
//!   while the daemon gets `kill -9`.
//! * `driver`: the cycle (answered operations, the kill) and the run's statistics.
//! * `inflight`: the candidate models after a kill with an operation in flight.
//! * `verify`: fsck, remount, and the tree against the candidates; `scan`: reading the real
//!   tree and its differences from a model.

mod driver;
mod execute;
mod generator;
mod inflight;
mod model;
mod ops;
mod predict;
mod rng;
mod scan;
mod verify;

use crate::driver::Driver;
use crate::execute::{errno_name, errno_of, run_racing_kill};
use crate::rng::Rng;
use rvmfs_tests::*;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::Path;
use std::time::{Duration, Instant};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

#[test]
fn kill9_torture() {
    require_fuse!();
    let seed = env_u64("TORTURE_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
    });
    let cycles = env_u64("TORTURE_CYCLES").unwrap_or(50);
    let verbose = std::env::var_os("TORTURE_VERBOSE").is_some_and(|v| v != "0");
    eprintln!("torture: seed {seed} (replay with TORTURE_SEED={seed}), {cycles} cycles");
    // Modes are exactly what the workload asks for.
    // SAFETY: umask(2) cannot fail; this test binary runs only this test.
    unsafe { libc::umask(0) };

    let start = Instant::now();
    let m = Mounted::with_mkfs(&["-s", "1G"]);
    let root = m.path("w");
    fs::DirBuilder::new().mode(0o755).create(&root).unwrap();
    let mut d = Driver::new(m, root, seed, verbose);
    let mut rng = Rng::new(seed);
    for c in 0..cycles {
        d.cycle = c;
        if c > 0 && rng.chance(0.04) {
            d.clean_remount();
        }
        d.cycle(&mut rng);
    }
    // The end: a clean unmount leaves a clean image holding exactly the model.
    d.clean_remount();
    d.m.unmount_ok();
    d.m.assert_fsck_clean();
    d.stats.report(seed, cycles, start.elapsed());
}

#[test]
fn kill9_unanswered_overwrite_is_all_or_nothing() {
    require_fuse!();
    let attempts = env_u64("TORTURE_TORN_ATTEMPTS").unwrap_or(300);
    let seed = env_u64("TORTURE_SEED").unwrap_or(7);
    let mut rng = Rng::new(seed);
    let mut m = Mounted::new();
    // The old contents go in with one 128 KiB write (larger than the daemon's data-logging
    // limit for small writes, so its blocks are written in place, not logged), cut to 8 KiB.
    let big = pattern(seed, 128 << 10);
    let old = big[..8192].to_vec();
    let (mut applied, mut not_applied, mut answered) = (0, 0, 0);
    let mut torn = Vec::new();
    for a in 0..attempts {
        let path = m.path("f");
        write_old_contents(&path, &big);
        let new = pattern(seed ^ (a + 1), 124 << 10);
        let mut want_applied = old[..4096].to_vec();
        want_applied.extend_from_slice(&new);
        let (p2, n2) = (path.clone(), new.clone());
        let delay = Duration::from_micros(rng.below(400));
        let res = run_racing_kill(m.daemon_pid().unwrap(), delay, move |started| {
            let f = OpenOptions::new().write(true).open(&p2)?;
            started();
            f.write_all_at(&n2, 4096)
        });
        m.kill9();
        m.mount();
        let got = fs::read(&path).unwrap();
        if res.is_ok() {
            answered += 1;
            assert!(
                bytes_diff(&got, &want_applied).is_none(),
                "attempt {a}: an answered write was lost"
            );
        } else if got == want_applied {
            applied += 1;
        } else if got == old {
            not_applied += 1;
        } else {
            torn.push(describe_torn(a, delay, &res, &got, &old, &want_applied));
            break;
        }
    }
    eprintln!(
        "unanswered-overwrite test (seed {seed}): {answered} answered before the kill, {applied} applied, \
         {not_applied} not applied, {} torn",
        torn.len()
    );
    m.unmount_ok();
    m.assert_fsck_clean();
    assert!(
        torn.is_empty(),
        "a write that the daemon never answered is partly applied after kill -9 (the README promises the \
         state after the last answered request and never a partially applied operation):\n  {}",
        torn.join("\n  ")
    );
}

/// An 8 KiB file at `path` whose blocks were written in place: `big` (128 KiB) written at
/// once, then cut to 8 KiB.
fn write_old_contents(path: &Path, big: &[u8]) {
    let _ = fs::remove_file(path);
    let f = File::create(path).unwrap();
    f.write_all_at(big, 0).unwrap();
    f.set_len(8192).unwrap();
    drop(f);
}

/// What a torn result of attempt `a` looks like: its size and which bytes of the old contents
/// are new.
fn describe_torn(
    a: u64,
    delay: Duration,
    res: &io::Result<()>,
    got: &[u8],
    old: &[u8],
    want_applied: &[u8],
) -> String {
    let changed: Vec<usize> = (0..got.len().min(old.len()))
        .filter(|&i| got[i] != old[i])
        .collect();
    format!(
        "attempt {a} (kill {delay:?} after the write started, the write returned {}): size {} (old {}, \
         all-applied {}), {} bytes of the overwritten range 4096..8192 are new (offsets {:?}..={:?})",
        res.as_ref().err().map_or("ok".into(), |e| errno_name(errno_of(e))),
        got.len(),
        old.len(),
        want_applied.len(),
        changed.len(),
        changed.first(),
        changed.last()
    )
}
