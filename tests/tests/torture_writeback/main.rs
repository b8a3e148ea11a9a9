//! Issue 12 item 3: the `kill -9` torture test of `-o writeback`, and of the same workload
//! in the default mode.
//!
//! The promise of `-o writeback` (README, "The promises"): after `kill -9` of the daemon,
//! every answered metadata request, and every file closed or fsynced before the kill, is
//! intact (close-to-open); data written to a file not closed or fsynced since may be lost
//! (it can sit in the kernel's page cache, which the dead daemon can no longer be sent).
//!
//! Each cycle runs 20-80 random operations (`workload.rs`: create and close, create and hold
//! open mid-write, write to held files, fsync/fdatasync, close, overwrite a closed file,
//! truncate, rename, unlink, chmod, setxattr), each recorded in the model once its syscall
//! returned (`model.rs`), then `kill -9` of the daemon, `fsck.rvmfs -n` (exit 0), `fsck.rvmfs
//! -p`, a remount, and the check of exactly the promise:
//! - the names under `w/` and their types are the model's (every answered create, rename,
//!   unlink); every file's permission bits and `user.k` xattr are the model's;
//! - every *settled* file (closed or fsynced after its last write) has its full contents,
//!   byte for byte;
//! - an unsettled one is no longer than the largest size the workload gave it.
//!
//! In the default mode every answered write is the daemon's, so every file must be intact.
//! Under `-o writeback` the run also checks that the writeback cache was really on: the
//! daemon saw fewer WRITE requests than the workload made write calls (the kernel merged
//! and held them), and it reports how many unsettled files lost data at a kill.
//!
//! Environment: `TORTURE_SEED=S` replays a run, `TORTURE_CYCLES=N` (default 8; CI runs the
//! default).

mod model;
#[path = "../posix_common.rs"]
mod posix_common;
#[path = "../torture/rng.rs"]
mod rng;
mod workload;

use crate::model::{Model, Node};
use crate::rng::Rng;
use crate::workload::Workload;
use rvmfs_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[test]
fn kill9_writeback_close_to_open() {
    require_fuse!();
    run(true);
}

#[test]
fn kill9_default_mode_keeps_every_answered_write() {
    require_fuse!();
    run(false);
}

/// What the checks after every kill found, summed over a run.
#[derive(Default)]
struct Tally {
    ops: u64,
    settled: u64,
    unsettled: u64,
    /// Unsettled files whose recovered contents differ from what the workload wrote.
    unsettled_lost: u64,
    /// WRITE requests the daemons received (their `rvmfs.requests` counters, before each kill).
    write_requests: u64,
}

/// The run: `writeback` mounts with `-o writeback`.
fn run(writeback: bool) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let default_seed = now.map_or(1, |t| t.as_nanos() as u64) ^ u64::from(std::process::id()) << 32;
    let seed = posix_common::env_count("TORTURE_SEED", default_seed);
    let cycles = posix_common::env_count("TORTURE_CYCLES", 8);
    let mode = if writeback {
        "-o writeback"
    } else {
        "default mode"
    };
    eprintln!("torture ({mode}): seed {seed} (replay with TORTURE_SEED={seed}), {cycles} cycles");
    // Modes are exactly what the workload asks for. SAFETY: umask(2) cannot fail; both
    // tests of this binary want 0.
    unsafe { libc::umask(0) };
    let mut m = Mounted::unmounted(&["-s", "512M"]);
    if writeback {
        m.set_mount_options(&["writeback"]);
    }
    m.mount();
    let mut w = Workload::new(m.path("w"), writeback);
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for c in 0..cycles {
        w.log.clear();
        let n = rng.range(20, 80);
        for _ in 0..n {
            w.step(&mut rng);
        }
        tally.ops += n;
        tally.write_requests += write_requests(&m);
        m.kill9();
        w.log.push("KILL".into());
        recover(&mut m, &w.log);
        let found = verify(&w.model, &w.root, &mut tally, &w.log);
        w.model.after_recovery(&found);
        eprintln!("cycle {c}: {n} ops, {} files", found.len());
    }
    // The end: a clean unmount leaves a clean image.
    m.unmount_ok();
    m.assert_fsck_clean();
    eprintln!(
        "torture ({mode}): seed {seed}: {cycles} kill -9 cycles, {} operations; after the kills {} settled \
         files intact, {} unsettled ({} of them lost data, as the promise allows); {} write calls, \
         {} WRITE requests",
        tally.ops, tally.settled, tally.unsettled, tally.unsettled_lost, w.write_calls,
        tally.write_requests
    );
    if writeback {
        assert!(
            tally.write_requests < w.write_calls,
            "-o writeback: the daemon saw {} WRITE requests for {} write calls: is the kernel's \
             writeback cache on?",
            tally.write_requests,
            w.write_calls
        );
    }
}

/// The WRITE requests the mounted daemon received (its `rvmfs.requests` counters).
fn write_requests(m: &Mounted) -> u64 {
    posix_common::requests(m.mnt())["write"]
}

/// After the kill: `fsck -n` finds nothing to fix (exit 0), `fsck -p` exits 0 or 1 (a
/// closed file unlinked before the kernel's RELEASE reached the daemon is an orphan), mount.
fn recover(m: &mut Mounted, log: &[String]) {
    let (code, out) = m.fsck(&["-n"]);
    assert_eq!(
        code,
        0,
        "fsck -n after kill -9:\n{out}\noperations:\n  {}",
        log.join("\n  ")
    );
    let (pcode, pout) = m.fsck(&["-p"]);
    assert!(pcode <= 1, "fsck -p after kill -9 exited {pcode}:\n{pout}");
    m.mount();
}

/// The tree under `root` against the model (see the module doc); returns every file's
/// recovered contents by id.
fn verify(
    model: &Model,
    root: &Path,
    tally: &mut Tally,
    log: &[String],
) -> BTreeMap<usize, Vec<u8>> {
    let fail = |what: String| -> ! {
        panic!(
            "after kill -9 and remount: {what}\nthis cycle's operations:\n  {}",
            log.join("\n  ")
        )
    };
    let names = scan(root);
    let want: BTreeSet<(String, bool)> = model
        .tree
        .iter()
        .map(|(p, n)| (p.clone(), *n == Node::Dir))
        .collect();
    if names != want {
        let lost: Vec<_> = want.difference(&names).collect();
        let extra: Vec<_> = names.difference(&want).collect();
        fail(format!(
            "the names differ: missing {lost:?}, unexpected {extra:?}"
        ));
    }
    let mut found = BTreeMap::new();
    for (path, id) in model.linked() {
        let f = &model.files[id];
        let p = root.join(&path);
        let data = fs::read(&p).unwrap_or_else(|e| fail(format!("read {path}: {e}")));
        let perm = fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        if perm != f.perm {
            fail(format!(
                "{path}: mode {perm:o}, the answered chmod/create gave {:o}",
                f.perm
            ));
        }
        let xattr = xattrs_of(&p).remove("user.k");
        if xattr != f.xattr {
            fail(format!(
                "{path}: user.k is {xattr:?}, the answered setxattr gave {:?}",
                f.xattr
            ));
        }
        if f.settled {
            tally.settled += 1;
            if let Some(d) = bytes_diff(&data, &f.data) {
                fail(format!(
                    "{path} was closed or fsynced before the kill and differs: {d}"
                ));
            }
        } else {
            tally.unsettled += 1;
            tally.unsettled_lost += u64::from(data != f.data);
            if data.len() as u64 > f.max_len {
                fail(format!(
                    "{path}: {} bytes, longer than ever written ({})",
                    data.len(),
                    f.max_len
                ));
            }
        }
        found.insert(id, data);
    }
    found
}

/// Every name under `root` (relative paths, two levels) with whether it is a directory.
fn scan(root: &Path) -> BTreeSet<(String, bool)> {
    let mut out = BTreeSet::new();
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let dir = e.file_type().unwrap().is_dir();
        if dir {
            for sub in fs::read_dir(e.path()).unwrap() {
                let sub = sub.unwrap();
                let n = format!("{name}/{}", sub.file_name().to_string_lossy());
                out.insert((n, sub.file_type().unwrap().is_dir()));
            }
        }
        out.insert((name, dir));
    }
    out
}
