//! One reading of a mounted rvmfs's live counters, through the virtual attributes the daemon
//! answers on any file of the mount (`rvmfs.counters`, `rvmfs.requests`, `rvmfs.latency`,
//! all "name=value" text), and the difference of two readings: what the mount did between
//! them.

use rvmfs::latency::{quantile, BUCKETS};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The three virtual attributes, as read at one instant.
pub struct Sample {
    /// `rvmfs.counters`: name -> value (counts; byte counts in bytes).
    pub counters: BTreeMap<String, u64>,
    /// `rvmfs.requests`: opcode -> requests received.
    pub requests: BTreeMap<String, u64>,
    /// `rvmfs.latency`: opcode -> log2 histogram (ns buckets, `rvmfs::latency`).
    pub hist: BTreeMap<String, Vec<u64>>,
}

/// Latency of one opcode over an interval (upper bounds of log2 buckets, ns).
#[derive(Serialize, Debug)]
pub struct Latency {
    pub n: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// What the mount did in one interval: counter deltas, and the log fill at its end.
#[derive(Serialize, Debug)]
pub struct Interval {
    /// Length of the interval, seconds.
    pub seconds: f64,
    /// Counter deltas ("commits", "written_bytes", ...; as `rvmfs.counters` names them).
    pub counters: BTreeMap<String, u64>,
    /// Live log bytes and the log's capacity at the end of the interval (bytes).
    pub log_live: u64,
    pub log_capacity: u64,
    /// No-flush record bytes not yet in the log, and the spool's room for them, at the end
    /// of the interval (bytes).
    pub spool_bytes: u64,
    pub spool_capacity: u64,
    /// Requests received in the interval, opcodes with none left out.
    pub requests: BTreeMap<String, u64>,
    /// Latency of the requests answered in the interval, by opcode.
    pub latency: BTreeMap<String, Latency>,
}

/// Counters that are levels, not counts: reported as they are at the end of an interval.
const LEVELS: [&str; 4] = ["log_live", "log_capacity", "spool_bytes", "spool_capacity"];

/// Read virtual attribute `name` of `path`; the error names the attribute and the errno.
/// The value is made anew at each read and may grow between asking its size and reading it
/// (counts gain digits), hence the slack and the retries on ERANGE.
fn getxattr(path: &Path, name: &str) -> anyhow::Result<String> {
    let p = CString::new(path.as_os_str().as_bytes())?;
    let n = CString::new(name)?;
    let failed = |e: std::io::Error| anyhow::anyhow!("cannot read attribute {name}: {e}");
    for _ in 0..4 {
        // SAFETY: valid C strings; a null buffer of length 0 asks for the value's size.
        let size = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(failed(std::io::Error::last_os_error()));
        }
        let mut buf = vec![0u8; size as usize + 4096];
        // SAFETY: valid C strings and a buffer of the length passed.
        let len =
            unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if len >= 0 {
            buf.truncate(len as usize);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(failed(e));
        }
    }
    Err(failed(std::io::Error::from_raw_os_error(libc::ERANGE)))
}

/// "a=1 b=2" -> {a: 1, b: 2}; tokens that are not name=number are skipped.
fn pairs(text: &str) -> BTreeMap<String, u64> {
    text.split_whitespace()
        .filter_map(|t| t.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// The `hist=` list of each line of `rvmfs.latency`, by opcode.
fn histograms(text: &str) -> BTreeMap<String, Vec<u64>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(op) = words.next() else { continue };
        let Some(list) = words.find_map(|w| w.strip_prefix("hist=")) else {
            continue;
        };
        let hist: Vec<u64> = list.split(',').filter_map(|b| b.parse().ok()).collect();
        out.insert(op.to_string(), hist);
    }
    out
}

impl Sample {
    /// Read the counters of the rvmfs mounted at (or holding) `path`. Fails when `path`
    /// does not exist or is not on an rvmfs mount (no `rvmfs.counters` attribute).
    pub fn read(path: &Path) -> anyhow::Result<Sample> {
        Ok(Sample {
            counters: pairs(&getxattr(path, "rvmfs.counters")?),
            requests: pairs(&getxattr(path, "rvmfs.requests")?),
            hist: histograms(&getxattr(path, "rvmfs.latency")?),
        })
    }

    /// What happened from `before` to `self`, an interval of `seconds`.
    pub fn since(&self, before: &Sample, seconds: f64) -> Interval {
        let delta = |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>| {
            now.iter()
                .filter(|(k, _)| !LEVELS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.saturating_sub(*then.get(k).unwrap_or(&0))))
                .collect::<BTreeMap<_, _>>()
        };
        let mut requests = delta(&self.requests, &before.requests);
        requests.retain(|_, n| *n > 0);
        let level = |k: &str| *self.counters.get(k).unwrap_or(&0);
        Interval {
            seconds,
            counters: delta(&self.counters, &before.counters),
            log_live: level("log_live"),
            log_capacity: level("log_capacity"),
            spool_bytes: level("spool_bytes"),
            spool_capacity: level("spool_capacity"),
            requests,
            latency: self.latency_since(before),
        }
    }

    /// Percentiles of the histogram deltas, by opcode (opcodes answered in the interval).
    fn latency_since(&self, before: &Sample) -> BTreeMap<String, Latency> {
        let mut out = BTreeMap::new();
        for (op, now) in &self.hist {
            let then = before.hist.get(op);
            let d: Vec<u64> = (0..BUCKETS.min(now.len()))
                .map(|i| now[i].saturating_sub(then.and_then(|h| h.get(i)).copied().unwrap_or(0)))
                .collect();
            let n: u64 = d.iter().sum();
            if n == 0 {
                continue;
            }
            let lat = Latency {
                n,
                p50_ns: quantile(&d, n, 0.50),
                p99_ns: quantile(&d, n, 0.99),
                max_ns: quantile(&d, n, 1.0),
            };
            out.insert(op.clone(), lat);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(counters: &str, requests: &str, latency: &str) -> Sample {
        Sample {
            counters: pairs(counters),
            requests: pairs(requests),
            hist: histograms(latency),
        }
    }

    #[test]
    fn an_interval_is_the_difference_of_two_readings() {
        let a = sample(
            "commits=5 written_bytes=100 log_live=10 log_capacity=1000",
            "lookup=1 write=2 read=0",
            "write n=2 p50_ns=1 p99_ns=1 max_ns=1 hist=2,0,0",
        );
        let b = sample(
            "commits=9 written_bytes=4196 log_live=40 log_capacity=1000",
            "lookup=1 write=5 read=0",
            "write n=5 p50_ns=7 p99_ns=7 max_ns=7 hist=2,0,3",
        );
        let i = b.since(&a, 1.0);
        assert_eq!(i.counters["commits"], 4);
        assert_eq!(i.counters["written_bytes"], 4096);
        assert!(!i.counters.contains_key("log_live"));
        assert_eq!((i.log_live, i.log_capacity), (40, 1000));
        assert_eq!(i.requests.len(), 1, "{:?}", i.requests);
        assert_eq!(i.requests["write"], 3);
        let w = &i.latency["write"];
        assert_eq!((w.n, w.p50_ns, w.max_ns), (3, 7, 7));
    }
}
