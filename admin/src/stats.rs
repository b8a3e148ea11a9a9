//! `rvmfs-admin stats MOUNTPOINT`: what a mounted rvmfs does, once an interval (juicefs
//! stats, iostat): FUSE requests by opcode with their latency percentiles, commits, flushes
//! and syncs, bytes logged, log fill, truncations, and file data read and written. Reads the
//! daemon's virtual attributes (`stats/sample.rs`); no network port, no image access.

mod sample;

use crate::exit;
use indicatif::HumanBytes;
use sample::{Interval, Sample};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Show what a mounted rvmfs does, once an interval (as iostat and juicefs stats).
///
/// Each report covers one interval: commits, flush requests (fsync, syncfs, a sync mount's
/// commits), storage syncs (theirs and the commit timer's), fsync/fdatasync/fsyncdir
/// requests, bytes written to the redo log, log fill (live bytes of its capacity),
/// truncations, spool fill (no-flush record bytes not yet in the log, of its room), file
/// data read and written; then the busiest FUSE requests with their count and latency (p50
/// and p99, upper bounds of log2 buckets). Fills are as at the end of the interval. Reads
/// the virtual attributes rvmfs.counters, rvmfs.requests and rvmfs.latency of MOUNTPOINT.
///
/// Exit status: 0 success, 1 the mount went away while watching, 8 MOUNTPOINT is not on an
/// rvmfs mount, 16 usage error.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Seconds between reports (fractions allowed).
    #[arg(short = 'i', long = "interval", value_name = "SECONDS", default_value_t = 1.0,
          value_parser = parse_interval)]
    pub interval: f64,
    /// Stop after COUNT reports (default: until interrupted).
    #[arg(short = 'c', long = "count", value_name = "COUNT")]
    pub count: Option<u64>,
    /// One JSON object per interval, one a line.
    #[arg(long)]
    pub json: bool,
    /// Requests shown per interval in text output, the busiest first.
    #[arg(short = 'n', long = "ops", value_name = "N", default_value_t = 8)]
    pub ops: usize,
    /// A mountpoint of rvmfs, or any file on one.
    pub mountpoint: PathBuf,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let mnt = &args.mountpoint;
    let mut before = match Sample::read(mnt) {
        Ok(s) => s,
        Err(e) => {
            exit::say("stats", mnt, format!("not an rvmfs mount ({e:#})"));
            return Ok(exit::OPERATIONAL);
        }
    };
    let mut then = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut shown = 0;
    while args.count.is_none_or(|c| shown < c) {
        std::thread::sleep(Duration::from_secs_f64(args.interval));
        let now = match Sample::read(mnt) {
            Ok(s) => s,
            Err(e) => {
                exit::say("stats", mnt, format!("{e:#}"));
                return Ok(exit::ERROR);
            }
        };
        let interval = now.since(&before, then.elapsed().as_secs_f64());
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&interval)?)?;
        } else {
            writeln!(out, "{}", text(&interval, args.ops))?;
        }
        out.flush()?;
        (before, then, shown) = (now, Instant::now(), shown + 1);
    }
    Ok(exit::OK)
}

/// One interval as two lines: the counters, then the busiest `ops` requests.
fn text(i: &Interval, ops: usize) -> String {
    let c = |k: &str| i.counters.get(k).copied().unwrap_or(0);
    let pct = |part: u64, whole: u64| 100.0 * part as f64 / whole.max(1) as f64;
    let fill = pct(i.log_live, i.log_capacity);
    let spool = pct(i.spool_bytes, i.spool_capacity);
    let when = jiff::Timestamp::now().strftime("%H:%M:%S");
    let mut s = format!(
        "{when} commits {} flushes {} syncs {} fsyncs {} logged {} log {fill:.1}% of {} \
         truncations {} spool {spool:.1}% read {} written {}\n        ",
        c("commits"),
        c("flushes"),
        c("flush_syncs"),
        c("fsync") + c("fdatasync") + c("fsyncdir"),
        HumanBytes(c("bytes_logged")),
        HumanBytes(i.log_capacity),
        c("truncations"),
        HumanBytes(c("read_bytes")),
        HumanBytes(c("written_bytes")),
    );
    let mut busy: Vec<(&String, &u64)> = i.requests.iter().collect();
    busy.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if busy.is_empty() {
        s += "no requests";
    }
    for (op, n) in busy.into_iter().take(ops) {
        s += &format!(" {op} {n}");
        if let Some(l) = i.latency.get(op) {
            s += &format!(" (p50 {} p99 {})", ns(l.p50_ns), ns(l.p99_ns));
        }
    }
    s
}

/// A duration of `ns` nanoseconds, short ("950ns", "16.4us", "1.2ms", "3.0s").
fn ns(ns: u64) -> String {
    let f = ns as f64;
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}us", f / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", f / 1e6),
        _ => format!("{:.1}s", f / 1e9),
    }
}
