//! Request counters by opcode: how many requests of each kind the daemon received and how
//! long each took to answer, as a fixed table indexed by [`Op`].
//!
//! Every handler in `requests.rs` starts a [`Timer`] for its opcode as its first line; the
//! timer counts the request at once and, when it is dropped at the end of the handler (after
//! the reply was written to /dev/fuse), adds the handler's time to a log2 histogram (bucket
//! `i` holds requests that took `[2^i, 2^(i+1))` ns), the cheap latency record of HdrHistogram
//! and of the kernel's own BPF `hist()` maps. Both are read through two virtual extended
//! attributes of any inode ([`REQUESTS_XATTR`], [`LATENCY_XATTR`]); reading them is not counted,
//! so a benchmark can read them before and after a workload without disturbing the counts.
//! A new opcode is one more [`Op`] variant and one more name in [`NAMES`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use crate::latency::BUCKETS;
use crate::latency::{bucket, quantile};

/// The kernel requests rvmfs answers itself (the ones fuser answers without the filesystem,
/// INIT, DESTROY, INTERRUPT, are not counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Forget,
    Getattr,
    Setattr,
    Readlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Readdirplus,
    Releasedir,
    Fsyncdir,
    Statfs,
    Setxattr,
    Getxattr,
    Listxattr,
    Removexattr,
    Access,
    Create,
    Ioctl,
    Fallocate,
    Lseek,
    CopyFileRange,
}

/// How many opcodes [`Op`] has.
pub const OPS: usize = Op::CopyFileRange as usize + 1;

/// The name of each [`Op`] in the counters' text, in the order of `Op` (the kernel's opcode
/// names, lower case; `batch_forget` counts as one `forget` per inode).
pub const NAMES: [&str; OPS] = [
    "lookup",
    "forget",
    "getattr",
    "setattr",
    "readlink",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "flush",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "readdirplus",
    "releasedir",
    "fsyncdir",
    "statfs",
    "setxattr",
    "getxattr",
    "listxattr",
    "removexattr",
    "access",
    "create",
    "ioctl",
    "fallocate",
    "lseek",
    "copy_file_range",
];

/// Virtual attribute with the request count of every opcode, as one line of `name=N` pairs
/// in the order of [`NAMES`] ("lookup=12 forget=0 getattr=3 ...").
pub const REQUESTS_XATTR: &[u8] = b"rvmfs.requests";

/// Virtual attribute with the latency of every opcode that was received, one line each:
/// "NAME n=N p50_ns=X p99_ns=Y max_ns=Z hist=B0,B1,...,B39" (percentiles and maximum are
/// upper bounds of log2 buckets, in ns; `hist` has [`BUCKETS`] counts).
pub const LATENCY_XATTR: &[u8] = b"rvmfs.latency";

/// The counts and latency histograms of every opcode.
pub struct OpStats {
    count: [AtomicU64; OPS],
    hist: [[AtomicU64; BUCKETS]; OPS],
}

impl Default for OpStats {
    fn default() -> OpStats {
        OpStats {
            count: std::array::from_fn(|_| AtomicU64::new(0)),
            hist: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

/// Counts one request of its opcode when started, records its duration when dropped.
pub struct Timer<'a> {
    stats: &'a OpStats,
    op: Op,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        let ns = self.start.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.stats.hist[self.op as usize][bucket(ns)].fetch_add(1, Ordering::Relaxed);
    }
}

impl OpStats {
    /// Count one request of `op`; its latency is recorded when the timer is dropped.
    pub fn start(&self, op: Op) -> Timer<'_> {
        self.add(op, 1);
        Timer {
            stats: self,
            op,
            start: Instant::now(),
        }
    }

    /// Count `n` requests of `op` without timing them (one BATCH_FORGET of `n` inodes).
    pub fn add(&self, op: Op, n: u64) {
        self.count[op as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The requests received of `op` so far.
    pub fn count(&self, op: Op) -> u64 {
        self.count[op as usize].load(Ordering::Relaxed)
    }

    /// The value of [`REQUESTS_XATTR`].
    pub fn requests_text(&self) -> Vec<u8> {
        let pairs: Vec<String> = (0..OPS)
            .map(|i| format!("{}={}", NAMES[i], self.count[i].load(Ordering::Relaxed)))
            .collect();
        pairs.join(" ").into_bytes()
    }

    /// The value of [`LATENCY_XATTR`].
    pub fn latency_text(&self) -> Vec<u8> {
        let mut out = String::new();
        for (i, name) in NAMES.iter().enumerate() {
            let hist: Vec<u64> = self.hist[i]
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            let n: u64 = hist.iter().sum();
            if n == 0 {
                continue;
            }
            let list: Vec<String> = hist.iter().map(u64::to_string).collect();
            out += &format!(
                "{name} n={n} p50_ns={} p99_ns={} max_ns={} hist={}\n",
                quantile(&hist, n, 0.50),
                quantile(&hist, n, 0.99),
                quantile(&hist, n, 1.0),
                list.join(",")
            );
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opcode_has_a_name() {
        assert_eq!(NAMES[Op::Lookup as usize], "lookup");
        assert_eq!(NAMES[Op::CopyFileRange as usize], "copy_file_range");
    }

    #[test]
    fn counts_and_latency_reach_the_text() {
        let s = OpStats::default();
        drop(s.start(Op::Write));
        drop(s.start(Op::Write));
        s.add(Op::Forget, 5);
        let text = String::from_utf8(s.requests_text()).unwrap();
        assert!(text.starts_with("lookup=0 forget=5 getattr=0"), "{text}");
        assert!(text.contains(" write=2 "), "{text}");
        let lat = String::from_utf8(s.latency_text()).unwrap();
        assert!(lat.starts_with("write n=2 p50_ns="), "{lat}");
        assert_eq!(
            lat.lines().count(),
            1,
            "forget is counted, not timed: {lat}"
        );
    }
}
