//! FUSE requests per operation: the rvmfs daemon counts the requests it receives by opcode
//! (virtual attribute `rvmfs.requests` of any inode, not counted itself); each timed phase of
//! a workload reads the counters just before its clock starts and just after it stops
//! ([`Phase`]), so the report can say how many round trips one operation cost, and what they
//! cost at the FUSE floor ([`floor_us`]: one round trip answered at once).
//!
//! Counting is on only while [`record_on`] names a mount (the rvmfs runs, default and
//! `-o writeback`, the latter's phases under keys with a prefix); on other systems a
//! [`Phase`] is a plain clock.

use crate::Results;
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests of one workload phase, summed over its repetitions.
#[derive(Serialize, Default, Clone)]
pub struct PerOp {
    /// Operations the phase did per repetition (files, directories, MiB, tree entries).
    pub ops: f64,
    pub reps: usize,
    /// Opcode -> requests, summed over the repetitions.
    pub requests: BTreeMap<String, u64>,
}

impl PerOp {
    /// Requests per operation, all opcodes.
    pub fn total(&self) -> f64 {
        self.requests.values().sum::<u64>() as f64 / self.per()
    }
    fn per(&self) -> f64 {
        (self.ops * self.reps as f64).max(1.0)
    }
    /// The six largest opcodes per operation, as `name n.nn` joined by commas (the
    /// report's column).
    pub fn largest(&self) -> String {
        let top: Vec<String> = self
            .by_opcode()
            .iter()
            .filter(|(_, v)| *v >= 0.005)
            .take(6)
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        top.join(", ")
    }

    /// The opcodes by requests per operation, largest first.
    pub fn by_opcode(&self) -> Vec<(String, f64)> {
        let mut v: Vec<_> = self
            .requests
            .iter()
            .map(|(k, &n)| (k.clone(), n as f64 / self.per()))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

struct Recorder {
    mnt: PathBuf,
    active: bool,
    /// Put before each phase's metric key (`""` for default rvmfs).
    prefix: &'static str,
    phases: BTreeMap<String, PerOp>,
}

static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);

fn recorder() -> std::sync::MutexGuard<'static, Option<Recorder>> {
    RECORDER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Count requests on rvmfs mount `mnt` from now on (until [`pause`] or [`take`]), adding to
/// the phases recorded before; each phase under its metric key after `prefix`.
pub fn record_on(mnt: &Path, prefix: &'static str) {
    let mut guard = recorder();
    let phases = guard.take().map(|r| r.phases).unwrap_or_default();
    *guard = Some(Recorder {
        mnt: mnt.to_path_buf(),
        active: true,
        prefix,
        phases,
    });
}

/// Stop counting for now (another system runs); the phases recorded so far are kept.
pub fn pause() {
    if let Some(r) = recorder().as_mut() {
        r.active = false;
    }
}

/// Stop counting; the phases recorded, by metric key. A phase recorded with 0 operations
/// (the source-tree workloads) counts per entry of the tree: `tree_entries`.
pub fn take(tree_entries: usize) -> BTreeMap<String, PerOp> {
    let mut phases = recorder().take().map(|r| r.phases).unwrap_or_default();
    for p in phases.values_mut().filter(|p| p.ops == 0.0) {
        p.ops = tree_entries as f64;
    }
    phases
}

/// The value of virtual attribute `name` of `path` (one call, 64 KiB buffer).
fn virtual_xattr(path: &Path, name: &str) -> Result<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes())?;
    let n = CString::new(name)?;
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: valid C strings and a buffer of the given length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        bail!(
            "getxattr {name} {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    buf.truncate(len as usize);
    Ok(buf)
}

/// The daemon's request counts by opcode.
fn counts(mnt: &Path) -> Result<BTreeMap<String, u64>> {
    counters(mnt, "rvmfs.requests")
}

/// The `name=value` counters of virtual attribute `attr` (`rvmfs.requests`,
/// `rvmfs.counters`) of rvmfs mount `mnt`.
pub fn counters(mnt: &Path, attr: &str) -> Result<BTreeMap<String, u64>> {
    let text = String::from_utf8(virtual_xattr(mnt, attr)?)?;
    Ok(text
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect())
}

/// One timed phase of a workload: the clock, and (when recording) the counters around it.
pub struct Phase {
    base: Option<BTreeMap<String, u64>>,
    start: Instant,
}

impl Phase {
    /// Read the counters (when recording), then start the clock.
    pub fn start() -> Phase {
        let mnt = recorder()
            .as_ref()
            .filter(|r| r.active)
            .map(|r| r.mnt.clone());
        Phase {
            base: mnt.and_then(|m| counts(&m).ok()),
            start: Instant::now(),
        }
    }

    /// Stop the clock, then record the requests since [`Phase::start`] under metric `key`
    /// for `ops` operations (0: per entry of the source tree). Returns the elapsed time.
    pub fn end(self, key: &str, ops: usize) -> Duration {
        let took = self.start.elapsed();
        let mut guard = recorder();
        let (Some(rec), Some(base)) = (guard.as_mut(), self.base) else {
            return took;
        };
        let Ok(now) = counts(&rec.mnt) else {
            return took;
        };
        let p = rec
            .phases
            .entry(format!("{}{key}", rec.prefix))
            .or_default();
        p.ops = ops as f64;
        p.reps += 1;
        for (k, v) in now {
            let d = v.saturating_sub(base.get(&k).copied().unwrap_or(0));
            if d > 0 {
                *p.requests.entry(k).or_default() += d;
            }
        }
        took
    }
}

/// The FUSE floor on rvmfs mount `mnt`: the median time of one round trip the daemon answers
/// at once (a getxattr of its virtual `rvmfs.counters`, never cached by the kernel), µs.
pub fn floor_us(mnt: &Path, n: usize) -> Result<f64> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        virtual_xattr(mnt, "rvmfs.counters")?;
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(crate::report::median(&v).unwrap_or(f64::NAN))
}

/// The markdown section: per phase, requests per operation, the largest opcodes, and those
/// requests at the floor next to the measured time per operation on rvmfs.
pub fn markdown(r: &Results) -> String {
    if r.requests.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n## FUSE requests per operation (rvmfs)\n\n");
    if let Some(f) = r.fuse_floor_us {
        s += &format!(
            "FUSE floor on this machine: {f:.1} µs per round trip (median getxattr of the \
             virtual `rvmfs.counters`, answered at once). \"At the floor\" is requests/op x \
             floor, the part of the measured time the round trips alone take; \"lower bound\" adds \
             the raw disk time of what must reach the disk (see the section on the lower bound). \
             An operation of \
             seq write/read is 1 MiB; of untar, find, du, rm -rf one entry of the tree; of \
             rm -rf of the dir tree one directory.\n\n"
        );
    }
    let cols = [
        ("workload", false),
        ("requests/op", true),
        ("at the floor (µs/op)", true),
        ("lower bound (µs/op)", true),
        ("measured (µs/op)", true),
        ("largest opcodes (per op)", false),
    ];
    let rows = r.metrics.iter().filter_map(|m| {
        let p = r.requests.get(m.key)?;
        let measured = crate::limits::per_op_us(m, "rvmfs", p.ops);
        let at_floor = r.fuse_floor_us.map(|f| p.total() * f);
        let bound = crate::limits::lower_bound_us(r, m.key);
        let us = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
        Some(vec![
            m.label.clone(),
            format!("{:.2}", p.total()),
            us(at_floor),
            us(bound),
            us(measured),
            p.largest(),
        ])
    });
    crate::table::write(&mut s, &cols, rows);
    s
}
