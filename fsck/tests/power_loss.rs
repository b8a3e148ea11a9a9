//! Simulated power loss (issue 5, the CrashMonkey/ACE method): drive the filesystem core
//! without FUSE on rvm-core's `SimStorage` (data area, log and segment on one simulated disk)
//! through every 1-operation and 2-operation workload of create, mkdir, write, falloc, link,
//! unlink, rename, symlink, setxattr and truncate over two directories and two names, each
//! followed by fsync or nothing. Then cut the power: all unsynced writes dropped, all kept (a
//! process crash), seeded random prefixes with a torn or garbage last write and random
//! subsets, and at a random point inside the workload itself (possibly inside a commit, a flush
//! or a truncation) and inside the recovery after it. After every cut: recover, run the fsck
//! checks (nothing to fix; used + free = total), and compare the tree with the states after
//! each operation: it must equal one of them, no earlier than the last fsync.
//!
//! `POWER_LOSS_CRASHES=N`: random crash images per workload (default 4).
//! `POWER_LOSS_ONLY=text`: only the workloads whose debug form contains `text`.
//! `POWER_LOSS_EVERY_CUT=1`: cut inside each workload at every I/O, not one random one.

mod common;

use common::{new_inode, open_sim, snapshot, Tree};
use fsck::check::check;
use rvm_core::sim::SimStorage;
use rvm_core::{RvmError, Tunables};
use rvmfs::format::format;
use rvmfs::layout::geometry::Plan;
use rvmfs::layout::superblock::ROOT_INO;
use rvmfs::ops::attr::SetAttr;
use rvmfs::ops::{attr, file, namespace, space, xattr, Fs};
use rvmfs::store::dentry;
use std::sync::Arc;

const IMAGE: u64 = 4 << 20;

fn resolve(fs: &Fs, path: &str) -> Option<(u64, u64)> {
    let mut parent = ROOT_INO;
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let d = dentry::lookup(fs.bytes(), parent, part.as_bytes()).ok()??;
        if i + 1 == parts.len() {
            return Some((parent, d.ino));
        }
        parent = d.ino;
    }
    None
}

fn parent_of(fs: &Fs, path: &str) -> Option<(u64, String)> {
    let (dir_path, name) = path.rsplit_once('/')?;
    let parent = if dir_path.is_empty() {
        ROOT_INO
    } else {
        resolve(fs, dir_path)?.1
    };
    Some((parent, name.to_string()))
}

#[derive(Clone, Copy, Debug)]
enum OpKind {
    Create,
    Mkdir,
    Write,
    Falloc,
    Link,
    Unlink,
    Rename,
    Symlink,
    Setxattr,
    Truncate,
}

const NAMES: [&str; 4] = ["/A/x", "/A/y", "/B/x", "/B/y"];

/// `Result::ok` for an operation's result that notes a fault (a storage error: the operation
/// was answered EIO, not ENOENT or EEXIST) in `fault`; a byte changed outside the declared
/// ranges (rvm-core's checked mode, see `open`) fails the test instead of being ignored.
trait OkChecked<T> {
    fn ok_checked(self, fault: &mut bool) -> Option<T>;
}

impl<T> OkChecked<T> for rvmfs::FsResult<T> {
    fn ok_checked(self, fault: &mut bool) -> Option<T> {
        match self {
            Err(rvmfs::FsError::Rvm(e @ RvmError::Unrecorded { .. })) => {
                panic!("checked mode: {e}")
            }
            Err(rvmfs::FsError::Errno(_)) => None,
            Err(_) => {
                *fault = true;
                None
            }
            Ok(v) => Some(v),
        }
    }
}

/// Apply one operation; errors (ENOENT, EEXIST...) are fine: they change nothing. Returns
/// whether it met a fault (the simulated power loss): then it was not answered as done, and
/// no later fsync makes it durable.
fn apply(fs: &mut Fs, kind: OpKind, a: &str, b: &str, step: u64) -> bool {
    let mut fault = false;
    let f = &mut fault;
    let _ = (|| -> Option<()> {
        match kind {
            OpKind::Create | OpKind::Mkdir | OpKind::Symlink => {
                let (p, name) = parent_of(fs, a)?;
                let mode = match kind {
                    OpKind::Create => libc::S_IFREG | 0o644,
                    OpKind::Mkdir => libc::S_IFDIR | 0o755,
                    _ => libc::S_IFLNK | 0o777,
                };
                let target = matches!(kind, OpKind::Symlink).then_some(b.as_bytes());
                fs.transact(|op| {
                    namespace::create(op, p, name.as_bytes(), new_inode(mode), target)
                })
                .ok_checked(f)?;
            }
            OpKind::Write => {
                let (_, ino) = resolve(fs, a)?;
                let size = fs.inode(ino).ok_checked(f)?.size;
                let data: Vec<u8> = (0..5000u64).map(|i| (i * 7 + step) as u8).collect();
                fs.transact(|op| file::write(op, ino, size, &data, false))
                    .ok_checked(f)?;
            }
            OpKind::Falloc => {
                let (_, ino) = resolve(fs, a)?;
                fs.transact(|op| space::fallocate(op, ino, 0, 3 * 4096, 0))
                    .ok_checked(f)?;
            }
            OpKind::Link => {
                let (_, ino) = resolve(fs, a)?;
                let (p, name) = parent_of(fs, b)?;
                fs.transact(|op| namespace::link(op, ino, p, name.as_bytes()))
                    .ok_checked(f)?;
            }
            OpKind::Unlink => {
                let (p, name) = parent_of(fs, a)?;
                fs.transact(|op| namespace::unlink(op, p, name.as_bytes()))
                    .ok_checked(f)?;
            }
            OpKind::Rename => {
                let (p, name) = parent_of(fs, a)?;
                let (q, new_name) = parent_of(fs, b)?;
                fs.transact(|op| {
                    namespace::rename(op, p, name.as_bytes(), q, new_name.as_bytes(), 0)
                })
                .ok_checked(f)?;
            }
            OpKind::Setxattr => {
                let (_, ino) = resolve(fs, a)?;
                fs.transact(|op| xattr::set(op, ino, b"user.k", format!("v{step}").as_bytes(), 0))
                    .ok_checked(f)?;
            }
            OpKind::Truncate => {
                let (_, ino) = resolve(fs, a)?;
                fs.transact(|op| {
                    attr::setattr(
                        op,
                        ino,
                        &SetAttr {
                            size: Some(1000),
                            ..SetAttr::default()
                        },
                    )
                })
                .ok_checked(f)?;
            }
        }
        Some(())
    })();
    fault
}

fn open(storage: Arc<SimStorage>) -> Option<Fs> {
    open_sim(storage, IMAGE)
}

/// Open with rvm-core's checked mode on: every commit compares the region with a shadow
/// copy, so an operation that changes a byte outside its declared ranges fails the test
/// (see `OkChecked`). Used for the runs that record the states (every operation of every
/// workload); the crash and recovery runs repeat the same operations unchecked.
fn open_checked(storage: Arc<SimStorage>) -> Option<Fs> {
    let fs = open(storage)?;
    let checked = Tunables {
        checked: true,
        ..fs.rvm.query_options()
    };
    fs.rvm.set_options(checked).ok()?;
    Some(fs)
}

/// A freshly formatted image with /A (holding x, 6000 bytes) and /B, all durable.
fn base_image() -> Vec<u8> {
    let disk = Arc::new(SimStorage::new(IMAGE as usize));
    let plan = Plan {
        size: IMAGE,
        inodes: Some(64),
        log: Some(1 << 20),
    };
    format(disk.clone(), plan, [9; 16], (0, 0)).unwrap();
    let mut fs = open_checked(disk.clone()).unwrap();
    assert!(
        !apply(&mut fs, OpKind::Mkdir, "/A", "", 0),
        "a fault without a power cut"
    );
    assert!(
        !apply(&mut fs, OpKind::Mkdir, "/B", "", 0),
        "a fault without a power cut"
    );
    assert!(
        !apply(&mut fs, OpKind::Create, "/A/x", "", 0),
        "a fault without a power cut"
    );
    assert!(
        !apply(&mut fs, OpKind::Write, "/A/x", "", 1),
        "a fault without a power cut"
    );
    // Its transactions ran with a shadow copy (a workload whose operations all fail early
    // may run none).
    assert!(
        fs.rvm.query_region(&fs.region).checked,
        "checked mode is off"
    );
    fs.rvm.flush().unwrap();
    drop(fs);
    disk.durable_image()
}

/// Check a recovered image: fsck finds nothing to fix, and the tree is one of `states`, no
/// earlier than `durable`.
fn verify(image: Vec<u8>, states: &[Tree], durable: usize, what: &str) {
    let disk = Arc::new(SimStorage::from_bytes(image.clone()));
    // A second power cut during recovery, then recovery again.
    if let Some(ops) = what.contains("recovery-crash").then_some(3) {
        disk.crash_after(Some(ops));
        let _ = open(disk.clone());
        let again = disk.crash_image(&rvm_core::sim::Crash::Prefix {
            n: disk.pending_writes(),
            tear: rvm_core::sim::Tear::None,
        });
        return verify(
            again,
            states,
            durable,
            &what.replace("recovery-crash", "after recovery crash"),
        );
    }
    let fs = open(disk).unwrap_or_else(|| panic!("{what}: recovery failed"));
    let report = check(fs.bytes(), &|_, _, _| {})
        .unwrap_or_else(|e| panic!("{what}: fsck could not read the image: {e}"));
    let problems: Vec<_> = report.problems.iter().map(|p| p.what.clone()).collect();
    assert!(
        problems.is_empty(),
        "{what}: fsck found problems: {problems:?}"
    );
    let sb = rvmfs::store::superblock(fs.bytes()).unwrap();
    assert!(
        sb.blocks_used <= sb.data_blocks,
        "{what}: more blocks used than exist"
    );
    let tree = snapshot(&fs).unwrap();
    // Metadata (names, types, modes, link counts, sizes, symlink targets, xattrs) must be
    // exactly the state after some operation. File contents may mix old and new bytes where
    // an unsynced write went into blocks in place (as on ext4 with data=ordered), but every
    // byte must be one that some state had there: never garbage, never another file's data.
    let meta = |t: &Tree| -> Vec<(String, u32, u32, usize, Vec<u8>)> {
        t.iter()
            .map(|(p, (mode, nlink, body, x))| {
                let is_link = mode & libc::S_IFMT == libc::S_IFLNK;
                (
                    p.clone(),
                    *mode,
                    *nlink,
                    body.len(),
                    if is_link { body.clone() } else { x.clone() },
                )
            })
            .collect()
    };
    let found = states.iter().rposition(|s| meta(s) == meta(&tree));
    match found {
        Some(i) if i >= durable => {}
        Some(i) => panic!("{what}: recovered state {i} is older than the last fsync (state {durable})"),
        None => panic!("{what}: recovered tree matches no state after any operation: {tree:#?}\nstates: {states:#?}"),
    }
    // A write torn into garbage (the fault model's harshest case) damages whatever bytes it
    // was writing, and an in-place data write may hit bytes an older state still shows, so
    // contents are only checked byte by byte when no write was turned into garbage.
    if what.contains("Garbage") {
        return;
    }
    for (path, (_, _, body, _)) in &tree {
        for (at, byte) in body.iter().enumerate() {
            let seen = *byte == 0
                || states
                    .iter()
                    .any(|s| s.values().any(|(_, _, b, _)| b.get(at) == Some(byte)));
            assert!(
                seen,
                "{what}: {path} byte {at} = {byte} was never written there"
            );
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ops() -> Vec<(OpKind, &'static str, &'static str)> {
    use OpKind::*;
    let mut v = Vec::new();
    for a in NAMES {
        v.push((Create, a, ""));
        v.push((Write, a, ""));
        v.push((Unlink, a, ""));
        v.push((Setxattr, a, ""));
        v.push((Truncate, a, ""));
    }
    v.push((Mkdir, "/A/y", ""));
    v.push((Mkdir, "/B/x", ""));
    v.push((Falloc, "/A/x", ""));
    v.push((Symlink, "/B/y", "../A/x"));
    v.push((Link, "/A/x", "/B/x"));
    v.push((Link, "/A/x", "/A/y"));
    v.push((Rename, "/A/x", "/B/y"));
    v.push((Rename, "/A/x", "/A/y"));
    v.push((Rename, "/A", "/B/x"));
    v
}

/// Run one workload from the base image, then cut the power in every way listed at the top.
fn run_workload(base: &[u8], workload: &[(OpKind, &str, &str, bool)], crashes: u64, seed: u64) {
    let what = format!("{workload:?}");
    // `POWER_LOSS_ONLY=text`: only the workloads whose debug form contains it.
    if std::env::var("POWER_LOSS_ONLY").is_ok_and(|only| !what.contains(&only)) {
        return;
    }
    // 1. Run it to the end, recording the state after every operation.
    let disk = Arc::new(SimStorage::from_bytes(base.to_vec()));
    let mut fs = open_checked(disk.clone()).unwrap();
    let mut states = vec![snapshot(&fs).unwrap()];
    let mut durable = 0;
    for (step, &(kind, a, b, sync)) in workload.iter().enumerate() {
        let fault = apply(&mut fs, kind, a, b, step as u64 + 2);
        assert!(!fault, "{what}: a fault without a power cut");
        states.push(snapshot(&fs).unwrap());
        if sync {
            fs.rvm.flush().unwrap();
            durable = states.len() - 1;
        }
    }
    let (writes, syncs) = disk.op_counts();
    drop(fs);
    // 2. Power cuts after the workload: everything unsynced lost / kept / random.
    verify(
        disk.durable_image(),
        &states,
        durable,
        &format!("{what}: unsynced writes lost"),
    );
    verify(
        disk.image(),
        &states,
        durable,
        &format!("{what}: all writes kept"),
    );
    let mut rng = Rng(seed | 1);
    for i in 0..crashes {
        let (crash, image) = disk.random_crash(rng.next());
        let tag = if i == 0 { " recovery-crash" } else { "" };
        verify(image, &states, durable, &format!("{what}: {crash:?}{tag}"));
    }
    // 3. A power cut inside the workload (in a commit, a flush, a truncation...): at one
    // random I/O, or at every one with `POWER_LOSS_EVERY_CUT=1`.
    let total = writes + syncs;
    let random_cut = rng.next() % total.max(1);
    let cuts: Vec<u64> = if std::env::var_os("POWER_LOSS_EVERY_CUT").is_some() {
        (0..total.max(1)).collect()
    } else {
        vec![random_cut]
    };
    for cut in cuts {
        cut_inside(base, workload, &states, cut, total, rng.next(), &what);
    }
}

/// Run `workload` from `base` with the power lost after `cut` I/Os, then verify a crash
/// image chosen by `seed`.
fn cut_inside(
    base: &[u8],
    workload: &[(OpKind, &str, &str, bool)],
    states: &[Tree],
    cut: u64,
    total: u64,
    seed: u64,
    what: &str,
) {
    let disk = Arc::new(SimStorage::from_bytes(base.to_vec()));
    let Some(mut fs) = open(disk.clone()) else {
        return;
    };
    disk.crash_after(Some(cut));
    let mut durable = 0;
    for (step, &(kind, a, b, sync)) in workload.iter().enumerate() {
        if disk.is_crashed() {
            break;
        }
        // An operation the power cut made fail was not done: a flush after it (which may
        // find nothing to write) does not make it durable.
        if apply(&mut fs, kind, a, b, step as u64 + 2) {
            break;
        }
        if sync && fs.rvm.flush().is_ok() {
            durable = step + 1;
        }
    }
    drop(fs);
    let (crash, image) = disk.random_crash(seed);
    verify(
        image,
        states,
        durable,
        &format!("{what}: cut after {cut} of {total} I/Os, {crash:?}"),
    );
}

#[test]
fn every_one_and_two_operation_workload_survives_power_loss() {
    let crashes: u64 = std::env::var("POWER_LOSS_CRASHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let base = base_image();
    let ops = ops();
    let mut workloads = 0;
    for (i, &(k1, a1, b1)) in ops.iter().enumerate() {
        for sync in [false, true] {
            run_workload(
                &base,
                &[(k1, a1, b1, sync)],
                crashes,
                i as u64 * 2 + sync as u64,
            );
            workloads += 1;
        }
        for (j, &(k2, a2, b2)) in ops.iter().enumerate() {
            for (s1, s2) in [(false, false), (true, false), (false, true)] {
                let seed = (i * ops.len() + j) as u64 * 4 + s1 as u64 * 2 + s2 as u64;
                run_workload(
                    &base,
                    &[(k1, a1, b1, s1), (k2, a2, b2, s2)],
                    crashes,
                    seed + 7,
                );
                workloads += 1;
            }
        }
    }
    eprintln!(
        "{workloads} workloads, each cut {} ways, all recovered consistently",
        crashes + 3
    );
}
